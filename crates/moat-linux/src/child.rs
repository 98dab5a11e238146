//! What runs inside the sandbox: init (pid 1) and, forked from it, the command.
//!
//! Both run after a `clone` of the single-threaded moat process, so they may allocate,
//! but must leave with `_exit` and never return into the parent's code.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::error::{Context, SandboxError};
use crate::landlock::LandlockSpec;
use crate::plan::MountOp;
use crate::protocol::{self, MAX_MESSAGE, ToInit, ToParent};
use crate::roots::OpenedRoot;
use crate::seccomp::Filter;
use crate::sys::{self, ChildEnd, fd, term};
use crate::{exec, mounts};

/// Everything the sandbox needs, prepared by moat before the clone.
pub(crate) struct ChildSpec {
    pub uid: u32,
    pub gid: u32,
    pub new_net: bool,
    pub ops: Vec<MountOp>,
    pub roots: Vec<OpenedRoot>,
    /// Which of the command's fds 0–2 get the sandbox's pty (empty: no pty).
    pub pty_fds: Vec<RawFd>,
    pub cwd: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    pub landlock: LandlockSpec,
    pub seccomp: Filter,
}

/// Sends a message to moat; a dead moat is handled by the caller's next read.
pub(crate) fn tell(sock: RawFd, msg: &ToParent) {
    let _ = fd::send_msg(sock, &protocol::encode(msg), None);
}

/// Entry point of pid 1. Never returns.
pub(crate) fn init_main(spec: ChildSpec, sock: OwnedFd) -> ! {
    match init_setup(&spec, sock.as_raw_fd()) {
        Ok(pty_number) => init_supervise(&spec, sock, pty_number),
        Err(e) => {
            tell(
                sock.as_raw_fd(),
                &ToParent::Failed {
                    code: 125,
                    message: e.to_string(),
                },
            );
            sys::exit_now(125)
        }
    }
}

/// Builds the sandbox from inside. Returns the pty number when a pty was requested.
fn init_setup(spec: &ChildSpec, sock: RawFd) -> Result<Option<u32>, SandboxError> {
    // If moat dies from here on, the kernel kills init and with it the namespace. A
    // death before this line is caught by init's loop, which sees the socket close.
    sys::set_parent_death_signal(libc::SIGKILL).ctx("PR_SET_PDEATHSIG")?;
    write_id_maps(spec.uid, spec.gid)?;
    // After the maps: a non-dumpable process's /proc files belong to root, and init no
    // longer needs them. Non-dumpable keeps the command from ptracing init.
    sys::set_non_dumpable().ctx("PR_SET_DUMPABLE")?;
    mounts::build_view(&spec.ops, &spec.roots)?;
    sys::sethostname("moat").ctx("sethostname")?;
    if spec.new_net {
        sys::loopback_up().ctx("cannot bring up lo in the sandbox's network namespace")?;
    }
    let mut pty_number = None;
    let mut master = None;
    if !spec.pty_fds.is_empty() {
        let (m, n) =
            term::open_pty_master(c"/dev/pts/ptmx").ctx("cannot open the sandbox's pty")?;
        pty_number = Some(n);
        master = Some(m);
    }
    let ready = protocol::encode(&ToParent::Ready {
        pty: master.is_some(),
    });
    fd::send_msg(sock, &ready, master.as_ref().map(|m| m.as_raw_fd())).ctx("cannot reach moat")?;
    Ok(pty_number)
}

/// Maps the caller's uid and gid to themselves in the new user namespace. `setgroups`
/// must be denied first: an unprivileged process may not write `gid_map` otherwise.
fn write_id_maps(uid: u32, gid: u32) -> Result<(), SandboxError> {
    let hint = "cannot set up the user namespace";
    std::fs::write("/proc/self/setgroups", "deny").ctx(hint)?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n")).ctx(hint)?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n")).ctx(hint)?;
    Ok(())
}

/// Forks the command, then reaps children and relays moat's requests until the
/// command ends. Exiting kills everything left in the pid namespace: no orphan of the
/// command outlives it.
fn init_supervise(spec: &ChildSpec, sock: OwnedFd, pty: Option<u32>) -> ! {
    let sock_fd = sock.as_raw_fd();
    // SIGCHLD is read through a signalfd; blocked before the fork so none is lost.
    if let Err(e) = sys::block_signals(&[libc::SIGCHLD]) {
        tell(
            sock_fd,
            &ToParent::Failed {
                code: 125,
                message: format!("cannot block SIGCHLD: {e}"),
            },
        );
        sys::exit_now(125);
    }
    let sigfd = match sys::signalfd(&[libc::SIGCHLD]) {
        Ok(fd) => fd,
        Err(e) => {
            tell(
                sock_fd,
                &ToParent::Failed {
                    code: 125,
                    message: format!("signalfd: {e}"),
                },
            );
            sys::exit_now(125)
        }
    };
    // SAFETY: init is single-threaded (it was cloned from single-threaded moat).
    let command = match unsafe { sys::fork() } {
        Ok(None) => {
            drop(sigfd);
            exec::command_main(spec, sock_fd, pty)
        }
        Ok(Some(pid)) => pid,
        Err(e) => {
            tell(
                sock_fd,
                &ToParent::Failed {
                    code: 125,
                    message: format!("cannot fork the command: {e}"),
                },
            );
            sys::exit_now(125)
        }
    };
    loop {
        let Ok(ready) = fd::poll(
            &[(sigfd.as_raw_fd(), libc::POLLIN), (sock_fd, libc::POLLIN)],
            -1,
        ) else {
            continue;
        };
        if ready[0] != 0 {
            reap(sigfd.as_raw_fd(), command, sock_fd);
        }
        if ready[1] != 0 && !handle_request(sock_fd, command) {
            // moat is gone: take the sandbox down with it.
            sys::exit_now(125);
        }
    }
}

/// Reaps every ended child; when it is the command, reports and exits.
fn reap(sigfd: RawFd, command: libc::pid_t, sock: RawFd) {
    while let Ok(Some(_)) = sys::read_signal(sigfd) {}
    while let Ok(Some((pid, end))) = sys::wait_nohang(-1) {
        if pid == command {
            let msg = match end {
                ChildEnd::Exited(code) => ToParent::Exited { code },
                ChildEnd::Signaled(signal) => ToParent::Signaled { signal },
            };
            tell(sock, &msg);
            sys::exit_now(0);
        }
    }
}

/// Handles one message from moat. Returns false when moat has gone away.
fn handle_request(sock: RawFd, command: libc::pid_t) -> bool {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = match fd::recv_msg(sock, &mut buf) {
        Ok((0, _)) | Err(_) => return false,
        Ok((n, _)) => n,
    };
    match protocol::decode::<ToInit>(&buf[..n]) {
        Ok(ToInit::Signal(sig)) => {
            // The command leads its own session and process group; a terminal would
            // signal the whole foreground group, so do the same.
            if sys::kill(-command, sig).is_err() {
                let _ = sys::kill(command, sig);
            }
        }
        Ok(ToInit::TerminateAll) => {
            // pid -1 from init reaches every other process in the namespace.
            let _ = sys::kill(-1, libc::SIGTERM);
        }
        Err(_) => {}
    }
    true
}
