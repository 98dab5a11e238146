//! Carries out a mount plan inside the new mount namespace, then pivots into it.
//!
//! Every target is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)` from the
//! view's root fd and mounted onto by fd (`move_mount` with `MOVE_MOUNT_T_EMPTY_PATH`),
//! so no symlink in the host tree can redirect a mount.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use crate::error::{Context, SandboxError};
use crate::plan::MountOp;
use crate::roots::{OpenedRoot, open_dir_nofollow};
use crate::sys;
use crate::sys::fd::{
    RESOLVE_IN_ROOT, RESOLVE_NO_SYMLINKS, create_file_at, identity, mkdir_at, open_path_beneath,
    openat2, symlink_at, write_all,
};
use crate::sys::mount::{
    ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY, attach, attach_at, clone_tree,
    clone_tree_at, cstring, make_all_private, new_filesystem, pivot_to_cwd, set_attributes,
};

/// Where the view is assembled before `pivot_root`. It is only a mount point inside the
/// sandbox's own mount namespace; the host's `/tmp` is never touched.
const STAGING: &CStr = c"/tmp";

/// Device nodes bound from the host into the minimal `/dev`.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Builds the view described by `ops` and makes it the root of the calling process.
pub fn build_view(ops: &[MountOp], roots: &[OpenedRoot]) -> Result<(), SandboxError> {
    make_all_private().ctx("cannot make mounts private")?;
    // Re-open the roots before anything is mounted over the host's paths (the staging
    // point hides the host's /tmp, where a workspace may live).
    let sources = roots
        .iter()
        .map(reopen_root)
        .collect::<Result<Vec<_>, _>>()?;
    let layers = open_cache_layers(ops)?;
    let mut view: Option<OwnedFd> = None;
    for op in ops {
        match op {
            MountOp::Root { writable } => view = Some(stage_root(*writable)?),
            _ => {
                let root = view.as_ref().ok_or_else(|| {
                    SandboxError::Other("mount plan must start with the root".into())
                })?;
                apply(root.as_fd(), op, &sources, &layers)?;
            }
        }
    }
    let view = view.ok_or_else(|| SandboxError::Other("empty mount plan".into()))?;
    sys::fchdir(view.as_raw_fd()).ctx("cannot enter the new root")?;
    pivot_to_cwd().ctx("pivot_root failed")?;
    sys::chdir(c"/").ctx("chdir /")?;
    Ok(())
}

/// Clones the host's mount tree, makes it read-only (all of it: `AT_RECURSIVE`) and
/// attaches it at the staging point. Returns an fd to the view's root.
fn stage_root(writable: bool) -> Result<OwnedFd, SandboxError> {
    let tree = clone_tree_at(c"/", true).ctx("cannot clone the root mount tree")?;
    let mut attrs = ATTR_NOSUID | ATTR_NODEV;
    if !writable {
        attrs |= ATTR_RDONLY;
    }
    set_attributes(tree.as_fd(), attrs, true).ctx("cannot make the root read-only")?;
    attach_at(tree.as_fd(), STAGING).ctx("cannot attach the root view")?;
    Ok(tree)
}

fn apply(
    view: BorrowedFd<'_>,
    op: &MountOp,
    sources: &[OwnedFd],
    layers: &LayerFds,
) -> Result<(), SandboxError> {
    match op {
        MountOp::Tmpfs { target, mode } => {
            let at = ensure_dir(view, target, 0o755)?;
            let fs = tmpfs(*mode)
                .with_ctx(|| format!("cannot create tmpfs for {}", target.display()))?;
            attach(fs.as_fd(), at.as_fd())
                .with_ctx(|| format!("cannot mount tmpfs on {}", target.display()))
        }
        MountOp::Dir { target, mode } => {
            let dir = ensure_dir(view, target, *mode)?;
            sys::fd::chmod_fd(dir.as_fd(), *mode).with_ctx(|| format!("chmod {}", target.display()))
        }
        MountOp::Writable { target, root } => bind_root(view, target, sources[*root].as_fd(), true),
        MountOp::ReadOnly { target, root } => {
            bind_root(view, target, sources[*root].as_fd(), false)
        }
        MountOp::File { target, contents } => write_file(view, target, contents),
        MountOp::Protect { target } => bind_onto_itself(view, target, true),
        MountOp::Pin { target } => bind_onto_itself(view, target, false),
        MountOp::Mask { target, dir } => mask(view, target, *dir),
        MountOp::Overlay { target, .. } => overlay(view, target, layers),
        MountOp::Dev => build_dev(view),
        MountOp::Proc => build_proc(view),
        MountOp::Root { .. } => Err(SandboxError::Other(
            "the root must be the first mount".into(),
        )),
    }
}

fn tmpfs(mode: u32) -> std::io::Result<OwnedFd> {
    let mode = CString::new(format!("{mode:o}")).expect("no NUL");
    new_filesystem(c"tmpfs", &[(c"mode", &mode)], &[], ATTR_NOSUID | ATTR_NODEV)
}

/// The path relative to the view's root, as a C string ("." for "/").
fn relative(path: &Path) -> Result<CString, SandboxError> {
    let rel: std::path::PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        Ok(c".".to_owned())
    } else {
        cstring(&rel).ctx("path")
    }
}

/// Opens `target` inside the view, creating missing directories (this only succeeds
/// inside the private tmpfses: the rest of the view is read-only).
fn ensure_dir(view: BorrowedFd<'_>, target: &Path, mode: u32) -> Result<OwnedFd, SandboxError> {
    let mut current = openat2(
        Some(view),
        c".",
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_IN_ROOT,
    )
    .ctx("open view")?;
    for part in target
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
    {
        let name = cstring(Path::new(part.as_os_str())).ctx("path")?;
        let next = match open_path_beneath(current.as_fd(), &name) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                mkdir_at(current.as_fd(), &name, mode).with_ctx(|| {
                    format!(
                        "cannot create mount point {} (is it hidden by a private directory?)",
                        target.display()
                    )
                })?;
                open_path_beneath(current.as_fd(), &name)
                    .with_ctx(|| format!("open {}", target.display()))?
            }
            Err(e) => {
                return Err(SandboxError::Sys {
                    step: format!("cannot open mount point {}", target.display()),
                    source: e,
                });
            }
        };
        current = next;
    }
    Ok(current)
}

/// Re-opens a writable root in this mount namespace (an fd from the host's namespace
/// cannot be cloned here). It must be the very directory that was checked before the
/// sandbox started: same device, same inode.
fn reopen_root(root: &OpenedRoot) -> Result<OwnedFd, SandboxError> {
    let path = cstring(&root.path).ctx("path")?;
    let src = open_dir_nofollow(&path)
        .with_ctx(|| format!("cannot reopen writable root {}", root.path.display()))?;
    let now = identity(src.as_fd()).ctx("stat writable root")?;
    if now != root.identity {
        return Err(SandboxError::Other(format!(
            "writable root '{}' was replaced while the sandbox was being built",
            root.path.display()
        )));
    }
    Ok(src)
}

/// Binds a root (nosuid, nodev; read-only unless `writable`) onto its own path.
fn bind_root(
    view: BorrowedFd<'_>,
    target: &Path,
    src: BorrowedFd<'_>,
    writable: bool,
) -> Result<(), SandboxError> {
    let tree = clone_tree(src, true).with_ctx(|| format!("cannot clone {}", target.display()))?;
    let mut attrs = ATTR_NOSUID | ATTR_NODEV;
    if !writable {
        attrs |= ATTR_RDONLY;
    }
    set_attributes(tree.as_fd(), attrs, true).ctx("cannot set the attributes of a bound root")?;
    let at = ensure_dir(view, target, 0o755)?;
    attach(tree.as_fd(), at.as_fd()).with_ctx(|| format!("cannot bind {}", target.display()))
}

/// Binds a path onto itself: read-only for protected paths, read-write for `.git`
/// (a mount point cannot be renamed or removed, so `.git` cannot be swapped).
fn bind_onto_itself(
    view: BorrowedFd<'_>,
    target: &Path,
    read_only: bool,
) -> Result<(), SandboxError> {
    let at = open_path_beneath(view, &relative(target)?)
        .with_ctx(|| format!("cannot open protected path {}", target.display()))?;
    let clone =
        clone_tree(at.as_fd(), true).with_ctx(|| format!("cannot clone {}", target.display()))?;
    let mut attrs = ATTR_NOSUID | ATTR_NODEV;
    if read_only {
        attrs |= ATTR_RDONLY;
    }
    set_attributes(clone.as_fd(), attrs, true)
        .with_ctx(|| format!("cannot protect {}", target.display()))?;
    attach(clone.as_fd(), at.as_fd()).with_ctx(|| format!("cannot protect {}", target.display()))
}

/// Covers a secret: an empty read-only tmpfs over a directory, a read-only
/// `/dev/null` over a file. Reads see nothing instead of failing.
fn mask(view: BorrowedFd<'_>, target: &Path, dir: bool) -> Result<(), SandboxError> {
    let at = open_path_beneath(view, &relative(target)?)
        .with_ctx(|| format!("cannot open secret {}", target.display()))?;
    let cover = if dir {
        new_filesystem(
            c"tmpfs",
            &[(c"mode", c"700"), (c"size", c"4k")],
            &[],
            ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
        )
    } else {
        clone_tree_at(c"/dev/null", false).and_then(|n| {
            set_attributes(n.as_fd(), ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC, false).map(|()| n)
        })
    }
    .with_ctx(|| format!("cannot mask {}", target.display()))?;
    attach(cover.as_fd(), at.as_fd()).with_ctx(|| format!("cannot mask {}", target.display()))
}

/// The directories of each cache layer, opened before the staging mount hides any
/// host path: `(target, [lower, upper, work])`.
type LayerFds = Vec<(std::path::PathBuf, [OwnedFd; 3])>;

fn open_cache_layers(ops: &[MountOp]) -> Result<LayerFds, SandboxError> {
    let open = |p: &Path| -> Result<OwnedFd, SandboxError> {
        open_dir_nofollow(&cstring(p).ctx("path")?)
            .with_ctx(|| format!("cannot open cache layer {}", p.display()))
    };
    let mut out = Vec::new();
    for op in ops {
        if let MountOp::Overlay {
            target,
            upper,
            work,
        } = op
        {
            out.push((target.clone(), [open(target)?, open(upper)?, open(work)?]));
        }
    }
    Ok(out)
}

/// Layers a tool cache: the real cache is the read-only lower layer, `upper` takes the
/// writes. `userxattr` is what lets an unprivileged user namespace mount overlayfs. The
/// layers are named through `/proc/self/fd`, so they are the directories opened before
/// the view existed.
fn overlay(view: BorrowedFd<'_>, target: &Path, layers: &LayerFds) -> Result<(), SandboxError> {
    let fds = &layers
        .iter()
        .find(|(t, _)| t == target)
        .ok_or_else(|| SandboxError::Other("cache layer not opened".into()))?
        .1;
    let name =
        |fd: &OwnedFd| CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL");
    let (lower, upper, work) = (name(&fds[0]), name(&fds[1]), name(&fds[2]));
    let fs = new_filesystem(
        c"overlay",
        &[
            (c"lowerdir", &lower),
            (c"upperdir", &upper),
            (c"workdir", &work),
        ],
        &[c"userxattr"],
        ATTR_NOSUID | ATTR_NODEV,
    )
    .with_ctx(|| format!("cannot layer the cache {}", target.display()))?;
    let at = ensure_dir(view, target, 0o755)?;
    attach(fs.as_fd(), at.as_fd())
        .with_ctx(|| format!("cannot mount the cache layer on {}", target.display()))
}

fn write_file(view: BorrowedFd<'_>, target: &Path, contents: &[u8]) -> Result<(), SandboxError> {
    if let Some(parent) = target.parent() {
        ensure_dir(view, parent, 0o755)?;
    }
    let rel = relative(target)?;
    let fd = openat2(
        Some(view),
        &rel,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        0o644,
        RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS,
    )
    .with_ctx(|| format!("cannot create {}", target.display()))?;
    write_all(fd.as_raw_fd(), contents).with_ctx(|| format!("cannot write {}", target.display()))
}

/// A fresh procfs for the new pid namespace, with the kernel knobs bound read-only.
fn build_proc(view: BorrowedFd<'_>) -> Result<(), SandboxError> {
    let at = ensure_dir(view, Path::new("/proc"), 0o555)?;
    let fs = new_filesystem(c"proc", &[], &[], ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)
        .ctx("cannot create procfs")?;
    attach(fs.as_fd(), at.as_fd()).ctx("cannot mount /proc")?;
    for name in [c"sys", c"sysrq-trigger", c"irq", c"bus"] {
        let Ok(sub) = open_path_beneath(fs.as_fd(), name) else {
            continue;
        };
        let clone = clone_tree(sub.as_fd(), false).ctx("cannot clone /proc/sys")?;
        set_attributes(
            clone.as_fd(),
            ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
            false,
        )
        .ctx("cannot make /proc/sys read-only")?;
        attach(clone.as_fd(), sub.as_fd()).ctx("cannot bind /proc/sys read-only")?;
    }
    Ok(())
}

/// A minimal `/dev`: the harmless device nodes bound from the host, a private devpts
/// instance (so the sandbox's ptys are its own), a private `/dev/shm`, and the usual
/// symlinks. The tmpfs itself is made read-only afterwards.
fn build_dev(view: BorrowedFd<'_>) -> Result<(), SandboxError> {
    let at = ensure_dir(view, Path::new("/dev"), 0o755)?;
    let dev = tmpfs(0o755).ctx("cannot create /dev")?;
    // Attach first: everything below is then mounted onto an attached tree, which every
    // kernel with the new mount API supports.
    attach(dev.as_fd(), at.as_fd()).ctx("cannot mount /dev")?;
    for name in DEVICES {
        let cname = CString::new(*name).expect("no NUL");
        create_file_at(dev.as_fd(), &cname, 0o666)
            .with_ctx(|| format!("cannot create /dev/{name}"))?;
        let host = CString::new(format!("/dev/{name}")).expect("no NUL");
        let node = clone_tree_at(&host, false).with_ctx(|| format!("cannot bind /dev/{name}"))?;
        let target = open_path_beneath(dev.as_fd(), &cname).ctx("open dev node")?;
        attach(node.as_fd(), target.as_fd()).with_ctx(|| format!("cannot bind /dev/{name}"))?;
    }
    mkdir_at(dev.as_fd(), c"pts", 0o755).ctx("mkdir /dev/pts")?;
    let pts = new_filesystem(
        c"devpts",
        &[(c"ptmxmode", c"0666"), (c"mode", c"0620")],
        &[c"newinstance"],
        ATTR_NOSUID | ATTR_NOEXEC,
    )
    .ctx("cannot create a private devpts")?;
    let pts_at = open_path_beneath(dev.as_fd(), c"pts").ctx("open /dev/pts")?;
    attach(pts.as_fd(), pts_at.as_fd()).ctx("cannot mount /dev/pts")?;
    mkdir_at(dev.as_fd(), c"shm", 0o1777).ctx("mkdir /dev/shm")?;
    let shm_at = open_path_beneath(dev.as_fd(), c"shm").ctx("open /dev/shm")?;
    attach(tmpfs(0o1777).ctx("tmpfs /dev/shm")?.as_fd(), shm_at.as_fd())
        .ctx("cannot mount /dev/shm")?;
    for (name, target) in [
        (c"ptmx", c"pts/ptmx"),
        (c"fd", c"/proc/self/fd"),
        (c"stdin", c"/proc/self/fd/0"),
        (c"stdout", c"/proc/self/fd/1"),
        (c"stderr", c"/proc/self/fd/2"),
    ] {
        symlink_at(target, dev.as_fd(), name).ctx("symlink in /dev")?;
    }
    set_attributes(dev.as_fd(), ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC, false)
        .ctx("cannot make /dev read-only")
}
