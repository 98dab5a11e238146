//! Landlock: the second filesystem wall.
//!
//! The mount namespace already gives the command a read-only view of the host with a few
//! writable binds. Landlock restates that policy inside the kernel's LSM layer, so that a
//! mistake in the mount setup, or a mount the command manages to change, still does not
//! make the host writable. It also adds two *scopes* that namespaces do not cover well:
//! no connecting to abstract unix sockets and no signals to processes outside the sandbox.
//!
//! Limits, stated so that nobody relies on more:
//! - Grants cover whole subtrees and are unions: a rule can only add rights beneath a
//!   directory, never take them away. So Landlock cannot express a read-only hole inside
//!   a writable root (e.g. `.git/hooks` read-only inside a writable workspace); that must
//!   come from the mount layer (a read-only bind over the hole).
//! - No network rights are handled. Landlock's TCP rules match ports, not addresses, so
//!   restricting `connect` or `bind` would also break servers and clients on 127.0.0.1
//!   inside the sandbox; the network namespace and the egress proxy handle the network.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, LandlockStatus, PathBeneath, PathFd,
    RestrictionStatus, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError,
    RulesetStatus, Scope,
};

/// The highest ABI the `landlock` crate knows. Best-effort mode drops what the running
/// kernel lacks, and the report says what was actually enforced.
const TARGET_ABI: ABI = ABI::V10;

/// What the command may do, as paths seen inside the sandbox (after `pivot_root`).
#[derive(Debug, Clone)]
pub struct LandlockSpec {
    /// When false, no filesystem rules are handled at all (full-access mode); scopes still apply.
    pub restrict_fs: bool,
    /// Directories where the command may write, create, delete, rename etc. everything beneath.
    pub writable_dirs: Vec<PathBuf>,
    /// Device files the command may write to and ioctl (e.g. /dev/null, /dev/tty, /dev/ptmx).
    pub writable_dev_files: Vec<PathBuf>,
    /// Directories of devices usable beneath (e.g. /dev/pts): write + ioctl on device files.
    pub dev_dirs: Vec<PathBuf>,
}

/// What Landlock actually enforces, for the run report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LandlockReport {
    /// The kernel's Landlock ABI version; `None` if Landlock is unsupported or disabled.
    pub kernel_abi: Option<u32>,
    /// `"fully_enforced"`, `"partially_enforced"` or `"not_enforced"`.
    pub status: String,
    /// Handled (that is, restricted) filesystem access rights, e.g. `"write_file"`.
    pub fs_rights: Vec<String>,
    /// Enforced scopes: `"abstract_unix_socket"`, `"signal"`.
    pub scopes: Vec<String>,
    /// Why Landlock could not be applied, if it could not.
    pub error: Option<String>,
}

/// Report names of the filesystem rights, in the kernel's bit order.
const FS_RIGHT_NAMES: &[(AccessFs, &str)] = &[
    (AccessFs::Execute, "execute"),
    (AccessFs::WriteFile, "write_file"),
    (AccessFs::ReadFile, "read_file"),
    (AccessFs::ReadDir, "read_dir"),
    (AccessFs::RemoveDir, "remove_dir"),
    (AccessFs::RemoveFile, "remove_file"),
    (AccessFs::MakeChar, "make_char"),
    (AccessFs::MakeDir, "make_dir"),
    (AccessFs::MakeReg, "make_reg"),
    (AccessFs::MakeSock, "make_sock"),
    (AccessFs::MakeFifo, "make_fifo"),
    (AccessFs::MakeBlock, "make_block"),
    (AccessFs::MakeSym, "make_sym"),
    (AccessFs::Refer, "refer"),
    (AccessFs::Truncate, "truncate"),
    (AccessFs::IoctlDev, "ioctl_dev"),
    (AccessFs::ResolveUnix, "resolve_unix"),
];

/// The filesystem rights moat restricts: everything the crate knows except
/// `ResolveUnix` (connecting to pathname unix sockets, ABI 9). Which sockets a command
/// may reach is decided by the supervisor (seccomp notifications), which sees the
/// address; handling it here would deny every socket outside the writable directories
/// (D-Bus, X11, an allowed agent socket) before the supervisor is asked.
fn handled_fs() -> BitFlags<AccessFs> {
    let mut rights = AccessFs::from_all(TARGET_ABI);
    rights.remove(AccessFs::ResolveUnix);
    rights
}

/// Rights on device entries: open for writing (`O_TRUNC` needs `Truncate`: shells open
/// `> /dev/null` with it) and device ioctls. Handling `IoctlDev` denies ioctls on device
/// files everywhere else, so terminals (/dev/tty, /dev/pts/*, /dev/ptmx) must be listed
/// or job control and line editing break. Only rights that apply to files are given:
/// the entries may be files, and directory rights on a file are an error.
fn dev_rights() -> BitFlags<AccessFs> {
    AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev
}

/// Applies to the calling thread: read+execute allowed everywhere (`/`), write rights
/// only beneath `writable_dirs`, write+ioctl on the device entries, and both scopes.
///
/// Best-effort at the highest ABI the crate knows: on an older kernel the missing rights
/// or scopes are not enforced, and the report lists only what is. Paths of the spec that
/// cannot be opened are skipped, which only withholds rights. A failure to apply returns
/// a report with status `not_enforced` and `error` set; the caller decides.
pub fn apply(spec: &LandlockSpec) -> LandlockReport {
    let handled = if spec.restrict_fs {
        handled_fs()
    } else {
        BitFlags::EMPTY
    };
    match restrict(spec, handled) {
        Ok(status) => report(&status, handled),
        Err(e) => LandlockReport {
            kernel_abi: probe_abi(),
            status: "not_enforced".into(),
            fs_rights: Vec::new(),
            scopes: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

fn restrict(
    spec: &LandlockSpec,
    handled: BitFlags<AccessFs>,
) -> Result<RestrictionStatus, RulesetError> {
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::BestEffort);
    if !handled.is_empty() {
        ruleset = ruleset.handle_access(handled)?;
    }
    // ABI 6 scopes: no signals to processes outside the sandbox (the pid namespace hides
    // them, but the landlock tier has none), and no connecting to abstract unix sockets
    // bound outside it: they are not files, so the filesystem rules do not cover them,
    // and they are shared by everything in a network namespace (X11, D-Bus, ...).
    let mut created = ruleset.scope(Scope::from_all(TARGET_ABI))?.create()?;
    if !handled.is_empty() {
        let read = handled & AccessFs::from_read(TARGET_ABI);
        created = allow(created, Path::new("/"), read)?;
        for dir in &spec.writable_dirs {
            created = allow(created, dir, handled)?;
        }
        for dev in spec.writable_dev_files.iter().chain(&spec.dev_dirs) {
            created = allow(created, dev, handled & dev_rights())?;
        }
    }
    // no_new_privs stays on (the default), as Landlock requires without CAP_SYS_ADMIN.
    created.restrict_self()
}

/// Adds a rule granting `access` beneath `path`, or skips `path` if it cannot be opened.
/// Skipping fails closed: the command just does not get those rights.
fn allow(
    created: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, RulesetError> {
    match PathFd::new(path) {
        Ok(fd) => created.add_rule(PathBeneath::new(fd, access)),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "landlock: skipping path");
            Ok(created)
        }
    }
}

fn report(status: &RestrictionStatus, handled: BitFlags<AccessFs>) -> LandlockReport {
    let (kernel_abi, abi) = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => {
            let known = effective_abi as i32;
            (
                u32::try_from(kernel_abi.unwrap_or(known)).ok(),
                effective_abi,
            )
        }
        _ => (None, ABI::Unsupported),
    };
    let status_name = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully_enforced",
        RulesetStatus::PartiallyEnforced => "partially_enforced",
        RulesetStatus::NotEnforced => "not_enforced",
    };
    let enforced = status.ruleset != RulesetStatus::NotEnforced;
    // What the kernel enforces is what was asked for and what its ABI supports.
    let fs = if enforced {
        handled & AccessFs::from_all(abi)
    } else {
        BitFlags::EMPTY
    };
    let scopes = if enforced {
        Scope::from_all(abi)
    } else {
        BitFlags::EMPTY
    };
    let scope_names = [
        (Scope::AbstractUnixSocket, "abstract_unix_socket"),
        (Scope::Signal, "signal"),
    ];
    LandlockReport {
        kernel_abi,
        status: status_name.into(),
        fs_rights: FS_RIGHT_NAMES
            .iter()
            .filter(|(right, _)| fs.contains(*right))
            .map(|(_, name)| (*name).to_string())
            .collect(),
        scopes: scope_names
            .iter()
            .filter(|(scope, _)| scopes.contains(*scope))
            .map(|(_, name)| (*name).to_string())
            .collect(),
        error: None,
    }
}

/// The kernel's Landlock ABI version, asked directly, for reports of failed attempts.
fn probe_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag, the kernel
    // reads no memory and only returns the ABI version (or an error).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(v).ok().filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

    use rustix::io::Errno;
    use rustix::process::{getpid, getppid, test_kill_process};

    /// `<tmp>/moat-landlock-<tag>-<pid>` with `rw/` and `ro/` (holding `ro/seed`);
    /// removed on drop.
    struct Dirs(PathBuf);

    impl Dirs {
        fn new(tag: &str) -> Dirs {
            let base =
                std::env::temp_dir().join(format!("moat-landlock-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&base);
            std::fs::create_dir_all(base.join("rw")).unwrap();
            std::fs::create_dir_all(base.join("ro")).unwrap();
            std::fs::write(base.join("ro/seed"), "seed").unwrap();
            Dirs(base)
        }
    }

    impl Drop for Dirs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `body` in a forked child, which exits with its result; returns the wait status.
    fn in_child(body: impl FnOnce() -> i32) -> i32 {
        // SAFETY: fork has no memory-safety preconditions. The child only runs `body`
        // (glibc keeps malloc usable after fork) and then `_exit`s, never returning
        // into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            // SAFETY: _exit ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code.unwrap_or(101)) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child, with a valid pointer to `status`.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        libc::WEXITSTATUS(status)
    }

    fn errno<T>(r: std::io::Result<T>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    /// Signal 0 to the parent (the test process, outside the child's domain): no signal
    /// is delivered even if the scope is missing.
    fn signal_parent() -> Result<(), Errno> {
        test_kill_process(getppid().expect("has a parent"))
    }

    fn supported() -> bool {
        let abi = probe_abi();
        if abi.is_none_or(|v| v < 6) {
            eprintln!("skipped: Landlock ABI {abi:?} is older than 6 (scopes)");
        }
        abi.is_some_and(|v| v >= 6)
    }

    macro_rules! check {
        ($code:expr, $ok:expr) => {
            if !$ok {
                return $code;
            }
        };
    }

    #[test]
    fn writes_only_beneath_writable_dirs_and_no_signals_out() {
        if !supported() {
            return;
        }
        let dirs = Dirs::new("fs");
        let (rw, ro) = (dirs.0.join("rw"), dirs.0.join("ro"));
        let name = format!("moat-landlock-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let _listener = UnixListener::bind_addr(&addr).unwrap();
        let spec = LandlockSpec {
            restrict_fs: true,
            writable_dirs: vec![rw.clone(), PathBuf::from("/nonexistent/moat-test")],
            writable_dev_files: vec![PathBuf::from("/dev/null")],
            dev_dirs: vec![],
        };
        let code = in_child(|| {
            let r = apply(&spec);
            check!(1, r.status == "fully_enforced" && r.error.is_none());
            check!(2, r.kernel_abi.is_some_and(|v| v >= 6));
            let has = |n: &str| r.fs_rights.iter().any(|x| x == n);
            check!(
                3,
                ["write_file", "make_reg", "refer", "truncate", "ioctl_dev"].map(has) == [true; 5]
            );
            check!(4, !has("resolve_unix"));
            check!(5, r.scopes == ["abstract_unix_socket", "signal"]);
            check!(6, std::fs::write(rw.join("a"), "x").is_ok());
            check!(7, std::fs::rename(rw.join("a"), rw.join("b")).is_ok());
            check!(
                8,
                errno(std::fs::write(ro.join("a"), "x")) == Some(libc::EACCES)
            );
            check!(
                9,
                errno(std::fs::write(ro.join("seed"), "x")) == Some(libc::EACCES)
            );
            check!(
                10,
                errno(std::fs::create_dir(ro.join("d"))) == Some(libc::EACCES)
            );
            check!(
                11,
                std::fs::read(ro.join("seed")).is_ok_and(|b| b == b"seed")
            );
            // `> /dev/null` opens with O_TRUNC; device ioctls only on listed devices.
            let null = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open("/dev/null");
            check!(12, null.as_ref().is_ok());
            let null_ioctl = rustix::termios::tcgetattr(null.unwrap());
            check!(13, null_ioctl.err() == Some(Errno::NOTTY));
            let zero = std::fs::File::open("/dev/zero").unwrap();
            check!(
                14,
                rustix::termios::tcgetattr(zero).err() == Some(Errno::ACCESS)
            );
            check!(15, signal_parent() == Err(Errno::PERM));
            check!(16, test_kill_process(getpid()).is_ok());
            check!(
                17,
                errno(UnixStream::connect_addr(&addr)) == Some(libc::EPERM)
            );
            0
        });
        assert_eq!(code, 0, "number of the failed check");
        assert!(dirs.0.join("rw/b").exists() && !dirs.0.join("ro/a").exists());
    }

    #[test]
    fn scopes_apply_without_filesystem_rules() {
        if !supported() {
            return;
        }
        let dirs = Dirs::new("scopes");
        let ro = dirs.0.join("ro");
        let spec = LandlockSpec {
            restrict_fs: false,
            writable_dirs: vec![],
            writable_dev_files: vec![],
            dev_dirs: vec![],
        };
        let code = in_child(|| {
            let r = apply(&spec);
            check!(1, r.status == "fully_enforced" && r.fs_rights.is_empty());
            check!(2, r.scopes == ["abstract_unix_socket", "signal"]);
            check!(3, std::fs::write(ro.join("a"), "x").is_ok());
            check!(4, signal_parent() == Err(Errno::PERM));
            0
        });
        assert_eq!(code, 0, "number of the failed check");
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = LandlockReport {
            kernel_abi: Some(7),
            status: "partially_enforced".into(),
            fs_rights: vec!["write_file".into()],
            scopes: vec![],
            error: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<LandlockReport>(&json).unwrap(), r);
    }
}
