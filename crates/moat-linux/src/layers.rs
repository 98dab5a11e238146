//! Secrets masked from view, and tool caches behind a copy-on-write layer.

use std::fs;
use std::path::{Path, PathBuf};

use moat_policy::SandboxPolicy;
use serde::Serialize;

/// A secret hidden from the command: an empty read-only directory or an empty file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mask {
    /// The path (canonical).
    pub target: PathBuf,
    /// Whether it is a directory.
    pub dir: bool,
}

/// The secrets of `policy` that exist. A secret reached through a symlink is masked at
/// its target (a mount cannot cover a symlink); missing secrets need no mask.
pub fn masks(policy: &SandboxPolicy) -> Vec<Mask> {
    let mut out: Vec<Mask> = policy
        .secrets
        .iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .filter_map(|target| {
            let m = fs::metadata(&target).ok()?;
            Some(Mask {
                dir: m.is_dir(),
                target,
            })
        })
        .collect();
    out.sort_by(|a, b| a.target.cmp(&b.target));
    out.dedup();
    out
}

/// A tool cache offered through overlayfs: reads see the real cache, writes land in
/// `upper`, which belongs to this workspace and lives in moat's state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheLayer {
    /// The cache as the command sees it (the real path).
    pub target: PathBuf,
    /// The per-workspace upper directory.
    pub upper: PathBuf,
    /// overlayfs's work directory (same filesystem as `upper`).
    #[serde(skip)]
    pub work: PathBuf,
}

/// moat's state directory: `$XDG_STATE_HOME/moat`, else `~/.local/state/moat`.
pub fn state_dir(env: &[(std::ffi::OsString, std::ffi::OsString)]) -> Option<PathBuf> {
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| PathBuf::from(v))
            .filter(|p| p.is_absolute())
    };
    get("XDG_STATE_HOME")
        .or_else(|| get("HOME").map(|h| h.join(".local/state")))
        .map(|d| d.join("moat"))
}

/// FNV-1a: a stable, dependency-free name for a workspace's cache directory.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Prepares the cache layers: creates the per-workspace upper and work directories,
/// and a missing cache directory when its parent exists (tools create them on first
/// use anyway, and a missing mount point could not be covered). Caches inside a
/// writable root are already writable and get no layer.
pub fn cache_layers(
    policy: &SandboxPolicy,
    roots: &[PathBuf],
    state: &Path,
    notes: &mut Vec<String>,
) -> Vec<CacheLayer> {
    use std::os::unix::ffi::OsStrExt;
    let base = state.join("caches").join(format!(
        "{:016x}",
        stable_hash(policy.workspace.as_os_str().as_bytes())
    ));
    let mut layers = Vec::new();
    for cache in &policy.caches {
        if roots.iter().any(|r| cache.starts_with(r)) || state.starts_with(cache) {
            continue;
        }
        // overlayfs separates options with ',' and lower layers with ':'.
        if cache.to_string_lossy().contains([',', ':', '\\'])
            || base.to_string_lossy().contains([',', ':', '\\'])
        {
            notes.push(format!(
                "cache {} not layered: its path contains , : or \\",
                cache.display()
            ));
            continue;
        }
        let present = cache.is_dir()
            || (cache.parent().is_some_and(Path::is_dir) && fs::create_dir(cache).is_ok());
        if !present {
            continue;
        }
        let Ok(cache) = fs::canonicalize(cache) else {
            continue;
        };
        let name = cache
            .to_string_lossy()
            .trim_start_matches('/')
            .replace('/', "%");
        let upper = base.join(&name).join("upper");
        let work = base.join(&name).join("work");
        if fs::create_dir_all(&upper)
            .and_then(|()| fs::create_dir_all(&work))
            .is_err()
        {
            notes.push(format!(
                "cache {} not layered: cannot create {}",
                cache.display(),
                upper.display()
            ));
            continue;
        }
        layers.push(CacheLayer {
            target: cache,
            upper,
            work,
        });
    }
    layers
}

/// Empties every cache layer of every workspace (`moat cache clear`). overlayfs leaves
/// a mode-000 `work/work` directory behind, so permissions are fixed first.
pub fn clear_caches(state: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = state.join("caches");
    if !root.exists() {
        return Ok(());
    }
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        for entry in fs::read_dir(&dir)?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    fs::remove_dir_all(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(stable_hash(b"/a"), stable_hash(b"/b"));
    }

    #[test]
    fn state_dir_prefers_xdg() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            state_dir(&env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/state/moat"))
        );
        assert_eq!(
            state_dir(&env(&[("HOME", "/h"), ("XDG_STATE_HOME", "/s")])),
            Some(PathBuf::from("/s/moat"))
        );
        assert_eq!(state_dir(&env(&[("HOME", "rel")])), None);
    }
}
