//! Protected paths inside writable roots: found before the run, cleaned up after it.
//!
//! Landlock cannot express these holes: its grants cover whole subtrees and only add
//! rights, so a read-only `.git/hooks` inside a writable workspace must come from the
//! mount layer. Existing protected paths become read-only binds onto themselves; `.git`
//! is bound onto itself so that it cannot be renamed aside; missing ones get an empty,
//! read-only directory placeholder so that they cannot be created. Placeholders are
//! directories even for file names such as `.envrc`: git ignores empty directories, so
//! a `git add -A` during the run never commits a placeholder. moat removes them after
//! the run.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use moat_policy::SandboxPolicy;
use moat_policy::defaults::{PROTECTED_IN_GIT_DIR, PROTECTED_IN_WORK_TREE};
use serde::Serialize;

/// Marks a placeholder directory as moat's, so that one left behind by a killed run
/// is recognised and removed by the next.
const PLACEHOLDER_XATTR: &str = "user.moat.placeholder";

/// What the run protects, found before the sandbox starts.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Protection {
    /// Existing paths bound read-only onto themselves.
    pub read_only: Vec<PathBuf>,
    /// Git directories bound onto themselves (read-write) so they cannot be renamed.
    pub pinned: Vec<PathBuf>,
    /// Placeholder directories moat created; bound read-only, removed after the run.
    pub placeholders: Vec<PathBuf>,
    /// The git directories that existed when the run started.
    #[serde(skip)]
    pub repos: BTreeSet<PathBuf>,
    /// Things the user should know (e.g. a protected path that is a symlink).
    pub notes: Vec<String>,
}

/// What the cleanup after a run did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Cleanup {
    /// Hooks of repositories created during the run, moved to the quarantine.
    pub quarantined_hooks: Vec<PathBuf>,
    /// Config keys removed from repositories created during the run (`file: key`).
    pub removed_git_config: Vec<String>,
    /// Where the quarantined hooks are.
    pub quarantine: Option<PathBuf>,
}

/// Finds what to protect in `roots` (canonical writable roots) and creates the
/// placeholders for what is missing.
pub fn prepare(policy: &SandboxPolicy, roots: &[PathBuf]) -> std::io::Result<Protection> {
    let mut p = Protection::default();
    let inside = |path: &Path| roots.iter().any(|r| path.starts_with(r));
    for root in roots {
        for (name, _is_dir) in &policy.protected.at_root {
            protect_entry(&mut p, &root.join(name), &inside)?;
        }
        if policy.protected.git {
            for (work_tree, git_dir) in find_repos(root) {
                protect_repo(&mut p, &work_tree, &git_dir, &inside)?;
            }
        }
    }
    for path in &policy.protected.paths {
        if inside(path) {
            protect_entry(&mut p, path, &inside)?;
        }
    }
    dedup(&mut p.read_only);
    dedup(&mut p.placeholders);
    dedup(&mut p.pinned);
    Ok(p)
}

fn dedup(v: &mut Vec<PathBuf>) {
    v.sort();
    v.dedup();
}

fn protect_repo(
    p: &mut Protection,
    work_tree: &Path,
    git_dir: &Path,
    inside: &impl Fn(&Path) -> bool,
) -> std::io::Result<()> {
    p.repos.insert(git_dir.to_owned());
    if !inside(git_dir) {
        // A pointer (`gitdir:`) to a repository outside the writable roots: it is
        // read-only already, and a pointer must never widen what is writable.
        return Ok(());
    }
    if git_dir == work_tree.join(".git") {
        p.pinned.push(git_dir.to_owned());
    }
    for dir in std::iter::once(git_dir.to_owned()).chain(common_dir(git_dir)) {
        for (name, _) in PROTECTED_IN_GIT_DIR {
            protect_entry(p, &dir.join(name), inside)?;
        }
    }
    for (name, _) in PROTECTED_IN_WORK_TREE {
        protect_entry(p, &work_tree.join(name), inside)?;
    }
    Ok(())
}

/// The shared git directory of a linked worktree (`commondir` file), canonicalized.
fn common_dir(git_dir: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(git_dir.join("commondir")).ok()?;
    fs::canonicalize(git_dir.join(text.trim())).ok()
}

/// Protects one path: read-only if it exists, a placeholder if it does not.
fn protect_entry(
    p: &mut Protection,
    path: &Path,
    inside: &impl Fn(&Path) -> bool,
) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            // A mount cannot cover a symlink. Protect what it points to, if that is
            // writable at all, and say that the link itself is not pinned.
            if let Ok(target) = fs::canonicalize(path)
                && inside(&target)
            {
                p.read_only.push(target);
            }
            p.notes.push(format!(
                "{} is a symlink: its target is protected, the link itself is not",
                path.display()
            ));
        }
        Ok(m) if m.is_dir() && is_placeholder(path) => p.placeholders.push(path.to_owned()),
        Ok(_) => p.read_only.push(path.to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Only where the parent exists: a placeholder must not create parents.
            if path.parent().is_some_and(|d| d.is_dir()) {
                fs::create_dir(path)?;
                mark_placeholder(path);
                p.placeholders.push(path.to_owned());
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

fn mark_placeholder(path: &Path) {
    if let Ok(c) = crate::sys::mount::cstring(path) {
        // SAFETY: valid C strings and a 1-byte value buffer.
        unsafe {
            libc::setxattr(
                c.as_ptr(),
                c"user.moat.placeholder".as_ptr(),
                b"1".as_ptr().cast(),
                1,
                0,
            );
        }
    }
}

fn is_placeholder(path: &Path) -> bool {
    let Ok(c) = crate::sys::mount::cstring(path) else {
        return false;
    };
    let mut buf = [0u8; 4];
    debug_assert_eq!(PLACEHOLDER_XATTR, "user.moat.placeholder");
    // SAFETY: valid C strings and a buffer of the length passed.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"user.moat.placeholder".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'1' && fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

/// Every git repository below `root`: `(work tree, git dir)`. Walks directories only,
/// never follows symlinks, and does not descend into git directories.
pub fn find_repos(root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut subdirs = Vec::new();
        let mut names = BTreeSet::new();
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            if name == ".git" {
                if let Some(git_dir) = git_dir_of(&entry.path(), kind.is_dir()) {
                    found.push((dir.clone(), git_dir));
                }
                continue;
            }
            if kind.is_dir() {
                subdirs.push(entry.path());
            }
            names.insert(name);
        }
        if ["HEAD", "objects", "refs"]
            .iter()
            .all(|n| names.contains(std::ffi::OsStr::new(n)))
        {
            // A bare repository (or a git dir given as a root): protect it as such,
            // and do not walk its objects.
            found.push((dir.clone(), dir.clone()));
            continue;
        }
        stack.extend(subdirs);
    }
    found
}

/// The git dir behind a `.git` entry: the directory itself, or where a `gitdir:` file
/// points (worktrees and submodules), canonicalized.
fn git_dir_of(dot_git: &Path, is_dir: bool) -> Option<PathBuf> {
    if is_dir {
        return Some(dot_git.to_owned());
    }
    let text = fs::read_to_string(dot_git).ok()?;
    let target = text.lines().next()?.strip_prefix("gitdir:")?.trim();
    fs::canonicalize(dot_git.parent()?.join(target)).ok()
}

/// After the run: removes the placeholders, then cleans every repository the command
/// created: hooks that are not `.sample` files go to the quarantine, and config keys
/// that run programs are removed.
pub fn cleanup(p: &Protection, roots: &[PathBuf], quarantine: &Path) -> Cleanup {
    for dir in p.placeholders.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
    let mut report = Cleanup::default();
    for root in roots {
        for (_, git_dir) in find_repos(root) {
            if p.repos.contains(&git_dir) || !roots.iter().any(|r| git_dir.starts_with(r)) {
                continue;
            }
            quarantine_hooks(&git_dir, quarantine, &mut report);
            clean_config(&git_dir.join("config"), &mut report);
        }
    }
    report
}

/// Whether `path` is a real directory or file, not a symlink: the command is gone when
/// cleanup runs, but it may have left links pointing at the user's files.
fn is_real(path: &Path, dir: bool) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| if dir { m.is_dir() } else { m.is_file() })
}

fn quarantine_hooks(git_dir: &Path, quarantine: &Path, report: &mut Cleanup) {
    let hooks = git_dir.join("hooks");
    if !is_real(&hooks, true) {
        return;
    }
    let Ok(entries) = fs::read_dir(&hooks) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".sample") {
            continue;
        }
        let rel = git_dir
            .strip_prefix("/")
            .unwrap_or(git_dir)
            .join("hooks")
            .join(&name);
        let dest = quarantine.join(&rel);
        let moved = dest.parent().is_some_and(|d| fs::create_dir_all(d).is_ok())
            && fs::rename(entry.path(), &dest).is_ok();
        if !moved {
            // Across filesystems (or without a state dir) the hook is deleted instead.
            let _ = fs::remove_file(entry.path()).or_else(|_| fs::remove_dir_all(entry.path()));
        }
        report.quarantine = Some(quarantine.to_owned());
        report.quarantined_hooks.push(entry.path());
    }
}

fn clean_config(path: &Path, report: &mut Cleanup) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if !is_real(path, false) {
        return;
    }
    let Ok(text) = fs::read_to_string(path) else {
        return;
    };
    let cleaned = moat_policy::gitconfig::clean(&text);
    if cleaned.removed.is_empty() {
        return;
    }
    let written = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.write_all(cleaned.text.as_bytes()));
    if written.is_ok() {
        report.removed_git_config.extend(
            cleaned
                .removed
                .into_iter()
                .map(|k| format!("{}: {k}", path.display())),
        );
    }
}
