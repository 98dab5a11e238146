//! The `moat run` command line: policy flags, cwd rules, setup errors and the report.
//!
//! Cases (each as root and as user): network_on_reaches_host, writable_flag,
//! read_only_flag, full_access_flag, cwd_rules, default_workspace_is_cwd, report_json,
//! report_policy_fields, report_on_setup_failure, broad_workspace_refused,
//! writable_through_symlink_refused, network_bogus, conflicting_fs_flags.

#[macro_use]
mod common;

use common::{Harness, Out, PYTHON, read, read_json};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, lchown, symlink};
use std::time::Duration;

fn connect_code(port: u16) -> String {
    format!(
        "import socket\n\
         s = socket.socket(); s.settimeout(5)\n\
         try:\n    s.connect(('127.0.0.1', {port})); s.sendall(b'HELLO'); print('CONNECTED')\n\
         except OSError as e:\n    print('REFUSED', repr(e))\n"
    )
}

/// Asserts moat refused to set up the sandbox: exit 125 and a one-line `moat:` reason.
#[track_caller]
fn assert_setup_error(out: &Out) {
    out.code(125);
    let err = out.stderr.trim_end();
    assert!(
        err.starts_with("moat:") || err.lines().any(|l| l.starts_with("moat:")),
        "no `moat:` reason{out}"
    );
}

sandbox_test!(network_on_reaches_host, |h: &Harness| {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = h
        .run(&[PYTHON, "-c", &connect_code(port)])
        .flags(&["--network", "on"])
        .output();
    out.ok().stdout_has("CONNECTED");
    let (mut conn, _) = listener
        .accept()
        .unwrap_or_else(|e| panic!("nothing reached the host listener ({e}){out}"));
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"HELLO", "{out}");
});

sandbox_test!(writable_flag, |h: &Harness| {
    let out = h
        .sh(&format!(
            "echo x > {}/new && echo WROTE",
            h.outside.display()
        ))
        .flags(&[OsStr::new("--writable"), h.outside.as_os_str()])
        .output();
    out.ok().stdout_has("WROTE");
    let new = h.outside.join("new");
    assert_eq!(read(&new), "x\n", "{out}");
    assert_eq!(
        std::fs::metadata(&new).unwrap().uid(),
        h.uid,
        "owner of outside/new{out}"
    );
});

sandbox_test!(read_only_flag, |h: &Harness| {
    h.write(&h.ws.join("existing"), "data\n");
    let out = h
        .sh("cat existing; echo x > new && echo WROTE1; echo y >> existing && echo WROTE2; rm existing && echo WROTE3")
        .flags(&["--read-only"])
        .output();
    out.stdout_has("data").stdout_lacks("WROTE");
    assert!(
        !h.ws.join("new").exists(),
        "--read-only let the command create ws/new{out}"
    );
    assert_eq!(read(&h.ws.join("existing")), "data\n", "{out}");
});

sandbox_test!(full_access_flag, |h: &Harness| {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // The python code is the shell's $1.
    let code = connect_code(port);
    let script = format!(
        "echo x > {}/new && echo WROTE; {PYTHON} -c \"$1\"",
        h.outside.display()
    );
    let out = h
        .run(&["sh", "-c", &script, "sh", &code])
        .flags(&["--full-access"])
        .output();
    out.ok().stdout_has("WROTE").stdout_lacks("CONNECTED");
    assert_eq!(read(&h.outside.join("new")), "x\n", "{out}");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("--full-access opened the network: {other:?}{out}"),
    }
});

sandbox_test!(cwd_rules, |h: &Harness| {
    let ws = h.ws.display().to_string();
    let out = h.run(&["pwd"]).output();
    out.ok();
    assert_eq!(out.stdout.trim(), ws, "{out}");
    let sub = h.ws.join("sub/dir");
    h.mkdir(&h.ws.join("sub"));
    h.mkdir(&sub);
    let out = h.run(&["pwd"]).cwd(&sub).output();
    out.ok();
    assert_eq!(out.stdout.trim(), sub.display().to_string(), "{out}");
    // Started from outside the workspace: the command runs in the workspace.
    let out = h.run(&["pwd"]).cwd(&h.outside).output();
    out.ok();
    assert_eq!(out.stdout.trim(), ws, "{out}");
});

sandbox_test!(default_workspace_is_cwd, |h: &Harness| {
    let out = h
        .sh("touch made_here && echo MADE")
        .workspace(None)
        .output();
    out.ok().stdout_has("MADE");
    assert!(h.ws.join("made_here").exists(), "{out}");
    let sub = h.ws.join("sub");
    h.mkdir(&sub);
    let out = h
        .sh("touch inner && echo x > ../up && echo WROTE")
        .workspace(None)
        .cwd(&sub)
        .output();
    assert!(sub.join("inner").exists(), "{out}");
    assert!(
        !h.ws.join("up").exists(),
        "wrote outside the default workspace{out}"
    );
    out.stdout_lacks("WROTE");
});

/// Fetches a JSON path like "policy.network".
fn at<'v>(v: &'v Value, path: &str) -> &'v Value {
    path.split('.').fold(v, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("report lacks {path}: {v}"))
    })
}

/// Collects every mismatch between a report and the spec, then fails once with all.
struct Checks<'r> {
    report: &'r Value,
    problems: Vec<String>,
}

impl Checks<'_> {
    fn get(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(self.report, |v, k| v.get(k))
    }

    fn check(&mut self, path: &str, ok: impl FnOnce(&Value) -> bool, want: &str) {
        match self.get(path) {
            None => self.problems.push(format!("{path}: missing (want {want})")),
            Some(v) if !ok(v) => self.problems.push(format!("{path}: {v} (want {want})")),
            Some(_) => {}
        }
    }

    fn eq(&mut self, path: &str, want: Value) {
        let text = want.to_string();
        self.check(path, |v| *v == want, &text);
    }

    #[track_caller]
    fn finish(self) {
        assert!(
            self.problems.is_empty(),
            "the report does not match the spec:\n  {}\nreport: {}",
            self.problems.join("\n  "),
            self.report
        );
    }
}

sandbox_test!(report_json, |h: &Harness| {
    let report = h.report_path();
    let out = h
        .sh("exit 3")
        .flags(&[OsStr::new("--report"), report.as_os_str()])
        .output();
    out.code(3);
    let r = read_json(&report);
    let ws = h.ws.display().to_string();
    let mut c = Checks {
        report: &r,
        problems: Vec::new(),
    };
    c.eq("schema_version", json!(1));
    c.eq("argv", json!(["sh", "-c", "exit 3"]));
    c.eq("cwd", json!(ws));
    c.eq("policy.workspace", json!(ws));
    c.eq("policy.filesystem", json!("workspace-write"));
    c.eq("policy.extra_writable", json!([]));
    c.eq("policy.network", json!("off"));
    c.check("policy.timeout", Value::is_null, "null");
    c.eq("backend", json!("namespaces"));
    for want in ["user", "mount", "pid", "net", "ipc", "uts"] {
        c.check(
            "mechanisms.namespaces",
            |v| v.as_array().is_some_and(|a| a.contains(&json!(want))),
            &format!("a list containing {want:?}"),
        );
    }
    c.eq("mechanisms.no_new_privs", json!(true));
    for key in ["kernel_abi", "status", "fs_rights", "scopes", "error"] {
        c.check(&format!("mechanisms.landlock.{key}"), |_| true, "present");
    }
    c.eq("mechanisms.seccomp.name", json!("moat-default"));
    c.check("mechanisms.seccomp.version", |_| true, "present");
    c.check("mechanisms.seccomp.denied", Value::is_array, "a list");
    c.check(
        "mechanisms.mounts",
        |v| {
            v.as_array().is_some_and(|a| {
                !a.is_empty()
                    && a.iter()
                        .all(|m| m["target"].is_string() && m["kind"].is_string())
            })
        },
        "a non-empty list of {target, kind}",
    );
    c.check(
        "mechanisms.unix_sockets",
        |v| v.as_str().is_some_and(|s| s.contains("not mediated")),
        "a string containing \"not mediated\"",
    );
    c.eq("exit.code", json!(3));
    c.check("exit.signal", Value::is_null, "null");
    c.check(
        "duration_ms",
        |v| v.as_f64().is_some_and(|d| d >= 0.0),
        "a non-negative number",
    );
    c.eq("timed_out", json!(false));
    c.eq("exit_origin", json!("child"));
    c.finish();

    let out = h
        .sh("kill -9 $$")
        .flags(&[OsStr::new("--report"), report.as_os_str()])
        .output();
    out.code(137);
    let r = read_json(&report);
    let mut c = Checks {
        report: &r,
        problems: Vec::new(),
    };
    c.eq("exit.signal", json!(9));
    c.eq("exit_origin", json!("child"));
    c.finish();
});

sandbox_test!(report_policy_fields, |h: &Harness| {
    let report = h.report_path();
    let rep = [OsStr::new("--report"), report.as_os_str()];
    let outside = h.outside.display().to_string();
    h.run(&["true"])
        .flags(&rep)
        .flags(&[OsStr::new("--writable"), h.outside.as_os_str()])
        .flags(&["--network", "on", "--timeout", "30"])
        .output()
        .ok();
    let r = read_json(&report);
    assert_eq!(at(&r, "policy.extra_writable"), &json!([outside]), "{r}");
    assert_eq!(at(&r, "policy.network"), &json!("on"), "{r}");
    assert_eq!(at(&r, "policy.timeout").as_f64(), Some(30.0), "{r}");
    for (flag, name) in [
        ("--read-only", "read-only"),
        ("--full-access", "full-access"),
    ] {
        h.run(&["true"]).flags(&rep).flags(&[flag]).output().ok();
        let r = read_json(&report);
        assert_eq!(at(&r, "policy.filesystem"), &json!(name), "{r}");
    }
});

sandbox_test!(report_on_setup_failure, |h: &Harness| {
    let report = h.report_path();
    let missing = h.dir.join("no-such-workspace");
    let out = h
        .run(&["true"])
        .workspace(Some(missing.as_os_str()))
        .cwd(&h.dir)
        .flags(&[OsStr::new("--report"), report.as_os_str()])
        .output();
    assert_setup_error(&out);
    let r = read_json(&report);
    assert_eq!(r["exit_origin"], json!("moat"), "{r}");
    assert_eq!(at(&r, "exit.code"), &json!(125), "{r}");
});

sandbox_test!(broad_workspace_refused, |h: &Harness| {
    let out = h
        .sh("echo x > ws/pwned")
        .workspace(Some(OsStr::new("/")))
        .output();
    assert_setup_error(&out);
    assert!(!h.ws.join("pwned").exists(), "{out}");
    let out = h
        .run(&["true"])
        .workspace(Some(OsStr::new("/")))
        .flags(&["--allow-broad-workspace", "--read-only"])
        .output();
    out.ok();
});

sandbox_test!(writable_through_symlink_refused, |h: &Harness| {
    let link = h.ws.join("out");
    symlink("../outside", &link).unwrap();
    lchown(&link, Some(h.uid), Some(h.gid)).unwrap();
    let out = h
        .sh("echo x > out/pwned")
        .flags(&[OsStr::new("--writable"), link.as_os_str()])
        .output();
    assert_setup_error(&out);
    assert!(
        out.stderr.to_lowercase().contains("symlink"),
        "the reason does not mention the symlink{out}"
    );
    assert!(!h.outside.join("pwned").exists(), "{out}");
});

sandbox_test!(network_bogus, |h: &Harness| {
    let out = h.sh("echo RAN").flags(&["--network", "bogus"]).output();
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "--network bogus was accepted{out}"
    );
    out.stdout_lacks("RAN");
    assert!(
        out.stderr.contains("bogus") || out.stderr.contains("network"),
        "unclear message{out}"
    );
});

sandbox_test!(conflicting_fs_flags, |h: &Harness| {
    let out = h
        .sh("echo RAN")
        .flags(&["--read-only", "--full-access"])
        .output();
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "--read-only --full-access was accepted{out}"
    );
    out.stdout_lacks("RAN");
});
