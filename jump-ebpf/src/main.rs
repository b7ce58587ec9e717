//! jump's kernel programs: entry points only. Each hook reads its context (`ctx`), asks for a
//! decision (`lookup`), records it (`emit`) and returns the verdict.
//!
//! | hook                     | decides                                                        |
//! |--------------------------|----------------------------------------------------------------|
//! | connect4/6               | TCP connects, UDP and ping-socket connects                     |
//! | sendmsg4/6               | unconnected UDP sends (`sendto`, `sendmsg`, `sendmmsg`)        |
//! | bind4/6                  | binding a port: needs a listen grant (port 0 is always fine)   |
//! | sock_create              | socket kinds: raw and ping sockets need an icmp grant; others  |
//! |                          | than TCP, UDP and ICMP (MPTCP, SCTP, …) are refused            |
//! | egress (cgroup_skb)      | every packet: by the socket's record (`socks`) when it has a   |
//! |                          | current one, else the packet itself (the backstop)             |
#![no_std]
#![no_main]

mod ctx;
mod emit;
mod lookup;
mod maps;
mod socks;

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_kernel,
        generated::bpf_get_current_task,
    },
    macros::{cgroup_skb, cgroup_sock, cgroup_sock_addr},
    programs::{SkBuffContext, SockAddrContext, SockContext},
    Global,
};
use aya_log_ebpf::debug;
use jump_common::{action, counter, hook, profile_flags, proto, record_flags, SockRecord};
use lookup::Decision;

/// Return values of every hook here: 1 lets the call (or packet) through; 0 fails the call
/// with EPERM (or drops the packet).
const PASS: i32 = 1;
const REFUSE: i32 = 0;

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_RAW: u32 = 3;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    egress_call(&ctx, hook::CONNECT4, &ctx::unspecified_as_loopback(ctx::dest4(&ctx)))
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    egress_call(&ctx, hook::CONNECT6, &ctx::unspecified_as_loopback(ctx::dest6(&ctx)))
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    egress_call(&ctx, hook::SENDMSG4, &ctx::unspecified_as_loopback(ctx::dest4(&ctx)))
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    egress_call(&ctx, hook::SENDMSG6, &ctx::unspecified_as_loopback(ctx::dest6(&ctx)))
}

#[cgroup_sock_addr(bind4)]
pub fn bind4(ctx: SockAddrContext) -> i32 {
    bind_call(&ctx, hook::BIND4, &ctx::bind4(&ctx))
}

#[cgroup_sock_addr(bind6)]
pub fn bind6(ctx: SockAddrContext) -> i32 {
    bind_call(&ctx, hook::BIND6, &ctx::bind6(&ctx))
}

#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    let s = ctx::new_socket(&ctx);
    if s.family != AF_INET && s.family != AF_INET6 {
        return PASS;
    }
    let needs_icmp = match (s.kind, s.protocol) {
        (SOCK_STREAM, 0 | 6) | (SOCK_DGRAM, 0 | 17) => return PASS,
        (SOCK_DGRAM, 1 | 58) | (SOCK_RAW, _) => true,
        _ => false,
    };
    let who = current();
    let (flags, deny) = lookup::flags(who.uid);
    if needs_icmp && flags & profile_flags::ICMP != 0 {
        return PASS;
    }
    let dest = ctx::Dest {
        addr: [0; 16],
        port: 0,
        proto: if s.protocol > 255 { 255 } else { s.protocol as u8 },
        family: s.family as u16,
    };
    record(hook::SOCK_CREATE, &who, &dest, 0, &deny);
    REFUSE
}

#[cgroup_skb(egress)]
pub fn egress(ctx: SkBuffContext) -> i32 {
    let rec = socks::of_packet(&ctx);
    // (1) The socket's record decides, without reading the packet, while it is of the active
    // generation and its grant does not depend on time.
    if let Some(r) = rec {
        // SAFETY: this socket's storage, valid during this program run.
        let (flags, generation) = unsafe { ((*r).flags, (*r).generation) };
        if flags & record_flags::TIMED == 0 && generation == lookup::active_generation() {
            return PASS;
        }
    }
    // (2) Otherwise the packet is decided: as the socket's connector when it has a record (a
    // reload or an expiry the daemon has not revoked yet), else as the socket's owner.
    egress_packet(&ctx, rec)
}

#[inline(always)]
fn egress_packet(ctx: &SkBuffContext, rec: Option<*mut SockRecord>) -> i32 {
    let Some(p) = ctx::packet(ctx) else { return PASS };
    // Non-first fragments carry no ports; the first fragment was decided.
    if p.fragment {
        return PASS;
    }
    let uid = match rec {
        // SAFETY: as in `egress`.
        Some(r) => unsafe { (*r).uid },
        None => ctx.get_socket_uid(),
    };
    // Replies on connections this uid accepted leave from a port it may listen on: they are
    // decided by that grant, so a granted sshd keeps answering its clients.
    if (p.dst.proto == proto::TCP || p.dst.proto == proto::UDP) && p.src_port != 0 {
        if lookup::listen(uid, p.dst.proto, p.src_port).action != action::DENY {
            return PASS;
        }
    }
    let d = lookup::decide(uid, &p.dst);
    if d.action != action::DENY {
        if let Some(r) = rec {
            // Still allowed under the new generation: the record vouches for it again.
            // SAFETY: as in `egress`.
            unsafe {
                (*r).generation = d.generation;
                (*r).rule_id = d.rule_id;
                (*r).action = d.action;
                (*r).flags = if d.timed { record_flags::TIMED } else { 0 };
            }
        }
        return PASS;
    }
    let who = match rec {
        // SAFETY: as in `egress`.
        Some(r) => socks::origin(unsafe { &*r }),
        // Softirq context and no record: only the socket's uid is known.
        None => emit::Origin { uid, gid: 0, pid: 0, login_uid: u32::MAX, session_id: u32::MAX, comm: [0; 16] },
    };
    record(hook::EGRESS, &who, &p.dst, p.src_port, &d);
    REFUSE
}

/// Byte offsets of `task_struct.loginuid` and `.sessionid` in the running kernel, set by the
/// daemon from the kernel's BTF before load (`datapath::btf`); 0 = unknown, fields left unset.
#[unsafe(no_mangle)]
static LOGINUID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static SESSIONID_OFFSET: Global<u32> = Global::new(0);

/// The audit login uid and session of the current task: the person behind `sudo`/`su`.
fn audit_ids() -> (u32, u32) {
    let (lo, so) = (LOGINUID_OFFSET.load(), SESSIONID_OFFSET.load());
    if lo == 0 || so == 0 {
        return (u32::MAX, u32::MAX);
    }
    // SAFETY: a helper call; the pointer is only ever passed to bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    // SAFETY: bpf_probe_read_kernel checks the address; a fault yields an error, not a crash.
    let login = unsafe { bpf_probe_read_kernel(task.wrapping_add(lo as usize) as *const u32) };
    // SAFETY: as above.
    let session = unsafe { bpf_probe_read_kernel(task.wrapping_add(so as usize) as *const u32) };
    (login.unwrap_or(u32::MAX), session.unwrap_or(u32::MAX))
}

fn current() -> emit::Origin {
    let uid_gid = bpf_get_current_uid_gid();
    let (login_uid, session_id) = audit_ids();
    emit::Origin {
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        pid: (bpf_get_current_pid_tgid() >> 32) as u32,
        login_uid,
        session_id,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    }
}

fn record(hook: u8, who: &emit::Origin, dest: &ctx::Dest, src_port: u16, d: &Decision) {
    emit::count(counter::DECISIONS);
    emit::count_hit(d);
    if emit::wanted(d) {
        emit::emit(hook, who, dest, src_port, d);
    }
}

#[inline(always)]
fn egress_call(ctx: &SockAddrContext, hook: u8, dest: &ctx::Dest) -> i32 {
    let who = current();
    let d = lookup::decide(who.uid, dest);
    record(hook, &who, dest, 0, &d);
    if d.action != action::DENY {
        // A connect (re)writes the record; an unconnected send only creates one, so a
        // socket's sends do not replace who connected it.
        let connect = hook == hook::CONNECT4 || hook == hook::CONNECT6;
        socks::write(ctx, hook, &who, dest, &d, !connect);
    }
    verdict(ctx, &d, dest)
}

#[inline(always)]
fn bind_call(ctx: &SockAddrContext, hook: u8, local: &ctx::Dest) -> i32 {
    // Port 0 asks the kernel for an ephemeral port: what every client socket that binds does.
    if local.port == 0 {
        return PASS;
    }
    let who = current();
    let d = lookup::listen(who.uid, local.proto, local.port);
    record(hook, &who, local, 0, &d);
    verdict(ctx, &d, local)
}

#[inline(always)]
fn verdict(ctx: &SockAddrContext, d: &Decision, dest: &ctx::Dest) -> i32 {
    if d.action == action::DENY {
        debug!(ctx, "refused port {} proto {} rule {}", dest.port, dest.proto, d.rule_id);
        REFUSE
    } else {
        PASS
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
