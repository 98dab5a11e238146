//! The filesystem view as data: which mounts, in which order.
//!
//! Building the plan is pure, so its order (the security-relevant part) is unit-tested
//! here; [`crate::mounts`] carries it out with system calls.

use std::path::{Path, PathBuf};

use moat_policy::{FilesystemMode, NetworkMode, SandboxPolicy};
use serde::Serialize;

/// One step of the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MountOp {
    /// The host's root, cloned recursively; read-only unless `writable`.
    Root {
        /// Whether the clone stays writable (full-access mode).
        writable: bool,
    },
    /// A fresh, private tmpfs.
    Tmpfs {
        /// Where it is mounted.
        target: PathBuf,
        /// Its root directory's mode.
        mode: u32,
    },
    /// A directory created inside a private tmpfs (e.g. `$XDG_RUNTIME_DIR`).
    Dir {
        /// The directory.
        target: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A writable root, bound read-write from the fd opened before the sandbox.
    Writable {
        /// The canonical path (the same inside and outside).
        target: PathBuf,
        /// Index into the opened roots.
        root: usize,
    },
    /// The workspace in read-only mode, bound read-only from its fd so that it stays
    /// visible even where it lies under a private tmpfs.
    ReadOnly {
        /// The canonical path (the same inside and outside).
        target: PathBuf,
        /// Index into the opened roots.
        root: usize,
    },
    /// A file written into a private tmpfs (the resolver configuration when
    /// `/etc/resolv.conf` points into `/run`).
    File {
        /// The file.
        target: PathBuf,
        /// Its contents.
        #[serde(skip)]
        contents: Vec<u8>,
    },
    /// A protected path (or a placeholder) bound read-only onto itself.
    Protect {
        /// The path.
        target: PathBuf,
    },
    /// A git directory bound onto itself (read-write) so it cannot be renamed aside.
    Pin {
        /// The path.
        target: PathBuf,
    },
    /// A secret covered by an empty read-only directory or an empty file.
    Mask {
        /// The path.
        target: PathBuf,
        /// Whether it is a directory.
        dir: bool,
    },
    /// A tool cache behind overlayfs: writes land in `upper`.
    Overlay {
        /// The cache.
        target: PathBuf,
        /// The per-workspace upper directory.
        upper: PathBuf,
        /// overlayfs's work directory.
        #[serde(skip)]
        work: PathBuf,
    },
    /// A fresh procfs, with `/proc/sys` and friends bound read-only.
    Proc,
    /// A minimal `/dev`: a few device nodes, a private devpts and `/dev/shm`.
    Dev,
}

/// Facts about the host that the plan depends on.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// `$XDG_RUNTIME_DIR`, if set and absolute.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// Whether `/var/run` is a symlink (to `/run`, usually).
    pub var_run_is_link: bool,
    /// Whether `/var/tmp` exists as a directory.
    pub var_tmp_exists: bool,
    /// Where `/etc/resolv.conf` finally points and its contents, when that lies in a
    /// directory the plan hides.
    pub resolv_conf: Option<(PathBuf, Vec<u8>)>,
}

/// What the plan adds on top of the basic view: protections, masks and cache layers.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Paths bound read-only onto themselves (protected paths and placeholders).
    pub read_only: Vec<PathBuf>,
    /// Git directories bound onto themselves.
    pub pinned: Vec<PathBuf>,
    /// Secrets to mask.
    pub masks: Vec<crate::layers::Mask>,
    /// Tool caches to layer.
    pub caches: Vec<crate::layers::CacheLayer>,
}

/// The private tmpfses, hiding host daemon sockets and temp files.
fn private_dirs(facts: &HostFacts) -> Vec<(PathBuf, u32)> {
    let mut dirs = vec![
        (PathBuf::from("/tmp"), 0o1777),
        (PathBuf::from("/run"), 0o755),
    ];
    if facts.var_tmp_exists {
        dirs.push(("/var/tmp".into(), 0o1777));
    }
    if !facts.var_run_is_link {
        dirs.push(("/var/run".into(), 0o755));
    }
    dirs
}

/// Whether `path` lies inside one of the private tmpfses.
fn is_hidden(path: &Path, dirs: &[(PathBuf, u32)]) -> bool {
    dirs.iter().any(|(d, _)| path.starts_with(d))
}

/// Builds the plan for `policy`, given the canonical roots to bind (writable ones, or
/// the read-only workspace in read-only mode).
pub fn build(
    policy: &SandboxPolicy,
    roots: &[PathBuf],
    facts: &HostFacts,
    extras: &Extras,
) -> Vec<MountOp> {
    let full = policy.filesystem == FilesystemMode::FullAccess;
    let mut ops = vec![MountOp::Root { writable: full }];
    // Ordered by depth so that a parent is always mounted before anything below it: a
    // writable root under /tmp lands on the private tmpfs, and a tmpfs under a writable
    // root (e.g. /var/tmp under --writable /var) is not hidden by the later bind.
    let mut layered: Vec<MountOp> = Vec::new();
    let dirs = if full {
        Vec::new()
    } else {
        private_dirs(facts)
    };
    for (target, mode) in &dirs {
        layered.push(MountOp::Tmpfs {
            target: target.clone(),
            mode: *mode,
        });
    }
    if let Some(xdg) = &facts.xdg_runtime_dir
        && is_hidden(xdg, &dirs)
    {
        layered.push(MountOp::Dir {
            target: xdg.clone(),
            mode: 0o700,
        });
    }
    for (index, root) in roots.iter().enumerate() {
        let target = root.clone();
        layered.push(match policy.filesystem {
            FilesystemMode::ReadOnly => MountOp::ReadOnly {
                target,
                root: index,
            },
            _ => MountOp::Writable {
                target,
                root: index,
            },
        });
    }
    if policy.network == NetworkMode::On
        && let Some((target, contents)) = &facts.resolv_conf
        && is_hidden(target, &dirs)
    {
        layered.push(MountOp::File {
            target: target.clone(),
            contents: contents.clone(),
        });
    }
    layered.extend(
        extras
            .pinned
            .iter()
            .map(|t| MountOp::Pin { target: t.clone() }),
    );
    layered.extend(
        extras
            .read_only
            .iter()
            .map(|t| MountOp::Protect { target: t.clone() }),
    );
    layered.extend(extras.masks.iter().map(|m| MountOp::Mask {
        target: m.target.clone(),
        dir: m.dir,
    }));
    if !full {
        layered.extend(extras.caches.iter().map(|c| MountOp::Overlay {
            target: c.target.clone(),
            upper: c.upper.clone(),
            work: c.work.clone(),
        }));
    }
    // Stable: at equal depth, roots come before what protects or masks them.
    layered.sort_by_key(|op| target_of(op).map_or(0, |t| t.components().count()));
    ops.extend(layered);
    ops.push(MountOp::Dev);
    ops.push(MountOp::Proc);
    ops
}

/// One mount of the view, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountEntry {
    /// Where it is mounted.
    pub target: PathBuf,
    /// What it is: root, tmpfs, dir, writable, read-only, file, protect, pin, mask,
    /// overlay, proc or dev.
    pub kind: &'static str,
    /// Whether the command can write there.
    pub writable: bool,
}

/// The report's view of a plan.
pub fn describe(ops: &[MountOp]) -> Vec<MountEntry> {
    ops.iter()
        .map(|op| {
            let (kind, writable) = match op {
                MountOp::Root { writable } => ("root", *writable),
                MountOp::Tmpfs { .. } => ("tmpfs", true),
                MountOp::Dir { .. } => ("dir", true),
                MountOp::Writable { .. } => ("writable", true),
                MountOp::ReadOnly { .. } => ("read-only", false),
                MountOp::File { .. } => ("file", true),
                MountOp::Protect { .. } => ("protect", false),
                MountOp::Pin { .. } => ("pin", true),
                MountOp::Mask { .. } => ("mask", false),
                MountOp::Overlay { .. } => ("overlay", true),
                MountOp::Proc => ("proc", false),
                MountOp::Dev => ("dev", false),
            };
            let target = target_of(op).map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
            MountEntry {
                target,
                kind,
                writable,
            }
        })
        .collect()
}

/// The path an op mounts on, if it has one.
pub fn target_of(op: &MountOp) -> Option<&Path> {
    match op {
        MountOp::Tmpfs { target, .. }
        | MountOp::Dir { target, .. }
        | MountOp::Writable { target, .. }
        | MountOp::ReadOnly { target, .. }
        | MountOp::Protect { target }
        | MountOp::Pin { target }
        | MountOp::Mask { target, .. }
        | MountOp::Overlay { target, .. }
        | MountOp::File { target, .. } => Some(target),
        MountOp::Root { .. } => Some(Path::new("/")),
        MountOp::Proc => Some(Path::new("/proc")),
        MountOp::Dev => Some(Path::new("/dev")),
    }
}

/// The directories a command may write in, as seen inside: the writable roots and
/// the private tmpfses (used for the Landlock rules).
pub fn writable_dirs(ops: &[MountOp]) -> Vec<PathBuf> {
    ops.iter()
        .filter_map(|op| match op {
            MountOp::Tmpfs { target, .. } | MountOp::Writable { target, .. } => {
                Some(target.clone())
            }
            _ => None,
        })
        .chain([PathBuf::from("/dev/shm")])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            xdg_runtime_dir: Some("/run/user/1000".into()),
            var_run_is_link: true,
            var_tmp_exists: true,
            resolv_conf: Some((
                "/run/systemd/resolve/stub-resolv.conf".into(),
                b"nameserver 127.0.0.53\n".to_vec(),
            )),
        }
    }

    fn policy() -> SandboxPolicy {
        SandboxPolicy::for_workspace("/home/u/p".into())
    }

    fn position(ops: &[MountOp], pred: impl Fn(&MountOp) -> bool) -> usize {
        ops.iter().position(pred).expect("op present")
    }

    #[test]
    fn read_only_root_comes_first_and_proc_dev_last() {
        let ops = build(
            &policy(),
            &["/home/u/p".into()],
            &facts(),
            &Extras::default(),
        );
        assert_eq!(ops[0], MountOp::Root { writable: false });
        assert_eq!(ops[ops.len() - 2], MountOp::Dev);
        assert_eq!(ops[ops.len() - 1], MountOp::Proc);
    }

    #[test]
    fn workspace_under_tmp_is_bound_after_the_private_tmp() {
        let ops = build(&policy(), &["/tmp/ws".into()], &facts(), &Extras::default());
        let tmp = position(
            &ops,
            |o| matches!(o, MountOp::Tmpfs { target, .. } if target == Path::new("/tmp")),
        );
        let ws = position(&ops, |o| matches!(o, MountOp::Writable { .. }));
        assert!(tmp < ws);
    }

    #[test]
    fn private_tmp_under_a_writable_root_is_not_hidden_by_it() {
        let ops = build(&policy(), &["/var".into()], &facts(), &Extras::default());
        let var = position(&ops, |o| matches!(o, MountOp::Writable { .. }));
        let var_tmp = position(
            &ops,
            |o| matches!(o, MountOp::Tmpfs { target, .. } if target == Path::new("/var/tmp")),
        );
        assert!(var < var_tmp);
    }

    #[test]
    fn runtime_dir_is_recreated_inside_private_run() {
        let ops = build(&policy(), &[], &facts(), &Extras::default());
        let run = position(
            &ops,
            |o| matches!(o, MountOp::Tmpfs { target, .. } if target == Path::new("/run")),
        );
        let xdg = position(&ops, |o| matches!(o, MountOp::Dir { .. }));
        assert!(run < xdg);
        assert!(!ops.iter().any(
            |o| matches!(o, MountOp::Tmpfs { target, .. } if target == Path::new("/var/run"))
        ));
    }

    #[test]
    fn read_only_workspace_is_bound_read_only_and_not_writable() {
        let mut p = policy();
        p.filesystem = FilesystemMode::ReadOnly;
        let ops = build(&p, &["/tmp/ws".into()], &facts(), &Extras::default());
        assert!(ops.iter().any(|o| matches!(o, MountOp::ReadOnly { .. })));
        assert!(!writable_dirs(&ops).contains(&PathBuf::from("/tmp/ws")));
    }

    #[test]
    fn protections_come_after_their_root_and_pins_before_hooks() {
        let extras = Extras {
            read_only: vec!["/home/u/p/.git/hooks".into(), "/home/u/p/.envrc".into()],
            pinned: vec!["/home/u/p/.git".into()],
            masks: vec![crate::layers::Mask {
                target: "/home/u/.ssh".into(),
                dir: true,
            }],
            caches: Vec::new(),
        };
        let ops = build(&policy(), &["/home/u/p".into()], &facts(), &extras);
        let root = position(&ops, |o| matches!(o, MountOp::Writable { .. }));
        let pin = position(&ops, |o| matches!(o, MountOp::Pin { .. }));
        let hooks = position(
            &ops,
            |o| matches!(o, MountOp::Protect { target } if target.ends_with("hooks")),
        );
        let envrc = position(
            &ops,
            |o| matches!(o, MountOp::Protect { target } if target.ends_with(".envrc")),
        );
        assert!(root < pin && pin < hooks && root < envrc);
        assert!(
            ops.iter()
                .any(|o| matches!(o, MountOp::Mask { dir: true, .. }))
        );
    }

    #[test]
    fn resolver_config_is_copied_only_with_network_on() {
        let ops = build(&policy(), &[], &facts(), &Extras::default());
        assert!(!ops.iter().any(|o| matches!(o, MountOp::File { .. })));
        let mut p = policy();
        p.network = NetworkMode::On;
        let ops = build(&p, &[], &facts(), &Extras::default());
        assert!(ops.iter().any(|o| matches!(o, MountOp::File { .. })));
    }

    #[test]
    fn full_access_keeps_root_writable_and_host_tmp() {
        let mut p = policy();
        p.filesystem = FilesystemMode::FullAccess;
        let ops = build(&p, &[], &facts(), &Extras::default());
        assert_eq!(ops[0], MountOp::Root { writable: true });
        assert!(!ops.iter().any(|o| matches!(o, MountOp::Tmpfs { .. })));
    }

    #[test]
    fn landlock_write_set_is_roots_plus_private_dirs() {
        let ops = build(
            &policy(),
            &["/home/u/p".into()],
            &facts(),
            &Extras::default(),
        );
        let dirs = writable_dirs(&ops);
        for d in ["/home/u/p", "/tmp", "/var/tmp", "/run", "/dev/shm"] {
            assert!(
                dirs.contains(&PathBuf::from(d)),
                "{d} missing from {dirs:?}"
            );
        }
        assert!(!dirs.contains(&PathBuf::from("/")));
    }
}
