//! Errors of the Linux backend.

use std::io;

use moat_policy::PolicyError;

/// Why moat could not build or run the sandbox. Every variant maps to exit code 125
/// except where [`SandboxError::exit_code`] says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A system call failed while building the sandbox.
    #[error("{step}: {source}")]
    Sys {
        /// What moat was doing, in words a user can act on.
        step: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// The policy was refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Other(String),
}

/// Attaches a description of the step to an `io::Result`.
pub trait Context<T> {
    /// Wraps the error with `step`.
    fn ctx(self, step: impl Into<String>) -> Result<T, SandboxError>;
    /// Wraps the error with a lazily built step description.
    fn with_ctx<F: FnOnce() -> String>(self, step: F) -> Result<T, SandboxError>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, step: impl Into<String>) -> Result<T, SandboxError> {
        self.map_err(|source| SandboxError::Sys {
            step: step.into(),
            source,
        })
    }

    fn with_ctx<F: FnOnce() -> String>(self, step: F) -> Result<T, SandboxError> {
        self.map_err(|source| SandboxError::Sys {
            step: step(),
            source,
        })
    }
}
