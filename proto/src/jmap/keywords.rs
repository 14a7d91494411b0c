//! JMAP keywords (RFC 8621 §4.1.1) and the store's flags: `$seen`, `$flagged`, `$answered` and `$draft`
//! are IMAP's system flags `\Seen`, `\Flagged`, `\Answered` and `\Draft`; every other keyword is an IMAP
//! keyword of the same spelling. IMAP's `\Deleted` has no JMAP keyword and is not shown.

use crate::flags;

/// The system flags and their JMAP names.
pub const SYSTEM: [(i64, &str); 4] = [
    (flags::SEEN, "$seen"),
    (flags::FLAGGED, "$flagged"),
    (flags::ANSWERED, "$answered"),
    (flags::DRAFT, "$draft"),
];

/// What a JMAP keyword is in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyword {
    /// One of the system flag bits.
    System(i64),
    /// A keyword stored by name.
    Named(String),
}

/// The store's form of a JMAP keyword (compared without regard to case, as JMAP says).
pub fn parse(name: &str) -> Keyword {
    SYSTEM
        .iter()
        .find(|(_, jmap)| jmap.eq_ignore_ascii_case(name))
        .map_or_else(
            || Keyword::Named(name.to_string()),
            |(bit, _)| Keyword::System(*bit),
        )
}

/// The JMAP names of a message's flags: its system flags (but `\Deleted`), then its keywords, lower
/// case as RFC 8621 §4.1.1 has servers return them (IMAP keeps each keyword as the mailbox first
/// spelled it: `$Forwarded`, `NonJunk`).
pub fn names(system: i64, keywords: &[String]) -> Vec<String> {
    SYSTEM
        .iter()
        .filter(|(bit, _)| system & bit != 0)
        .map(|(_, name)| name.to_string())
        .chain(keywords.iter().map(|k| k.to_ascii_lowercase()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_flags_have_jmap_names_both_ways() {
        assert_eq!(parse("$Seen"), Keyword::System(flags::SEEN));
        assert_eq!(parse("$draft"), Keyword::System(flags::DRAFT));
        assert_eq!(parse("$junk"), Keyword::Named("$junk".into()));
        assert_eq!(
            names(
                flags::SEEN | flags::DELETED | flags::FLAGGED,
                &["Work".into(), "$Forwarded".into()]
            ),
            vec!["$seen", "$flagged", "work", "$forwarded"]
        );
    }
}
