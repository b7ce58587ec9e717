//! `setsockopt` through the 32-bit system call (`int 0x80`), which a 64-bit process may make on
//! a kernel with ia32 emulation: the kernel runs no cgroup `setsockopt` program for it, so an
//! option jump refuses is set all the same and egress has to catch what it does.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// `setsockopt` in arch/x86/entry/syscalls/syscall_32.tbl.
#[cfg(target_arch = "x86_64")]
const NR_SETSOCKOPT_32: i32 = 366;
const PAGE: usize = 4096;

/// `setsockopt(fd, level, name, value)` as a 32-bit caller. `ENOSYS` where the kernel has no
/// ia32 emulation (or it is switched off with `ia32_emulation=0`).
#[cfg(target_arch = "x86_64")]
pub fn setsockopt(fd: RawFd, level: i32, name: i32, value: &[u8]) -> std::io::Result<()> {
    if value.len() > PAGE {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // A 32-bit caller passes a 32-bit pointer: the value goes to a page below 4 GiB.
    // SAFETY: a new private anonymous mapping, no existing memory is touched.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `page` is a fresh writable mapping of PAGE bytes; `value` is at most PAGE long.
    unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), page.cast::<u8>(), value.len()) };
    let ret: i32;
    // SAFETY: the i386 system call ABI: number in eax, arguments in ebx, ecx, edx, esi, edi.
    // rbx is reserved by LLVM, so the fd is swapped into it and back. The kernel reads only
    // the socket and the page above.
    unsafe {
        std::arch::asm!(
            "xchg {fd}, rbx",
            "int 0x80",
            "xchg {fd}, rbx",
            fd = inout(reg) u64::from(fd as u32) => _,
            inlateout("eax") NR_SETSOCKOPT_32 => ret,
            in("ecx") level,
            in("edx") name,
            in("esi") page as usize as u32,
            in("edi") value.len() as u32,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(page, PAGE) };
    if ret < 0 {
        Err(std::io::Error::from_raw_os_error(-ret))
    } else {
        Ok(())
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn setsockopt(_fd: RawFd, _level: i32, _name: i32, _value: &[u8]) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
}
