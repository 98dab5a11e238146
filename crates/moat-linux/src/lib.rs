//! The Linux backend of moat.
//!
//! The namespaces tier runs a command in fresh user, mount, pid, network, ipc and uts
//! namespaces, with a read-only view of the host, private temporary directories, a
//! minimal `/dev` and `/proc`, and Landlock plus seccomp as a second wall. See
//! [`sandbox::run`] for the entry point.
//!
//! The process tree of a run:
//! ```text
//! moat (host)                 supervises: signals, timeout, pty relay, report
//!  └─ init (pid 1, sandbox)   builds the view, reaps, relays signals; non-dumpable
//!      └─ command (pid 2)     capabilities dropped, Landlock + seccomp, execve
//! ```
//!
//! Every module that makes Linux system calls is declared behind
//! `cfg(target_os = "linux")`, so the crate still builds (empty) on other targets.

#[cfg(target_os = "linux")]
mod child;
#[cfg(target_os = "linux")]
pub mod error;
#[cfg(target_os = "linux")]
mod exec;
#[cfg(target_os = "linux")]
pub mod landlock;
#[cfg(target_os = "linux")]
pub mod layers;
#[cfg(target_os = "linux")]
mod mounts;
#[cfg(target_os = "linux")]
pub mod plan;
#[cfg(target_os = "linux")]
pub mod protect;
#[cfg(target_os = "linux")]
pub mod protocol;
#[cfg(target_os = "linux")]
mod relay;
#[cfg(target_os = "linux")]
pub mod roots;
#[cfg(target_os = "linux")]
pub mod sandbox;
#[cfg(target_os = "linux")]
pub mod seccomp;
#[cfg(target_os = "linux")]
mod supervise;
#[cfg(target_os = "linux")]
pub mod sys;

#[cfg(target_os = "linux")]
pub use error::SandboxError;
#[cfg(target_os = "linux")]
pub use sandbox::{Enforcement, Outcome, RunRequest, Status, run};
