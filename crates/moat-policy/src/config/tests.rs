use super::*;

fn base() -> (SandboxPolicy, Sources) {
    (
        SandboxPolicy::with_home("/home/u/p".into(), Some(Path::new("/home/u"))),
        default_sources(),
    )
}

fn ws() -> Origin {
    Origin::Workspace("/home/u/p/.moat/config.toml".into())
}

fn user() -> Origin {
    Origin::User("/home/u/.config/moat/config.toml".into())
}

fn layer(text: &str) -> Layer {
    parse(text, Path::new("test.toml")).unwrap()
}

#[test]
fn user_config_sets_values_and_records_sources() {
    let (mut p, mut s) = base();
    let l = layer(
        "network = \"on\"\ntimeout = 30\nwritable = [\"~/out\"]\nenv-keep = [\"GITHUB_TOKEN\"]\n",
    );
    apply(
        &mut p,
        &mut s,
        &l,
        &user(),
        None,
        Some(Path::new("/home/u")),
    )
    .unwrap();
    assert_eq!(p.network, NetworkMode::On);
    assert_eq!(p.timeout, Some(Duration::from_secs(30)));
    assert_eq!(p.extra_writable, vec![PathBuf::from("/home/u/out")]);
    assert_eq!(p.env.keep, vec!["GITHUB_TOKEN".to_owned()]);
    assert!(s["network"].contains(".config/moat/config.toml"));
    assert_eq!(s["filesystem"], "default");
}

#[test]
fn profiles_apply_after_their_file() {
    let (mut p, mut s) = base();
    let l = layer("network = \"off\"\n[profile.ci]\nnetwork = \"on\"\ntimeout = 5\n");
    apply(&mut p, &mut s, &l, &user(), Some("ci"), None).unwrap();
    assert_eq!(p.network, NetworkMode::On);
    assert!(s["network"].ends_with("[profile.ci]"));
    assert!(has_profile(&l, "ci"));
    assert!(!has_profile(&l, "nope"));
}

#[test]
fn workspace_config_may_tighten() {
    let (mut p, mut s) = base();
    let l = layer(
        "filesystem = \"read-only\"\ntimeout = 10\nprotect = [\"secrets.env\", \"build/\"]\nsecrets = [\"/etc/app-key\"]\n",
    );
    apply(&mut p, &mut s, &l, &ws(), None, None).unwrap();
    assert_eq!(p.filesystem, FilesystemMode::ReadOnly);
    assert!(p.protected.at_root.contains(&("build".into(), true)));
    assert!(p.secrets.contains(&PathBuf::from("/etc/app-key")));
}

#[test]
fn workspace_config_can_never_loosen() {
    for text in [
        "network = \"on\"",
        "filesystem = \"full-access\"",
        "writable = [\"/home/u\"]",
        "unprotect = [\".vscode\"]",
        "protect-git = false",
        "scrub-env = false",
        "env-keep = [\"GITHUB_TOKEN\"]",
        "caches = [\"~/.gradle\"]",
        "[profile.x]\nnetwork = \"on\"",
    ] {
        let (mut p, mut s) = base();
        let l = layer(text);
        let profile = l.profile.as_ref().map(|_| "x");
        let err = apply(&mut p, &mut s, &l, &ws(), profile, None).unwrap_err();
        assert!(
            err.to_string().contains("may only tighten"),
            "{text}: {err}"
        );
    }
    let (mut p, mut s) = base();
    p.timeout = Some(Duration::from_secs(5));
    assert!(apply(&mut p, &mut s, &layer("timeout = 50"), &ws(), None, None).is_err());
}

#[test]
fn unknown_keys_report_file_line_and_column() {
    let err = parse(
        "network = \"off\"\n  netwrok = \"on\"\n",
        Path::new("/x/config.toml"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("/x/config.toml:2:3:"), "{msg}");
    assert!(msg.contains("netwrok"), "{msg}");
}

#[test]
fn bad_values_are_errors_not_panics() {
    for text in [
        "network = 1",
        "timeout = -1",
        "timeout = \"x\"",
        "filesystem = \"rw\"",
        "[[profile]]",
        "= =",
        "env = { \"1A\" = \"x\" }",
    ] {
        let parsed = parse(text, Path::new("c.toml"));
        if let Ok(l) = parsed {
            let (mut p, mut s) = base();
            assert!(
                apply(&mut p, &mut s, &l, &user(), None, None).is_err(),
                "{text}"
            );
        }
    }
    assert!(parse("[profile.a.profile.b]\nnetwork=\"on\"", Path::new("c.toml")).is_err());
}

#[test]
fn unprotect_needs_a_known_default() {
    let (mut p, mut s) = base();
    apply(
        &mut p,
        &mut s,
        &layer("unprotect = [\".vscode/\"]"),
        &user(),
        None,
        None,
    )
    .unwrap();
    assert!(!p.protected.at_root.iter().any(|(n, _)| n == ".vscode"));
    assert!(
        apply(
            &mut p,
            &mut s,
            &layer("unprotect = [\"src\"]"),
            &user(),
            None,
            None
        )
        .is_err()
    );
}

#[test]
fn paths_must_be_absolute_or_home_relative() {
    assert_eq!(
        expand("~/x", Some(Path::new("/h")), "l", "k").unwrap(),
        PathBuf::from("/h/x")
    );
    assert!(expand("x/y", Some(Path::new("/h")), "l", "k").is_err());
    assert!(expand("~/x", None, "l", "k").is_err());
    assert!(expand("/a\0b", None, "l", "k").is_err());
}
