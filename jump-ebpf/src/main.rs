//! jump's kernel programs: entry points only. Each hook reads its context (`ctx`), asks for a
//! decision (`lookup`), records it (`emit`) and returns the verdict.
#![no_std]
#![no_main]

mod ctx;
mod emit;
mod lookup;
mod maps;

use aya_ebpf::{helpers::bpf_get_current_uid_gid, macros::cgroup_sock_addr, programs::SockAddrContext};
use aya_log_ebpf::debug;
use jump_common::{action, counter, hook};

/// cgroup `sock_addr` return values: 1 lets the call proceed, 0 fails it with EPERM.
const PASS: i32 = 1;
const REFUSE: i32 = 0;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    let dest = ctx::dest4(&ctx);
    decide(&ctx, hook::CONNECT4, &dest)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    let dest = ctx::dest6(&ctx);
    decide(&ctx, hook::CONNECT6, &dest)
}

#[inline(always)]
fn decide(ctx: &SockAddrContext, hook: u8, dest: &ctx::Dest) -> i32 {
    let uid_gid = bpf_get_current_uid_gid();
    let d = lookup::decide(uid_gid as u32, dest);
    emit::count(counter::DECISIONS);
    emit::count_hit(&d);
    if emit::wanted(&d) {
        emit::emit(hook, uid_gid, dest, &d);
    }
    if d.action == action::DENY {
        debug!(ctx, "refused uid {} port {} rule {}", uid_gid as u32, dest.port, d.rule_id);
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
