//! The `bpf(2)` commands jumpd needs that aya 0.14 does not expose for every program type:
//! creating a cgroup `bpf_link` and pinning it (aya attaches `cgroup/setsockopt` with a link it
//! cannot hand out as a pinnable `FdLink`, so that one link is made and pinned here, and
//! enforcement of socket options outlives jumpd like every other hook's), and listing the
//! programs attached to a cgroup (aya queries only device cgroups); and the memory of an
//! array map created with `BPF_F_MMAPABLE` (`MappedArray`: `JUMP_UID_INDEX`, whose 131,072
//! entries jumpd reads back every few seconds, would otherwise take a syscall each). Also the
//! one scheduler call neither std nor nix offers (`batch_scheduling`).

use std::{
    ffi::CStr,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    ptr::NonNull,
    vec::Vec,
};

/// `enum bpf_cmd` and `enum bpf_attach_type` values (`linux/bpf.h`, stable UAPI).
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_CREATE: libc::c_long = 28;
pub const BPF_CGROUP_INET_EGRESS: u32 = 1;
pub const BPF_CGROUP_INET4_CONNECT: u32 = 10;
pub const BPF_CGROUP_SETSOCKOPT: u32 = 22;
/// The kernel's limit of programs per cgroup and attach type (`BPF_CGROUP_MAX_PROGS`).
const CGROUP_MAX_PROGS: usize = 64;

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

/// The `query` member of `union bpf_attr`.
#[repr(C)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

// The sizes the kernel reads (`union bpf_attr` members up to the last field set or zeroed here).
const _: () = assert!(core::mem::size_of::<LinkCreate>() == 48);
const _: () = assert!(core::mem::size_of::<ObjPin>() == 24);
const _: () = assert!(core::mem::size_of::<ProgQuery>() == 64);

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised `#[repr(C)]` prefix of `union bpf_attr`, and
    // the size passed is its own; the kernel reads it and writes back only inside it (a
    // query's count), and through pointers in it only into buffers of the sizes it names.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            core::ptr::from_mut(attr),
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
    let mut attr = LinkCreate {
        prog_fd: fd_u32(prog),
        target_fd: fd_u32(cgroup),
        attach_type,
        flags: 0,
        tail: [0; 4],
    };
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("link fd out of range"))?;
    // SAFETY: BPF_LINK_CREATE returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Pins the bpf object `fd` (here: a link) at `path` on a bpffs.
pub fn pin(fd: BorrowedFd<'_>, path: &CStr) -> io::Result<()> {
    let mut attr = ObjPin {
        pathname: path.as_ptr() as u64,
        bpf_fd: fd_u32(fd),
        file_flags: 0,
        path_fd: 0,
        _pad: 0,
    };
    bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// The ids of the programs attached to `cgroup` itself (not inherited) as `attach_type`.
pub fn cgroup_program_ids(cgroup: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = [0u32; CGROUP_MAX_PROGS];
    let mut attr = ProgQuery {
        target_fd: fd_u32(cgroup),
        attach_type,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: CGROUP_MAX_PROGS as u32,
        _pad: 0,
        prog_attach_flags: 0,
        link_ids: 0,
        link_attach_flags: 0,
        revision: 0,
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    let n = (attr.prog_cnt as usize).min(CGROUP_MAX_PROGS);
    Ok(ids[..n].to_vec())
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // An open descriptor is never negative.
    fd.as_raw_fd().unsigned_abs()
}

/// The memory of a `BPF_F_MMAPABLE` array map of `len` entries of `T`, shared with the kernel:
/// reads and writes go straight to the map's values, without a syscall.
///
/// INVARIANT (mapped array): `ptr` maps `len * size_of::<T>()` bytes of the map's values,
/// readable and writable, for as long as this value lives (the mapping holds the map), and
/// `size_of::<T>()` is a multiple of 8, the kernel's array entry stride.
pub struct MappedArray<T> {
    ptr: NonNull<T>,
    len: usize,
}

impl<T: aya::Pod> MappedArray<T> {
    /// Maps the values of the array map `fd`, which must have `len` entries of `T` and have
    /// been created with `BPF_F_MMAPABLE` (the kernel refuses the mapping otherwise).
    pub fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        let size = core::mem::size_of::<T>();
        if size == 0 || !size.is_multiple_of(8) {
            return Err(io::Error::other(
                "entries of a mapped array must be 8-byte multiples",
            ));
        }
        let bytes = len
            .checked_mul(size)
            .ok_or_else(|| io::Error::other("mapped array too large"))?;
        // SAFETY: a new shared mapping of the map's fd at offset 0, no larger than its values
        // (the kernel checks the length against the map and fails otherwise); nothing aliases
        // it in this process until it is wrapped below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<T>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entry `i`; `None` past the end.
    pub fn get(&self, i: usize) -> Option<T> {
        // SAFETY: in bounds of the mapping (INVARIANT mapped array), aligned (page-aligned
        // base, 8-byte stride), and any bit pattern is a `T` (`Pod`). Volatile: the kernel and
        // other processes (a tamperer) may write it at any time.
        (i < self.len).then(|| unsafe { self.ptr.as_ptr().add(i).read_volatile() })
    }

    /// Writes entry `i`; false past the end.
    pub fn set(&mut self, i: usize, value: T) -> bool {
        if i >= self.len {
            return false;
        }
        // SAFETY: as in `get`; the mapping is writable.
        unsafe { self.ptr.as_ptr().add(i).write_volatile(value) };
        true
    }
}

impl<T> Drop for MappedArray<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of this size, not used after this.
        unsafe {
            libc::munmap(
                self.ptr.as_ptr().cast(),
                self.len * core::mem::size_of::<T>(),
            );
        }
    }
}

/// Puts the calling thread (not its process) under `SCHED_BATCH`: waking it no longer preempts
/// the task running on its CPU, which keeps its slice; the thread's share of CPU time is
/// unchanged. Allowed without privileges.
pub fn batch_scheduling() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` outlives the call, which only reads it; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
