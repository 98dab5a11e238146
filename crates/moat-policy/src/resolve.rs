//! Resolution of writable roots to canonical paths, with the symlink-planting check.
//!
//! The resolver walks each requested path one component at a time, the way the kernel
//! does, and records the location of every symlink it crosses. A root reached through a
//! symlink that lies inside *any* writable root is refused: a previous sandboxed run
//! could have planted `out -> ~/.config` in the workspace, and a later
//! `--writable ./out` would then hand the command the user's configuration.
//!
//! The resolved path is only a name. Backends must open it without following symlinks
//! and bind the resulting file descriptor, so that it cannot be swapped afterwards.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::PolicyError;

/// What one `lstat` saw at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir,
    /// A symbolic link with its target, as `readlink` returns it.
    Symlink(PathBuf),
    /// Anything else: a file, a socket, a device.
    Other,
    /// Nothing is there.
    Missing,
}

/// Looks at the filesystem for the resolver. Implemented by the platform backends.
pub trait PathProbe {
    /// Returns what is at `path` without following a final symlink.
    fn probe(&self, path: &Path) -> Result<Entry, String>;
}

/// A writable root after resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRoot {
    /// The path as the user or the policy gave it.
    pub requested: PathBuf,
    /// The canonical path: absolute, no `.`/`..`, no symlinks.
    pub canonical: PathBuf,
    /// Where each symlink crossed on the way lies (canonical locations).
    pub links_crossed: Vec<PathBuf>,
}

/// The kernel's limit on nested symlinks (`MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: usize = 40;

/// Resolves `path` (relative paths are taken from `cwd`) to a canonical directory.
pub fn canonicalize(
    path: &Path,
    cwd: &Path,
    probe: &dyn PathProbe,
) -> Result<ResolvedRoot, PolicyError> {
    let absolute = cwd.join(path);
    let mut queue: VecDeque<OsString> = components(&absolute);
    let mut resolved = PathBuf::from("/");
    let mut links = Vec::new();
    while let Some(name) = queue.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        let entry = probe
            .probe(&candidate)
            .map_err(|message| PolicyError::Probe {
                path: candidate.clone(),
                message,
            })?;
        match entry {
            Entry::Dir => resolved = candidate,
            Entry::Other if queue.is_empty() => resolved = candidate,
            Entry::Other => return Err(PolicyError::NotADirectory(candidate)),
            Entry::Missing => return Err(PolicyError::Missing(absolute)),
            Entry::Symlink(target) => {
                links.push(candidate);
                if links.len() > MAX_SYMLINK_HOPS {
                    return Err(PolicyError::SymlinkLoop(absolute));
                }
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                for part in components(&target).into_iter().rev() {
                    queue.push_front(part);
                }
            }
        }
    }
    if probe
        .probe(&resolved)
        .map_err(|message| PolicyError::Probe {
            path: resolved.clone(),
            message,
        })?
        != Entry::Dir
    {
        return Err(PolicyError::NotADirectory(resolved));
    }
    Ok(ResolvedRoot {
        requested: path.to_owned(),
        canonical: resolved,
        links_crossed: links,
    })
}

/// The normal components of a path, with `..` kept and `.` and `/` dropped.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Resolves every writable root and refuses any reached through a symlink that lies
/// inside one of the roots. Duplicates (same canonical path) are merged.
pub fn resolve_roots(
    requested: &[PathBuf],
    cwd: &Path,
    probe: &dyn PathProbe,
) -> Result<Vec<ResolvedRoot>, PolicyError> {
    let mut roots: Vec<ResolvedRoot> = Vec::new();
    for path in requested {
        let root = canonicalize(path, cwd, probe)?;
        if !roots.iter().any(|r| r.canonical == root.canonical) {
            roots.push(root);
        }
    }
    for root in &roots {
        for link in &root.links_crossed {
            if let Some(container) = roots.iter().find(|r| link.starts_with(&r.canonical)) {
                return Err(PolicyError::SymlinkInsideRoot {
                    requested: root.requested.clone(),
                    link: link.clone(),
                    container: container.canonical.clone(),
                    target: root.canonical.clone(),
                });
            }
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An in-memory filesystem: paths not listed are missing.
    struct FakeFs(HashMap<PathBuf, Entry>);

    impl FakeFs {
        fn new(entries: &[(&str, Entry)]) -> Self {
            let mut map: HashMap<PathBuf, Entry> = entries
                .iter()
                .map(|(p, e)| (PathBuf::from(p), e.clone()))
                .collect();
            map.insert("/".into(), Entry::Dir);
            Self(map)
        }
    }

    impl PathProbe for FakeFs {
        fn probe(&self, path: &Path) -> Result<Entry, String> {
            Ok(self.0.get(path).cloned().unwrap_or(Entry::Missing))
        }
    }

    fn link(t: &str) -> Entry {
        Entry::Symlink(t.into())
    }

    fn home_fs() -> FakeFs {
        FakeFs::new(&[
            ("/home", Entry::Dir),
            ("/home/u", Entry::Dir),
            ("/home/u/proj", Entry::Dir),
            ("/home/u/proj/src", Entry::Dir),
            ("/home/u/proj/out", link("/home/u/.config")),
            ("/home/u/proj/rel", link("../data")),
            ("/home/u/proj/file", Entry::Other),
            ("/home/u/.config", Entry::Dir),
            ("/home/u/data", Entry::Dir),
            ("/srv", link("/home/u")),
            ("/loop", link("/loop")),
        ])
    }

    #[test]
    fn plain_directories_resolve_to_themselves() {
        let r = canonicalize(Path::new("/home/u/proj/src"), Path::new("/"), &home_fs()).unwrap();
        assert_eq!(r.canonical, PathBuf::from("/home/u/proj/src"));
        assert!(r.links_crossed.is_empty());
    }

    #[test]
    fn relative_paths_and_dotdot_resolve_from_cwd() {
        let fs = home_fs();
        let r = canonicalize(Path::new("./src/../src"), Path::new("/home/u/proj"), &fs).unwrap();
        assert_eq!(r.canonical, PathBuf::from("/home/u/proj/src"));
    }

    #[test]
    fn symlinks_outside_roots_are_followed_and_recorded() {
        let fs = home_fs();
        let roots = resolve_roots(&["/srv/proj".into()], Path::new("/"), &fs).unwrap();
        assert_eq!(roots[0].canonical, PathBuf::from("/home/u/proj"));
        assert_eq!(roots[0].links_crossed, vec![PathBuf::from("/srv")]);
    }

    #[test]
    fn planted_symlink_inside_workspace_is_refused() {
        let fs = home_fs();
        let err = resolve_roots(
            &["/home/u/proj".into(), "/home/u/proj/out".into()],
            Path::new("/"),
            &fs,
        )
        .unwrap_err();
        match err {
            PolicyError::SymlinkInsideRoot {
                link,
                container,
                target,
                ..
            } => {
                assert_eq!(link, PathBuf::from("/home/u/proj/out"));
                assert_eq!(container, PathBuf::from("/home/u/proj"));
                assert_eq!(target, PathBuf::from("/home/u/.config"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn relative_planted_symlink_is_refused_too() {
        let fs = home_fs();
        let err = resolve_roots(
            &["/home/u/proj".into(), "rel".into()],
            Path::new("/home/u/proj"),
            &fs,
        )
        .unwrap_err();
        assert!(matches!(err, PolicyError::SymlinkInsideRoot { .. }));
    }

    #[test]
    fn same_link_is_fine_when_its_directory_is_not_writable() {
        let fs = home_fs();
        let roots = resolve_roots(&["/home/u/proj/out".into()], Path::new("/"), &fs).unwrap();
        assert_eq!(roots[0].canonical, PathBuf::from("/home/u/.config"));
    }

    #[test]
    fn missing_files_and_loops_are_clear_errors() {
        let fs = home_fs();
        let root = Path::new("/");
        assert!(matches!(
            canonicalize(Path::new("/nope"), root, &fs),
            Err(PolicyError::Missing(_))
        ));
        assert!(matches!(
            canonicalize(Path::new("/home/u/proj/file"), root, &fs),
            Err(PolicyError::NotADirectory(_))
        ));
        assert!(matches!(
            canonicalize(Path::new("/home/u/proj/file/x"), root, &fs),
            Err(PolicyError::NotADirectory(_))
        ));
        assert!(matches!(
            canonicalize(Path::new("/loop"), root, &fs),
            Err(PolicyError::SymlinkLoop(_))
        ));
    }

    #[test]
    fn duplicates_are_merged() {
        let fs = home_fs();
        let roots = resolve_roots(
            &[
                "/home/u/proj".into(),
                "/home/u/proj/".into(),
                "/srv/proj".into(),
            ],
            Path::new("/"),
            &fs,
        )
        .unwrap();
        assert_eq!(roots.len(), 1);
    }
}
