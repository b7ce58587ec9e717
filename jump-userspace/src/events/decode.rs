//! Kernel event bytes → `jump_common::Event`, field by field at the offsets of its `#[repr(C)]`
//! layout (asserted in jump-common), so a short or corrupt record is an error, not UB.

use jump_common::{Event, COMM_LEN};

fn take<const N: usize>(b: &[u8], at: &mut usize) -> [u8; N] {
    let out: [u8; N] = b[*at..*at + N].try_into().unwrap_or([0; N]);
    *at += N;
    out
}

pub fn decode(b: &[u8]) -> Option<Event> {
    if b.len() < core::mem::size_of::<Event>() {
        return None;
    }
    let at = &mut 0;
    Some(Event {
        ts_ns: u64::from_ne_bytes(take(b, at)),
        generation: u64::from_ne_bytes(take(b, at)),
        cookie: u64::from_ne_bytes(take(b, at)),
        uid: u32::from_ne_bytes(take(b, at)),
        gid: u32::from_ne_bytes(take(b, at)),
        pid: u32::from_ne_bytes(take(b, at)),
        rule_id: u32::from_ne_bytes(take(b, at)),
        login_uid: u32::from_ne_bytes(take(b, at)),
        session_id: u32::from_ne_bytes(take(b, at)),
        suppressed: u32::from_ne_bytes(take(b, at)),
        ns_uid: u32::from_ne_bytes(take(b, at)),
        dst_addr: take(b, at),
        src_addr: take(b, at),
        dst_port: u16::from_ne_bytes(take(b, at)),
        src_port: u16::from_ne_bytes(take(b, at)),
        family: u16::from_ne_bytes(take(b, at)),
        proto: take::<1>(b, at)[0],
        hook: take::<1>(b, at)[0],
        action: take::<1>(b, at)[0],
        decided_by: take::<1>(b, at)[0],
        _pad1: take(b, at),
        comm: take::<COMM_LEN>(b, at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_field_at_its_offset() {
        let e = Event {
            ts_ns: 1,
            generation: 2,
            cookie: 3,
            uid: 4,
            gid: 5,
            pid: 6,
            rule_id: 7,
            login_uid: 8,
            session_id: 9,
            suppressed: 10,
            ns_uid: 165_536,
            dst_addr: [11; 16],
            src_addr: [12; 16],
            dst_port: 13,
            src_port: 14,
            family: 10,
            proto: 17,
            hook: 2,
            action: 1,
            decided_by: 1,
            _pad1: [0; 6],
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
        };
        // The same bytes the kernel writes: the struct's memory, field by field.
        let mut b = Vec::new();
        for v in [e.ts_ns, e.generation, e.cookie] {
            b.extend(v.to_ne_bytes());
        }
        for v in [
            e.uid,
            e.gid,
            e.pid,
            e.rule_id,
            e.login_uid,
            e.session_id,
            e.suppressed,
            e.ns_uid,
        ] {
            b.extend(v.to_ne_bytes());
        }
        b.extend(e.dst_addr);
        b.extend(e.src_addr);
        for v in [e.dst_port, e.src_port, e.family] {
            b.extend(v.to_ne_bytes());
        }
        b.extend([e.proto, e.hook, e.action, e.decided_by, 0, 0, 0, 0, 0, 0]);
        b.extend(e.comm);
        assert_eq!(b.len(), core::mem::size_of::<Event>());
        assert_eq!(decode(&b), Some(e));
        assert_eq!(decode(&b[..10]), None, "a short record is rejected");
    }
}
