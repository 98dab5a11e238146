//! Thin, safe wrappers around the raw system calls the backend needs.
//!
//! Each wrapper does one call and turns `-1`/`errno` into `io::Error`. Keeping the
//! `unsafe` here, in small functions with one `SAFETY` comment each, keeps the
//! sandbox logic in the other modules free of it.

pub mod fd;
pub mod mount;
pub mod term;

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Converts a libc return value into `io::Result`.
pub(crate) fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Same as [`check`] for calls returning `c_int`.
pub(crate) fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The result of [`clone_process`].
pub enum Cloned {
    /// We are the parent; the child's pid and a pidfd for it.
    Parent {
        /// The child's pid in our pid namespace.
        pid: libc::pid_t,
        /// A pidfd that refers to the child (`CLONE_PIDFD`).
        pidfd: OwnedFd,
    },
    /// We are the child.
    Child,
}

/// `clone(2)` without a new stack: behaves like `fork` with extra namespace flags, and
/// returns a pidfd for the child atomically (`CLONE_PIDFD`), so that no pid-reuse race
/// exists between creating the child and signalling it.
///
/// # Safety
/// The calling process must be single-threaded: the child continues on a copy of the
/// caller's stack and heap, and another thread's locks would be held forever.
pub unsafe fn clone_process(namespace_flags: libc::c_int) -> io::Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    let flags = (namespace_flags | libc::CLONE_PIDFD | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: raw clone with a NULL stack is fork-like; the caller guarantees that the
    // process is single-threaded. `pidfd` outlives the call, the kernel writes it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            &mut pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match check(ret)? {
        0 => Ok(Cloned::Child),
        pid => {
            // SAFETY: with CLONE_PIDFD the kernel stored a fresh fd that nothing else owns.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Cloned::Parent {
                pid: pid as libc::pid_t,
                pidfd,
            })
        }
    }
}

/// `fork(2)`. Returns the child's pid in the parent and `None` in the child.
///
/// # Safety
/// The calling process must be single-threaded (see [`clone_process`]).
pub unsafe fn fork() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: the caller guarantees that the process is single-threaded.
    let pid = check_int(unsafe { libc::fork() })?;
    Ok(if pid == 0 { None } else { Some(pid) })
}

/// Sends `signal` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: RawFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments and a NULL siginfo.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            signal,
            std::ptr::null::<u8>(),
            0,
        )
    })
    .map(drop)
}

/// `kill(2)`.
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check_int(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// How a waited-for child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

/// `waitpid(pid, WNOHANG)` (pid -1 for any child). `None` when nothing has ended.
pub fn wait_nohang(pid: libc::pid_t) -> io::Result<Option<(libc::pid_t, ChildEnd)>> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for the duration of the call.
    let ret = check_int(unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) })?;
    if ret == 0 {
        return Ok(None);
    }
    let end = if libc::WIFSIGNALED(status) {
        ChildEnd::Signaled(libc::WTERMSIG(status))
    } else {
        ChildEnd::Exited(libc::WEXITSTATUS(status))
    };
    Ok(Some((ret, end)))
}

/// Blocking `waitpid` on one child, retrying on EINTR.
pub fn wait_blocking(pid: libc::pid_t) -> io::Result<ChildEnd> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(if libc::WIFSIGNALED(status) {
            ChildEnd::Signaled(libc::WTERMSIG(status))
        } else {
            ChildEnd::Exited(libc::WEXITSTATUS(status))
        });
    }
}

/// A set of signals.
pub fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it fully.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, initialised sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: as above; an invalid signal number only makes sigaddset fail.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

/// Replaces the signal mask of the calling thread, returning the old one.
pub fn set_sigmask(set: &libc::sigset_t) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, set, &mut old) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(old)
}

/// Blocks `signals` in addition to the current mask, returning the old mask.
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    let set = sigset(signals);
    // SAFETY: sigset_t is plain data.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(old)
}

/// A non-blocking, close-on-exec signalfd for `signals` (which must be blocked).
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    let set = sigset(signals);
    // SAFETY: `set` is valid; -1 asks for a new fd.
    let fd =
        check_int(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: the fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one pending signal number from a signalfd, if any.
pub fn read_signal(fd: RawFd) -> io::Result<Option<libc::c_int>> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a writable buffer of exactly `size` bytes.
    let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(err)
        };
    }
    Ok((n as usize == size).then_some(info.ssi_signo as libc::c_int))
}

/// Resets every catchable signal to its default action and empties the signal mask,
/// so that the command starts as if from a fresh shell. Rust's runtime ignores
/// SIGPIPE, and an ignored disposition would survive `execve`.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL has no memory-safety implications; errors for
        // reserved signals are harmless and ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let _ = set_sigmask(&sigset(&[]));
}

/// `prctl(PR_SET_PDEATHSIG)`: the kernel sends `signal` when the parent dies.
pub fn set_parent_death_signal(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) })
        .map(drop)
}

/// `prctl(PR_SET_DUMPABLE, 0)`: the process cannot be ptraced or have its memory read
/// through /proc by processes without CAP_SYS_PTRACE.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// `setsid(2)`.
pub fn setsid() -> io::Result<()> {
    // SAFETY: no arguments.
    check_int(unsafe { libc::setsid() }).map(drop)
}

/// `sethostname(2)`.
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    check_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// `chdir(2)`.
pub fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string.
    check_int(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `fchdir(2)`.
pub fn fchdir(fd: RawFd) -> io::Result<()> {
    // SAFETY: integer-only syscall.
    check_int(unsafe { libc::fchdir(fd) }).map(drop)
}

/// Marks every fd from `first` up as close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`), so that nothing but stdio reaches the command.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: integer-only syscall.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(drop)
}

/// `_exit(2)`: leaves without running destructors or atexit handlers, which belong to
/// the parent's copy of the process after a fork.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// `execve(2)`; only returns on failure.
pub fn execve(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    // SAFETY: the caller builds `argv` and `envp` as NULL-terminated arrays of pointers
    // into CStrings that outlive this call (checked by debug assertion below).
    debug_assert!(argv.last().is_some_and(|p| p.is_null()));
    debug_assert!(envp.last().is_some_and(|p| p.is_null()));
    // SAFETY: see above.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Brings the loopback interface up in the current network namespace. A fresh network
/// namespace has `lo` down, and servers on 127.0.0.1 inside the sandbox need it.
pub fn loopback_up() -> io::Result<()> {
    #[repr(C)]
    struct IfReqFlags {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    // SAFETY: plain socket creation.
    let sock = check_int(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: the fd is fresh and owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    use std::os::fd::AsRawFd;
    // SAFETY: `req` has the layout of `struct ifreq` for the flags member (16-byte name,
    // then a short, padded to the union size of 24 bytes), and outlives both calls.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: as above.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// Drops every capability for good: locks the securebits so that uid 0 gains nothing
/// at `execve`, empties the bounding and ambient sets, then clears the effective,
/// permitted and inheritable sets. The order matters: the first two steps need
/// CAP_SETPCAP, which the last step removes.
pub fn drop_all_capabilities() -> io::Result<()> {
    const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
    const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
    const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
    const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
    const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
    const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: integer-only prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) })?;
    for cap in 0..=63 {
        // SAFETY: integer-only prctl. EINVAL past the kernel's last capability ends
        // the loop.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(err);
        }
    }
    // SAFETY: integer-only prctl.
    check_int(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    })?;
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and the two-element data array match the v3 capset ABI.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) })?;
    Ok(())
}
