//! The per-socket record (`JUMP_SOCKS`, socket-local storage): written where a connect or a
//! socket's first unconnected send is allowed, read by the egress backstop. Raw reads and the
//! storage helper live here; what the record means is in `jump_common::SockRecord`.

use aya_ebpf::{
    bindings::{bpf_sock, BPF_SK_STORAGE_GET_F_CREATE},
    helpers::{bpf_get_current_pid_tgid, generated as gen, generated::bpf_sk_storage_get},
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
///
/// Only what the record's readers need at connect time is read here (uid, gid, pid, comm:
/// revocation judges by the uid and names the task; egress events name it). The audit login
/// uid and session, two `probe_read`s of the task, are left unset: events and revocations of
/// the socket take them from `/proc` by the pid, as for any event the kernel did not fill.
#[inline(always)]
pub fn write(ctx: &SockAddrContext, hook: u8, uid_gid: u64, dest: &Dest, d: &Decision, only_if_new: bool) {
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    let (protocol, sk) = unsafe { ((*ctx.sock_addr).protocol, (*ctx.sock_addr).__bindgen_anon_1.sk) };
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP || sk.is_null() {
        return;
    }
    // SAFETY: `sk` is the context's non-null socket; F_CREATE allocates a zeroed record when
    // the socket has none, else returns the one it has.
    let p = unsafe {
        bpf_sk_storage_get(map(), sk.cast(), core::ptr::null_mut(), BPF_SK_STORAGE_GET_F_CREATE.into())
    } as *mut SockRecord;
    if p.is_null() {
        // No memory for the record: the backstop then decides the packets by the creator.
        return;
    }
    // SAFETY (all writes below): a non-null pointer to this socket's storage, valid during
    // this program run. Field by field: a record built on the stack and copied cost 72 bytes
    // of the hooks' nearly full stack.
    let r = unsafe { &mut *p };
    // INVARIANT (record generation): a written record's generation is never 0 (an allowed
    // decision needs an active image), so 0 means "just created".
    if only_if_new && r.generation != 0 {
        return;
    }
    r.generation = d.generation;
    r.uid = uid_gid as u32;
    r.gid = (uid_gid >> 32) as u32;
    r.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    r.login_uid = u32::MAX;
    r.session_id = u32::MAX;
    r.rule_id = d.rule_id;
    r.action = d.action;
    r.hook = hook;
    r.flags = if d.timed { record_flags::TIMED } else { 0 };
    r.proto = dest.proto;
    r.dst_port = dest.port;
    r.family = dest.family;
    r.dst_addr = dest.addr;
    // A (re)connect changes the destination: the path is checked again at the next packet.
    r.path_ifindex = 0;
    // SAFETY: the helper writes at most 16 bytes, the size of `comm`.
    unsafe { gen::bpf_get_current_comm(r.comm.as_mut_ptr().cast(), r.comm.len() as u32) };
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
    r.path_ifindex = 0;
    r.generation = d.generation;
    r.rule_id = d.rule_id;
    r.action = d.action;
    r.flags = if d.timed { record_flags::TIMED } else { 0 };
}

/// Whether a packet leaving on `ifindex` may pass on the record alone: the socket is TCP (its
/// destination and source are fixed by its connect; UDP's change per `sendmsg`), the packet's
/// path was checked on this interface under the record's generation (`settle`), that generation
/// is active, and the grant does not depend on time.
#[inline(always)]
pub fn settled(r: &SockRecord, ifindex: u32, active: u64) -> bool {
    r.path_ifindex == ifindex && ifindex != 0 && r.generation == active && r.flags & record_flags::TIMED == 0
}

/// Notes that a packet of this socket left on `ifindex` with its path checked and the record's
/// grant (and its `via`) holding under the record's generation. TCP only (see `settled`).
#[inline(always)]
pub fn settle(r: &mut SockRecord, ifindex: u32) {
    if r.proto == IPPROTO_TCP as u8 && r.flags & record_flags::TIMED == 0 {
        r.path_ifindex = ifindex;
    }
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
