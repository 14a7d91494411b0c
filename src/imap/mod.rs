//! IMAP (RFC 9051 IMAP4rev2 and RFC 3501 IMAP4rev1 on one port): the session state machine and its
//! connection on the one driver. docs/protocol-imap.md says what clients see.

mod connection;
mod fetch;
mod list;
mod mailboxes;
mod quota;
mod respond;
mod selected;
mod session;
mod sort;
mod sort_cache;

pub use connection::serve;
pub use session::Session;
pub use sort_cache::SortCache;
