//! The built-in lists: protected paths, secrets and tool caches.
//!
//! Each list is data, reviewed here in one place. Users extend them through the config
//! file and flags; removing a default protected path takes an explicit flag.

/// Entries protected at the root of every writable root: agent and IDE configuration
/// and shell rc files, which run code the next time the user (or an agent) starts.
/// `(name, is_directory)`: missing ones get a placeholder of that kind.
pub const PROTECTED_AT_ROOT: &[(&str, bool)] = &[
    (".moat", true),
    (".codex", true),
    (".claude", true),
    (".agents", true),
    (".mcp.json", false),
    (".vscode", true),
    (".idea", true),
    (".envrc", false),
    (".bashrc", false),
    (".bash_profile", false),
    (".zshrc", false),
    (".zprofile", false),
    (".profile", false),
    (".gitconfig", false),
];

/// Entries protected inside every git directory: hooks run on `git commit`, and the
/// config can name programs (`core.fsmonitor`, `core.hooksPath`, filters).
pub const PROTECTED_IN_GIT_DIR: &[(&str, bool)] = &[("hooks", true), ("config", false)];

/// Entries protected in every git work tree: `.gitmodules` can point submodule
/// updates at attacker-chosen URLs and paths.
pub const PROTECTED_IN_WORK_TREE: &[(&str, bool)] = &[(".gitmodules", false)];

/// Secret paths, relative to the home directory. A denied read sees an empty
/// directory or an empty file.
pub const SECRETS_IN_HOME: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube",
    ".docker/config.json",
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".config/gh",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials.toml",
    ".cargo/credentials",
    ".password-store",
    ".local/share/keyrings",
    ".vault-token",
    ".terraform.d/credentials.tfrc.json",
    // Browser profiles: cookies and saved passwords.
    ".mozilla",
    ".thunderbird",
    "snap/firefox/common/.mozilla",
    ".var/app/org.mozilla.firefox",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".config/microsoft-edge",
    ".config/vivaldi",
    ".config/opera",
    ".var/app/com.google.Chrome",
    ".var/app/org.chromium.Chromium",
];

/// Tool caches, relative to the home directory. The command sees them writable, but
/// its writes land in a per-workspace copy-on-write layer, never in the real cache.
pub const CACHES_IN_HOME: &[&str] = &[
    ".cache",
    ".cargo/registry",
    ".cargo/git",
    ".npm",
    "go/pkg/mod",
    ".m2",
];
