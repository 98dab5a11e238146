//! Environment scrubbing: variables whose names look like credentials are removed
//! before the command starts. The report lists the names removed, never the values.

use std::ffi::{OsStr, OsString};

/// Well-known credential variables that the patterns below do not catch.
const KNOWN_SECRETS: &[&str] = &[
    "SSH_AUTH_SOCK",
    "GPG_AGENT_INFO",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "NPM_TOKEN",
    "NODE_AUTH_TOKEN",
    "CARGO_REGISTRY_TOKEN",
    "TWINE_PASSWORD",
    "PYPI_TOKEN",
    "VAULT_TOKEN",
    "CONSUL_HTTP_TOKEN",
    "DOCKER_AUTH_CONFIG",
    "DIGITALOCEAN_ACCESS_TOKEN",
    "HEROKU_API_KEY",
    "SENTRY_AUTH_TOKEN",
    "SLACK_WEBHOOK_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "MONGODB_URI",
    "MYSQL_PWD",
    "PGPASSFILE",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_CLIENT_SECRET",
    "ARM_CLIENT_SECRET",
    "KRB5CCNAME",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "API_KEY",
    "APIKEY",
];

/// Whether a variable name looks like a credential: `*_TOKEN`, `*_SECRET*`, `*_KEY`,
/// `*PASSWORD*`, `*PASSWD*`, `*_CREDENTIALS`, `*_API_KEY*`, or a well-known name.
/// Case-insensitive, because programs read `github_token` as readily.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.ends_with("_TOKEN")
        || upper.contains("_SECRET")
        || upper.ends_with("_KEY")
        || upper.contains("_API_KEY")
        || upper.contains("PASSWORD")
        || upper.contains("PASSWD")
        || upper.ends_with("_CREDENTIALS")
        || upper.ends_with("_CREDENTIAL")
        || KNOWN_SECRETS.contains(&upper.as_str())
}

/// The result of scrubbing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scrubbed {
    /// The environment for the command.
    pub env: Vec<(OsString, OsString)>,
    /// The names removed, sorted, for the report (never the values).
    pub removed: Vec<String>,
}

/// Removes credential-like variables except those in `keep`, then applies `set`
/// (which wins over both).
pub fn scrub(
    env: Vec<(OsString, OsString)>,
    keep: &[String],
    set: &[(String, String)],
) -> Scrubbed {
    let mut removed = Vec::new();
    let mut out: Vec<(OsString, OsString)> = Vec::with_capacity(env.len());
    for (name, value) in env {
        let text = name.to_string_lossy();
        let kept = keep.iter().any(|k| OsStr::new(k) == name);
        let overridden = set.iter().any(|(k, _)| OsStr::new(k) == name);
        if overridden {
            continue;
        }
        if !kept && looks_secret(&text) {
            removed.push(text.into_owned());
            continue;
        }
        out.push((name, value));
    }
    out.extend(
        set.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    removed.sort();
    removed.dedup();
    Scrubbed { env: out, removed }
}

/// Parses `NAME=VALUE` (for `--env`). The name must be a valid variable name.
pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))?;
    if !is_valid_name(name) {
        return Err(format!("'{name}' is not a valid environment variable name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Whether `name` is a valid environment variable name (letters, digits and `_`, not
/// starting with a digit).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn credential_names_are_recognised() {
        for name in [
            "GITHUB_TOKEN",
            "MY_SECRET_THING",
            "STRIPE_SECRET",
            "DEPLOY_KEY",
            "DB_PASSWORD",
            "PGPASSWORD",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "SSH_AUTH_SOCK",
            "GPG_AGENT_INFO",
            "github_token",
            "OPENAI_API_KEY",
            "DATABASE_URL",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "TERM",
            "LANG",
            "CARGO_HOME",
            "KEYBOARD",
            "TOKENIZERS_PARALLELISM",
            "EDITOR",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn scrub_removes_names_keeps_values_out_of_the_report() {
        let s = scrub(
            env(&[
                ("PATH", "/bin"),
                ("GITHUB_TOKEN", "ghp_x"),
                ("AWS_SECRET_ACCESS_KEY", "y"),
            ]),
            &[],
            &[],
        );
        assert_eq!(s.env, env(&[("PATH", "/bin")]));
        assert_eq!(s.removed, vec!["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"]);
        assert!(!format!("{:?}", s.removed).contains("ghp_x"));
    }

    #[test]
    fn keep_and_set_override_scrubbing() {
        let s = scrub(
            env(&[("GITHUB_TOKEN", "a"), ("NPM_TOKEN", "b"), ("FOO", "old")]),
            &["GITHUB_TOKEN".into()],
            &[
                ("FOO".into(), "new".into()),
                ("API_TOKEN".into(), "explicit".into()),
            ],
        );
        assert_eq!(
            s.env,
            env(&[
                ("GITHUB_TOKEN", "a"),
                ("FOO", "new"),
                ("API_TOKEN", "explicit")
            ])
        );
        assert_eq!(s.removed, vec!["NPM_TOKEN"]);
    }

    #[test]
    fn assignments_are_validated() {
        assert_eq!(
            parse_assignment("A=b=c").unwrap(),
            ("A".into(), "b=c".into())
        );
        assert_eq!(parse_assignment("A=").unwrap(), ("A".into(), String::new()));
        assert!(parse_assignment("A").is_err());
        assert!(parse_assignment("=x").is_err());
        assert!(parse_assignment("1A=x").is_err());
        assert!(parse_assignment("A-B=x").is_err());
    }
}
