//! seccomp: the moat system-call filter.
//!
//! This is a *second wall*: the namespaces, dropped capabilities and Landlock are the
//! primary isolation. The filter is a deny-list with a default of allow, so ordinary
//! programs (compilers, package managers, debuggers) keep working; it removes the kernel
//! interfaces that are either large attack surfaces or ways to rebuild privileges inside
//! the sandbox. Every rule and its reason is in [`RULES`]; that table is the single place
//! to review, and [`describe`] reports it verbatim.
//!
//! The program is compiled with `seccompiler` in the parent (allocation is fine there)
//! and installed in the child after fork with a single `seccomp(2)` call.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

/// Name of this ruleset, recorded in run reports.
pub const RULESET_NAME: &str = "moat-default";
/// Version of this ruleset; bump it whenever [`RULES`] or the program layout changes.
pub const RULESET_VERSION: u32 = 1;

/// Errors from building or installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The rules could not be compiled into a BPF program.
    #[error("cannot build the seccomp filter: {0}")]
    Build(String),
    /// The kernel refused the program (or `PR_SET_NO_NEW_PRIVS` failed).
    #[error("cannot install the seccomp filter: {0}")]
    Install(#[source] std::io::Error),
}

/// How a matching call is refused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Deny {
    /// `EPERM`: "you may not", which callers already handle for unprivileged users.
    Eperm,
    /// `ENOSYS`: "this kernel has no such call", which makes libc fall back to an older one.
    Enosys,
}

/// Which calls of a system call a rule matches.
enum When {
    /// Every call.
    Always,
    /// Calls whose argument `arg` has all of `bits` set (low 32 bits only).
    ArgHasBits { arg: u8, bits: u64 },
    /// Calls whose argument `arg` equals `value` in its low 32 bits.
    ArgLow32Is { arg: u8, value: u64 },
}

/// One reviewed rule.
struct Rule {
    name: &'static str,
    nr: i64,
    when: When,
    deny: Deny,
}

const fn eperm(name: &'static str, nr: i64) -> Rule {
    Rule {
        name,
        nr,
        when: When::Always,
        deny: Deny::Eperm,
    }
}

/// `open_tree_attr(2)` (Linux 6.15) is not in `libc` yet. New system calls share one
/// number on every architecture since 5.1 (424+), so 467 holds on x86_64 and aarch64.
const SYS_OPEN_TREE_ATTR: i64 = 467;

/// `CLONE_NEWUSER` as the 64-bit operand seccompiler compares with.
const NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
/// TTY ioctl requests, written out because `libc`'s type for them varies by target;
/// the numbers are the same on x86_64, aarch64 and riscv64 (asm-generic).
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541c;

/// The rules. A rule per line, grouped by reason.
#[rustfmt::skip]
const RULES: &[Rule] = &[
    // io_uring: one of the largest sources of kernel exploits, and the operations it
    // submits are not system calls, so they would bypass the rest of this filter.
    eperm("io_uring_setup", libc::SYS_io_uring_setup),
    eperm("io_uring_enter", libc::SYS_io_uring_enter),
    eperm("io_uring_register", libc::SYS_io_uring_register),
    // Kernel keyrings are not fully namespaced and the session keyring is inherited: a
    // command could read or plant the user's keys (Kerberos, ecryptfs, NFS credentials).
    eperm("keyctl", libc::SYS_keyctl),
    eperm("add_key", libc::SYS_add_key),
    eperm("request_key", libc::SYS_request_key),
    // eBPF, perf and userfaultfd: big attack surfaces; userfaultfd is the classic tool
    // to win kernel races. No build or test tool needs them.
    eperm("bpf", libc::SYS_bpf),
    eperm("perf_event_open", libc::SYS_perf_event_open),
    eperm("userfaultfd", libc::SYS_userfaultfd),
    // Replacing the kernel or loading modules: never legitimate in a sandbox.
    eperm("kexec_load", libc::SYS_kexec_load),
    eperm("kexec_file_load", libc::SYS_kexec_file_load),
    eperm("init_module", libc::SYS_init_module),
    eperm("finit_module", libc::SYS_finit_module),
    eperm("delete_module", libc::SYS_delete_module),
    // Mount table changes: the sandbox's filesystem view is built by the runner and must
    // stay as it is (a command could otherwise unmount a read-only overlay or remount).
    eperm("mount", libc::SYS_mount),
    eperm("umount2", libc::SYS_umount2),
    eperm("pivot_root", libc::SYS_pivot_root),
    eperm("move_mount", libc::SYS_move_mount),
    eperm("open_tree", libc::SYS_open_tree),
    eperm("open_tree_attr", SYS_OPEN_TREE_ATTR),
    eperm("fsopen", libc::SYS_fsopen),
    eperm("fsconfig", libc::SYS_fsconfig),
    eperm("fsmount", libc::SYS_fsmount),
    eperm("fspick", libc::SYS_fspick),
    eperm("mount_setattr", libc::SYS_mount_setattr),
    eperm("chroot", libc::SYS_chroot),
    // Joining another namespace (e.g. through an inherited or passed fd) would leave
    // the sandbox.
    eperm("setns", libc::SYS_setns),
    // Added: opens any inode by handle, bypassing path checks (the "shocker" container
    // escape). The kernel requires CAP_DAC_READ_SEARCH in the initial namespace, but it
    // costs nothing to close, and nothing ordinary uses it.
    eperm("open_by_handle_at", libc::SYS_open_by_handle_at),
    // A new user namespace gives back a full capability set inside it, which re-opens
    // every namespaced kernel interface (mounts, netfilter, ...) to the command. Other
    // unshare/clone flags need capabilities the command no longer has. clone's flags
    // are arg0 on every architecture; the kernel reads only their low 32 bits.
    Rule { name: "unshare CLONE_NEWUSER", nr: libc::SYS_unshare, deny: Deny::Eperm,
           when: When::ArgHasBits { arg: 0, bits: NEWUSER } },
    Rule { name: "clone CLONE_NEWUSER", nr: libc::SYS_clone, deny: Deny::Eperm,
           when: When::ArgHasBits { arg: 0, bits: NEWUSER } },
    // clone3 passes its flags in a struct that seccomp cannot read, so it cannot be
    // filtered for CLONE_NEWUSER; ENOSYS makes glibc and others fall back to clone.
    Rule { name: "clone3", nr: libc::SYS_clone3, when: When::Always, deny: Deny::Enosys },
    // TIOCSTI pushes characters into the terminal's input queue: the command could type
    // commands into the user's shell after it exits. TIOCLINUX can do the same on a VT.
    // The kernel truncates the request to 32 bits, so only the low 32 bits are compared:
    // a 64-bit comparison would be bypassed by `TIOCSTI | 1 << 32`.
    Rule { name: "ioctl TIOCSTI", nr: libc::SYS_ioctl, deny: Deny::Eperm,
           when: When::ArgLow32Is { arg: 1, value: TIOCSTI } },
    Rule { name: "ioctl TIOCLINUX", nr: libc::SYS_ioctl, deny: Deny::Eperm,
           when: When::ArgLow32Is { arg: 1, value: TIOCLINUX } },
    // Deliberately NOT denied: ptrace and process_vm_readv/writev, so that gdb and strace
    // work; the pid namespace already limits their targets to the sandbox's processes.
];

// Classic BPF opcodes and seccomp constants used by the hand-written parts.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Kills x32 system calls, which seccompiler's program would let through.
///
/// x32 calls arrive with `AUDIT_ARCH_X86_64` and the number ORed with `0x40000000`, so
/// the arch check passes and the per-number rules never match: `0x40000000 | mount`
/// would be allowed. Nobody runs x32 binaries; kill them outright.
///
/// The one exception is `nr == -1`: a tracer (strace `-e inject`) sets it to skip a
/// call, and the kernel answers ENOSYS; it is not an x32 call.
///
/// Relative jumps make prepending safe: nothing in seccompiler's program jumps back,
/// and every exit here lands on the first instruction of the program that follows.
#[cfg(target_arch = "x86_64")]
fn x32_prefix() -> Vec<sock_filter> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    vec![
        insn(BPF_LD_W_ABS, 0, 0, 4),              // A = arch
        insn(BPF_JEQ_K, 0, 4, AUDIT_ARCH_X86_64), // other arch -> seccompiler (kills)
        insn(BPF_LD_W_ABS, 0, 0, 0),              // A = nr
        insn(BPF_JSET_K, 0, 2, 0x4000_0000),      // no x32 bit -> seccompiler
        insn(BPF_JEQ_K, 1, 0, u32::MAX),          // nr == -1 -> seccompiler
        insn(BPF_RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

#[cfg(not(target_arch = "x86_64"))]
fn x32_prefix() -> Vec<sock_filter> {
    Vec::new()
}

/// Compiled program; built in the parent before fork, installed in the child.
#[derive(Debug, Clone)]
pub struct Filter {
    program: BpfProgram,
}

impl Filter {
    /// Compiles [`RULES`] for the running architecture.
    ///
    /// seccompiler gives every program one match action, so there is one program per
    /// errno, chained: an "allow" from one part means "no objection" and jumps to the
    /// next part. Calls from another architecture than the native one are killed by
    /// seccompiler's arch check: that closes the i386 `int 0x80` entry on x86_64 (whose
    /// numbers differ, so the rules would not apply) at the price of 32-bit binaries.
    pub fn build() -> Result<Filter, SeccompError> {
        let err = |e: &dyn std::fmt::Display| SeccompError::Build(e.to_string());
        let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| err(&e))?;
        let mut parts = Vec::new();
        for (deny, errno) in [(Deny::Eperm, libc::EPERM), (Deny::Enosys, libc::ENOSYS)] {
            let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
            for rule in RULES.iter().filter(|r| r.deny == deny) {
                let chain = rules.entry(rule.nr).or_default();
                let (arg, op, value) = match rule.when {
                    // An empty chain matches every call of that number.
                    When::Always => continue,
                    When::ArgHasBits { arg, bits } => (arg, SeccompCmpOp::MaskedEq(bits), bits),
                    When::ArgLow32Is { arg, value } => (arg, SeccompCmpOp::Eq, value),
                };
                // Dword: compare the low 32 bits only (see the ioctl rules).
                let cond = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
                    .map_err(|e| err(&e))?;
                chain.push(SeccompRule::new(vec![cond]).map_err(|e| err(&e))?);
            }
            let action = SeccompAction::Errno(errno as u32);
            let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, arch)
                .map_err(|e| err(&e))?;
            parts.push(BpfProgram::try_from(filter).map_err(|e| err(&e))?);
        }
        let program = link(x32_prefix(), parts);
        if program.len() > BPF_MAXINSNS {
            let len = program.len();
            return Err(SeccompError::Build(format!(
                "{len} instructions (max 4096)"
            )));
        }
        Ok(Filter { program })
    }

    /// Installs on the calling thread (caller has already set `PR_SET_NO_NEW_PRIVS`).
    ///
    /// Only the calling thread (and its future children) is filtered, which is what the
    /// single-threaded child after fork needs. seccompiler sets `PR_SET_NO_NEW_PRIVS`
    /// again, harmlessly; nothing is allocated unless an error is reported.
    pub fn install(&self) -> Result<(), SeccompError> {
        seccompiler::apply_filter(&self.program).map_err(|e| match e {
            seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => {
                SeccompError::Install(e)
            }
            other => SeccompError::Install(std::io::Error::other(other.to_string())),
        })
    }

    /// Number of BPF instructions in the program.
    pub fn instruction_count(&self) -> usize {
        self.program.len()
    }
}

/// Concatenates `prefix` and `parts`, turning every "allow" of a part but the last into
/// a jump to the start of the next part. `BPF_JA` takes a 32-bit forward offset and
/// replaces one instruction with one, so no other offset moves.
fn link(prefix: Vec<sock_filter>, parts: Vec<BpfProgram>) -> BpfProgram {
    let mut out = prefix;
    let count = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        let len = part.len();
        for (j, ins) in part.into_iter().enumerate() {
            let allow = ins.code == BPF_RET_K && ins.k == SECCOMP_RET_ALLOW;
            if allow && i + 1 < count {
                // Offset from the next instruction to the end of this part.
                out.push(insn(BPF_JMP_JA, 0, 0, (len - j - 1) as u32));
            } else {
                out.push(ins);
            }
        }
    }
    out
}

/// Human-readable list of what is denied, for the run report: (syscall or rule, action).
pub fn describe() -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("non-native architecture", "KILL_PROCESS")];
    if cfg!(target_arch = "x86_64") {
        out.push(("x32 ABI", "KILL_PROCESS"));
    }
    out.extend(RULES.iter().map(|r| {
        let action = match r.deny {
            Deny::Eperm => "EPERM",
            Deny::Enosys => "ENOSYS",
        };
        (r.name, action)
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{ENOSYS, EPERM, SYS_getpid, SYS_ioctl, SYS_ptrace, SYS_unshare};

    const TCGETS: u64 = 0x5401;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    /// Minimal classic-BPF interpreter for the opcodes seccompiler (for `Eq`/`MaskedEq`
    /// on Dwords) and this file emit; panics on anything else or on a jump out of range.
    fn eval(prog: &[sock_filter], arch: u32, nr: i64, args: [u64; 2]) -> u32 {
        let mut data = [0u8; 32]; // struct seccomp_data up to args[1]
        data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        data[16..24].copy_from_slice(&args[0].to_ne_bytes());
        data[24..32].copy_from_slice(&args[1].to_ne_bytes());
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let ins = &prog[pc];
            pc += 1;
            let (k, off) = (ins.k, |c: bool| {
                usize::from(if c { ins.jt } else { ins.jf })
            });
            match ins.code {
                BPF_LD_W_ABS => {
                    acc = u32::from_ne_bytes(data[k as usize..][..4].try_into().unwrap())
                }
                0x54 => acc &= k, // BPF_ALU | BPF_AND | BPF_K
                BPF_JMP_JA => pc += k as usize,
                BPF_JEQ_K => pc += off(acc == k),
                BPF_JSET_K => pc += off(acc & k != 0),
                BPF_RET_K => return k,
                code => panic!("unexpected opcode {code:#x}"),
            }
        }
    }

    fn expected(r: &Rule) -> (u32, i32) {
        let errno = if r.deny == Deny::Eperm { EPERM } else { ENOSYS };
        (0x0005_0000 | errno as u32, errno) // SECCOMP_RET_ERRNO | errno
    }

    #[test]
    fn table_never_mixes_always_and_conditional_rules() {
        // seccompiler treats an empty rule chain as "match always"; a conditional rule
        // on the same number would silently narrow an Always rule.
        for a in RULES.iter().filter(|r| matches!(r.when, When::Always)) {
            assert!(
                RULES.iter().filter(|r| r.nr == a.nr).count() == 1,
                "{}",
                a.name
            );
        }
        let kills = 1 + usize::from(cfg!(target_arch = "x86_64"));
        assert_eq!(describe().len(), RULES.len() + kills);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn program_decisions() {
        let f = Filter::build().unwrap();
        assert_eq!(f.instruction_count(), f.program.len());
        let x86 = |nr, a0, a1| eval(&f.program, 0xc000_003e, nr, [a0, a1]);
        for r in RULES.iter().filter(|r| matches!(r.when, When::Always)) {
            assert_eq!(x86(r.nr, 0, 0), expected(r).0, "{}", r.name);
        }
        let (allow, eperm) = (SECCOMP_RET_ALLOW, 0x0005_0001);
        let (newuser, sigchld) = (NEWUSER, libc::SIGCHLD as u64);
        let x32 = 0x4000_0000;
        #[rustfmt::skip]
        let cases = [
            (SYS_getpid, 0, 0, allow),
            (SYS_ptrace, 0, 0, allow),
            (-1, 0, 0, allow), // a tracer's "skip this call" is not an x32 call
            (x32 | SYS_getpid, 0, 0, KILL),
            (x32 | libc::SYS_mount, 0, 0, KILL),
            (libc::SYS_clone, sigchld, 0, allow),
            (libc::SYS_clone, 0x003d_0f00, 0, allow), // glibc's pthread_create flags
            (libc::SYS_clone, newuser | sigchld, 0, eperm),
            (libc::SYS_clone, newuser | 1 << 40, 0, eperm),
            (SYS_unshare, libc::CLONE_FILES as u64, 0, allow),
            (SYS_unshare, newuser | libc::CLONE_NEWNS as u64, 0, eperm),
            (SYS_ioctl, 0, TIOCSTI, eperm),
            (SYS_ioctl, 0, TIOCSTI | 1 << 32, eperm),
            (SYS_ioctl, 0, TIOCLINUX | 0xffff_0000_0000, eperm),
            (SYS_ioctl, 0, TCGETS, allow),
        ];
        for (nr, a0, a1, want) in cases {
            assert_eq!(x86(nr, a0, a1), want, "nr {nr:#x} args {a0:#x} {a1:#x}");
        }
        // i386 (`int 0x80`) calls are killed whatever their number.
        assert_eq!(eval(&f.program, 0x4000_0003, 20, [0, 0]), KILL);
    }

    /// Raw system call; `Err(errno)` on failure. Only called below with integers or -1
    /// as arguments: -1 is never a mapped address, so the kernel cannot write through it.
    fn sys(nr: i64, a: [u64; 4]) -> Result<i64, i32> {
        // SAFETY: no argument points to memory that the kernel could write to (see above).
        let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], u64::MAX, u64::MAX) };
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if r == -1 { Err(errno()) } else { Ok(r) }
    }

    /// Runs `body` in a forked child, which exits with its result; returns the wait status.
    fn in_child(body: impl FnOnce() -> i32) -> i32 {
        // SAFETY: fork has no memory-safety preconditions. The child only runs `body`
        // (glibc keeps malloc usable after fork) and then `_exit`s, never returning
        // into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            // SAFETY: _exit ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code.unwrap_or(101)) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child, with a valid pointer to `status`.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    /// Like [`in_child`], with the filter installed first.
    pub(crate) fn filtered(body: impl FnOnce() -> i32) -> i32 {
        let filter = Filter::build().unwrap();
        in_child(move || {
            // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return 90;
            }
            match filter.install() {
                Ok(()) => body(),
                Err(_) => 91,
            }
        })
    }

    macro_rules! check {
        ($code:expr, $ok:expr) => {
            if !$ok {
                return $code;
            }
        };
    }

    #[test]
    fn filter_denies_and_allows_in_a_child() {
        let status = filtered(|| {
            let m1 = u64::MAX; // -1: an invalid fd, pointer, count and flags at once
            // Every unconditional rule, with arguments that fail harmlessly without it.
            for (i, r) in RULES.iter().enumerate() {
                if matches!(r.when, When::Always) {
                    check!(128 + i as i32, sys(r.nr, [m1; 4]) == Err(expected(r).1));
                }
            }
            let (files, peek) = (libc::CLONE_FILES as u64, libc::PTRACE_PEEKDATA as u64);
            check!(1, sys(SYS_getpid, [0; 4]).is_ok_and(|p| p > 0));
            check!(2, sys(SYS_unshare, [NEWUSER, 0, 0, 0]) == Err(EPERM));
            check!(3, sys(SYS_unshare, [files, 0, 0, 0]) == Ok(0));
            check!(
                4,
                sys(SYS_ioctl, [0, TIOCSTI | 1 << 32, m1, 0]) == Err(EPERM)
            );
            check!(5, sys(SYS_ioctl, [0, TIOCLINUX, m1, 0]) == Err(EPERM));
            check!(6, sys(SYS_ioctl, [m1, TCGETS, m1, 0]) == Err(libc::EBADF));
            check!(7, sys(-1, [0; 4]) == Err(ENOSYS));
            // ptrace stays allowed: pid 1 is just not a tracee of ours.
            check!(8, sys(SYS_ptrace, [peek, 1, 0, 0]) == Err(libc::ESRCH));
            // glibc creates threads with clone3 and must fall back to clone on ENOSYS.
            check!(9, std::thread::spawn(|| 5).join().ok() == Some(5));
            check!(10, std::fs::File::open("/dev/null").is_ok());
            match sys(libc::SYS_clone, [NEWUSER | libc::SIGCHLD as u64, 0, 0, 0]) {
                Err(EPERM) => {}
                // SAFETY: an unexpected child leaves at once; the parent sees 11 below.
                Ok(0) => unsafe { libc::_exit(0) },
                _ => return 11,
            }
            let status = in_child(|| 7); // plain fork: clone(SIGCHLD)
            check!(
                12,
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7
            );
            0
        });
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "number of the failed check");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_call_kills_the_process() {
        let status = filtered(|| {
            let _ = sys(0x4000_0000 | SYS_getpid, [0; 4]);
            1
        });
        assert!(libc::WIFSIGNALED(status), "not killed: status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGSYS);
    }
}
