//! What jump keeps per socket, in socket-local storage: the record (`JUMP_SOCKS`), written
//! where a connect or a socket's first unconnected send is allowed, and a raw or ping socket's
//! creator (`JUMP_CREATORS`); both read by the egress backstop. Raw reads and the storage
//! helper live here; what the record means is in `jump_common::SockRecord`.

use aya_ebpf::{
    bindings::{bpf_sock, BPF_SK_STORAGE_GET_F_CREATE},
    helpers::generated::bpf_sk_storage_get,
    programs::{SkBuffContext, SockAddrContext, SockContext},
};
use jump_common::{proto, record_flags, SockRecord};

use crate::{
    ctx::{Dest, Task, IPPROTO_TCP, IPPROTO_UDP},
    emit::Origin,
    lookup::Decision,
    maps::{JUMP_CREATORS, JUMP_SOCKS},
};

fn map() -> *mut core::ffi::c_void {
    // The helper takes the map definition's address; the loader relocates it to the map.
    core::ptr::from_ref(&JUMP_SOCKS).cast_mut().cast()
}

fn creators() -> *mut core::ffi::c_void {
    core::ptr::from_ref(&JUMP_CREATORS).cast_mut().cast()
}

/// Records `uid` as the creator of a new raw or ping socket. Failure (no memory) leaves the
/// socket judged by its own uid, which is its creator's until a `fchown`.
#[inline(always)]
pub fn set_creator(ctx: &SockContext, mut uid: u32) {
    // SAFETY: the context's own socket; F_CREATE allocates the storage with `uid` as its value
    // (a new socket has none yet), so no reader ever sees it unset.
    let _ = unsafe {
        bpf_sk_storage_get(
            creators(),
            ctx.sock.cast(),
            core::ptr::from_mut(&mut uid).cast(),
            BPF_SK_STORAGE_GET_F_CREATE.into(),
        )
    };
}

/// The creator of the raw or ping socket that sent this packet, if `sock_create` recorded one.
#[inline(always)]
pub fn creator_of_packet(ctx: &SkBuffContext) -> Option<u32> {
    let p = storage_of_packet(ctx, creators()) as *const u32;
    // SAFETY: non-null: this socket's storage, valid during this program run, read at once.
    (!p.is_null()).then(|| unsafe { *p })
}

/// The storage in `map` of the socket that sent this packet; null if it has none (or the
/// packet no full socket).
#[inline(always)]
fn storage_of_packet(ctx: &SkBuffContext, map: *mut core::ffi::c_void) -> *mut core::ffi::c_void {
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    let sk: *mut bpf_sock = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: a non-null socket of this packet; flags 0 only looks up (the helper returns null
    // for sockets that are not full sockets).
    unsafe { bpf_sk_storage_get(map, sk.cast(), core::ptr::null_mut(), 0) }
}

/// Allocates a new TCP or UDP socket's record, blank (generation 0), at `sock_create`, so
/// the connect that fills it finds it allocated: creating socket-local storage is the most
/// expensive step of a connect (~0.9 µs here), and here it is off the connect path.
///
/// INVARIANT (blank record): a record with generation 0 says nothing — no uid, no decision.
/// Every reader treats it as no record (`of_packet` here, `sockdiag::decode_record` and
/// `revoke::ByDescriptor::record` in jumpd), and `write` fills it whole before anything can
/// read it as a decision. Sockets created before jump was attached get theirs at connect.
#[inline(always)]
pub fn create(ctx: &SockContext) {
    // SAFETY: the context's own socket (the helper takes the context pointer at sock_create);
    // F_CREATE allocates a zeroed record. Failure (no memory) leaves it to `write`.
    let _ = unsafe {
        bpf_sk_storage_get(
            map(),
            ctx.sock.cast(),
            core::ptr::null_mut(),
            BPF_SK_STORAGE_GET_F_CREATE.into(),
        )
    };
    // Looked up once more, here: the kernel caches a socket's storage for a map only on a
    // lookup that walks its list (creating does not), under the storage's lock. Done now, the
    // connect finds it in the cache (~50 ns less per connect, as much more here).
    // SAFETY: as above; flags 0 only looks up.
    let _ = unsafe { bpf_sk_storage_get(map(), ctx.sock.cast(), core::ptr::null_mut(), 0) };
}

/// Records an allowed connect (or first unconnected send) of a TCP or UDP socket. Other kinds
/// (ping sockets) get no record: their packets stay decided one by one.
///
/// Who connected is read here, as the kernel knows it at the connect: uid, gid, pid, command
/// name, audit login uid and session, and when its process started (loads through the task
/// pointer). Revocation judges by the uid (and the login uid under `identity: person`); egress
/// events name them all, and jumpd names the executable only while the pid's process is the
/// one that started then. It must not look the rest up in `/proc` by the pid later: by then
/// the connector may have exited and its pid belong to someone else's process.
#[inline(always)]
pub fn write(
    ctx: &SockAddrContext,
    hook: u8,
    task: Task,
    uid_gid: u64,
    dest: &Dest,
    d: &Decision,
    only_if_new: bool,
) {
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    let (protocol, sk) = unsafe {
        (
            (*ctx.sock_addr).protocol,
            (*ctx.sock_addr).__bindgen_anon_1.sk,
        )
    };
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP || sk.is_null() {
        return;
    }
    // SAFETY: `sk` is the context's non-null socket; F_CREATE returns the record `create`
    // allocated at sock_create, or allocates a zeroed one for a socket created before jump
    // was attached.
    let p = unsafe {
        bpf_sk_storage_get(
            map(),
            sk.cast(),
            core::ptr::null_mut(),
            BPF_SK_STORAGE_GET_F_CREATE.into(),
        )
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
    r.uid = uid_gid as u32;
    r.gid = (uid_gid >> 32) as u32;
    let (pid, comm) = task.tgid_comm();
    r.pid = pid;
    let (login_uid, session_id) = task.audit_ids();
    r.login_uid = login_uid;
    r.session_id = session_id;
    r.start_ticks = task.start_ticks();
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
    r.comm = comm;
    // INVARIANT (blank record): the generation is written last, so a packet of this socket
    // sent meanwhile from another thread finds the record blank (no record), never a
    // generation with a uid still 0. The fence keeps the compiler from moving the stores above
    // after it (the kernel's JIT keeps program order; x86 keeps stores in order).
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::Release);
    r.generation = d.generation;
}

/// A socket's record in its storage, found by `of_packet`: the kernel keeps it for the socket's
/// life, so it stays valid while this program runs. Copied like the pointer it is (a borrowing
/// handle moved egress's record pointer to the stack: 8 bytes more of its frame).
///
/// INVARIANT (record in one run): a `Record` and the references it gives out live only within
/// the program run that found it; none is stored.
#[derive(Clone, Copy)]
pub struct Record(*mut SockRecord);

impl Record {
    #[inline(always)]
    pub fn get<'a>(self) -> &'a SockRecord {
        // SAFETY: non-null (`of_packet`), this socket's storage, valid during this program run.
        unsafe { &*self.0 }
    }

    #[inline(always)]
    pub fn get_mut<'a>(self) -> &'a mut SockRecord {
        // SAFETY: as in `get`; each caller holds the reference only for one call.
        unsafe { &mut *self.0 }
    }
}

/// The record of the socket that sent this packet, if it has one.
#[inline(always)]
pub fn of_packet(ctx: &SkBuffContext) -> Option<Record> {
    let p = storage_of_packet(ctx, map()) as *mut SockRecord;
    if p.is_null() {
        return None;
    }
    let r = Record(p);
    // INVARIANT (blank record): a record no connect or send filled yet is no record.
    (r.get().generation != 0).then_some(r)
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
    r.path_ifindex == ifindex
        && ifindex != 0
        && r.generation == active
        && r.flags & record_flags::TIMED == 0
}

/// Notes that a packet of this socket left on `ifindex` with its path checked and the record's
/// grant (and its `via`) holding under the record's generation. TCP only (see `settled`).
#[inline(always)]
pub fn settle(r: &mut SockRecord, ifindex: u32) {
    if r.proto == proto::TCP && r.flags & record_flags::TIMED == 0 {
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
        start_ticks: r.start_ticks,
    }
}
