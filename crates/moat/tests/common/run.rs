//! Running moat: building the command line (`Run`), waiting with a kill timeout
//! (`Running`) and inspecting the result (`Out`).

use super::{Harness, moat_copy, moat_under_test, send_signal, shell_quote, timeout};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A moat invocation being built.
pub struct Run<'h> {
    pub(super) h: &'h Harness,
    pub(super) flags: Vec<OsString>,
    pub(super) cmd: Vec<OsString>,
    pub(super) stdin: Option<Vec<u8>>,
    pub(super) cwd: PathBuf,
    pub(super) workspace: Option<OsString>,
    pub(super) pre_shell: Option<String>,
    pub(super) pty: bool,
}

impl Run<'_> {
    /// Adds moat flags (before `--`).
    pub fn flags<S: AsRef<OsStr>>(mut self, flags: &[S]) -> Self {
        self.flags
            .extend(flags.iter().map(|s| s.as_ref().to_os_string()));
        self
    }

    /// Feeds these bytes on stdin (default: /dev/null).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Starts moat from this directory instead of the workspace.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = dir.into();
        self
    }

    /// Passes this `--workspace` value, or none at all.
    pub fn workspace(mut self, ws: Option<&OsStr>) -> Self {
        self.workspace = ws.map(OsStr::to_os_string);
        self
    }

    /// Runs this shell snippet on the host (as the invoking uid) right before exec'ing
    /// moat, e.g. `exec 9>>FILE` to hand moat an inherited fd.
    pub fn pre_shell(mut self, snippet: &str) -> Self {
        self.pre_shell = Some(snippet.to_string());
        self
    }

    /// Runs moat under `script`, so that its stdio is a terminal.
    pub fn pty(mut self) -> Self {
        self.pty = true;
        self
    }

    /// The argv of moat itself (with the setpriv prefix when dropping privileges).
    pub fn moat_argv(&self) -> Vec<OsString> {
        let mut argv = self.h.identity_prefix();
        let bin = if self.h.drop_privs {
            moat_copy()
        } else {
            moat_under_test()
        };
        argv.push(bin.into());
        argv.push("run".into());
        if let Some(ws) = &self.workspace {
            argv.push("--workspace".into());
            argv.push(ws.clone());
        }
        argv.extend(self.flags.iter().cloned());
        argv.push("--".into());
        argv.extend(self.cmd.iter().cloned());
        argv
    }

    fn command(&self) -> (Command, String) {
        let mut argv = self.moat_argv();
        if let Some(pre) = &self.pre_shell {
            let mut w: Vec<OsString> = vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("{pre}\nexec \"$@\"").into(),
                "sh".into(),
            ];
            w.extend(argv);
            argv = w;
        }
        if self.pty {
            let line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
            argv = vec![
                "/usr/bin/script".into(),
                "-qec".into(),
                line.join(" ").into(),
                "/dev/null".into(),
            ];
        }
        let desc = argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(self.h.base_env())
            .current_dir(&self.cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Under `script`, a stdin at EOF makes script inject an EOF character into
            // the terminal; an open, silent pipe avoids that.
            .stdin(if self.stdin.is_some() || self.pty {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .process_group(0);
        (cmd, desc)
    }

    /// Starts moat without waiting.
    pub fn spawn(self) -> Running {
        let (mut cmd, desc) = self.command();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
        let mut held_stdin = None;
        if let Some(data) = self.stdin {
            let mut stdin = child.stdin.take().expect("stdin pipe");
            thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        } else {
            held_stdin = child.stdin.take();
        }
        let (tx, rx) = mpsc::channel();
        for (i, pipe) in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .enumerate()
        {
            let tx = tx.clone();
            let mut pipe = pipe.expect("output pipe");
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send((i, buf));
            });
        }
        Running {
            child,
            rx,
            desc,
            _stdin: held_stdin,
        }
    }

    /// Runs moat to completion.
    pub fn output(self) -> Out {
        self.spawn().wait()
    }
}

/// A running moat.
pub struct Running {
    child: Child,
    rx: mpsc::Receiver<(usize, Vec<u8>)>,
    desc: String,
    _stdin: Option<std::process::ChildStdin>,
}

impl Running {
    /// The pid of moat (setpriv and the pre_shell wrapper exec it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to moat.
    pub fn signal(&self, sig: i32) {
        send_signal(self.pid(), sig);
    }

    /// True while moat has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for moat (killing it after the harness timeout) and collects its output.
    pub fn wait(mut self) -> Out {
        let deadline = Instant::now() + timeout();
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() > deadline {
                // SAFETY: kill() takes plain integers; the negative pid is our child's group.
                unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("moat did not finish within {:?}: {}", timeout(), self.desc);
            }
            thread::sleep(Duration::from_millis(20));
        };
        let mut bufs = [Vec::new(), Vec::new()];
        for _ in 0..2 {
            match self.rx.recv_timeout(Duration::from_secs(15)) {
                Ok((i, b)) => bufs[i] = b,
                Err(_) => panic!(
                    "moat exited ({status:?}) but its stdout/stderr stayed open: a process \
                     survived the sandbox: {}",
                    self.desc
                ),
            }
        }
        let [raw_stdout, raw_stderr] = bufs;
        Out {
            code: status.code(),
            signal: status.signal(),
            stdout: String::from_utf8_lossy(&raw_stdout).into_owned(),
            stderr: String::from_utf8_lossy(&raw_stderr).into_owned(),
            raw_stdout,
            desc: self.desc,
        }
    }
}

/// The result of a moat run.
pub struct Out {
    /// Exit code of moat (None if moat itself was killed by a signal).
    pub code: Option<i32>,
    /// Signal that killed moat itself.
    pub signal: Option<i32>,
    /// Stdout, lossily decoded.
    pub stdout: String,
    /// Stderr, lossily decoded.
    pub stderr: String,
    /// Stdout bytes.
    pub raw_stdout: Vec<u8>,
    desc: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = |s: &str| -> String {
            if s.len() > 4000 {
                let mut end = 4000;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}... [{} bytes]", &s[..end], s.len())
            } else {
                s.to_string()
            }
        };
        write!(
            f,
            "\n  command: {}\n  exit code: {:?}, signal: {:?}\n  stdout: {}\n  stderr: {}\n",
            self.desc,
            self.code,
            self.signal,
            cut(&self.stdout),
            cut(&self.stderr)
        )
    }
}

impl Out {
    /// Asserts moat exited with this code.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code{self}");
        self
    }

    /// Asserts moat exited with 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    /// Asserts stdout contains this text.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}{self}"
        );
        self
    }

    /// Asserts stdout does not contain this text.
    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle),
            "stdout contains {needle:?}{self}"
        );
        self
    }

    /// Asserts stderr contains this text.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}{self}"
        );
        self
    }
}
