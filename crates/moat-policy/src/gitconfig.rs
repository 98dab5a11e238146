//! Removes the settings that make git run programs from a repository's config.
//!
//! Repositories that already existed when a run started have their `config` protected
//! read-only. Repositories the command created during the run (`git init`, `git clone`)
//! are allowed, but their config is cleaned afterwards: otherwise a command could leave
//! `core.fsmonitor = ./evil` behind, and the user's next `git status` would run it.

/// Keys (lower-case `section.key`, or `section.*.key` for any subsection) that name a
/// program git runs.
const DANGEROUS_KEYS: &[&str] = &[
    "core.hookspath",
    "core.fsmonitor",
    "core.sshcommand",
    "core.pager",
    "core.editor",
    "core.askpass",
    "core.gitproxy",
    "sequence.editor",
    "diff.external",
    "gpg.program",
    "gpg.*.program",
    "credential.helper",
    "credential.*.helper",
    "uploadpack.packobjectshook",
    "include.path",
    "includeif.*.path",
];

/// Sections whose every key is dangerous: drivers and per-command pagers.
const DANGEROUS_SECTIONS: &[&str] = &[
    "filter",
    "diff",
    "merge",
    "pager",
    "difftool",
    "mergetool",
    "include",
    "includeif",
];

/// Whether a whole subsection (`[filter "lfs"]`) is dangerous. Plain `[diff]` carries
/// harmless settings (`algorithm`), so only subsections go, plus `include`/`pager`.
fn section_is_dangerous(section: &str, subsection: Option<&str>) -> bool {
    match section {
        "include" | "includeif" | "pager" => true,
        _ => subsection.is_some() && DANGEROUS_SECTIONS.contains(&section),
    }
}

fn key_is_dangerous(section: &str, subsection: Option<&str>, key: &str) -> bool {
    let plain = format!("{section}.{key}");
    let any_sub = format!("{section}.*.{key}");
    DANGEROUS_KEYS.iter().any(|k| match subsection {
        None => *k == plain,
        Some(_) => *k == any_sub,
    })
}

/// Parses a section header line into (section, subsection), lower-casing the section.
fn parse_header(line: &str) -> Option<(String, Option<String>)> {
    let inner = line.trim().strip_prefix('[')?;
    let end = inner.rfind(']')?;
    let inner = inner[..end].trim();
    if let Some((name, rest)) = inner.split_once(char::is_whitespace) {
        let sub = rest.trim().trim_matches('"').to_owned();
        return Some((name.to_ascii_lowercase(), Some(sub)));
    }
    // The deprecated `[section.subsection]` form.
    match inner.split_once('.') {
        Some((name, sub)) => Some((name.to_ascii_lowercase(), Some(sub.to_owned()))),
        None => Some((inner.to_ascii_lowercase(), None)),
    }
}

/// The result of cleaning one config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// The new file contents.
    pub text: String,
    /// The removed keys, as `section[.subsection].key`.
    pub removed: Vec<String>,
}

/// Removes every dangerous key and section from the text of a git config file.
pub fn clean(text: &str) -> Cleaned {
    let mut out = String::with_capacity(text.len());
    let mut removed = Vec::new();
    let mut section: Option<(String, Option<String>)> = None;
    let mut drop_section = false;
    let mut continuing_drop = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if continuing_drop {
            continuing_drop = line.trim_end().ends_with('\\');
            continue;
        }
        if trimmed.starts_with('[') {
            section = parse_header(trimmed);
            drop_section = section
                .as_ref()
                .is_some_and(|(s, sub)| section_is_dangerous(s, sub.as_deref()));
            if drop_section {
                let (s, sub) = section.clone().unwrap_or_default();
                removed.push(match sub {
                    Some(sub) => format!("[{s} \"{sub}\"]"),
                    None => format!("[{s}]"),
                });
                // A header may carry a key on the same line: `[core] editor = x`.
                continue;
            }
            out.push_str(line);
            continue;
        }
        if drop_section {
            continue;
        }
        let key = trimmed
            .split(['=', ' ', '\t', '\r', '\n'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_entry = !key.is_empty() && !key.starts_with('#') && !key.starts_with(';');
        if is_entry
            && let Some((s, sub)) = &section
            && key_is_dangerous(s, sub.as_deref(), &key)
        {
            removed.push(match sub {
                Some(sub) => format!("{s}.{sub}.{key}"),
                None => format!("{s}.{key}"),
            });
            continuing_drop = line.trim_end().ends_with('\\');
            continue;
        }
        out.push_str(line);
    }
    Cleaned { text: out, removed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_init_config_is_untouched() {
        let text = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n";
        let c = clean(text);
        assert_eq!(c.text, text);
        assert!(c.removed.is_empty());
    }

    #[test]
    fn code_running_keys_are_removed() {
        let text = "[core]\n\tbare = false\n\thooksPath = /tmp/h\n\tfsmonitor = ./x\n\tsshCommand = evil\n\tpager = less\n\teditor = vim\n[user]\n\tname = a\n";
        let c = clean(text);
        assert_eq!(c.text, "[core]\n\tbare = false\n[user]\n\tname = a\n");
        assert_eq!(
            c.removed,
            vec![
                "core.hookspath",
                "core.fsmonitor",
                "core.sshcommand",
                "core.pager",
                "core.editor"
            ]
        );
    }

    #[test]
    fn driver_sections_and_includes_are_removed() {
        let text = "[filter \"lfs\"]\n\tclean = evil %f\n[diff]\n\talgorithm = histogram\n[diff \"bin\"]\n\ttextconv = evil\n[merge \"m\"]\n\tdriver = evil\n[include]\n\tpath = ../x\n[includeIf \"gitdir:/\"]\n\tpath = y\n[remote \"origin\"]\n\turl = u\n";
        let c = clean(text);
        assert_eq!(
            c.text,
            "[diff]\n\talgorithm = histogram\n[remote \"origin\"]\n\turl = u\n"
        );
        assert_eq!(c.removed.len(), 5);
    }

    #[test]
    fn continuation_lines_go_with_their_key_and_case_is_ignored() {
        let text = "[CORE]\n\tFSMonitor = a \\\n  b\n\tbare = false\n[credential \"https://x\"]\n\thelper = store\n";
        let c = clean(text);
        assert_eq!(
            c.text,
            "[CORE]\n\tbare = false\n[credential \"https://x\"]\n"
        );
        assert_eq!(
            c.removed,
            vec!["core.fsmonitor", "credential.https://x.helper"]
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for text in [
            "[",
            "[]",
            "[core\n\teditor=x",
            "=\n",
            "\\\n\\",
            "[a \"b]\nx=y",
            "\u{feff}[core]\neditor=x",
        ] {
            let _ = clean(text);
        }
    }
}
