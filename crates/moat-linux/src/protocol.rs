//! Messages between moat (the parent) and its helpers inside the sandbox.
//!
//! They travel over a `SOCK_SEQPACKET` socket pair created before the sandbox, so each
//! message is one datagram and a closed peer reads as end-of-stream. Init watches for
//! that end-of-stream: when moat dies, the sandbox dies with it.

use serde::{Deserialize, Serialize};

use crate::landlock::LandlockReport;

/// From the sandbox (init or the command, before exec) to moat.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum ToParent {
    /// Init finished building the sandbox. With `pty`, the message carries the master
    /// of the sandbox's pseudo-terminal as an `SCM_RIGHTS` fd.
    Ready {
        /// Whether a pty master fd is attached.
        pty: bool,
    },
    /// The command applied its restrictions and is about to exec.
    Enforced {
        /// What Landlock enforced.
        landlock: LandlockReport,
    },
    /// Something failed; `code` is the exit code moat should use (125, 126 or 127).
    Failed {
        /// 125 when the sandbox could not be built, 126/127 when exec failed.
        code: i32,
        /// One line for the user.
        message: String,
    },
    /// The command exited with this code.
    Exited {
        /// Its exit code.
        code: i32,
    },
    /// The command was killed by this signal.
    Signaled {
        /// The signal number.
        signal: i32,
    },
}

/// From moat to init.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum ToInit {
    /// Forward this signal to the command's process group.
    Signal(i32),
    /// The timeout fired: send SIGTERM to every process in the sandbox.
    TerminateAll,
}

/// Largest message either side sends.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Encodes a message.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    serde_json::to_vec(msg).unwrap_or_default()
}

/// Decodes a message; malformed input is an error, never a panic.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("malformed message from the sandbox: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msg = ToParent::Failed {
            code: 127,
            message: "x: not found".into(),
        };
        assert_eq!(decode::<ToParent>(&encode(&msg)).unwrap(), msg);
        assert_eq!(
            decode::<ToInit>(&encode(&ToInit::Signal(15))).unwrap(),
            ToInit::Signal(15)
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode::<ToParent>(b"\xff\x00{").is_err());
        assert!(decode::<ToInit>(b"{\"Signal\":\"x\"}").is_err());
    }
}
