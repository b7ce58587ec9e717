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
//! | egress (cgroup_skb)      | every packet: the path it takes (`path`: interface, source     |
//! |                          | address, source route), then the socket's record (`socks`)     |
//! |                          | when current, else the backstop for what no hook above saw     |
//! | setsockopt               | options choosing interface, source, source route or multicast  |
//! |                          | groups (`sockopt`)                                             |
//! | netns_probe              | never attached: run once by jumpd to learn its namespace       |
#![no_std]
#![no_main]
// `atomic_xadd` for exact per-uid counts (emit.rs); the eBPF build runs with RUSTC_BOOTSTRAP.
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "`core_intrinsics` is internal; the eBPF build runs with RUSTC_BOOTSTRAP"
)]

mod ctx;
mod emit;
mod lookup;
mod maps;
mod path;
mod person;
mod sockopt;
mod socks;
mod subuid;

use aya_ebpf::{
    helpers::bpf_get_current_uid_gid,
    macros::{cgroup_skb, cgroup_sock, cgroup_sock_addr, cgroup_sockopt},
    programs::{SkBuffContext, SockAddrContext, SockContext, SockoptContext},
};
use aya_log_ebpf::debug;
use ctx::{
    audit_ids, AF_INET, AF_INET6, IPPROTO_DEFAULT, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
    IPPROTO_UDP, PROTO_NONE, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM,
};
use jump_common::{action, counter, hook, profile_flags, proto, record_flags};
use lookup::Decision;

/// Return values of every hook here: 1 lets the call (or packet) through; 0 fails the call
/// with EPERM (or drops the packet).
const PASS: i32 = 1;
const REFUSE: i32 = 0;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    egress_call(
        &ctx,
        hook::CONNECT4,
        &ctx::unspecified_as_loopback(ctx::dest4(&ctx)),
    )
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    egress_call(
        &ctx,
        hook::CONNECT6,
        &ctx::unspecified_as_loopback(ctx::dest6(&ctx)),
    )
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    egress_call(
        &ctx,
        hook::SENDMSG4,
        &ctx::unspecified_as_loopback(ctx::dest4(&ctx)),
    )
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    egress_call(
        &ctx,
        hook::SENDMSG6,
        &ctx::unspecified_as_loopback(ctx::dest6(&ctx)),
    )
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
    if s.family != u32::from(AF_INET) && s.family != u32::from(AF_INET6) {
        return PASS;
    }
    let needs_icmp = match (s.kind, s.protocol) {
        (SOCK_STREAM, IPPROTO_DEFAULT | IPPROTO_TCP)
        | (SOCK_DGRAM, IPPROTO_DEFAULT | IPPROTO_UDP) => {
            // The socket's record is allocated here, blank, once: a connect or first send
            // then only fills it (docs/enforcement.md, "The socket record, created at
            // sock_create").
            socks::create(&ctx);
            return PASS;
        }
        (SOCK_DGRAM, IPPROTO_ICMP | IPPROTO_ICMPV6) | (SOCK_RAW, _) => true,
        _ => false,
    };
    let uid = bpf_get_current_uid_gid() as u32;
    let (flags, mut deny) = lookup::flags(uid);
    let flags = person::narrow_flags(flags, &mut deny, || audit_ids().0, |l| lookup::flags(l).0);
    if needs_icmp && flags & profile_flags::ICMP != 0 {
        // Raw and ping sockets are judged as their creator, not as whoever the socket is later
        // `fchown`ed to (which moves `sk_uid`); a connect records its connector instead.
        socks::set_creator(&ctx, uid);
        return PASS;
    }
    let dest = ctx::Dest {
        addr: [0; 16],
        port: 0,
        proto: u8::try_from(s.protocol).unwrap_or(PROTO_NONE),
        family: s.family as u16,
    };
    record_current(hook::SOCK_CREATE, &dest, &deny);
    if deny.action != action::DENY {
        // Audit mode: logged as refused, created all the same (and judged as its creator).
        if needs_icmp {
            socks::set_creator(&ctx, uid);
        }
        return PASS;
    }
    REFUSE
}

#[cgroup_sockopt(setsockopt)]
pub fn setsockopt(ctx: SockoptContext) -> i32 {
    sockopt::judge(&ctx)
}

#[cgroup_skb]
pub fn netns_probe(ctx: SkBuffContext) -> i32 {
    path::measure_netns(&ctx);
    PASS
}

#[cgroup_skb(egress)]
pub fn egress(ctx: SkBuffContext) -> i32 {
    // The socket's record (TCP and UDP sockets connected here), else for raw and ping sockets
    // their creator, else the socket's own uid (accepted and unconnected ones).
    let rec = socks::of_packet(&ctx);
    // (0) The fast path: a connected TCP socket whose path was checked on this interface under
    // the active generation passes on its record, without a lookup or reading the packet
    // beyond a header without IPv4 options or IPv6 extension headers (docs/enforcement.md,
    // "The egress fast path").
    let ifindex = ctx::ifindex(&ctx);
    if let Some(r) = rec.map(socks::Record::get) {
        if socks::settled(r, ifindex, lookup::active_generation()) && ctx::plain_tcp_header(&ctx) {
            return PASS;
        }
    }
    let p = ctx::packet(&ctx);
    // Only without a record: a creator lookup per packet of a UDP socket would be wasted.
    let creator = match rec {
        Some(_) => None,
        None => socks::creator_of_packet(&ctx),
    };
    let uid = match (rec.map(socks::Record::get), creator) {
        (Some(r), _) => r.uid,
        (None, Some(owner)) => owner,
        (None, None) => ctx::socket_uid(&ctx),
    };
    // One `record` call site: each inlined copy costs its event's stack.
    let (why, d) = match path::refusal(&ctx, &p) {
        Some(why) => (why, lookup::flags(uid).1),
        None => {
            if let Some(r) = rec.map(socks::Record::get_mut) {
                // The record decides, without a lookup, while it is of the active generation
                // and its grant does not depend on time; otherwise the packet is decided again
                // as the connector (a reload or an expiry revocation has not closed yet).
                let (flags, generation, rule) = (r.flags, r.generation, r.rule_id);
                let (slot, active) = lookup::active_slot();
                // The rule's `via` (interfaces) is checked per packet all the same.
                if flags & record_flags::TIMED == 0
                    && generation == active
                    && path::via_holds(slot, rule, p.ifindex)
                {
                    socks::settle(r, p.ifindex);
                    return PASS;
                }
            }
            // Replies on connections this uid accepted leave from a port it may listen on: they
            // are decided by that grant, so a granted sshd keeps answering its clients. Only a
            // TCP socket the kernel made for an accepted connection (or a listener's SYN-ACK)
            // qualifies: a raw socket or a sender choosing its source port is decided by
            // destination.
            let mut unanswered = None;
            if p.dst.proto == proto::TCP && p.src_port != 0 && accepted(&ctx, &p, rec.is_some()) {
                let l = lookup::listen(uid, p.dst.proto, p.src_port);
                if l.action != action::DENY {
                    return PASS;
                }
                // A SYN-ACK answers for a listener: one without a listen grant for its port (it
                // never bound one, the kernel picked it at `listen()`) accepts no connection,
                // whoever the peer and whatever its source port.
                if ctx::from_listener(&ctx) {
                    unanswered = Some(l);
                }
            }
            if let Some(l) = unanswered {
                (hook::EGRESS, l)
            } else {
                // Fragments and short headers have port 0 here: only an all-ports grant lets them
                // out. The person and session are the socket's, as recorded at connect; without a
                // record, unknown (the uid alone decides, session-scoped grants do not apply).
                let (login, session) = match rec.map(socks::Record::get) {
                    Some(r) => (r.login_uid, r.session_id),
                    None => (jump_common::LOGIN_UNSET, jump_common::LOGIN_UNSET),
                };
                let d = person::narrow(
                    lookup::decide_in(uid, session, &p.dst),
                    || login,
                    |l| lookup::decide_in(l, session, &p.dst),
                );
                if d.action == action::DENY {
                    (hook::EGRESS, d)
                } else if path::via_holds(d.slot, d.rule_id, p.ifindex) {
                    if let Some(r) = rec.map(socks::Record::get_mut) {
                        // Still allowed under this generation: the record vouches for it again.
                        socks::refresh(r, &d);
                        socks::settle(r, p.ifindex);
                    }
                    // A raw or ping socket's unconnected send is decided here alone (no sendmsg
                    // hook runs for it): logged like a hook's decision, under `log: all`.
                    if creator.is_none() || !emit::wanted(&d) {
                        return PASS;
                    }
                    (hook::EGRESS, d)
                } else {
                    // The deciding rule's `via` does not name the interface the packet leaves on.
                    (hook::EGRESS_INTERFACE, lookup::refused(&d))
                }
            }
        }
    };
    let who = match rec.map(socks::Record::get) {
        Some(r) => socks::origin(r),
        // Softirq context and no record: only the socket's uid is known.
        None => emit::Origin {
            uid,
            gid: 0,
            pid: 0,
            login_uid: u32::MAX,
            session_id: u32::MAX,
            comm: [0; 16],
            start_ticks: 0,
        },
    };
    record(why, &who, &p.dst, p.src_port, &d);
    // An allow logged above, or in audit mode an audit: let through.
    if d.action == action::DENY {
        REFUSE
    } else {
        PASS
    }
}

/// The packet belongs to an accepted TCP connection on its source port: a listener's SYN-ACK,
/// or a full TCP socket bound to that port that no one `connect`ed (connected sockets have a
/// record; their connect was decided by destination).
fn accepted(ctx: &SkBuffContext, p: &ctx::Packet, has_record: bool) -> bool {
    match ctx::tcp_socket_port(ctx) {
        ctx::ANY_PORT => true,
        port => port == u32::from(p.src_port) && !has_record,
    }
}

fn current() -> emit::Origin {
    let task = ctx::Task::current();
    let uid_gid = task.uid_gid();
    let (login_uid, session_id) = task.audit_ids();
    let (pid, comm) = task.tgid_comm();
    emit::Origin {
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        pid,
        login_uid,
        session_id,
        comm,
        start_ticks: task.start_ticks(),
    }
}

// Not inlined: the event it builds would otherwise sit in every caller's stack frame (egress's
// with its callees went over the verifier's 512-byte combined limit).
#[inline(never)]
fn record(hook: u8, who: &emit::Origin, dest: &ctx::Dest, src_port: u16, d: &Decision) {
    emit::count(counter::DECISIONS);
    emit::count_hit(d);
    if emit::wanted(d) {
        emit::emit(hook, who, dest, src_port, d);
    }
}

/// `record` for a decision about the current task: who it is beyond the uid (gid, pid, comm,
/// audit ids) is read only when the decision becomes an event.
#[inline(never)]
fn record_current(hook: u8, dest: &ctx::Dest, d: &Decision) {
    emit::count(counter::DECISIONS);
    emit::count_hit(d);
    if emit::wanted(d) {
        let who = current();
        emit::emit(hook, &who, dest, 0, d);
    }
}

#[inline(always)]
fn egress_call(ctx: &SockAddrContext, hook: u8, dest: &ctx::Dest) -> i32 {
    // One task pointer for the uid now and, if allowed, the record's pid and command name.
    let task = ctx::Task::current();
    let uid_gid = task.uid_gid();
    let uid = uid_gid as u32;
    let d = person::narrow(
        lookup::decide(uid, dest),
        || audit_ids().0,
        |l| lookup::decide(l, dest),
    );
    record_current(hook, dest, &d);
    if d.action != action::DENY {
        // A connect (re)writes the record; an unconnected send only creates one, so a
        // socket's sends do not replace who connected it.
        let connect = hook == hook::CONNECT4 || hook == hook::CONNECT6;
        socks::write(ctx, hook, task, uid_gid, dest, &d, !connect);
    }
    verdict(ctx, &d, dest)
}

#[inline(always)]
fn bind_call(ctx: &SockAddrContext, hook: u8, local: &ctx::Dest) -> i32 {
    // Port 0 asks the kernel for an ephemeral port: what every client socket that binds does.
    if local.port == 0 {
        return PASS;
    }
    let uid = bpf_get_current_uid_gid() as u32;
    let d = person::narrow(
        lookup::listen(uid, local.proto, local.port),
        || audit_ids().0,
        |l| lookup::listen(l, local.proto, local.port),
    );
    record_current(hook, local, &d);
    verdict(ctx, &d, local)
}

#[inline(always)]
fn verdict(ctx: &SockAddrContext, d: &Decision, dest: &ctx::Dest) -> i32 {
    if d.action == action::DENY {
        debug!(
            ctx,
            "refused port {} proto {} rule {}", dest.port, dest.proto, d.rule_id
        );
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
