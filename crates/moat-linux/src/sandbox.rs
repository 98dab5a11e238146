//! The public entry point: prepare everything, clone into the namespaces, supervise.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use moat_policy::{FilesystemMode, NetworkMode, SandboxPolicy};
use serde::Serialize;

use crate::child::{self, ChildSpec};
use crate::error::{Context, SandboxError};
use crate::landlock::{LandlockReport, LandlockSpec};
use crate::layers::{self, CacheLayer};
use crate::plan::{self, HostFacts, MountOp};
use crate::protect::{self, Cleanup, Protection};
use crate::roots::open_roots;
use crate::seccomp::{self, Filter};
use crate::supervise;
use crate::sys::{self, fd, term};

/// What to run and under which policy.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The policy, already resolved with [`crate::roots::resolve_policy`].
    pub policy: SandboxPolicy,
    /// The command and its arguments.
    pub argv: Vec<OsString>,
    /// The command's working directory (canonical; inside the sandbox's view).
    pub cwd: PathBuf,
    /// The command's environment.
    pub env: Vec<(OsString, OsString)>,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
    /// moat could not start it: 125 (sandbox), 126 (cannot execute), 127 (not found).
    Failed {
        /// The exit code to use.
        code: i32,
        /// One line for the user.
        message: String,
    },
}

/// The seccomp rule set in force.
#[derive(Debug, Clone, Serialize)]
pub struct SeccompInfo {
    /// The rule set's name.
    pub name: &'static str,
    /// Its version.
    pub version: u32,
    /// Its BPF length.
    pub instructions: usize,
    /// What it refuses, and how.
    pub denied: Vec<(&'static str, &'static str)>,
}

/// The mechanisms actually in force for a run, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Enforcement {
    /// The namespaces the command runs in.
    pub namespaces: Vec<&'static str>,
    /// Capabilities after the drop.
    pub capabilities: &'static str,
    /// Whether NO_NEW_PRIVS is set.
    pub no_new_privs: bool,
    /// What Landlock enforced (None if the command never got that far).
    pub landlock: Option<LandlockReport>,
    /// The seccomp filter.
    pub seccomp: SeccompInfo,
    /// The filesystem view, in mount order.
    pub mounts: Vec<plan::MountEntry>,
    /// Whether the command got the sandbox's own pseudo-terminal.
    pub pty: bool,
    /// What is known to be unmediated.
    pub unix_sockets: &'static str,
    /// Protected paths, pinned git directories and placeholders.
    pub protection: Protection,
    /// Secrets covered (existing ones only).
    pub secrets_masked: Vec<PathBuf>,
    /// Tool caches offered through a copy-on-write layer, with their upper dirs.
    pub cache_layers: Vec<CacheLayer>,
    /// What the cleanup after the run did.
    pub cleanup: Cleanup,
}

/// Where the time of a run went, in milliseconds (for the report and the benchmark).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Phases {
    /// Resolving roots, finding protected paths, creating placeholders and layers.
    pub prepare_ms: f64,
    /// From the clone until init reported the sandbox built.
    pub setup_ms: f64,
    /// From then until the command ended (restrictions, exec, the command itself).
    pub command_ms: f64,
    /// From the command's end until init was reaped (killing leftovers, unmounting).
    pub teardown_ms: f64,
    /// Removing placeholders and cleaning repositories created during the run.
    pub cleanup_ms: f64,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Where the time went.
    pub phases: Phases,
    /// How the command ended.
    pub status: Status,
    /// Whether the timeout fired.
    pub timed_out: bool,
    /// Wall-clock time from clone to the end.
    pub duration: Duration,
    /// What was in force.
    pub enforcement: Enforcement,
}

impl Outcome {
    /// The exit code moat should return: the child's own, 128+N for signal N, 124 on
    /// timeout, or the failure's code.
    pub fn exit_code(&self) -> i32 {
        if self.timed_out {
            return 124;
        }
        match &self.status {
            Status::Exited(code) => *code,
            Status::Signaled(sig) => 128 + sig,
            Status::Failed { code, .. } => *code,
        }
    }
}

/// What the report says about pathname unix sockets until the supervisor mediates them.
pub const UNIX_SOCKETS_NOTE: &str = "pathname unix sockets outside runtime dirs: not mediated";

/// Grace period between SIGTERM and SIGKILL when the timeout fires.
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// Runs `request` in the namespaces sandbox and waits for it.
///
/// Placeholders created for missing protected paths are removed afterwards, and
/// repositories the command created are cleaned, whatever the outcome.
pub fn run(request: &RunRequest) -> Result<Outcome, SandboxError> {
    let t0 = std::time::Instant::now();
    let policy = &request.policy;
    let roots = open_roots(policy)?;
    let writable: Vec<PathBuf> = match policy.filesystem {
        FilesystemMode::WorkspaceWrite => roots.iter().map(|r| r.path.clone()).collect(),
        _ => Vec::new(),
    };
    let protection =
        protect::prepare(policy, &writable).ctx("cannot prepare the protected paths")?;
    let state = layers::state_dir(&request.env);
    let result = run_prepared(
        request,
        roots,
        &writable,
        protection.clone(),
        state.as_deref(),
    );
    let cleanup_started = std::time::Instant::now();
    let quarantine = quarantine_dir(state.as_deref());
    let cleanup = protect::cleanup(&protection, &writable, &quarantine);
    result.map(|mut outcome| {
        outcome.enforcement.cleanup = cleanup;
        outcome.phases.cleanup_ms = cleanup_started.elapsed().as_secs_f64() * 1000.0;
        // Everything before the clone: the whole run minus the supervised part.
        let supervised = outcome.duration.as_secs_f64() * 1000.0;
        outcome.phases.prepare_ms =
            (cleanup_started.duration_since(t0).as_secs_f64() * 1000.0 - supervised).max(0.0);
        outcome
    })
}

fn quarantine_dir(state: Option<&Path>) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = state.map_or_else(|| PathBuf::from("/nonexistent"), |s| s.join("quarantine"));
    base.join(format!("{stamp}-{}", std::process::id()))
}

fn run_prepared(
    request: &RunRequest,
    roots: Vec<crate::roots::OpenedRoot>,
    writable: &[PathBuf],
    mut protection: Protection,
    state: Option<&Path>,
) -> Result<Outcome, SandboxError> {
    let policy = &request.policy;
    let root_paths: Vec<PathBuf> = roots.iter().map(|r| r.path.clone()).collect();
    let masks = layers::masks(policy);
    let caches = match (state, policy.filesystem) {
        (Some(state), FilesystemMode::WorkspaceWrite | FilesystemMode::ReadOnly) => {
            layers::cache_layers(policy, writable, state, &mut protection.notes)
        }
        _ => Vec::new(),
    };
    let extras = plan::Extras {
        read_only: protection
            .read_only
            .iter()
            .chain(&protection.placeholders)
            .cloned()
            .collect(),
        pinned: protection.pinned.clone(),
        masks: masks.clone(),
        caches: caches.clone(),
    };
    let ops = plan::build(policy, &root_paths, &host_facts(&request.env), &extras);
    let filter = Filter::build().map_err(|e| SandboxError::Other(format!("seccomp: {e}")))?;
    let pty_fds: Vec<i32> = (0..3).filter(|&fd| term::is_terminal(fd)).collect();
    let enforcement = Enforcement {
        namespaces: namespaces(policy),
        capabilities: "all dropped (bounding, ambient, effective, permitted, inheritable); securebits locked",
        no_new_privs: true,
        landlock: None,
        seccomp: SeccompInfo {
            name: seccomp::RULESET_NAME,
            version: seccomp::RULESET_VERSION,
            instructions: filter.instruction_count(),
            denied: seccomp::describe(),
        },
        mounts: plan::describe(&ops),
        pty: !pty_fds.is_empty(),
        unix_sockets: UNIX_SOCKETS_NOTE,
        protection,
        secrets_masked: masks.into_iter().map(|m| m.target).collect(),
        cache_layers: caches,
        cleanup: Cleanup::default(),
    };
    let spec = ChildSpec {
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        uid: unsafe { libc::getuid() },
        // SAFETY: as above.
        gid: unsafe { libc::getgid() },
        new_net: policy.network == NetworkMode::Off,
        landlock: landlock_spec(policy, &ops),
        ops,
        roots,
        pty_fds,
        cwd: sys::mount::cstring(&request.cwd).ctx("working directory")?,
        argv: c_strings(request.argv.iter().map(|a| a.as_bytes().to_vec()))?,
        env: c_strings(
            request
                .env
                .iter()
                .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat()),
        )?,
        seccomp: filter,
    };
    if spec.argv.is_empty() {
        return Err(SandboxError::Other("no command given".into()));
    }
    launch(spec, policy.timeout, enforcement)
}

fn launch(
    spec: ChildSpec,
    timeout: Option<Duration>,
    enforcement: Enforcement,
) -> Result<Outcome, SandboxError> {
    let (parent_sock, child_sock) = fd::seqpacket_pair().ctx("socketpair")?;
    // Blocked before the clone, so that a signal arriving during setup is forwarded
    // once the supervisor runs instead of killing moat and orphaning the sandbox.
    let old_mask = sys::block_signals(supervise::FORWARDED).ctx("sigprocmask")?;
    let flags = clone_flags(spec.new_net);
    let started = std::time::Instant::now();
    // SAFETY: moat is single-threaded here: the CLI starts no threads before this call,
    // and the library documents that `run` must be called that way.
    let cloned = unsafe { sys::clone_process(flags) };
    match cloned {
        Ok(sys::Cloned::Child) => {
            drop(parent_sock);
            child::init_main(spec, child_sock)
        }
        Ok(sys::Cloned::Parent { pid, pidfd }) => {
            drop(child_sock);
            drop(spec);
            let result =
                supervise::supervise(pid, pidfd, parent_sock, timeout, started, enforcement);
            let _ = sys::set_sigmask(&old_mask);
            result
        }
        Err(e) => {
            let _ = sys::set_sigmask(&old_mask);
            Err(userns_error(e))
        }
    }
}

fn clone_flags(new_net: bool) -> libc::c_int {
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if new_net {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}

fn namespaces(policy: &SandboxPolicy) -> Vec<&'static str> {
    let mut ns = vec!["user", "mount", "pid", "ipc", "uts"];
    if policy.network == NetworkMode::Off {
        ns.push("net");
    }
    ns
}

/// Turns a failed clone into an error that tells the user what to do.
fn userns_error(e: std::io::Error) -> SandboxError {
    let restricted =
        std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
            .is_ok_and(|v| v.trim() == "1");
    let hint = if restricted {
        "AppArmor restricts unprivileged user namespaces on this system (Ubuntu 24.04+); install moat's AppArmor profile: sudo install -m 644 packaging/apparmor/moat /etc/apparmor.d/moat && sudo apparmor_parser -r /etc/apparmor.d/moat"
    } else {
        "unprivileged user namespaces may be disabled (check /proc/sys/user/max_user_namespaces and kernel.unprivileged_userns_clone); on Ubuntu 24.04+ install moat's AppArmor profile from packaging/apparmor/moat"
    };
    SandboxError::Sys {
        step: format!("cannot create the sandbox namespaces ({hint})"),
        source: e,
    }
}

fn landlock_spec(policy: &SandboxPolicy, ops: &[MountOp]) -> LandlockSpec {
    LandlockSpec {
        restrict_fs: policy.filesystem != FilesystemMode::FullAccess,
        writable_dirs: plan::writable_dirs(ops),
        writable_dev_files: crate::mounts::DEVICES
            .iter()
            .map(|d| Path::new("/dev").join(d))
            .chain([PathBuf::from("/dev/ptmx")])
            .collect(),
        dev_dirs: vec![PathBuf::from("/dev/pts")],
    }
}

fn host_facts(env: &[(OsString, OsString)]) -> HostFacts {
    let xdg = env
        .iter()
        .find(|(k, _)| k == "XDG_RUNTIME_DIR")
        .map(|(_, v)| PathBuf::from(v))
        .filter(|p| p.is_absolute());
    let resolv_conf = std::fs::canonicalize("/etc/resolv.conf")
        .ok()
        .filter(|p| p != Path::new("/etc/resolv.conf"))
        .and_then(|p| std::fs::read(&p).ok().map(|c| (p, c)));
    HostFacts {
        xdg_runtime_dir: xdg,
        var_run_is_link: std::fs::symlink_metadata("/var/run")
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(true),
        var_tmp_exists: Path::new("/var/tmp").is_dir(),
        resolv_conf,
    }
}

fn c_strings(items: impl Iterator<Item = Vec<u8>>) -> Result<Vec<CString>, SandboxError> {
    items
        .map(|b| {
            CString::new(b).map_err(|_| {
                SandboxError::Other("an argument or variable contains a NUL byte".into())
            })
        })
        .collect()
}
