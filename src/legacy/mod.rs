//! Unmodified Jmail v1.0 clients on the native port (docs/protocol-v1.md): their session state
//! machine and the connection driver that keeps v1's one-send-per-message framing.

mod connection;
pub mod import;
mod session;
mod view;

pub use connection::serve;
pub use session::LegacySession;
