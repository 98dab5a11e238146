//! moat: run the commands of AI coding agents inside limits the operating system
//! enforces.
//!
//! The [`Sandbox`] facade resolves a [`SandboxPolicy`], picks the backend for this
//! platform and runs one command, returning a [`report::Report`] of what was enforced
//! and how the command ended.
//!
//! ```no_run
//! let mut sandbox = moat::Sandbox::new("/home/me/project");
//! sandbox.policy_mut().timeout = Some(std::time::Duration::from_secs(60));
//! let report = sandbox.run(&["make".into(), "test".into()], std::env::vars_os().collect());
//! std::process::exit(report.exit.code);
//! ```
//!
//! On Linux, [`Sandbox::run`] clones the calling process, so it must be called while the
//! process is single-threaded.

pub mod policy;
pub mod report;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use moat_policy::{FilesystemMode, NetworkMode, SandboxPolicy};
pub use report::Report;

/// One sandbox configuration, reusable for several commands.
#[derive(Debug, Clone)]
pub struct Sandbox {
    policy: SandboxPolicy,
    allow_broad: bool,
}

impl Sandbox {
    /// A sandbox with the default policy for `workspace`: workspace-write, network off,
    /// default protections, and (from `$HOME`) the default secrets and caches.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::with_policy(SandboxPolicy::with_home(workspace.into(), home.as_deref()))
    }

    /// A sandbox with an explicit policy (see [`policy::resolve`] for config files).
    pub fn with_policy(policy: SandboxPolicy) -> Self {
        Self {
            policy,
            allow_broad: false,
        }
    }

    /// The policy, to adjust before [`Sandbox::run`].
    pub fn policy_mut(&mut self) -> &mut SandboxPolicy {
        &mut self.policy
    }

    /// Allows a workspace such as `/` or the home directory itself.
    pub fn allow_broad_workspace(&mut self, allow: bool) -> &mut Self {
        self.allow_broad = allow;
        self
    }

    /// Runs `argv` with environment `env` and waits for it. Never panics on bad input:
    /// every failure is a report with exit code 125 and an `error`.
    pub fn run(&self, argv: &[OsString], env: Vec<(OsString, OsString)>) -> Report {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let mut report = Report::new(argv, &cwd);
        imp::run(&self.policy, self.allow_broad, argv, env, &cwd, &mut report);
        report
    }
}

/// The command's working directory: the caller's, when it lies inside the workspace,
/// else the workspace itself.
fn command_cwd(caller_cwd: &Path, workspace: &Path) -> PathBuf {
    match std::fs::canonicalize(caller_cwd) {
        Ok(c) if c.starts_with(workspace) => c,
        _ => workspace.to_owned(),
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use moat_linux::{RunRequest, roots};

    pub(super) fn run(
        policy: &SandboxPolicy,
        allow_broad: bool,
        argv: &[OsString],
        env: Vec<(OsString, OsString)>,
        cwd: &Path,
        report: &mut Report,
    ) {
        let mut policy = policy.clone();
        let home = env
            .iter()
            .find(|(k, _)| k == "HOME")
            .map(|(_, v)| PathBuf::from(v));
        let home = home.and_then(|h| std::fs::canonicalize(h).ok());
        if let Err(e) = roots::resolve_policy(&mut policy, cwd, home.as_deref(), allow_broad) {
            report.fail_setup(e.to_string());
            return;
        }
        report.policy = Some(policy.clone());
        let env = if policy.env.scrub {
            let scrubbed = moat_policy::env::scrub(env, &policy.env.keep, &policy.env.set);
            report.env_removed = scrubbed.removed;
            scrubbed.env
        } else {
            let mut env = env;
            env.retain(|(k, _)| !policy.env.set.iter().any(|(name, _)| k == name.as_str()));
            env.extend(policy.env.set.iter().map(|(k, v)| (k.into(), v.into())));
            env
        };
        let request = RunRequest {
            cwd: command_cwd(cwd, &policy.workspace),
            policy,
            argv: argv.to_vec(),
            env: sandbox_env(env),
        };
        match moat_linux::run(&request) {
            Ok(outcome) => report.record(&outcome),
            Err(e) => report.fail_setup(e.to_string()),
        }
    }

    /// Empties moat's copy-on-write cache layers (`moat cache clear`).
    pub fn clear_caches(env: &[(OsString, OsString)]) -> std::io::Result<Option<PathBuf>> {
        match moat_linux::layers::state_dir(env) {
            Some(state) => {
                moat_linux::layers::clear_caches(&state).map(|()| Some(state.join("caches")))
            }
            None => Ok(None),
        }
    }

    /// The environment inside: the caller's, with `TMPDIR` pointing at the private
    /// `/tmp` (a host `TMPDIR` would not exist, or would not be writable, inside).
    fn sandbox_env(env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
        env.into_iter()
            .filter(|(k, _)| k != "TMPDIR")
            .chain([("TMPDIR".into(), "/tmp".into())])
            .collect()
    }
}

/// Empties moat's copy-on-write cache layers; returns the directory emptied.
pub fn clear_caches(env: &[(OsString, OsString)]) -> std::io::Result<Option<PathBuf>> {
    imp::clear_caches(env)
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub(super) fn clear_caches(_env: &[(OsString, OsString)]) -> std::io::Result<Option<PathBuf>> {
        Ok(None)
    }

    pub(super) fn run(
        _policy: &SandboxPolicy,
        _allow_broad: bool,
        _argv: &[OsString],
        _env: Vec<(OsString, OsString)>,
        _cwd: &Path,
        report: &mut Report,
    ) {
        report.fail_setup("no sandbox backend for this platform yet".into());
    }
}
