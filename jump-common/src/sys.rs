//! The two `bpf(2)` commands jumpd needs that aya 0.14 does not expose for every program type:
//! creating a cgroup `bpf_link` and pinning it. aya attaches `cgroup/setsockopt` with a link it
//! cannot hand out as a pinnable `FdLink`, so that one link is made and pinned here, and
//! enforcement of socket options outlives jumpd like every other hook's.

use std::{
    ffi::CStr,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

/// `enum bpf_cmd` and `enum bpf_attach_type` values (`linux/bpf.h`, stable UAPI).
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;
pub const BPF_CGROUP_SETSOCKOPT: u32 = 22;

/// The `link_create` member of `union bpf_attr`; the tail stays zero, as the kernel requires of
/// every field it knows and this call does not set.
#[repr(C)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    tail: [u64; 4],
}

/// The `BPF_OBJ_*` member of `union bpf_attr`.
#[repr(C)]
struct ObjPin {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised `#[repr(C)]` prefix of `union bpf_attr`, and
    // the size passed is its own; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            core::ptr::from_ref(attr),
            core::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Attaches the loaded program `prog` to the cgroup `cgroup` as `attach_type` with a new
/// `bpf_link` (always multi-attach), and returns the link. Dropping it detaches, unless pinned.
pub fn cgroup_link(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let attr = LinkCreate {
        prog_fd: fd_u32(prog),
        target_fd: fd_u32(cgroup),
        attach_type,
        flags: 0,
        tail: [0; 4],
    };
    let fd = bpf(BPF_LINK_CREATE, &attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("link fd out of range"))?;
    // SAFETY: BPF_LINK_CREATE returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Pins the bpf object `fd` (here: a link) at `path` on a bpffs.
pub fn pin(fd: BorrowedFd<'_>, path: &CStr) -> io::Result<()> {
    let attr = ObjPin {
        pathname: path.as_ptr() as u64,
        bpf_fd: fd_u32(fd),
        file_flags: 0,
        path_fd: 0,
        _pad: 0,
    };
    bpf(BPF_OBJ_PIN, &attr).map(drop)
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // An open descriptor is never negative.
    fd.as_raw_fd().unsigned_abs()
}
