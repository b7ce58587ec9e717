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
        start_ticks: u32::from_ne_bytes(take(b, at)),
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
            decided_by: 3,
            _pad1: [0; 2],
            start_ticks: 15,
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
        };
        // The bytes the kernel writes, placed at the compiler's offsets rather than in the
        // order `decode` reads them, so a field decoded out of place fails here.
        let mut b = vec![0u8; core::mem::size_of::<Event>()];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        use core::mem::offset_of;
        put(offset_of!(Event, ts_ns), &e.ts_ns.to_ne_bytes());
        put(offset_of!(Event, generation), &e.generation.to_ne_bytes());
        put(offset_of!(Event, cookie), &e.cookie.to_ne_bytes());
        put(offset_of!(Event, uid), &e.uid.to_ne_bytes());
        put(offset_of!(Event, gid), &e.gid.to_ne_bytes());
        put(offset_of!(Event, pid), &e.pid.to_ne_bytes());
        put(offset_of!(Event, rule_id), &e.rule_id.to_ne_bytes());
        put(offset_of!(Event, login_uid), &e.login_uid.to_ne_bytes());
        put(offset_of!(Event, session_id), &e.session_id.to_ne_bytes());
        put(offset_of!(Event, suppressed), &e.suppressed.to_ne_bytes());
        put(offset_of!(Event, ns_uid), &e.ns_uid.to_ne_bytes());
        put(offset_of!(Event, dst_addr), &e.dst_addr);
        put(offset_of!(Event, src_addr), &e.src_addr);
        put(offset_of!(Event, dst_port), &e.dst_port.to_ne_bytes());
        put(offset_of!(Event, src_port), &e.src_port.to_ne_bytes());
        put(offset_of!(Event, family), &e.family.to_ne_bytes());
        put(offset_of!(Event, proto), &[e.proto]);
        put(offset_of!(Event, hook), &[e.hook]);
        put(offset_of!(Event, action), &[e.action]);
        put(offset_of!(Event, decided_by), &[e.decided_by]);
        put(offset_of!(Event, start_ticks), &e.start_ticks.to_ne_bytes());
        put(offset_of!(Event, comm), &e.comm);
        assert_eq!(b.len(), core::mem::size_of::<Event>());
        assert_eq!(decode(&b), Some(e));
        assert_eq!(decode(&b[..10]), None, "a short record is rejected");
    }
}
