//! Resolving the effective policy from its sources: built-in defaults, the user's
//! config file, the workspace's config file (tighten-only), then flags.

use std::path::{Path, PathBuf};

use moat_policy::config::{self, Layer, Origin, Sources};
use moat_policy::{PolicyError, SandboxPolicy};

/// What the caller knows before the config files are read.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The workspace (absolute, or relative to the current directory).
    pub workspace: PathBuf,
    /// The home directory, for `~` and the home-relative defaults.
    pub home: Option<PathBuf>,
    /// The user's config file; `None` means none.
    pub user_config: Option<PathBuf>,
    /// The profile to apply, if any.
    pub profile: Option<String>,
    /// The command-line flags as a layer.
    pub flags: Layer,
}

/// The effective policy and where each value came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The policy.
    pub policy: SandboxPolicy,
    /// Source of each value, by config key.
    pub sources: Sources,
    /// The config files that were read, in order.
    pub files: Vec<PathBuf>,
}

/// The user's config file: `$XDG_CONFIG_HOME/moat/config.toml`, else
/// `~/.config/moat/config.toml`.
pub fn user_config_path(xdg_config_home: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    let base = xdg_config_home
        .filter(|p| p.is_absolute())
        .map(Path::to_path_buf)
        .or_else(|| home.map(|h| h.join(".config")))?;
    Some(base.join("moat").join("config.toml"))
}

/// Reads a config file; a missing file is no layer, an unreadable one an error.
fn read_layer(path: &Path) -> Result<Option<Layer>, PolicyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => config::parse(&text, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(PolicyError::Config(format!(
            "{}: not valid UTF-8",
            path.display()
        ))),
        Err(e) => Err(PolicyError::Config(format!("{}: {e}", path.display()))),
    }
}

/// Layers the sources in order and returns the effective policy.
pub fn resolve(req: &Request) -> Result<Resolved, PolicyError> {
    let home = req.home.as_deref();
    let mut policy = SandboxPolicy::with_home(req.workspace.clone(), home);
    let mut sources = config::default_sources();
    let mut files = Vec::new();
    let mut profile_found = false;
    let workspace_config = req.workspace.join(".moat").join("config.toml");
    let file_layers = [
        req.user_config
            .clone()
            .map(|p| (Origin::User(p.clone()), p)),
        Some((
            Origin::Workspace(workspace_config.clone()),
            workspace_config,
        )),
    ];
    for (origin, path) in file_layers.into_iter().flatten() {
        let Some(layer) = read_layer(&path)? else {
            continue;
        };
        files.push(path);
        if let Some(name) = &req.profile {
            profile_found |= config::has_profile(&layer, name);
        }
        config::apply(
            &mut policy,
            &mut sources,
            &layer,
            &origin,
            req.profile.as_deref(),
            home,
        )?;
    }
    if let Some(name) = &req.profile
        && !profile_found
    {
        return Err(PolicyError::Config(format!(
            "profile '{name}' is not defined in any config file"
        )));
    }
    config::apply(
        &mut policy,
        &mut sources,
        &req.flags,
        &Origin::Flags,
        None,
        home,
    )?;
    Ok(Resolved {
        policy,
        sources,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn flags_win_over_files_and_files_over_defaults() {
        let dir = tempdir();
        let user = dir.path().join("user.toml");
        std::fs::write(&user, "timeout = 30\nnetwork = \"on\"\n").unwrap();
        let flags = Layer {
            network: Some(moat_policy::NetworkMode::Off),
            ..Layer::default()
        };
        let r = resolve(&Request {
            workspace: dir.path().to_owned(),
            user_config: Some(user.clone()),
            flags,
            ..Request::default()
        })
        .unwrap();
        assert_eq!(r.policy.network, moat_policy::NetworkMode::Off);
        assert_eq!(r.sources["network"], "command line");
        assert_eq!(r.sources["timeout"], user.display().to_string());
        assert_eq!(r.sources["filesystem"], "default");
    }

    #[test]
    fn workspace_config_is_read_and_may_not_loosen() {
        let dir = tempdir();
        std::fs::create_dir(dir.path().join(".moat")).unwrap();
        std::fs::write(dir.path().join(".moat/config.toml"), "network = \"on\"\n").unwrap();
        let err = resolve(&Request {
            workspace: dir.path().to_owned(),
            ..Request::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("may only tighten"), "{err}");
    }

    #[test]
    fn unknown_profile_is_an_error() {
        let dir = tempdir();
        let err = resolve(&Request {
            workspace: dir.path().to_owned(),
            profile: Some("ci".into()),
            ..Request::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("profile 'ci'"));
    }
}
