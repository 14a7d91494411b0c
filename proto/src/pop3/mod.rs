//! POP3 (RFC 1939, CAPA and response codes from RFC 2449, AUTH from RFC 5034): the resumable line decoder,
//! the command parser, and the pure helpers that shape a message for RETR and TOP.

mod command;
mod decoder;
pub mod invariants;
mod message;

pub use command::{Command, CommandError, parse_command};
pub use decoder::{Decoder, Event};
pub use message::{DotStuffer, crlf_size, dot_stuff, top};

use crate::sasl::RESPONSE_BYTES_MAX;

/// Longest command line RFC 2449 allows, line end included (255 octets). Every command but AUTH must fit.
pub const COMMAND_BYTES_MAX: usize = 255;

/// Longest line the decoder buffers, line end included: a command, or `AUTH PLAIN ` with an initial response,
/// or a SASL continuation line, each of up to [`RESPONSE_BYTES_MAX`] base64 bytes. A connection holds at most
/// this much of an unfinished line; longer lines are skipped up to their end.
pub const LINE_BYTES_MAX: usize = RESPONSE_BYTES_MAX + 64;
