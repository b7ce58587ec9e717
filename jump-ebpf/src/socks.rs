//! The per-socket record (`JUMP_SOCKS`, socket-local storage): written where a connect or a
//! socket's first unconnected send is allowed, read by the egress backstop. Raw reads and the
//! storage helper live here; what the record means is in `jump_common::SockRecord`.

use aya_ebpf::{
    bindings::{bpf_sock, BPF_SK_STORAGE_GET_F_CREATE},
    helpers::generated::bpf_sk_storage_get,
    programs::{SkBuffContext, SockAddrContext},
};
use jump_common::{record_flags, SockRecord};

use crate::{ctx::Dest, emit::Origin, lookup::Decision, maps::JUMP_SOCKS};

const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;

fn map() -> *mut core::ffi::c_void {
    // The helper takes the map definition's address; the loader relocates it to the map.
    core::ptr::from_ref(&JUMP_SOCKS).cast_mut().cast()
}

/// Records an allowed connect (or first unconnected send) of a TCP or UDP socket. Other kinds
/// (ping sockets) get no record: their packets stay decided one by one.
#[inline(always)]
pub fn write(ctx: &SockAddrContext, hook: u8, who: &Origin, dest: &Dest, d: &Decision, only_if_new: bool) {
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    let (protocol, sk) = unsafe { ((*ctx.sock_addr).protocol, (*ctx.sock_addr).__bindgen_anon_1.sk) };
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP || sk.is_null() {
        return;
    }
    if only_if_new {
        // SAFETY: `sk` is the context's non-null socket; flags 0 only looks up.
        let old = unsafe { bpf_sk_storage_get(map(), sk.cast(), core::ptr::null_mut(), 0) };
        if !old.is_null() {
            return;
        }
    }
    // SAFETY: as above; F_CREATE allocates a zeroed record when the socket has none.
    let p = unsafe {
        bpf_sk_storage_get(map(), sk.cast(), core::ptr::null_mut(), BPF_SK_STORAGE_GET_F_CREATE.into())
    } as *mut SockRecord;
    if p.is_null() {
        // No memory for the record: the backstop then decides the packets by the creator.
        return;
    }
    let rec = SockRecord {
        generation: d.generation,
        uid: who.uid,
        gid: who.gid,
        pid: who.pid,
        login_uid: who.login_uid,
        session_id: who.session_id,
        rule_id: d.rule_id,
        action: d.action,
        hook,
        flags: if d.timed { record_flags::TIMED } else { 0 },
        proto: dest.proto,
        dst_port: dest.port,
        family: dest.family,
        dst_addr: dest.addr,
        comm: who.comm,
    };
    // SAFETY: a non-null pointer to this socket's storage, valid during this program run.
    unsafe { *p = rec };
}

/// The record of the socket that sent this packet, if it has one.
#[inline(always)]
pub fn of_packet(ctx: &SkBuffContext) -> Option<*mut SockRecord> {
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    let sk: *mut bpf_sock = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return None;
    }
    // SAFETY: a non-null socket of this packet; flags 0 only looks up (the helper returns null
    // for sockets that are not full sockets).
    let p = unsafe { bpf_sk_storage_get(map(), sk.cast(), core::ptr::null_mut(), 0) } as *mut SockRecord;
    (!p.is_null()).then_some(p)
}

/// Marks `r` as vouched for by decision `d` (the packet's, under the active generation).
#[inline(always)]
pub fn refresh(r: &mut SockRecord, d: &Decision) {
    r.generation = d.generation;
    r.rule_id = d.rule_id;
    r.action = d.action;
    r.flags = if d.timed { record_flags::TIMED } else { 0 };
}

/// The record as the task that connected the socket, for events.
pub fn origin(r: &SockRecord) -> Origin {
    Origin {
        uid: r.uid,
        gid: r.gid,
        pid: r.pid,
        login_uid: r.login_uid,
        session_id: r.session_id,
        comm: r.comm,
    }
}
