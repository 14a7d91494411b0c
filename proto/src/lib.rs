pub mod flags;
pub mod header_fields;
pub mod imap;
pub mod jmap;
pub mod legacy;
pub mod mbox;
pub mod mime;
pub mod native;
pub mod pop3;
pub mod sasl;
pub mod smtp;
pub mod smtp_client;
pub mod summary;

/// What a decoder is in the middle of, so the connection can hold it to a deadline: a command line must
/// arrive within a bounded time once begun, a message body at a minimum rate. A decoder that is throwing
/// away the rest of an over-long line is still inside that line: discarding must not restart its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Between commands: nothing begun.
    Nothing,
    /// Part of a command line (or of the line end that closes a literal) has arrived.
    Line,
    /// A message body is arriving.
    Body,
}
