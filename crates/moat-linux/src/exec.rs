//! The command's side: the last restrictions, then `execve`.
//!
//! The order is deliberate: the session and terminal first (they need no privilege),
//! then every capability is dropped, then NO_NEW_PRIVS, Landlock and seccomp, and only
//! then `execve`. Nothing the command runs can undo any of it.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::child::{ChildSpec, tell};
use crate::protocol::ToParent;
use crate::sys::{self, fd, term};

/// Runs in the forked command process. Never returns.
pub(crate) fn command_main(spec: &ChildSpec, sock: RawFd, pty: Option<u32>) -> ! {
    if let Err(message) = restrict(spec, sock, pty) {
        tell(sock, &ToParent::Failed { code: 125, message });
        sys::exit_now(125);
    }
    let (code, message) = exec_command(spec);
    tell(sock, &ToParent::Failed { code, message });
    sys::exit_now(code)
}

fn restrict(spec: &ChildSpec, sock: RawFd, pty: Option<u32>) -> Result<(), String> {
    sys::reset_signals();
    sys::setsid().map_err(|e| format!("setsid: {e}"))?;
    if let Some(n) = pty {
        attach_terminal(n, &spec.pty_fds)
            .map_err(|e| format!("cannot attach the sandbox's terminal: {e}"))?;
    }
    sys::chdir(&spec.cwd).map_err(|e| {
        format!(
            "working directory {} is not visible in the sandbox: {e}",
            spec.cwd.to_string_lossy()
        )
    })?;
    // Every fd but stdio is closed at exec. The report socket stays usable until then.
    sys::cloexec_from(3).map_err(|e| format!("close_range: {e}"))?;
    sys::drop_all_capabilities().map_err(|e| format!("cannot drop capabilities: {e}"))?;
    sys::set_no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    let landlock = crate::landlock::apply(&spec.landlock);
    if let Some(err) = &landlock.error {
        // Best effort by design: an old kernel without Landlock still gets the
        // namespaces and seccomp, and the report says what was enforced.
        tracing::debug!("landlock: {err}");
    }
    spec.seccomp
        .install()
        .map_err(|e| format!("cannot install the seccomp filter: {e}"))?;
    tell(sock, &ToParent::Enforced { landlock });
    Ok(())
}

/// Opens the sandbox's pty slave, makes it the controlling terminal of the new session
/// and puts it on those of fds 0–2 that were terminals outside.
fn attach_terminal(number: u32, fds: &[RawFd]) -> io::Result<()> {
    let path = CString::new(format!("/dev/pts/{number}")).expect("no NUL");
    let slave = fd::open_rdwr_noctty(&path)?;
    term::set_controlling_terminal(slave.as_raw_fd())?;
    for &target in fds {
        fd::dup2(slave.as_raw_fd(), target)?;
    }
    Ok(())
}

/// Looks the program up like `execvp` and runs it. Returns the exit code and message
/// when it cannot: 127 when it does not exist, 126 when it cannot be executed.
fn exec_command(spec: &ChildSpec) -> (i32, String) {
    let program = &spec.argv[0];
    let argv: Vec<*const libc::c_char> = spec
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = spec
        .env
        .iter()
        .map(|e| e.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let name = program.to_string_lossy().into_owned();
    if program.as_bytes().contains(&b'/') {
        let err = try_exec(program, &argv, &envp);
        return failure(&name, &err);
    }
    let mut denied: Option<io::Error> = None;
    for dir in search_path(&spec.env) {
        let mut full = dir;
        if !full.ends_with(b"/") {
            full.push(b'/');
        }
        full.extend_from_slice(program.as_bytes());
        let Ok(candidate) = CString::new(full) else {
            continue;
        };
        let err = try_exec(&candidate, &argv, &envp);
        match err.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => continue,
            Some(libc::EACCES) => denied = Some(err),
            _ => return failure(&name, &err),
        }
    }
    match denied {
        Some(err) => failure(&name, &err),
        None => (127, format!("{name}: command not found")),
    }
}

/// `execve`, falling back to `/bin/sh FILE` for scripts without a `#!` line, as
/// `execvp` does.
fn try_exec(path: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> io::Error {
    let err = sys::execve(path, argv, envp);
    if err.raw_os_error() != Some(libc::ENOEXEC) {
        return err;
    }
    let mut sh_argv = vec![c"/bin/sh".as_ptr(), path.as_ptr()];
    sh_argv.extend_from_slice(&argv[1..]);
    sys::execve(c"/bin/sh", &sh_argv, envp)
}

fn failure(name: &str, err: &io::Error) -> (i32, String) {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => (127, format!("{name}: command not found")),
        _ => (126, format!("{name}: cannot execute: {err}")),
    }
}

/// The directories of `PATH` in the command's environment (a default when unset).
fn search_path(env: &[CString]) -> Vec<Vec<u8>> {
    let path = env
        .iter()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
    path.split(|&b| b == b':')
        .map(|d| {
            if d.is_empty() {
                b".".to_vec()
            } else {
                d.to_vec()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_split_like_execvp() {
        let env = vec![CString::new("PATH=/a::/b/").unwrap()];
        assert_eq!(
            search_path(&env),
            vec![b"/a".to_vec(), b".".to_vec(), b"/b/".to_vec()]
        );
        assert_eq!(search_path(&[]).len(), 3);
    }

    #[test]
    fn exec_errors_map_to_conventional_codes() {
        assert_eq!(
            failure("x", &io::Error::from_raw_os_error(libc::ENOENT)).0,
            127
        );
        assert_eq!(
            failure("x", &io::Error::from_raw_os_error(libc::EACCES)).0,
            126
        );
        assert_eq!(
            failure("x", &io::Error::from_raw_os_error(libc::EISDIR)).0,
            126
        );
    }
}
