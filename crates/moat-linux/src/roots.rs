//! Writable roots: resolved once, opened as `O_PATH` fds before the sandbox exists, and
//! re-checked by identity inside it.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use moat_policy::resolve::{Entry, PathProbe, resolve_roots};
use moat_policy::{FilesystemMode, PolicyError, SandboxPolicy};

use crate::error::{Context, SandboxError};
use crate::sys::fd::{RESOLVE_NO_SYMLINKS, identity, openat2};
use crate::sys::mount::cstring;

/// A writable root pinned by an fd.
#[derive(Debug)]
pub struct OpenedRoot {
    /// The canonical path (the mount target inside the sandbox, too).
    pub path: PathBuf,
    /// An `O_PATH` handle opened without following symlinks.
    pub fd: OwnedFd,
    /// `(st_dev, st_ino)` of the directory, to recognise it after the mount namespace
    /// was copied.
    pub identity: (u64, u64),
}

/// `lstat`/`readlink` for the platform-neutral resolver.
struct HostProbe;

impl PathProbe for HostProbe {
    fn probe(&self, path: &Path) -> Result<Entry, String> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => std::fs::read_link(path)
                .map(Entry::Symlink)
                .map_err(|e| e.to_string()),
            Ok(m) if m.is_dir() => Ok(Entry::Dir),
            Ok(_) => Ok(Entry::Other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Entry::Missing),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Canonicalizes the workspace and every writable root of `policy` in place, refusing
/// roots reached through symlinks planted inside other roots, and checks the rules
/// that need no filesystem access.
pub fn resolve_policy(
    policy: &mut SandboxPolicy,
    cwd: &Path,
    home: Option<&Path>,
    allow_broad: bool,
) -> Result<(), SandboxError> {
    let workspace = moat_policy::resolve::canonicalize(&policy.workspace, cwd, &HostProbe)?;
    policy.workspace = workspace.canonical;
    if policy.filesystem == FilesystemMode::WorkspaceWrite {
        let resolved = resolve_roots(&policy.writable_roots(), cwd, &HostProbe)?;
        policy.extra_writable = resolved.into_iter().skip(1).map(|r| r.canonical).collect();
        // The workspace may have been merged with an extra root; keep only others.
        let ws = policy.workspace.clone();
        policy.extra_writable.retain(|r| *r != ws);
    }
    policy.validate(home, allow_broad)?;
    Ok(())
}

/// Opens the roots to bind for an already resolved policy: the writable roots, or in
/// read-only mode the workspace (bound read-only so it stays visible).
pub fn open_roots(policy: &SandboxPolicy) -> Result<Vec<OpenedRoot>, SandboxError> {
    if policy.filesystem == FilesystemMode::ReadOnly {
        return Ok(vec![open_root(&policy.workspace)?]);
    }
    policy
        .writable_roots()
        .into_iter()
        .map(|path| open_root(&path))
        .collect()
}

fn open_root(path: &Path) -> Result<OpenedRoot, SandboxError> {
    let c = cstring(path).ctx("writable root")?;
    let fd = open_dir_nofollow(&c).map_err(|e| match e.raw_os_error() {
        // ELOOP: a component turned into a symlink after resolution.
        Some(libc::ELOOP) => SandboxError::Other(format!(
            "writable root '{}' changed into a symlink while moat was checking it",
            path.display()
        )),
        Some(libc::ENOENT) => PolicyError::Missing(path.to_owned()).into(),
        _ => SandboxError::Sys {
            step: format!("cannot open writable root '{}'", path.display()),
            source: e,
        },
    })?;
    let identity = identity(fd.as_fd()).with_ctx(|| format!("cannot stat '{}'", path.display()))?;
    Ok(OpenedRoot {
        path: path.to_owned(),
        fd,
        identity,
    })
}

/// Opens a directory by absolute path as `O_PATH` without following any symlink.
pub fn open_dir_nofollow(path: &CStr) -> std::io::Result<OwnedFd> {
    openat2(
        None,
        path,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_NO_SYMLINKS,
    )
}
