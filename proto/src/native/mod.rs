//! The native Jmail protocol, version 2 (docs/protocol.md): command decoding and reply encoding.

mod command;
mod decoder;
pub mod invariants;
mod parse;
pub mod reply;
mod tokens;

pub use command::Command;
pub use decoder::{Decoder, Event, Limits};
pub use tokens::{Token, quote, tokenize};

/// The protocol version this crate speaks. Clients with another major version are refused.
pub const VERSION_MAJOR: u32 = 2;
/// Minor versions only add; a server accepts any minor of its major.
pub const VERSION_MINOR: u32 = 1;

/// The bytes a server sends first on the native port. They are the v1.0 banner, byte for byte and without a
/// line end, because an unmodified v1.0 client must be able to connect to the same port.
pub const GREETING: &[u8] = b"You have connected to Jmail.";

/// Why input was rejected. Each maps to the reply code a peer sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("line longer than {max} bytes")]
    LineTooLong { max: usize },
    #[error("command is not valid UTF-8")]
    NotUtf8,
    #[error("command contains a control character")]
    ControlCharacter,
    #[error("unknown command")]
    UnknownCommand,
    #[error("{0}")]
    Syntax(&'static str),
    #[error("more than {max} recipients")]
    TooManyRecipients { max: usize },
    #[error("message larger than {max} bytes")]
    LiteralTooLarge { max: usize },
    #[error("log in first")]
    NotAllowed,
}

impl DecodeError {
    /// The reply code (docs/protocol.md, "Reply codes").
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::LineTooLong { .. } => "LINETOOLONG",
            DecodeError::NotUtf8 | DecodeError::ControlCharacter => "ENCODING",
            DecodeError::UnknownCommand => "UNKNOWN",
            DecodeError::Syntax(_) => "SYNTAX",
            DecodeError::TooManyRecipients { .. } => "TOOMANYRCPTS",
            DecodeError::LiteralTooLarge { .. } => "TOOBIG",
            DecodeError::NotAllowed => "STATE",
        }
    }
}
