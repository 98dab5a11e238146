//! Platform-neutral sandbox policy for moat.
//!
//! This crate holds the types that every backend consumes ([`SandboxPolicy`]), the
//! validation rules that do not depend on the operating system, and the writable-root
//! resolver ([`resolve::resolve_roots`]). It performs no system calls: anything that
//! must look at the filesystem does so through the [`resolve::PathProbe`] trait, which
//! the platform backends implement.

pub mod config;
pub mod defaults;
pub mod env;
pub mod gitconfig;
pub mod resolve;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How much of the filesystem the command may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilesystemMode {
    /// Nothing outside the private temporary directories is writable.
    ReadOnly,
    /// The workspace and the extra writable roots are writable (the default).
    WorkspaceWrite,
    /// The whole filesystem is writable as far as the user's own rights go.
    FullAccess,
}

/// Whether the command may use the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// No network at all; only the sandbox's own loopback (the default).
    Off,
    /// The host's network, unrestricted.
    On,
}

impl std::str::FromStr for NetworkMode {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "on" => Ok(Self::On),
            other => Err(PolicyError::BadValue {
                what: "network mode",
                value: other.to_owned(),
                expected: "off or on",
            }),
        }
    }
}

/// The effective policy for one run. Backends consume this and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxPolicy {
    /// The workspace: an absolute, canonical directory.
    pub workspace: PathBuf,
    /// How much of the filesystem is writable.
    pub filesystem: FilesystemMode,
    /// Extra writable roots besides the workspace (absolute, canonical).
    pub extra_writable: Vec<PathBuf>,
    /// Network access.
    pub network: NetworkMode,
    /// Wall-clock limit for the whole command tree.
    #[serde(serialize_with = "serialize_secs")]
    pub timeout: Option<Duration>,
    /// Protected paths inside the writable roots.
    pub protected: ProtectedPolicy,
    /// Paths that cannot be read (absolute). Missing ones are ignored.
    pub secrets: Vec<PathBuf>,
    /// Environment handling.
    pub env: EnvPolicy,
    /// Tool caches that appear writable through a copy-on-write layer (absolute).
    pub caches: Vec<PathBuf>,
}

/// Which paths inside writable roots the command may not modify.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProtectedPolicy {
    /// Whether the git rules apply (hooks and config of every repository, and
    /// `.gitmodules`).
    pub git: bool,
    /// Names protected at the root of every writable root, with whether a missing one
    /// gets a directory placeholder (else a file placeholder).
    pub at_root: Vec<(String, bool)>,
    /// Extra absolute paths to protect.
    pub paths: Vec<PathBuf>,
}

/// How the command's environment is built from moat's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EnvPolicy {
    /// Whether credential-like variables are removed.
    pub scrub: bool,
    /// Variables kept even though they look like credentials.
    pub keep: Vec<String>,
    /// Variables set for the command (they win over everything).
    pub set: Vec<(String, String)>,
}

fn serialize_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl SandboxPolicy {
    /// The default policy for a workspace: workspace-write, network off, no timeout,
    /// the default protected paths, and — given the home directory — the default
    /// secrets and caches. The environment is scrubbed.
    pub fn for_workspace(workspace: PathBuf) -> Self {
        Self::with_home(workspace, None)
    }

    /// [`SandboxPolicy::for_workspace`], with `home` for the home-relative defaults.
    pub fn with_home(workspace: PathBuf, home: Option<&Path>) -> Self {
        let in_home = |list: &[&str]| -> Vec<PathBuf> {
            home.map(|h| list.iter().map(|p| h.join(p)).collect())
                .unwrap_or_default()
        };
        Self {
            workspace,
            filesystem: FilesystemMode::WorkspaceWrite,
            extra_writable: Vec::new(),
            network: NetworkMode::Off,
            timeout: None,
            protected: ProtectedPolicy {
                git: true,
                at_root: defaults::PROTECTED_AT_ROOT
                    .iter()
                    .map(|(n, d)| ((*n).to_owned(), *d))
                    .collect(),
                paths: Vec::new(),
            },
            secrets: in_home(defaults::SECRETS_IN_HOME),
            env: EnvPolicy {
                scrub: true,
                keep: Vec::new(),
                set: Vec::new(),
            },
            caches: in_home(defaults::CACHES_IN_HOME),
        }
    }

    /// The directories the command may write, in the order given (workspace first).
    /// Empty for read-only and full-access mode (full access needs no roots).
    pub fn writable_roots(&self) -> Vec<PathBuf> {
        match self.filesystem {
            FilesystemMode::ReadOnly | FilesystemMode::FullAccess => Vec::new(),
            FilesystemMode::WorkspaceWrite => std::iter::once(self.workspace.clone())
                .chain(self.extra_writable.iter().cloned())
                .collect(),
        }
    }

    /// Checks the rules that need no filesystem access. `home` is the user's home
    /// directory, used to refuse overly broad writable roots.
    pub fn validate(&self, home: Option<&Path>, allow_broad: bool) -> Result<(), PolicyError> {
        if self
            .extra_writable
            .iter()
            .any(|_| self.filesystem != FilesystemMode::WorkspaceWrite)
        {
            return Err(PolicyError::Conflict(
                "--writable only makes sense in workspace-write mode".into(),
            ));
        }
        if let Some(t) = self.timeout
            && t.is_zero()
        {
            return Err(PolicyError::BadValue {
                what: "timeout",
                value: "0".into(),
                expected: "a positive number of seconds",
            });
        }
        for root in self.writable_roots() {
            check_root_location(&root, home, allow_broad)?;
        }
        Ok(())
    }
}

/// Directories that may never be writable roots, nor contain one: the kernel's
/// virtual filesystems, which moat replaces with its own minimal versions.
const VIRTUAL_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// Directories too broad to be writable roots without `--allow-broad-workspace`:
/// granting them would let the command rewrite the system or the user's dotfiles.
const BROAD_ROOTS: &[&str] = &[
    "/", "/bin", "/boot", "/etc", "/home", "/lib", "/lib64", "/opt", "/root", "/sbin", "/usr",
    "/var",
];

fn check_root_location(
    root: &Path,
    home: Option<&Path>,
    allow_broad: bool,
) -> Result<(), PolicyError> {
    if !root.is_absolute() {
        return Err(PolicyError::NotAbsolute(root.to_owned()));
    }
    if VIRTUAL_TREES.iter().any(|v| root.starts_with(v)) {
        return Err(PolicyError::VirtualRoot(root.to_owned()));
    }
    let broad = BROAD_ROOTS.iter().any(|b| root == Path::new(b)) || home == Some(root);
    if broad && !allow_broad {
        return Err(PolicyError::BroadRoot(root.to_owned()));
    }
    Ok(())
}

/// Why a policy was refused. Every variant names the offending value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// A flag or config value has the wrong form.
    #[error("invalid {what} '{value}': expected {expected}")]
    BadValue {
        /// What was being parsed.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// Two settings contradict each other.
    #[error("{0}")]
    Conflict(String),
    /// A path had to be absolute.
    #[error("path '{}' is not absolute", .0.display())]
    NotAbsolute(PathBuf),
    /// A writable root lies in /proc, /sys or /dev.
    #[error("'{}' cannot be a writable root: moat replaces /proc, /sys and /dev", .0.display())]
    VirtualRoot(PathBuf),
    /// A writable root is the filesystem root, a system directory or the home itself.
    #[error(
        "'{}' is too broad to be writable; pick a project directory or pass --allow-broad-workspace",
        .0.display()
    )]
    BroadRoot(PathBuf),
    /// A config file could not be read or parsed; the message names file, line and
    /// column.
    #[error("{0}")]
    Config(String),
    /// A path does not exist.
    #[error("'{}' does not exist", .0.display())]
    Missing(PathBuf),
    /// A writable root is not a directory.
    #[error("'{}' is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A writable root is reached through a symlink that lies inside another writable
    /// root: a previous run could have planted it to redirect writes.
    #[error(
        "writable root '{}' is reached through the symlink '{}', which lies inside the writable root '{}'; a sandboxed command could have planted it. Use the real path '{}' if that is intended",
        requested.display(), link.display(), container.display(), target.display()
    )]
    SymlinkInsideRoot {
        /// The root as the user asked for it.
        requested: PathBuf,
        /// The symlink that was crossed.
        link: PathBuf,
        /// The writable root that contains the symlink.
        container: PathBuf,
        /// Where the symlink leads in the end.
        target: PathBuf,
    },
    /// Symlinks nest too deeply (a loop).
    #[error("too many levels of symbolic links resolving '{}'", .0.display())]
    SymlinkLoop(PathBuf),
    /// The probe could not look at a path.
    #[error("cannot inspect '{}': {message}", path.display())]
    Probe {
        /// The path being inspected.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ws: &str) -> SandboxPolicy {
        SandboxPolicy::for_workspace(PathBuf::from(ws))
    }

    #[test]
    fn defaults_are_workspace_write_and_network_off() {
        let p = policy("/home/u/proj");
        assert_eq!(p.filesystem, FilesystemMode::WorkspaceWrite);
        assert_eq!(p.network, NetworkMode::Off);
        assert_eq!(p.writable_roots(), vec![PathBuf::from("/home/u/proj")]);
    }

    #[test]
    fn read_only_and_full_access_have_no_roots() {
        let mut p = policy("/w");
        p.filesystem = FilesystemMode::ReadOnly;
        assert!(p.writable_roots().is_empty());
        p.filesystem = FilesystemMode::FullAccess;
        assert!(p.writable_roots().is_empty());
    }

    #[test]
    fn broad_roots_are_refused_unless_allowed() {
        let home = Path::new("/home/u");
        for ws in ["/", "/etc", "/usr", "/home/u"] {
            let err = policy(ws).validate(Some(home), false).unwrap_err();
            assert!(matches!(err, PolicyError::BroadRoot(_)), "{ws}: {err}");
            policy(ws).validate(Some(home), true).unwrap();
        }
        policy("/home/u/proj").validate(Some(home), false).unwrap();
    }

    #[test]
    fn virtual_trees_are_refused_even_when_broad_is_allowed() {
        for ws in ["/proc", "/proc/self", "/sys/fs", "/dev/shm"] {
            let err = policy(ws).validate(None, true).unwrap_err();
            assert!(matches!(err, PolicyError::VirtualRoot(_)), "{ws}");
        }
    }

    #[test]
    fn writable_conflicts_with_read_only() {
        let mut p = policy("/w");
        p.filesystem = FilesystemMode::ReadOnly;
        p.extra_writable.push("/x".into());
        assert!(matches!(
            p.validate(None, false),
            Err(PolicyError::Conflict(_))
        ));
    }

    #[test]
    fn network_mode_parses_strictly() {
        assert_eq!("off".parse::<NetworkMode>().unwrap(), NetworkMode::Off);
        assert_eq!("on".parse::<NetworkMode>().unwrap(), NetworkMode::On);
        assert!("ON ".parse::<NetworkMode>().is_err());
        assert!("proxy".parse::<NetworkMode>().is_err());
    }

    #[test]
    fn zero_timeout_is_refused() {
        let mut p = policy("/w");
        p.timeout = Some(Duration::ZERO);
        assert!(p.validate(None, false).is_err());
    }
}
