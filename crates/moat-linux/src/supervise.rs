//! moat's side of a run: forward signals, enforce the timeout, relay the terminal, and
//! collect how the command ended.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::error::{Context, SandboxError};
use crate::protocol::{self, MAX_MESSAGE, ToInit, ToParent};
use crate::relay::Relay;
use crate::sandbox::{Enforcement, Outcome, Phases, Status, TIMEOUT_GRACE};
use crate::sys::{self, fd};

/// Signals moat forwards to the command (and SIGWINCH, which resizes its terminal).
pub(crate) const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGWINCH,
];

/// State collected while the sandbox runs.
struct Run {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    sock: Option<OwnedFd>,
    status: Option<Status>,
    timed_out: bool,
    kill_at: Option<Instant>,
    relay: Option<Relay>,
    enforcement: Enforcement,
    ready_at: Option<Instant>,
    ended_at: Option<Instant>,
}

/// Supervises init (`pid`, `pidfd`) until it has exited.
pub(crate) fn supervise(
    pid: libc::pid_t,
    pidfd: OwnedFd,
    sock: OwnedFd,
    timeout: Option<Duration>,
    started: Instant,
    enforcement: Enforcement,
) -> Result<Outcome, SandboxError> {
    let sigfd = sys::signalfd(FORWARDED).ctx("signalfd")?;
    let mut run = Run {
        pid,
        pidfd,
        sock: Some(sock),
        status: None,
        timed_out: false,
        kill_at: None,
        relay: None,
        enforcement,
        ready_at: None,
        ended_at: None,
    };
    let deadline = timeout.map(|t| started + t);
    loop {
        let wait_ms = next_wakeup(deadline, run.kill_at, run.timed_out);
        let mut fds = vec![
            (sigfd.as_raw_fd(), libc::POLLIN),
            (
                run.sock.as_ref().map_or(-1, |s| s.as_raw_fd()),
                libc::POLLIN,
            ),
            (run.pidfd.as_raw_fd(), libc::POLLIN),
        ];
        if let Some(relay) = &run.relay {
            fds.extend(relay.poll_set());
        }
        let ready = fd::poll(&fds, wait_ms).ctx("poll")?;
        if ready[0] != 0 {
            forward_signals(&mut run, sigfd.as_raw_fd());
        }
        if ready[1] != 0 {
            read_messages(&mut run);
        }
        if let Some(relay) = &mut run.relay {
            relay.pump(&ready[3..]);
        }
        check_timeout(&mut run, deadline);
        if ready[2] != 0 {
            return Ok(finish(run, started));
        }
    }
}

/// Milliseconds until the next deadline, or -1 to wait for events only.
fn next_wakeup(deadline: Option<Instant>, kill_at: Option<Instant>, timed_out: bool) -> i32 {
    let next = if timed_out { kill_at } else { deadline };
    next.map_or(-1, |t| {
        let ms = t.saturating_duration_since(Instant::now()).as_millis();
        // Round up so that we never spin on a deadline a fraction of a ms away.
        i32::try_from(ms + 1).unwrap_or(i32::MAX)
    })
}

fn send(run: &Run, msg: &ToInit) {
    if let Some(sock) = &run.sock {
        let _ = fd::send_msg(sock.as_raw_fd(), &protocol::encode(msg), None);
    }
}

fn forward_signals(run: &mut Run, sigfd: RawFd) {
    while let Ok(Some(sig)) = sys::read_signal(sigfd) {
        if sig == libc::SIGWINCH {
            if let Some(relay) = &run.relay {
                relay.sync_window_size();
            }
        } else {
            send(run, &ToInit::Signal(sig));
        }
    }
}

fn read_messages(run: &mut Run) {
    let Some(sock) = &run.sock else { return };
    let fd = sock.as_raw_fd();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, passed) = match fd::recv_msg(fd, &mut buf) {
        Ok((0, _)) | Err(_) => {
            // End of stream: init is gone or going. Its exit shows on the pidfd.
            run.sock = None;
            return;
        }
        Ok(got) => got,
    };
    match protocol::decode::<ToParent>(&buf[..n]) {
        Ok(ToParent::Ready { pty: true }) => {
            run.ready_at = Some(Instant::now());
            if let Some(master) = passed {
                run.relay = Relay::start(master).ok();
            }
        }
        Ok(ToParent::Ready { pty: false }) => run.ready_at = Some(Instant::now()),
        Ok(ToParent::Enforced { landlock }) => run.enforcement.landlock = Some(landlock),
        Ok(ToParent::Failed { code, message }) => {
            run.status.get_or_insert(Status::Failed { code, message });
        }
        Ok(ToParent::Exited { code }) => {
            run.ended_at = Some(Instant::now());
            run.status.get_or_insert(Status::Exited(code));
        }
        Ok(ToParent::Signaled { signal }) => {
            run.ended_at = Some(Instant::now());
            run.status.get_or_insert(Status::Signaled(signal));
        }
        Err(message) => {
            run.status
                .get_or_insert(Status::Failed { code: 125, message });
        }
    }
}

/// On timeout: SIGTERM to the whole tree, then SIGKILL to init after the grace period
/// (init's death takes the whole pid namespace with it).
fn check_timeout(run: &mut Run, deadline: Option<Instant>) {
    let now = Instant::now();
    if !run.timed_out && deadline.is_some_and(|d| now >= d) {
        run.timed_out = true;
        run.kill_at = Some(now + TIMEOUT_GRACE);
        send(run, &ToInit::TerminateAll);
    } else if run.timed_out && run.kill_at.is_some_and(|k| now >= k) {
        run.kill_at = None;
        let _ = sys::pidfd_send_signal(run.pidfd.as_raw_fd(), libc::SIGKILL);
    }
}

fn finish(mut run: Run, started: Instant) -> Outcome {
    let end = sys::wait_blocking(run.pid);
    // Messages sent just before init exited may still be queued.
    while run.sock.is_some() {
        let ready = fd::poll(
            &[(
                run.sock.as_ref().map_or(-1, |s| s.as_raw_fd()),
                libc::POLLIN,
            )],
            0,
        )
        .unwrap_or_default();
        if ready.first().copied().unwrap_or(0) == 0 {
            break;
        }
        read_messages(&mut run);
    }
    if let Some(relay) = run.relay.take() {
        relay.finish();
    }
    let status = run.status.take().unwrap_or_else(|| match end {
        _ if run.timed_out => Status::Signaled(libc::SIGKILL),
        Ok(sys::ChildEnd::Exited(code)) if code != 0 => Status::Failed {
            code: 125,
            message: "the sandbox's init exited before the command ran".into(),
        },
        Ok(sys::ChildEnd::Signaled(sig)) => Status::Failed {
            code: 125,
            message: format!("the sandbox's init was killed by signal {sig}"),
        },
        Ok(_) => Status::Failed {
            code: 125,
            message: "the sandbox ended without reporting the command's status".into(),
        },
        Err(e) => Status::Failed {
            code: 125,
            message: format!("waitpid: {e}"),
        },
    });
    let reaped = Instant::now();
    let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
    let ready = run.ready_at.unwrap_or(started);
    let ended = run.ended_at.unwrap_or(reaped);
    let phases = Phases {
        setup_ms: ms(started, ready),
        command_ms: ms(ready, ended),
        teardown_ms: ms(ended, reaped),
        ..Phases::default()
    };
    Outcome {
        status,
        timed_out: run.timed_out,
        duration: started.elapsed(),
        enforcement: run.enforcement,
        phases,
    }
}
