//! POP3 (RFC 1939, with CAPA and response codes from RFC 2449 and SASL PLAIN from RFC 5034): the session
//! state machine and the connection driver around it. docs/protocol-pop3.md says what clients see.

mod connection;
mod session;

pub use connection::serve;
pub use session::{AUTOLOGOUT_SECS_MIN, GREETING, Session};
