//! A message's system flags as a bit set: IMAP's `\Seen`, `\Answered`, `\Flagged`, `\Draft` and
//! `\Deleted`. The store keeps them this way (`jmail::store::flags` is this module), and SEARCH matches
//! on them, so the bits are defined once, here.

pub const SEEN: i64 = 1;
pub const ANSWERED: i64 = 2;
pub const FLAGGED: i64 = 4;
pub const DRAFT: i64 = 8;
pub const DELETED: i64 = 16;
/// Every system flag a message can carry.
pub const ALL: i64 = SEEN | ANSWERED | FLAGGED | DRAFT | DELETED;
