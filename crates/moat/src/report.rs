//! The run report (`--report FILE`): what ran, under which policy, with which
//! mechanisms in force, and how it ended. The format is versioned by
//! [`SCHEMA_VERSION`]; fields are only ever added within a version.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use moat_policy::SandboxPolicy;
use serde::Serialize;

/// The report format's version.
pub const SCHEMA_VERSION: u32 = 1;

/// How the run ended, in exit-code terms.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code moat returns.
    pub code: i32,
    /// The signal that killed the command, if one did.
    pub signal: Option<i32>,
}

/// Who produced the exit code.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The command itself (its exit code or the signal that killed it).
    Child,
    /// moat: it could not build the sandbox (125) or start the command (126, 127), or
    /// the timeout fired (124).
    Moat,
}

/// One run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// moat's version.
    pub moat_version: &'static str,
    /// The command.
    pub argv: Vec<String>,
    /// The directory moat was started in.
    pub cwd: PathBuf,
    /// The effective policy (absent when it could not be resolved).
    pub policy: Option<SandboxPolicy>,
    /// The backend that ran the command.
    pub backend: &'static str,
    /// The mechanisms actually in force.
    #[cfg(target_os = "linux")]
    pub mechanisms: Option<moat_linux::Enforcement>,
    /// The exit code and signal.
    pub exit: ExitInfo,
    /// Wall-clock duration of the sandboxed run in milliseconds.
    pub duration_ms: f64,
    /// Where the time went (Linux).
    #[cfg(target_os = "linux")]
    pub phases: Option<moat_linux::sandbox::Phases>,
    /// Whether the timeout fired.
    pub timed_out: bool,
    /// Whether the exit code came from the command or from moat.
    pub exit_origin: Origin,
    /// Environment variables removed because their names look like credentials
    /// (names only, never values).
    pub env_removed: Vec<String>,
    /// moat's own error message, when it failed.
    pub error: Option<String>,
}

impl Report {
    /// An empty report for `argv` started in `cwd`.
    pub fn new(argv: &[OsString], cwd: &Path) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            moat_version: env!("CARGO_PKG_VERSION"),
            argv: argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            cwd: cwd.to_owned(),
            policy: None,
            backend: if cfg!(target_os = "linux") {
                "namespaces"
            } else {
                "none"
            },
            #[cfg(target_os = "linux")]
            mechanisms: None,
            exit: ExitInfo {
                code: 125,
                signal: None,
            },
            duration_ms: 0.0,
            #[cfg(target_os = "linux")]
            phases: None,
            timed_out: false,
            exit_origin: Origin::Moat,
            env_removed: Vec::new(),
            error: None,
        }
    }

    /// Records that moat could not build the sandbox.
    pub fn fail_setup(&mut self, message: String) {
        self.exit = ExitInfo {
            code: 125,
            signal: None,
        };
        self.exit_origin = Origin::Moat;
        self.error = Some(message);
    }

    /// Records a finished run.
    #[cfg(target_os = "linux")]
    pub fn record(&mut self, outcome: &moat_linux::Outcome) {
        use moat_linux::Status;
        self.timed_out = outcome.timed_out;
        self.duration_ms = outcome.duration.as_secs_f64() * 1000.0;
        self.mechanisms = Some(outcome.enforcement.clone());
        self.phases = Some(outcome.phases);
        let signal = match outcome.status {
            Status::Signaled(s) => Some(s),
            _ => None,
        };
        self.exit = ExitInfo {
            code: outcome.exit_code(),
            signal,
        };
        self.exit_origin = match &outcome.status {
            _ if outcome.timed_out => Origin::Moat,
            Status::Failed { message, .. } => {
                self.error = Some(message.clone());
                Origin::Moat
            }
            Status::Exited(_) | Status::Signaled(_) => Origin::Child,
        };
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
