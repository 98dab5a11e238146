//! Dangerous system calls, tried with the probe fixture (tests/fixtures/probe.c).
//!
//! Cases (each as root and as user): io_uring_setup, keyctl, add_key, bpf,
//! perf_event_open, userfaultfd, clone3_enosys, unshare_user, clone_newuser, open_tree,
//! fsopen, chroot, pivot_root, setns, setns_init_mnt, x32_killed, tiocsti, tiocsti_hi,
//! tioclinux. The terminal cases run moat under `script` so that it has a terminal, and
//! check that the probe's stdin really is one (a refusal with ENOTTY would prove nothing).
//! Checked against a non-sandboxing stand-in (env MOAT_TEST_BINARY), every case fails as
//! root; as an unprivileged user bpf, chroot, fsopen, open_tree, pivot_root and setns are
//! refused by the kernel anyway (they still catch a sandbox that leaves capabilities in
//! its user namespace).

#[macro_use]
mod common;

use common::{Harness, probe_path};

/// Runs the probe with `args` and asserts it reported a refusal.
fn refused(h: &Harness, args: &[&str]) {
    let out = h.probe(args).output();
    out.code(0).stdout_has(&format!("{}: E", args[0]));
}

/// Runs the probe under a pty and asserts a refusal that did not come from the tty
/// driver (ENOTTY or EINVAL would mean the ioctl reached it).
fn refused_on_tty(h: &Harness, sub: &str) {
    let probe = probe_path().display().to_string();
    let out = h
        .sh(&format!(
            "test -t 0 && echo STDIN_IS_TTY; exec {probe} {sub}"
        ))
        .pty()
        .output();
    out.code(0)
        .stdout_has("STDIN_IS_TTY")
        .stdout_has(&format!("{sub}: E"))
        .stdout_lacks("ENOTTY")
        .stdout_lacks("EINVAL");
}

macro_rules! probe_refused {
    ($name:ident, $($arg:literal),+) => {
        sandbox_test!($name, |h: &Harness| refused(h, &[$($arg),+]));
    };
}

probe_refused!(io_uring_setup, "io_uring_setup");
probe_refused!(keyctl, "keyctl");
probe_refused!(add_key, "add_key");
probe_refused!(bpf, "bpf");
probe_refused!(perf_event_open, "perf_event_open");
probe_refused!(userfaultfd, "userfaultfd");
probe_refused!(unshare_user, "unshare_user");
probe_refused!(clone_newuser, "clone_newuser");
probe_refused!(open_tree, "open_tree");
probe_refused!(fsopen, "fsopen");
probe_refused!(chroot, "chroot");
probe_refused!(pivot_root, "pivot_root");
probe_refused!(setns, "setns");
probe_refused!(setns_init_mnt, "setns", "/proc/1/ns/mnt");

sandbox_test!(clone3_enosys, |h: &Harness| {
    // clone3 takes its flags in memory seccomp cannot read: it must fail with ENOSYS
    // so that libc falls back to clone(), whose flags the filter can check.
    h.probe(&["clone3"])
        .output()
        .code(0)
        .stdout_has("clone3: ENOSYS");
});

sandbox_test!(x32_killed, |h: &Harness| {
    let out = h.probe(&["x32"]).output();
    let killed = out.code == Some(128 + libc::SIGSYS)
        || out.stderr.contains("SIGSYS")
        || out.stderr.contains("Bad system call");
    assert!(
        killed,
        "an x32 system call did not kill the probe with SIGSYS{out}"
    );
});

sandbox_test!(tiocsti, |h: &Harness| refused_on_tty(h, "tiocsti"));
sandbox_test!(tiocsti_hi, |h: &Harness| refused_on_tty(h, "tiocsti_hi"));
// TIOCLINUX only acts on virtual consoles (a pty answers ENOTTY), so the filter must
// refuse it before it reaches any driver.
sandbox_test!(tioclinux, |h: &Harness| refused_on_tty(h, "tioclinux"));
