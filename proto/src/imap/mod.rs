//! IMAP (RFC 9051, RFC 3501): the command decoder. Commands are parsed by imap-codec 2.0 (pinned: it is
//! an alpha; docs/imap-codec.md says why this version and what it does not parse); framing and limits are
//! ours.

pub mod decoder;
pub mod extended;
pub mod invariants;
pub mod search;
pub mod section;
pub mod sort;
pub mod structure;
pub mod thread;
pub mod utf7;
pub mod view;

pub use decoder::{Decoder, Event, Expect, Limits, Refusal};
pub use imap_types;
