//! Prefix arithmetic shared by the compiler and the image's own lookup: networks as the kernel
//! trie stores them (IPv4 mapped into IPv6), prefix masks, and ports cut into aligned blocks.

use std::net::Ipv6Addr;

use ipnet::IpNet;

/// `::ffff:0:0`, the IPv4-mapped range (a /96).
pub const V4_MAPPED: u128 = 0xffff_0000_0000;

/// The network and prefix length as the kernel trie stores them (IPv4 mapped into IPv6).
pub fn mapped(net: &IpNet) -> (Ipv6Addr, u8) {
    match net {
        IpNet::V4(n) => (n.network().to_ipv6_mapped(), n.prefix_len() + 96),
        IpNet::V6(n) => (n.network(), n.prefix_len()),
    }
}

/// Whether `a` and `b` agree on their first `len` bits (`len` ≤ 128).
pub fn same_prefix_128(a: u128, b: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    a & mask == b & mask
}

/// Whether `a` and `b` agree on their first `len` bits (`len` ≤ 32).
pub fn same_prefix_32(a: u32, b: u32, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    a & mask == b & mask
}

/// Whether `a` and `b` agree on their first `len` bits (`len` ≤ 16).
pub fn same_prefix_16(a: u16, b: u16, len: u8) -> bool {
    let mask = u16::MAX.checked_shl(16 - u32::from(len)).unwrap_or(0);
    a & mask == b & mask
}

/// Whether network `(a, la)` contains network `(b, lb)`.
pub fn contains(a: u128, la: u8, b: u128, lb: u8) -> bool {
    la <= lb && same_prefix_128(a, b, la)
}

/// The aligned prefix blocks `(first port, prefix bits)` covering `lo..=hi`.
pub fn port_blocks(lo: u32, hi: u32) -> Vec<(u16, u8)> {
    let mut out = Vec::new();
    let mut a = lo;
    while a <= hi {
        let mut size: u32 = if a == 0 {
            1 << 16
        } else {
            a & a.wrapping_neg()
        };
        while a + size - 1 > hi {
            size >>= 1;
        }
        out.push((a as u16, (16 - size.trailing_zeros()) as u8));
        a += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_blocks_are_aligned_and_exact() {
        assert_eq!(port_blocks(0, 65535), vec![(0, 0)]);
        assert_eq!(port_blocks(22, 22), vec![(22, 16)]);
        assert_eq!(port_blocks(3306, 3307), vec![(3306, 15)]);
        assert_eq!(port_blocks(1, 3), vec![(1, 16), (2, 15)]);
        for (lo, hi) in [
            (0u32, 0u32),
            (5, 1000),
            (1024, 65535),
            (65535, 65535),
            (1, 65534),
        ] {
            let mut covered = 0u32;
            for (p, bits) in port_blocks(lo, hi) {
                let size = 1u32 << (16 - bits);
                assert_eq!(u32::from(p) % size, 0, "block {p}/{bits} should be aligned");
                covered += size;
            }
            assert_eq!(covered, hi - lo + 1);
        }
    }

    #[test]
    fn prefixes_of_every_length_compare_only_their_bits() {
        assert!(same_prefix_128(0, u128::MAX, 0), "a /0 holds everything");
        assert!(same_prefix_128(5, 5, 128));
        assert!(!same_prefix_128(4, 5, 128));
        assert!(same_prefix_32(0x0a00_0001, 0x0aff_ffff, 8));
        assert!(!same_prefix_32(0x0a00_0001, 0x0b00_0001, 8));
        assert!(same_prefix_16(0x1f00, 0x1fff, 8) && !same_prefix_16(1, 2, 16));
        assert!(contains(V4_MAPPED, 96, V4_MAPPED | 0x0102_0304, 128));
        assert!(!contains(V4_MAPPED | 0x0102_0304, 128, V4_MAPPED, 96));
    }
}
