//! JMAP ids (RFC 8620 §1.2: 1–255 of `A-Za-z0-9_-`) for what the store numbers. Each kind has its own
//! letter so one is never taken for another: `a7` an account, `m12` a mailbox, `e345` the Email whose
//! stored bytes are number 345, `b345` those bytes and `b345p3` their part 3, `x…` an upload, `t…` a
//! thread. An Email is its bytes, not a mailbox's UID: every copy of a message shares them and a move
//! keeps them, so an Email id never changes (RFC 8621 §4.1.1) and one Email can be in several mailboxes.
//! An id names something only within its account: every lookup goes through the account's mailboxes.

use crate::store::{MailboxId, UserId};

/// Longest decimal number an id holds (an i64).
const DIGITS_MAX: usize = 19;

/// A number as this server writes it: no sign, no leading zero (`e05` would otherwise be a second name
/// for `e5`, and clients compare ids as strings).
fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    let canonical = !text.starts_with('0') || text == "0";
    (canonical
        && !text.is_empty()
        && text.len() <= DIGITS_MAX
        && text.bytes().all(|b| b.is_ascii_digit()))
    .then(|| text.parse().ok())
    .flatten()
}

pub fn account(user: UserId) -> String {
    format!("a{user}")
}

pub fn parse_account(id: &str) -> Option<UserId> {
    number(id.strip_prefix('a')?)
}

pub fn mailbox(id: MailboxId) -> String {
    format!("m{id}")
}

pub fn parse_mailbox(id: &str) -> Option<MailboxId> {
    number(id.strip_prefix('m')?)
}

/// One Email: the id of the stored bytes its copies share (`crate::store::MessageMeta::blob`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailId {
    pub blob: i64,
}

impl std::fmt::Display for EmailId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "e{}", self.blob)
    }
}

pub fn parse_email(id: &str) -> Option<EmailId> {
    Some(EmailId {
        blob: number(id.strip_prefix('e')?)?,
    })
}

/// What a blob id names: a stored message (or one part of it), or an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobId {
    Message { email: EmailId, part: Option<u32> },
    Upload { key: String, part: Option<u32> },
}

impl BlobId {
    /// The same blob's part `part` (a part of a part is a part of the whole: parts are numbered across
    /// the whole message).
    pub fn part(&self, part: u32) -> BlobId {
        match self {
            BlobId::Message { email, .. } => BlobId::Message {
                email: *email,
                part: Some(part),
            },
            BlobId::Upload { key, .. } => BlobId::Upload {
                key: key.clone(),
                part: Some(part),
            },
        }
    }
}

impl BlobId {
    /// Which part, if not the whole.
    pub fn part_number(&self) -> Option<u32> {
        match self {
            BlobId::Message { part, .. } | BlobId::Upload { part, .. } => *part,
        }
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobId::Message { email, .. } => write!(f, "b{}", email.blob)?,
            BlobId::Upload { key, .. } => write!(f, "x{key}")?,
        }
        match self.part_number() {
            Some(p) => write!(f, "p{p}"),
            None => Ok(()),
        }
    }
}

pub fn parse_blob(id: &str) -> Option<BlobId> {
    let (base, part) = match id.split_once('p') {
        Some((base, part)) => (base, Some(number(part)?)),
        None => (id, None),
    };
    if let Some(key) = base.strip_prefix('x') {
        let valid =
            !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
        return valid.then(|| BlobId::Upload {
            key: key.to_string(),
            part,
        });
    }
    Some(BlobId::Message {
        email: EmailId {
            blob: number(base.strip_prefix('b')?)?,
        },
        part,
    })
}

/// A thread: the conversation's root Message-ID, hashed with the account (so ids say nothing about
/// other accounts' mail).
pub fn thread(user: UserId, root: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(user.to_be_bytes())
        .chain_update(root.as_bytes())
        .finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("t{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_and_nothing_else_reads() {
        let e = EmailId { blob: 345 };
        assert_eq!(parse_email(&e.to_string()), Some(e));
        let b = BlobId::Message {
            email: e,
            part: Some(3),
        };
        assert_eq!(b.to_string(), "b345p3");
        assert_eq!(parse_blob("b345p3"), Some(b));
        assert_eq!(
            parse_blob("b345"),
            Some(BlobId::Message {
                email: e,
                part: None
            })
        );
        assert_eq!(
            parse_blob("xab12"),
            Some(BlobId::Upload {
                key: "ab12".into(),
                part: None
            })
        );
        assert_eq!(parse_mailbox("m7"), Some(7));
        assert_eq!(parse_account("a7"), Some(7));
        for bad in [
            "",
            "m",
            "m-1",
            "m+1",
            "e",
            "e1u2",
            "e-1",
            "e05",
            "m07",
            "b05",
            "b5p01",
            "a00",
            "b1u2",
            "b1p",
            "xzz",
            "m99999999999999999999",
            "a1 ",
        ] {
            assert!(
                parse_mailbox(bad).is_none()
                    && parse_email(bad).is_none()
                    && parse_blob(bad).is_none()
                    && parse_account(bad).is_none(),
                "{bad}"
            );
        }
        assert_eq!(thread(1, "a@b"), thread(1, "a@b"));
        assert_ne!(thread(1, "a@b"), thread(2, "a@b"));
    }
}
