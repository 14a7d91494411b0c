//! How IMAP responses are written: status lines, flag lists, dates, mailbox names, sequence sets. All
//! bytes the session sends pass through here or through `jmail_proto::imap::structure`.

use std::fmt::Write as _;

use jmail_proto::imap::structure::{self, Dialect};
use jmail_proto::imap::utf7;

use crate::store::flags;

/// `tag OK|NO|BAD [code] text` (`tag` `*` for an untagged status).
pub fn status(tag: &str, kind: &str, code: Option<&str>, text: &str) -> Vec<u8> {
    match code {
        Some(code) => format!("{tag} {kind} [{code}] {text}\r\n").into_bytes(),
        None => format!("{tag} {kind} {text}\r\n").into_bytes(),
    }
}

pub fn ok(tag: &str, text: &str) -> Vec<u8> {
    status(tag, "OK", None, text)
}

pub fn no(tag: &str, code: Option<&str>, text: &str) -> Vec<u8> {
    status(tag, "NO", code, text)
}

pub fn bad(tag: &str, text: &str) -> Vec<u8> {
    status(tag, "BAD", None, text)
}

/// The system flags IMAP names, in the order lists show them.
pub const SYSTEM_FLAGS: [(i64, &str); 5] = [
    (flags::ANSWERED, "\\Answered"),
    (flags::FLAGGED, "\\Flagged"),
    (flags::DELETED, "\\Deleted"),
    (flags::SEEN, "\\Seen"),
    (flags::DRAFT, "\\Draft"),
];

/// `(\Seen $Keyword ...)`.
pub fn flag_list(system: i64, keywords: &[String], recent: bool) -> String {
    let mut names: Vec<&str> = SYSTEM_FLAGS
        .iter()
        .filter(|(bit, _)| system & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if recent {
        names.push("\\Recent");
    }
    names.extend(keywords.iter().map(String::as_str));
    format!("({})", names.join(" "))
}

/// INTERNALDATE's form, in the zone it was given in (`zone_minutes` east of UTC):
/// `"02-Dec-2026 09:30:00 +0100"`.
pub fn internal_date(micros: i64, zone_minutes: i32) -> String {
    let zone = jmail_proto::imap::search::zone(zone_minutes);
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros).unwrap_or_default();
    format!(
        "\"{}\"",
        t.with_timezone(&zone).format("%d-%b-%Y %H:%M:%S %z")
    )
}

/// A mailbox name as the client reads it: UTF-8 to a client that speaks IMAP4rev2 (or enabled
/// UTF8=ACCEPT), modified UTF-7 to a rev1 client (RFC 3501 §5.1.3); quoted, or a literal when it must be.
pub fn mailbox_name(out: &mut Vec<u8>, name: &str, dialect: Dialect) {
    if dialect.utf8 {
        structure::string(out, name, dialect);
    } else {
        structure::string(out, &utf7::encode(name), dialect);
    }
}

/// UIDs (ascending) as a compact set: `1:3,7,9:10`; empty when there are none.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}:{end}");
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn flags_and_dates() {
        assert_eq!(
            flag_list(flags::SEEN | flags::FLAGGED, &["$Work".into()], false),
            "(\\Flagged \\Seen $Work)"
        );
        assert_eq!(flag_list(0, &[], false), "()");
        assert_eq!(
            flag_list(flags::SEEN, &["$Work".into()], true),
            "(\\Seen \\Recent $Work)"
        );
        assert_eq!(
            internal_date(1_764_633_600_000_000, 0),
            "\"02-Dec-2025 00:00:00 +0000\""
        );
        // In the zone it was given in: the same instant.
        assert_eq!(
            internal_date(1_764_633_600_000_000, -330),
            "\"01-Dec-2025 18:30:00 -0530\""
        );
        assert_eq!(
            internal_date(1_764_633_600_000_000, 120),
            "\"02-Dec-2025 02:00:00 +0200\""
        );
    }
}
