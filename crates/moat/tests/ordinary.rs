//! Ordinary development work that must keep working inside the sandbox.
//!
//! Cases (each as root and as user): ws_write_move_delete, exit_codes_0_and_7,
//! exit_126_not_executable, exit_127_not_found, killed_by_signal, stdin_piped,
//! large_stdout, read_system_files, temp_files, git_workflow, python_venv, compile_c,
//! tcp_server_inside, unix_socket_in_ws, python_multiprocessing, pipeline, strace_child,
//! gdb_batch, signal_forwarding, pty_tty.

#[macro_use]
mod common;

use common::{Harness, PYTHON, read, wait_for_file};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Asserts a host file exists, has these contents and belongs to the test uid.
#[track_caller]
fn assert_file(h: &Harness, path: &Path, contents: &str, why: &dyn std::fmt::Display) {
    assert!(
        path.exists(),
        "{} is missing on the host{why}",
        path.display()
    );
    assert_eq!(
        read(path),
        contents,
        "{} has the wrong contents{why}",
        path.display()
    );
    let owner = fs::metadata(path).unwrap().uid();
    assert_eq!(
        owner,
        h.uid,
        "{} is owned by uid {owner} on the host{why}",
        path.display()
    );
}

sandbox_test!(ws_write_move_delete, |h: &Harness| {
    h.write(&h.ws.join("old.txt"), "old\n");
    let out = h
        .sh("echo hello > a.txt && mkdir -p d/e && mv a.txt d/e/b.txt && echo keep > c.txt \
             && echo del > gone.txt && rm gone.txt && rm old.txt && cp c.txt d/copy.txt && echo DONE")
        .output();
    out.ok().stdout_has("DONE");
    assert_file(h, &h.ws.join("d/e/b.txt"), "hello\n", &out);
    assert_file(h, &h.ws.join("c.txt"), "keep\n", &out);
    assert_file(h, &h.ws.join("d/copy.txt"), "keep\n", &out);
    for gone in ["a.txt", "gone.txt", "old.txt"] {
        assert!(
            !h.ws.join(gone).exists(),
            "{gone} still exists on the host{out}"
        );
    }
});

sandbox_test!(exit_codes_0_and_7, |h: &Harness| {
    h.run(&["true"]).output().code(0);
    h.sh("exit 7").output().code(7);
    h.run(&["false"]).output().code(1);
});

sandbox_test!(exit_126_not_executable, |h: &Harness| {
    h.write(&h.ws.join("script.sh"), "#!/bin/sh\necho ran\n");
    h.run(&["./script.sh"])
        .output()
        .code(126)
        .stdout_lacks("ran");
});

sandbox_test!(exit_127_not_found, |h: &Harness| {
    h.run(&["moat-no-such-command-xyz"]).output().code(127);
    h.run(&["./missing-file"]).output().code(127);
});

sandbox_test!(killed_by_signal, |h: &Harness| {
    h.sh("kill -9 $$").output().code(137);
    h.sh("kill -TERM $$").output().code(143);
});

sandbox_test!(stdin_piped, |h: &Harness| {
    let out = h.run(&["cat"]).stdin("hi").output();
    out.ok();
    assert_eq!(out.stdout, "hi", "{out}");
    let big: String = (0..100_000).fold(String::new(), |mut s, i| {
        let _ = writeln!(s, "{i}");
        s
    });
    let out = h.run(&["wc", "-l"]).stdin(big).output();
    out.ok();
    assert_eq!(out.stdout.trim(), "100000", "{out}");
});

sandbox_test!(large_stdout, |h: &Harness| {
    let out = h.run(&["seq", "1", "1500000"]).output();
    out.ok();
    let expected = (1..=1_500_000).fold(String::with_capacity(11_000_000), |mut s, i| {
        let _ = writeln!(s, "{i}");
        s
    });
    assert_eq!(
        out.raw_stdout.len(),
        expected.len(),
        "stdout length differs{out}"
    );
    assert!(out.raw_stdout == expected.as_bytes(), "stdout differs{out}");
});

sandbox_test!(read_system_files, |h: &Harness| {
    h.run(&["cat", "/etc/passwd"])
        .output()
        .ok()
        .stdout_has("root:x:0:0:");
    h.run(&["ls", "/usr/bin"])
        .output()
        .ok()
        .stdout_has("python3")
        .stdout_has("\nenv\n");
    h.run(&["sh", "-c", "echo $PATH; id -u >/dev/null && echo ID_OK"])
        .output()
        .ok()
        .stdout_has("ID_OK");
});

sandbox_test!(temp_files, |h: &Harness| {
    let host_tmp = Path::new("/tmp").join(h.unique("hosttmp"));
    fs::write(&host_tmp, "host").unwrap();
    let inside_name = h.unique("insidetmp");
    let out = h
        .sh(&format!(
            "echo \"TMPDIR=$TMPDIR\"; f=$(mktemp) && echo a > \"$f\" && cat \"$f\"; \
             d=$(mktemp -d) && echo b > \"$d/x\" && cat \"$d/x\"; \
             echo c > \"$TMPDIR/{inside_name}\" && cat \"$TMPDIR/{inside_name}\"; \
             echo d > /dev/shm/y && cat /dev/shm/y; echo e > /var/tmp/z && cat /var/tmp/z; echo f > /run/r && cat /run/r; \
             test -e {} || echo HOST_TMP_HIDDEN",
            host_tmp.display()
        ))
        .output();
    let _ = fs::remove_file(&host_tmp);
    out.ok()
        .stdout_has("TMPDIR=/tmp\n")
        .stdout_has("a\nb\nc\nd\ne\nf\nHOST_TMP_HIDDEN");
    let leaked = Path::new("/tmp").join(&inside_name);
    let was_leaked = leaked.exists();
    let _ = fs::remove_file(&leaked);
    assert!(
        !was_leaked,
        "a file written to /tmp inside appeared in the host /tmp{out}"
    );
});

sandbox_test!(git_workflow, |h: &Harness| {
    let out = h
        .sh("set -e; git init -q -b main .; echo a > f; git add f; git commit -qm one; \
             git checkout -qb feature; echo b >> f; git stash -q; test \"$(cat f)\" = a; \
             git stash pop -q; git commit -qam two; git branch; echo COMMITS=$(git rev-list --count HEAD)")
        .output();
    out.ok()
        .stdout_has("* feature")
        .stdout_has("main")
        .stdout_has("COMMITS=2");
    assert_eq!(
        read(&h.ws.join(".git/HEAD")),
        "ref: refs/heads/feature\n",
        "{out}"
    );
});

sandbox_test!(python_venv, |h: &Harness| {
    let out = h
        .sh(&format!(
            "{PYTHON} -m venv .venv && .venv/bin/python -c 'import sys; print(sys.prefix)'"
        ))
        .output();
    out.ok().stdout_has(&format!("{}/.venv", h.ws.display()));
    assert!(
        h.ws.join(".venv/bin/python").exists(),
        "no venv on the host{out}"
    );
    h.run(&[".venv/bin/python", "-m", "pip", "--version"])
        .output()
        .ok()
        .stdout_has("pip");
});

sandbox_test!(compile_c, |h: &Harness| {
    h.write(
        &h.ws.join("hello.c"),
        "#include <stdio.h>\nint main(void){puts(\"hello from c\");return 5;}\n",
    );
    let out = h.sh("cc -O1 -o hello hello.c && ./hello").output();
    out.code(5).stdout_has("hello from c");
    assert!(h.ws.join("hello").exists(), "{out}");
});

/// A python echo server and client in one process, over the given socket family/address.
fn py_echo(family: &str, bind: &str) -> String {
    format!(
        "import socket, threading\n\
         srv = socket.socket(socket.{family}, socket.SOCK_STREAM)\n\
         srv.bind({bind}); srv.listen(1)\n\
         def serve():\n    c, _ = srv.accept(); c.sendall(b'echo:' + c.recv(100)); c.close()\n\
         t = threading.Thread(target=serve); t.start()\n\
         cl = socket.socket(socket.{family}, socket.SOCK_STREAM)\n\
         cl.connect(srv.getsockname()); cl.sendall(b'ping')\n\
         print(cl.recv(100).decode()); t.join()\n"
    )
}

sandbox_test!(tcp_server_inside, |h: &Harness| {
    h.run(&[PYTHON, "-c", &py_echo("AF_INET", "('127.0.0.1', 0)")])
        .output()
        .ok()
        .stdout_has("echo:ping");
    let v6 = h
        .run(&[PYTHON, "-c", &py_echo("AF_INET6", "('::1', 0)")])
        .output();
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        v6.ok().stdout_has("echo:ping");
    }
});

sandbox_test!(unix_socket_in_ws, |h: &Harness| {
    h.run(&[PYTHON, "-c", &py_echo("AF_UNIX", "'s.sock'")])
        .output()
        .ok()
        .stdout_has("echo:ping");
    assert!(
        h.ws.join("s.sock").exists(),
        "the socket file is not in the workspace"
    );
    let abs = py_echo("AF_UNIX", &format!("'\\0{}'", h.unique("abs")));
    h.run(&[PYTHON, "-c", &abs])
        .output()
        .ok()
        .stdout_has("echo:ping");
});

sandbox_test!(python_multiprocessing, |h: &Harness| {
    let code = "from multiprocessing import Pool\n\
                if __name__ == '__main__':\n    \
                with Pool(2) as p:\n        print('SUM', sum(p.map(abs, range(-10, 0))))\n";
    h.run(&[PYTHON, "-c", code])
        .output()
        .ok()
        .stdout_has("SUM 55");
});

sandbox_test!(pipeline, |h: &Harness| {
    let out = h.sh("seq 1000 | sort -rn | head -1").output();
    out.ok();
    assert_eq!(out.stdout, "1000\n", "{out}");
});

sandbox_test!(strace_child, |h: &Harness| {
    h.run(&["strace", "-f", "-o", "/dev/null", "sh", "-c", "echo traced"])
        .output()
        .ok()
        .stdout_has("traced");
});

sandbox_test!(gdb_batch, |h: &Harness| {
    let out = h
        .run(&[
            "gdb",
            "-q",
            "-nx",
            "-batch",
            "-ex",
            "run",
            "--args",
            "/bin/sh",
            "-c",
            "echo debugged; exit 3",
        ])
        .output();
    out.ok()
        .stdout_has("debugged")
        .stdout_has("exited with code 03");
});

sandbox_test!(signal_forwarding, |h: &Harness| {
    for (sig, name, code) in [
        (libc::SIGTERM, "TERM", 3),
        (libc::SIGINT, "INT", 4),
        (libc::SIGHUP, "HUP", 5),
    ] {
        let ready = format!("ready-{name}");
        let mut running = h
            .sh(&format!(
                "trap 'echo got-{name} > trapped-{name}; exit {code}' {name}; touch {ready}; \
                 while :; do sleep 0.1; done"
            ))
            .spawn();
        wait_for_file(&h.ws.join(&ready), &mut running);
        running.signal(sig);
        let out = running.wait();
        out.code(code);
        assert_file(
            h,
            &h.ws.join(format!("trapped-{name}")),
            &format!("got-{name}\n"),
            &out,
        );
    }
});

sandbox_test!(pty_tty, |h: &Harness| {
    let out = h
        .sh("tty; test -t 0 && echo STDIN_TTY; test -t 1 && echo STDOUT_TTY")
        .pty()
        .output();
    out.ok().stdout_has("STDIN_TTY").stdout_has("STDOUT_TTY");
    let tty = out.stdout.lines().next().unwrap_or("").trim();
    let n = tty
        .strip_prefix("/dev/pts/")
        .unwrap_or_else(|| panic!("tty printed {tty:?}{out}"));
    assert!(n.parse::<u32>().is_ok(), "tty printed {tty:?}{out}");
});
