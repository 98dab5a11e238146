//! Process-level escape attempts: privileges, other processes, signals, lifetimes, IPC.
//!
//! Cases (each as root and as user): capabilities_dropped, own_session,
//! read_host_environ, kill_host_process, ptrace_init, orphans_killed, die_with_parent,
//! timeout_kills_tree, sysv_ipc_isolated.

#[macro_use]
mod common;

use common::{Harness, HostChild, kill_marker, read_json, survivors_after, wait_for_file};
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long processes may take to disappear after moat returns or is killed.
const GRACE: Duration = Duration::from_secs(5);

/// Starts `sleep 120` on the host as the test uid, with an extra environment variable.
fn host_sleeper(h: &Harness, env: (&str, &str)) -> HostChild {
    let child = h
        .host_command("/bin/sleep")
        .arg("120")
        .env(env.0, env.1)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn host sleep");
    HostChild(child)
}

/// Fails with the survivors' command lines, after killing them.
#[track_caller]
fn assert_no_survivors(marker: &str, why: &dyn std::fmt::Display) {
    let left = survivors_after(marker, GRACE);
    kill_marker(marker);
    assert!(
        left.is_empty(),
        "processes survived the sandbox: {left:?}{why}"
    );
}

sandbox_test!(capabilities_dropped, |h: &Harness| {
    let out = h.run(&["cat", "/proc/self/status"]).output();
    out.ok();
    let field = |name: &str| -> String {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status{out}"))
    };
    for cap in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(cap), "0000000000000000", "{cap} is not empty{out}");
    }
    assert_eq!(field("NoNewPrivs:"), "1", "no_new_privs is not set{out}");
    assert_eq!(field("Seccomp:"), "2", "no seccomp filter{out}");
});

sandbox_test!(own_session, |h: &Harness| {
    // The shell reads its own /proc/self/stat (builtin read, no fork): field 6 is the session.
    let out = h
        .sh("read pid comm state ppid pgrp sid rest < /proc/self/stat; echo \"pid=$pid sid=$sid\"")
        .output();
    out.ok();
    let line = out.stdout.trim();
    let (pid, sid) = line
        .strip_prefix("pid=")
        .and_then(|r| r.split_once(" sid="))
        .unwrap_or_else(|| panic!("unexpected output{out}"));
    assert_eq!(pid, sid, "the command is not a session leader{out}");
    assert_ne!(
        pid, "1",
        "the command runs as pid 1 (moat's init should){out}"
    );
});

sandbox_test!(read_host_environ, |h: &Harness| {
    let secret = h.unique("secret");
    let mut sleeper = host_sleeper(h, ("SECRET_MARKER", &secret));
    // The secret is readable on the host by this uid: only the sandbox can hide it.
    // (Polled: right after spawn, setpriv may not have exec'd sleep yet.)
    let environ = format!("/proc/{}/environ", sleeper.0.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let host_env = String::from_utf8_lossy(&fs::read(&environ).unwrap()).into_owned();
        if host_env.contains(&secret) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "host environ lacks {secret}: {host_env:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (a, b) = secret.split_at(6);
    let out = h
        .sh(&format!(
            "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q \"{a}\"\"{b}\" && echo FOUND; \
             cat /proc/self/environ | tr '\\0' '\\n' | grep -q '^HOME=' && echo SELF_OK; \
             echo PIDS=$(ls /proc | grep -c '^[0-9][0-9]*$')"
        ))
        .output();
    out.stdout_lacks("FOUND").stdout_has("SELF_OK");
    let pids: u32 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("PIDS="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no PIDS line{out}"));
    assert!(
        (1..10).contains(&pids),
        "/proc inside lists {pids} processes{out}"
    );
    assert!(sleeper.alive());
});

sandbox_test!(kill_host_process, |h: &Harness| {
    let mut sleeper = host_sleeper(h, ("X", "1"));
    let pid = sleeper.0.id().to_string();
    let out = h.probe(&["kill_pid", &pid]).output();
    let out2 = h.probe(&["ptrace_attach", &pid]).output();
    let out3 = h.sh(&format!("kill -9 {pid} && echo KILLED")).output();
    assert!(
        sleeper.alive(),
        "the host process was killed from inside{out}{out2}{out3}"
    );
    out.code(0).stdout_has("kill_pid: E");
    out2.code(0).stdout_has("ptrace_attach: E");
    out3.stdout_lacks("KILLED");
});

sandbox_test!(ptrace_init, |h: &Harness| {
    h.sh("echo PID=$$").output().ok().stdout_lacks("PID=1\n");
    h.probe(&["ptrace_attach", "1"])
        .output()
        .code(0)
        .stdout_has("ptrace_attach: E");
});

sandbox_test!(orphans_killed, |h: &Harness| {
    let marker = h.unique("orphan");
    let out = h
        .sh(&format!(
            "setsid sh -c 'touch started; sleep 300; : {marker}' </dev/null >/dev/null 2>&1 & \
             nohup sh -c 'sleep 300; : {marker}' </dev/null >/dev/null 2>&1 & \
             while [ ! -e started ]; do sleep 0.05; done; echo LAUNCHED"
        ))
        .output();
    assert!(h.ws.join("started").exists(), "the orphan never ran{out}");
    assert_no_survivors(&marker, &out);
    out.ok().stdout_has("LAUNCHED");
});

sandbox_test!(die_with_parent, |h: &Harness| {
    let marker = h.unique("dwp");
    let mut running = h
        .sh(&format!(
            "exec </dev/null >/dev/null 2>&1; sh -c 'sleep 300; : {marker}' & \
             touch started; sleep 300; : {marker}"
        ))
        .spawn();
    wait_for_file(&h.ws.join("started"), &mut running);
    running.signal(libc::SIGKILL);
    let out = running.wait();
    assert_eq!(out.signal, Some(libc::SIGKILL), "moat was not killed{out}");
    assert_no_survivors(&marker, &out);
});

sandbox_test!(timeout_kills_tree, |h: &Harness| {
    let marker = h.unique("timeout");
    let report = h.report_path();
    // The background tree ignores SIGTERM, so moat has to escalate to SIGKILL.
    let out = h
        .sh(&format!(
            "sh -c 'trap \"\" TERM; sleep 100; : {marker}' & sleep 100; : {marker}"
        ))
        .flags(&[
            "--timeout".as_ref(),
            "1".as_ref(),
            "--report".as_ref(),
            report.as_os_str(),
        ])
        .output();
    assert_no_survivors(&marker, &out);
    out.code(124);
    let json = read_json(&report);
    assert_eq!(json["timed_out"], serde_json::json!(true), "report: {json}");
});

/// Removes a host SysV shared memory segment when dropped.
struct ShmGuard(String);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = Command::new("ipcrm").args(["-m", &self.0]).output();
    }
}

sandbox_test!(sysv_ipc_isolated, |h: &Harness| {
    let Ok(made) = Command::new("ipcmk")
        .args(["-M", "4096", "-p", "0666"])
        .output()
    else {
        println!("skipped: ipcmk (util-linux) is not installed");
        return;
    };
    assert!(made.status.success(), "ipcmk failed: {made:?}");
    let text = String::from_utf8_lossy(&made.stdout).into_owned();
    let id = text.rsplit(':').next().unwrap().trim().to_string();
    let _guard = ShmGuard(id.clone());
    let host = String::from_utf8_lossy(&Command::new("ipcs").arg("-m").output().unwrap().stdout)
        .into_owned();
    let key = host
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(id.as_str()))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("segment {id} not listed on the host: {host}"))
        .to_string();
    let out = h.sh("ipcs -m; cat /proc/sysvipc/shm").output();
    out.stdout_has("Shared Memory").stdout_lacks(&key);
    let decimal = u64::from_str_radix(key.trim_start_matches("0x"), 16)
        .unwrap()
        .to_string();
    assert!(
        !out.stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some(decimal.as_str())),
        "the host segment is visible in /proc/sysvipc/shm{out}"
    );
});
