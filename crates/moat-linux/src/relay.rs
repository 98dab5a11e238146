//! Relays between the user's terminal and the sandbox's own pseudo-terminal.
//!
//! No host terminal fd reaches the command: it gets a pty from the sandbox's devpts,
//! so TIOCSTI (denied by seccomp anyway) and every other terminal ioctl can reach only
//! that pty. moat copies bytes both ways and propagates window-size changes. The host
//! terminal is put in raw mode so that keys such as Ctrl-C reach the inner line
//! discipline, which signals the sandbox's foreground process group, as ssh does.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys::{fd, term};

/// Bytes typed ahead that we hold while the pty's input queue is full.
const MAX_PENDING: usize = 64 * 1024;

/// An active relay.
pub(crate) struct Relay {
    master: OwnedFd,
    master_open: bool,
    input: Option<RawFd>,
    output: Option<RawFd>,
    saved: Option<(RawFd, term::Termios)>,
    pending: Vec<u8>,
}

impl Relay {
    /// Starts relaying for `master`; puts the host's stdin in raw mode if it is a tty.
    pub(crate) fn start(master: OwnedFd) -> io::Result<Self> {
        fd::set_nonblocking(master.as_raw_fd(), true)?;
        let input = term::is_terminal(0).then_some(0);
        let saved = match input {
            Some(fd) => term::make_raw(fd).ok().map(|t| (fd, t)),
            None => None,
        };
        let output = [1, 2].into_iter().find(|&fd| term::is_terminal(fd));
        let relay = Self {
            master,
            master_open: true,
            input,
            output,
            saved,
            pending: Vec::new(),
        };
        relay.sync_window_size();
        Ok(relay)
    }

    /// Copies the host terminal's size to the pty (the kernel then sends SIGWINCH to
    /// the command's foreground group).
    pub(crate) fn sync_window_size(&self) {
        let source = self.output.or(self.input);
        if let Some(size) = source.and_then(|fd| term::window_size(fd).ok()) {
            let _ = term::set_window_size(self.master.as_raw_fd(), &size);
        }
    }

    /// The two poll entries of the relay: the master and the host input.
    pub(crate) fn poll_set(&self) -> [(RawFd, i16); 2] {
        let mut master_events = 0;
        if self.master_open {
            master_events |= libc::POLLIN;
            if !self.pending.is_empty() {
                master_events |= libc::POLLOUT;
            }
        }
        let input = match self.input {
            Some(fd) if self.pending.len() < MAX_PENDING => fd,
            _ => -1,
        };
        [
            (
                if self.master_open {
                    self.master.as_raw_fd()
                } else {
                    -1
                },
                master_events,
            ),
            (input, libc::POLLIN),
        ]
    }

    /// Moves whatever is ready, given the `revents` for [`Relay::poll_set`].
    pub(crate) fn pump(&mut self, revents: &[i16]) {
        let master = revents.first().copied().unwrap_or(0);
        if master & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            self.drain_output();
        }
        if revents.get(1).copied().unwrap_or(0) != 0 {
            self.read_input();
        }
        self.flush_input();
    }

    fn drain_output(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match fd::read(self.master.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    self.master_open = false;
                    return;
                }
                Ok(n) => {
                    if let Some(out) = self.output {
                        let _ = fd::write_all(out, &buf[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // EIO: every slave fd is closed. Stop polling, or POLLHUP would spin.
                Err(_) => {
                    self.master_open = false;
                    return;
                }
            }
        }
    }

    fn read_input(&mut self) {
        let Some(input) = self.input else { return };
        let mut buf = [0u8; 4096];
        match fd::read(input, &mut buf) {
            Ok(0) | Err(_) => self.input = None,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
        }
    }

    fn flush_input(&mut self) {
        while !self.pending.is_empty() && self.master_open {
            // SAFETY: `pending` is readable for its length.
            let n = unsafe {
                libc::write(
                    self.master.as_raw_fd(),
                    self.pending.as_ptr().cast(),
                    self.pending.len(),
                )
            };
            if n <= 0 {
                return;
            }
            self.pending.drain(..n as usize);
        }
    }

    /// Relays the last output after the sandbox ended, then restores the terminal.
    pub(crate) fn finish(mut self) {
        if self.master_open {
            self.drain_output();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some((fd, saved)) = self.saved.take() {
            let _ = term::set_attrs(fd, &saved);
        }
    }
}
