//! Config files and the layering of policy sources.
//!
//! Sources, in order: built-in defaults, the user's `~/.config/moat/config.toml`, the
//! workspace's `.moat/config.toml`, then command-line flags. A `--profile NAME` applies
//! `[profile.NAME]` right after its file's top level. The workspace file arrives with
//! untrusted repositories, so it may only tighten: it can never add writable roots,
//! allow the network, keep secret variables, remove protections or add caches.
//!
//! Every value remembers where it came from, for `moat policy show`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{FilesystemMode, NetworkMode, PolicyError, SandboxPolicy, defaults};

/// One source's settings. Every key is optional; absent keys leave the value alone.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Layer {
    /// `read-only`, `workspace-write` or `full-access`.
    pub filesystem: Option<FilesystemMode>,
    /// `off` or `on`.
    pub network: Option<NetworkMode>,
    /// Seconds.
    pub timeout: Option<f64>,
    /// Extra writable roots (absolute or `~/`).
    pub writable: Option<Vec<String>>,
    /// Extra protected paths: names at the root of every writable root (a trailing `/`
    /// makes a missing one a directory placeholder), or absolute paths.
    pub protect: Option<Vec<String>>,
    /// Default protected names to remove (the explicit opt-out).
    pub unprotect: Option<Vec<String>>,
    /// Whether the git rules apply.
    pub protect_git: Option<bool>,
    /// Extra secret paths (absolute or `~/`).
    pub secrets: Option<Vec<String>>,
    /// Whether credential-like variables are removed.
    pub scrub_env: Option<bool>,
    /// Variables kept although they look like credentials.
    pub env_keep: Option<Vec<String>>,
    /// Variables set for the command.
    pub env: Option<BTreeMap<String, String>>,
    /// Extra tool caches (absolute or `~/`).
    pub caches: Option<Vec<String>>,
    /// Whether the tool caches are offered through a copy-on-write layer.
    pub cache_overlay: Option<bool>,
    /// Named profiles, each a layer of its own.
    pub profile: Option<BTreeMap<String, Layer>>,
}

/// Where a layer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The user's own config file (trusted).
    User(PathBuf),
    /// The workspace's config file (untrusted: may only tighten).
    Workspace(PathBuf),
    /// Command-line flags (trusted).
    Flags,
}

impl Origin {
    fn label(&self, profile: Option<&str>) -> String {
        let base = match self {
            Origin::User(p) | Origin::Workspace(p) => p.display().to_string(),
            Origin::Flags => "command line".to_owned(),
        };
        match profile {
            Some(name) => format!("{base} [profile.{name}]"),
            None => base,
        }
    }

    fn trusted(&self) -> bool {
        !matches!(self, Origin::Workspace(_))
    }
}

/// Where each policy value came from, by key.
pub type Sources = BTreeMap<&'static str, String>;

/// The sources of the built-in defaults.
pub fn default_sources() -> Sources {
    [
        "filesystem",
        "network",
        "timeout",
        "writable",
        "protect",
        "protect-git",
        "secrets",
        "scrub-env",
        "env-keep",
        "env",
        "caches",
    ]
    .into_iter()
    .map(|k| (k, "default".to_owned()))
    .collect()
}

/// Parses a config file's text. Errors name the file, line and column.
pub fn parse(text: &str, file: &Path) -> Result<Layer, PolicyError> {
    let layer: Layer = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        PolicyError::Config(format!(
            "{}:{line}:{col}: {}",
            file.display(),
            e.message().trim()
        ))
    })?;
    for (name, profile) in layer.profile.iter().flatten() {
        if profile.profile.is_some() {
            return Err(PolicyError::Config(format!(
                "{}: profile '{name}' contains profiles; profiles cannot nest",
                file.display()
            )));
        }
    }
    Ok(layer)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Applies `layer` (and, if named, its profile) on top of `policy`.
pub fn apply(
    policy: &mut SandboxPolicy,
    sources: &mut Sources,
    layer: &Layer,
    origin: &Origin,
    profile: Option<&str>,
    home: Option<&Path>,
) -> Result<(), PolicyError> {
    apply_one(
        policy,
        sources,
        layer,
        &origin.label(None),
        origin.trusted(),
        home,
    )?;
    if let Some(name) = profile
        && let Some(p) = layer.profile.as_ref().and_then(|ps| ps.get(name))
    {
        apply_one(
            policy,
            sources,
            p,
            &origin.label(Some(name)),
            origin.trusted(),
            home,
        )?;
    }
    Ok(())
}

/// Whether `layer` defines the profile `name` at all (for "unknown profile" errors).
pub fn has_profile(layer: &Layer, name: &str) -> bool {
    layer.profile.as_ref().is_some_and(|p| p.contains_key(name))
}

fn refuse(label: &str, key: &str, why: &str) -> PolicyError {
    PolicyError::Config(format!(
        "{label}: '{key}' {why}; a workspace config may only tighten the policy"
    ))
}

fn apply_one(
    policy: &mut SandboxPolicy,
    sources: &mut Sources,
    layer: &Layer,
    label: &str,
    trusted: bool,
    home: Option<&Path>,
) -> Result<(), PolicyError> {
    if !trusted {
        check_tightens(policy, layer, label)?;
    }
    let mut mark = |key: &'static str| {
        sources.insert(key, label.to_owned());
    };
    if let Some(fs) = layer.filesystem {
        policy.filesystem = fs;
        mark("filesystem");
    }
    if let Some(net) = layer.network {
        policy.network = net;
        mark("network");
    }
    if let Some(secs) = layer.timeout {
        policy.timeout = Some(seconds(secs, label)?);
        mark("timeout");
    }
    if let Some(list) = &layer.writable {
        for p in list {
            policy
                .extra_writable
                .push(expand(p, home, label, "writable")?);
        }
        mark("writable");
    }
    apply_protection(policy, layer, label, &mut mark)?;
    if let Some(list) = &layer.secrets {
        for p in list {
            policy.secrets.push(expand(p, home, label, "secrets")?);
        }
        mark("secrets");
    }
    apply_env(policy, layer, label, &mut mark)?;
    if let Some(list) = &layer.caches {
        for p in list {
            policy.caches.push(expand(p, home, label, "caches")?);
        }
        mark("caches");
    }
    if layer.cache_overlay == Some(false) {
        policy.caches.clear();
        mark("caches");
    }
    Ok(())
}

fn apply_protection(
    policy: &mut SandboxPolicy,
    layer: &Layer,
    label: &str,
    mark: &mut impl FnMut(&'static str),
) -> Result<(), PolicyError> {
    if let Some(list) = &layer.protect {
        for entry in list {
            if entry.starts_with('/') {
                policy.protected.paths.push(PathBuf::from(entry));
            } else if entry.is_empty() || entry.contains("..") {
                return Err(PolicyError::Config(format!(
                    "{label}: protect entry '{entry}' is not a plain name or an absolute path"
                )));
            } else {
                let dir = entry.ends_with('/');
                policy
                    .protected
                    .at_root
                    .push((entry.trim_end_matches('/').to_owned(), dir));
            }
        }
        mark("protect");
    }
    if let Some(list) = &layer.unprotect {
        for name in list {
            let name = name.trim_end_matches('/');
            if !defaults::PROTECTED_AT_ROOT.iter().any(|(n, _)| *n == name) {
                return Err(PolicyError::Config(format!(
                    "{label}: unprotect '{name}' is not a default protected name"
                )));
            }
            policy.protected.at_root.retain(|(n, _)| n != name);
        }
        mark("protect");
    }
    if let Some(git) = layer.protect_git {
        policy.protected.git = git;
        mark("protect-git");
    }
    Ok(())
}

fn apply_env(
    policy: &mut SandboxPolicy,
    layer: &Layer,
    label: &str,
    mark: &mut impl FnMut(&'static str),
) -> Result<(), PolicyError> {
    if let Some(scrub) = layer.scrub_env {
        policy.env.scrub = scrub;
        mark("scrub-env");
    }
    if let Some(keep) = &layer.env_keep {
        for name in keep {
            if !crate::env::is_valid_name(name) {
                return Err(PolicyError::Config(format!(
                    "{label}: env-keep '{name}' is not a variable name"
                )));
            }
            policy.env.keep.push(name.clone());
        }
        mark("env-keep");
    }
    if let Some(set) = &layer.env {
        for (k, v) in set {
            if !crate::env::is_valid_name(k) {
                return Err(PolicyError::Config(format!(
                    "{label}: env '{k}' is not a variable name"
                )));
            }
            policy.env.set.retain(|(name, _)| name != k);
            policy.env.set.push((k.clone(), v.clone()));
        }
        mark("env");
    }
    Ok(())
}

/// The workspace file's restrictions: anything that widens access is refused.
fn check_tightens(policy: &SandboxPolicy, layer: &Layer, label: &str) -> Result<(), PolicyError> {
    if layer.filesystem.is_some_and(|fs| fs > policy.filesystem) {
        return Err(refuse(label, "filesystem", "widens filesystem access"));
    }
    if layer.network.is_some_and(|n| n > policy.network) {
        return Err(refuse(label, "network", "turns the network on"));
    }
    if let (Some(t), Some(current)) = (layer.timeout, policy.timeout)
        && t > current.as_secs_f64()
    {
        return Err(refuse(label, "timeout", "raises the timeout"));
    }
    let forbidden = [
        ("writable", layer.writable.is_some(), "adds writable roots"),
        (
            "unprotect",
            layer.unprotect.is_some(),
            "removes protections",
        ),
        (
            "protect-git",
            layer.protect_git == Some(false),
            "removes the git protections",
        ),
        (
            "scrub-env",
            layer.scrub_env == Some(false),
            "exposes secret variables",
        ),
        (
            "env-keep",
            layer.env_keep.is_some(),
            "exposes secret variables",
        ),
        ("env", layer.env.is_some(), "sets variables"),
        ("caches", layer.caches.is_some(), "adds writable caches"),
        (
            "cache-overlay",
            layer.cache_overlay == Some(true),
            "adds writable caches",
        ),
    ];
    for (key, present, why) in forbidden {
        if present {
            return Err(refuse(label, key, why));
        }
    }
    Ok(())
}

fn seconds(secs: f64, label: &str) -> Result<Duration, PolicyError> {
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(PolicyError::Config(format!(
            "{label}: timeout must be a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Expands `~/` and requires an absolute path.
pub fn expand(
    p: &str,
    home: Option<&Path>,
    label: &str,
    key: &str,
) -> Result<PathBuf, PolicyError> {
    if p.contains('\0') {
        return Err(PolicyError::Config(format!(
            "{label}: {key} entry contains a NUL byte"
        )));
    }
    if p == "~" || p.starts_with("~/") {
        let home = home.ok_or_else(|| {
            PolicyError::Config(format!("{label}: {key} '{p}' uses ~ but HOME is not set"))
        })?;
        return Ok(home.join(p.trim_start_matches('~').trim_start_matches('/')));
    }
    if !p.starts_with('/') {
        return Err(PolicyError::Config(format!(
            "{label}: {key} '{p}' must be absolute or start with ~/"
        )));
    }
    Ok(PathBuf::from(p))
}

#[cfg(test)]
mod tests;
