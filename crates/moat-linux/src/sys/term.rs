//! Terminal calls: raw mode, window size, pseudo-terminal allocation.

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::check_int;

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: integer-only call.
    unsafe { libc::isatty(fd) == 1 }
}

/// Saved terminal attributes.
#[derive(Clone, Copy)]
pub struct Termios(libc::termios);

/// Reads the terminal attributes of `fd`.
pub fn get_attrs(fd: RawFd) -> io::Result<Termios> {
    // SAFETY: termios is plain data.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid out-pointer.
    check_int(unsafe { libc::tcgetattr(fd, &mut t) })?;
    Ok(Termios(t))
}

/// Restores saved terminal attributes.
pub fn set_attrs(fd: RawFd, attrs: &Termios) -> io::Result<()> {
    // SAFETY: `attrs` is a valid termios.
    check_int(unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &attrs.0) }).map(drop)
}

/// Puts `fd` in raw mode (keys pass through unchanged, so that Ctrl-C reaches the
/// sandbox's own terminal) and returns the previous attributes.
pub fn make_raw(fd: RawFd) -> io::Result<Termios> {
    let saved = get_attrs(fd)?;
    let mut raw = saved.0;
    // SAFETY: `raw` is a valid termios.
    unsafe { libc::cfmakeraw(&mut raw) };
    // SAFETY: `raw` is a valid termios.
    check_int(unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &raw) })?;
    Ok(saved)
}

/// Reads the window size of a terminal.
pub fn window_size(fd: RawFd) -> io::Result<libc::winsize> {
    // SAFETY: winsize is plain data.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: `ws` is a valid out-pointer for TIOCGWINSZ.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) })?;
    Ok(ws)
}

/// Sets the window size of a terminal (the kernel then sends SIGWINCH to its
/// foreground process group).
pub fn set_window_size(fd: RawFd, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: `ws` is a valid winsize for TIOCSWINSZ.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) }).map(drop)
}

/// Opens a new pseudo-terminal master from the `ptmx` at `path`, unlocks it and returns
/// it with its slave number.
pub fn open_pty_master(ptmx: &CStr) -> io::Result<(OwnedFd, u32)> {
    // SAFETY: valid C string.
    let fd = check_int(unsafe {
        libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fresh fd.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSPTLCK, &unlock) })?;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut number) })?;
    Ok((master, number))
}

/// Makes the terminal `fd` the controlling terminal of the calling session leader.
pub fn set_controlling_terminal(fd: RawFd) -> io::Result<()> {
    // SAFETY: integer-only ioctl.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}
