//! Shared harness of moat's integration tests.
//!
//! `sandbox_test!(name, |h: &Harness| { ... })` generates `mod name { fn as_root; fn as_user }`:
//! every case runs once as root and once as an unprivileged uid. When the test process is
//! root, `as_user` drops to uid/gid 4242 (env `MOAT_TEST_UID` / `MOAT_TEST_GID`) with
//! `setpriv` and a world-readable copy of the moat binary; when it is not root, `as_root`
//! is skipped and `as_user` runs moat as the current user.
//!
//! Each case gets a fresh directory under `CARGO_TARGET_TMPDIR` (never `/tmp`, which is
//! private inside the sandbox) with `ws/` (the workspace), `home/` (HOME) and `outside/`
//! (writable by the test uid on the host, so a refused write proves the sandbox stopped
//! it, not Unix permissions). Every moat run has a 60 s kill timeout (env
//! `MOAT_TEST_TIMEOUT_SECS`), so a hung moat fails its test instead of hanging the suite.
//! `MOAT_TEST_DIR` replaces the base directory. `MOAT_TEST_BINARY` replaces the binary
//! under test, e.g. with a stand-in that does not sandbox, to check that the attack cases
//! can fail.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

mod run;
#[allow(unused_imports)] // each test binary uses a different subset
pub use run::{Out, Run, Running};

/// Generates a test module with `as_root` and `as_user` variants of one case.
macro_rules! sandbox_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn as_root() {
                crate::common::run_case(crate::common::Mode::Root, stringify!($name), $body);
            }
            #[test]
            fn as_user() {
                crate::common::run_case(crate::common::Mode::User, stringify!($name), $body);
            }
        }
    };
}

/// The PATH given to moat and to host helper commands.
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The system python (the pyenv one under /root is unreadable to other uids).
pub const PYTHON: &str = "/usr/bin/python3";

/// Which identity a case runs moat as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// moat runs as root (skipped when the test process is not root).
    Root,
    /// moat runs as an unprivileged uid.
    User,
}

/// True when the test process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn env_id(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn timeout() -> Duration {
    Duration::from_secs(env_id("MOAT_TEST_TIMEOUT_SECS", 60).into())
}

/// Sets a path's mode bits.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Quotes a string for /bin/sh.
pub fn shell_quote(s: &OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"))
}

/// Sends a signal to a host process.
pub fn send_signal(pid: u32, sig: i32) {
    let pid = i32::try_from(pid).expect("pid fits in i32");
    // SAFETY: kill() takes plain integers and has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}) failed: {}",
        std::io::Error::last_os_error()
    );
}

/// The root of everything the tests create: `CARGO_TARGET_TMPDIR/moat-tests`, or
/// `MOAT_TEST_DIR` when set. It must not lie in a directory that is private inside the
/// sandbox (/tmp, /var/tmp, /dev/shm, /run): the attack checks would pass for the wrong
/// reason, so the suite refuses to run there.
pub fn base_dir() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        const PRIVATE: [&str; 4] = ["/tmp", "/var/tmp", "/dev/shm", "/run"];
        let is_private = |p: &Path| PRIVATE.iter().any(|d| p.starts_with(d));
        let base = match std::env::var_os("MOAT_TEST_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("moat-tests");
                if !is_private(&target) {
                    target
                } else if is_root() {
                    // A checkout under /tmp (CI clones may live there): use a fixed
                    // directory that the sandbox does not hide.
                    PathBuf::from("/var/lib/moat-tests")
                } else {
                    let home = std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_default();
                    home.join(".local/share/moat-tests")
                }
            }
        };
        assert!(
            !is_private(&base),
            "the test directory {} is private inside the sandbox; set MOAT_TEST_DIR to a \
             directory elsewhere",
            base.display()
        );
        fs::create_dir_all(base.join("cases")).expect("create test base dir");
        if is_root() {
            // Every ancestor must be traversable by the unprivileged test uid.
            for dir in base.ancestors() {
                if let Ok(meta) = fs::metadata(dir) {
                    let mode = meta.permissions().mode();
                    if mode & 0o001 == 0 {
                        chmod(dir, (mode & 0o7777) | 0o001);
                    }
                }
            }
            chmod(&base, 0o755);
            chmod(&base.join("cases"), 0o755);
        }
        base.canonicalize().expect("canonicalize base dir")
    })
}

/// A world-readable directory, private to this test process, holding the moat copy and
/// the compiled probe. Directories left behind by dead test processes are removed.
fn bin_dir() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let base = base_dir();
        if let Ok(entries) = fs::read_dir(base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("bin-") {
                    if pid != std::process::id().to_string()
                        && !Path::new("/proc").join(pid).exists()
                    {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = base.join(format!("bin-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create bin dir");
        chmod(&dir, 0o755);
        dir
    })
}

/// The binary under test: `CARGO_BIN_EXE_moat`, or `MOAT_TEST_BINARY` when set (used to
/// check that the attack cases fail against a stand-in that does not sandbox).
fn moat_under_test() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var_os("MOAT_TEST_BINARY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_moat")))
    })
}

/// A world-readable copy of the moat binary, for the unprivileged uid.
fn moat_copy() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let dst = bin_dir().join("moat");
        fs::copy(moat_under_test(), &dst).expect("copy moat binary");
        chmod(&dst, 0o755);
        dst
    })
}

/// The probe fixture (tests/fixtures/probe.c), compiled once per test binary.
pub fn probe_path() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/probe.c");
        let dst = bin_dir().join("probe");
        let out = Command::new("cc")
            .args(["-O1", "-Wall", "-o"])
            .arg(&dst)
            .arg(src)
            .output()
            .expect("run cc");
        assert!(
            out.status.success(),
            "compiling probe.c failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        chmod(&dst, 0o755);
        dst
    })
}

/// Runs one case in the given mode (called by `sandbox_test!`).
pub fn run_case(mode: Mode, name: &str, body: impl FnOnce(&Harness)) {
    if mode == Mode::Root && !is_root() {
        println!("skipped: needs root");
        return;
    }
    let h = Harness::new(mode, name);
    body(&h);
}

/// One case's directories and identity.
pub struct Harness {
    _tmp: tempfile::TempDir,
    /// The case directory (root-owned when the test process is root, mode 0755).
    pub dir: PathBuf,
    /// The workspace, owned by the test uid.
    pub ws: PathBuf,
    /// HOME, owned by the test uid, outside the workspace.
    pub home: PathBuf,
    /// A directory outside the workspace that the test uid can write on the host.
    pub outside: PathBuf,
    /// Root or User.
    pub mode: Mode,
    /// The uid moat runs as on the host.
    pub uid: u32,
    /// The gid moat runs as on the host.
    pub gid: u32,
    drop_privs: bool,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Harness {
    fn new(mode: Mode, name: &str) -> Harness {
        let root = is_root();
        let (uid, gid, drop_privs) = match (mode, root) {
            (Mode::Root, _) => (0, 0, false),
            (Mode::User, true) => (
                env_id("MOAT_TEST_UID", 4242),
                env_id("MOAT_TEST_GID", 4242),
                true,
            ),
            (Mode::User, false) => {
                // SAFETY: getuid/getgid have no preconditions and cannot fail.
                let ids = unsafe { (libc::getuid(), libc::getgid()) };
                (ids.0, ids.1, false)
            }
        };
        let tag = if mode == Mode::Root { "root" } else { "user" };
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{name}-{tag}-"))
            .tempdir_in(base_dir().join("cases"))
            .expect("create case dir");
        let dir = tmp.path().to_path_buf();
        chmod(&dir, 0o755);
        let h = Harness {
            ws: dir.join("ws"),
            home: dir.join("home"),
            outside: dir.join("outside"),
            dir,
            _tmp: tmp,
            mode,
            uid,
            gid,
            drop_privs,
        };
        for d in [&h.ws, &h.home, &h.outside] {
            h.mkdir(d);
        }
        h
    }

    /// True for the unprivileged variant.
    pub fn is_user(&self) -> bool {
        self.mode == Mode::User
    }

    /// Gives a host path to the test uid.
    pub fn chown(&self, path: &Path) {
        if self.drop_privs {
            chown(path, Some(self.uid), Some(self.gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }

    /// Creates a directory (0755) owned by the test uid.
    pub fn mkdir(&self, path: &Path) {
        fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        chmod(path, 0o755);
        self.chown(path);
    }

    /// Writes a file (0644) owned by the test uid.
    pub fn write(&self, path: &Path, contents: impl AsRef<[u8]>) {
        fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        chmod(path, 0o644);
        self.chown(path);
    }

    /// A name unique to this case run, for markers and temporary names.
    pub fn unique(&self, tag: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let m = if self.is_user() { "u" } else { "r" };
        format!("moat{tag}{}x{m}{n}", std::process::id())
    }

    /// A directory writable by the test uid for report files (outside the workspace).
    pub fn report_path(&self) -> PathBuf {
        let dir = self.dir.join("reports");
        self.mkdir(&dir);
        dir.join("report.json")
    }

    /// The environment given to moat and to host helpers.
    pub fn base_env(&self) -> Vec<(&'static str, OsString)> {
        let user = if self.uid == 0 { "root" } else { "moattest" };
        vec![
            ("PATH", PATH.into()),
            ("HOME", self.home.clone().into()),
            ("USER", user.into()),
            ("LOGNAME", user.into()),
            ("LANG", "C.UTF-8".into()),
            ("GIT_AUTHOR_NAME", "Moat Test".into()),
            ("GIT_AUTHOR_EMAIL", "moat-test@example.invalid".into()),
            ("GIT_COMMITTER_NAME", "Moat Test".into()),
            ("GIT_COMMITTER_EMAIL", "moat-test@example.invalid".into()),
        ]
    }

    /// The prefix that runs a host program as the test uid (empty when no switch is needed).
    fn identity_prefix(&self) -> Vec<OsString> {
        if self.drop_privs {
            vec![
                "/usr/bin/setpriv".into(),
                format!("--reuid={}", self.uid).into(),
                format!("--regid={}", self.gid).into(),
                "--clear-groups".into(),
                "--".into(),
            ]
        } else {
            Vec::new()
        }
    }

    /// A host (not sandboxed) command running as the test uid, with the base environment.
    pub fn host_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut argv = self.identity_prefix();
        argv.push(program.as_ref().to_os_string());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(self.base_env())
            .current_dir(&self.dir);
        cmd
    }

    /// `moat run --workspace WS -- CMD...`.
    pub fn run<S: AsRef<OsStr>>(&self, cmd: &[S]) -> Run<'_> {
        Run {
            h: self,
            flags: Vec::new(),
            cmd: cmd.iter().map(|s| s.as_ref().to_os_string()).collect(),
            stdin: None,
            cwd: self.ws.clone(),
            workspace: Some(self.ws.clone().into()),
            pre_shell: None,
            pty: false,
        }
    }

    /// `moat run --workspace WS -- sh -c SCRIPT`.
    pub fn sh(&self, script: &str) -> Run<'_> {
        self.run(&["sh", "-c", script])
    }

    /// `moat run --workspace WS -- PROBE ARGS...`.
    pub fn probe(&self, args: &[&str]) -> Run<'_> {
        let mut cmd = vec![probe_path().as_os_str().to_os_string()];
        cmd.extend(args.iter().map(OsString::from));
        self.run(&cmd)
    }

    /// A root-owned setuid copy of the probe in the case directory (root only).
    pub fn setuid_probe(&self) -> PathBuf {
        assert!(is_root(), "setuid_probe needs root");
        let dir = self.dir.join("suid");
        fs::create_dir_all(&dir).expect("mkdir suid");
        chmod(&dir, 0o755);
        let dst = dir.join("probe");
        fs::copy(probe_path(), &dst).expect("copy probe");
        chown(&dst, Some(0), Some(0)).expect("chown probe");
        chmod(&dst, 0o4755);
        dst
    }
}

/// Host processes whose command line contains `marker`, as "pid: cmdline".
pub fn marker_processes(marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").expect("read /proc").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(raw) = fs::read(e.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            if line.contains(marker) {
                found.push(format!("{name}: {line}"));
            }
        }
    }
    found
}

/// Polls until no host process carries `marker`, for at most `grace`; returns survivors.
pub fn survivors_after(marker: &str, grace: Duration) -> Vec<String> {
    let deadline = Instant::now() + grace;
    loop {
        let found = marker_processes(marker);
        if found.is_empty() || Instant::now() > deadline {
            return found;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to the harness timeout) until `path` exists on the host.
pub fn wait_for_file(path: &Path, running: &mut Running) {
    let deadline = Instant::now() + timeout();
    while !path.exists() {
        assert!(
            running.is_running(),
            "moat exited before {} appeared",
            path.display()
        );
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A host child process that is killed when dropped.
pub struct HostChild(pub Child);

impl HostChild {
    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for HostChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a file that must exist.
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// SIGKILLs every host process carrying `marker` (cleanup after a failed check).
pub fn kill_marker(marker: &str) {
    for line in marker_processes(marker) {
        if let Some(pid) = line.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
            // SAFETY: kill() takes plain integers and has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Parses a report file as JSON.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = read(path);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
}

impl Harness {
    /// A host command that runs the moat binary under test as the test uid (the same
    /// identity `run` uses), started in the workspace with the base environment: for
    /// subcommands other than `run`, e.g. `policy show` and `cache clear`.
    pub fn moat_command(&self) -> Command {
        let bin = if self.drop_privs {
            moat_copy()
        } else {
            moat_under_test()
        };
        let mut cmd = self.host_command(bin);
        cmd.current_dir(&self.ws);
        cmd
    }
}
