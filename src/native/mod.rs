//! The native protocol (docs/protocol.md): session state machine and the connection driver around it.

mod connection;
mod session;

pub use connection::{READ_BUFFER_BYTES_INITIAL, serve};
pub use session::Session;
