//! The floor jump's programs are measured against (issue 19): for each hook type jump uses on
//! the hot path, the least a filter of that type can do — read what it keys on from the context
//! and make one hash lookup. `cargo xtask bench` loads this object itself, attaches it only to
//! its own child cgroup and times it with `kernel.bpf_stats_enabled` beside jump's programs.
//! jumpd never loads it.
//!
//! | program        | hook                 | key of its one `REF_GRANTS` lookup            |
//! |----------------|----------------------|-----------------------------------------------|
//! | `ref_connect4` | cgroup/connect4      | (current uid, destination port)               |
//! | `ref_connect6` | cgroup/connect6      | the same                                      |
//! | `ref_sendmsg4` | cgroup/sendmsg4      | the same                                      |
//! | `ref_sendmsg6` | cgroup/sendmsg6      | the same                                      |
//! | `ref_egress`   | cgroup_skb/egress    | the packet's remote IPv4 address (`__sk_buff`) |
//! | `ref_connect4_record` | cgroup/connect4 | as `ref_connect4`, then creates an 80-byte socket-local storage (`REF_SOCKS`), as jump's record |
//!
//! | `ref_sock_create_record` | cgroup/sock_create | no lookup: creates an 80-byte socket-local storage (`REF_CREATED`) |
//!
//! `ref_connect4_record` runs beside `ref_connect4` on the same connects: it shows what a
//! per-socket record costs to create on this kernel, apart from any decision.
//! `ref_sock_create_record` creates the same storage when the socket is made, as jump's
//! `sock_create` does, in a map of its own (so `ref_connect4_record` still creates): whether
//! creating it there is any cheaper than at connect.
//!
//! A key found with value 0 is refused; anything else passes, so the bench's granted client
//! behaves exactly as under jump. The bench fills the map with its client's keys, so the
//! lookups hit, as jump's do.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::BPF_SK_STORAGE_GET_F_CREATE,
    btf_maps::SkStorage,
    helpers::{bpf_get_current_uid_gid, generated::bpf_sk_storage_get},
    macros::{btf_map, cgroup_skb, cgroup_sock, cgroup_sock_addr, map},
    maps::HashMap,
    programs::{SkBuffContext, SockAddrContext, SockContext},
};

#[map]
static REF_GRANTS: HashMap<u64, u32> = HashMap::with_max_entries(1024, 0);

/// The size of jump's `SockRecord`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RefRecord {
    pub bytes: [u64; 10],
}

#[btf_map]
static REF_SOCKS: SkStorage<RefRecord> = SkStorage::new();

#[btf_map]
static REF_CREATED: SkStorage<RefRecord> = SkStorage::new();

#[inline(always)]
fn verdict(key: u64) -> i32 {
    // SAFETY: the value is read at once, within this program run.
    #[expect(
        clippy::needless_borrows_for_generic_args,
        reason = "the floor keeps the code it was measured with (see `emit.rs`)"
    )]
    match unsafe { REF_GRANTS.get(&key) } {
        Some(v) if *v == 0 => 0,
        _ => 1,
    }
}

#[inline(always)]
fn sock_addr(ctx: &SockAddrContext) -> i32 {
    let uid = bpf_get_current_uid_gid() as u32;
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    let port = unsafe { (*ctx.sock_addr).user_port };
    verdict(u64::from(uid) << 32 | u64::from(port))
}

#[cgroup_sock_addr(connect4)]
pub fn ref_connect4(ctx: SockAddrContext) -> i32 {
    sock_addr(&ctx)
}

#[cgroup_sock_addr(connect4)]
pub fn ref_connect4_record(ctx: SockAddrContext) -> i32 {
    let v = sock_addr(&ctx);
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    let sk = unsafe { (*ctx.sock_addr).__bindgen_anon_1.sk };
    if !sk.is_null() {
        let map = core::ptr::from_ref(&REF_SOCKS).cast_mut().cast();
        // SAFETY: a non-null socket of this context; F_CREATE allocates a zeroed value.
        let p = unsafe {
            bpf_sk_storage_get(
                map,
                sk.cast(),
                core::ptr::null_mut(),
                BPF_SK_STORAGE_GET_F_CREATE.into(),
            )
        } as *mut RefRecord;
        if !p.is_null() {
            // SAFETY: this socket's storage, valid during this program run.
            unsafe { (*p).bytes[0] = 1 };
        }
    }
    v
}

#[cgroup_sock(sock_create)]
pub fn ref_sock_create_record(ctx: SockContext) -> i32 {
    let map = core::ptr::from_ref(&REF_CREATED).cast_mut().cast();
    // SAFETY: the context's own socket (the helper takes the context pointer here); F_CREATE
    // allocates a zeroed value.
    let p = unsafe {
        bpf_sk_storage_get(
            map,
            ctx.sock.cast(),
            core::ptr::null_mut(),
            BPF_SK_STORAGE_GET_F_CREATE.into(),
        )
    } as *mut RefRecord;
    if !p.is_null() {
        // SAFETY: this socket's storage, valid during this program run.
        unsafe { (*p).bytes[0] = 1 };
    }
    1
}

#[cgroup_sock_addr(connect6)]
pub fn ref_connect6(ctx: SockAddrContext) -> i32 {
    sock_addr(&ctx)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn ref_sendmsg4(ctx: SockAddrContext) -> i32 {
    sock_addr(&ctx)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn ref_sendmsg6(ctx: SockAddrContext) -> i32 {
    sock_addr(&ctx)
}

#[cgroup_skb(egress)]
pub fn ref_egress(ctx: SkBuffContext) -> i32 {
    // SAFETY: the context pointer of this program; the verifier checks the field access.
    let remote = unsafe { (*ctx.skb.skb).remote_ip4 };
    verdict(u64::from(remote))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
