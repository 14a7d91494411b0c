//! A header block as IMAP's ENVELOPE shows it (RFC 9051 §7.5.2): header values raw (unfolded, never
//! MIME-decoded, since ENVELOPE carries them as sent and the client decodes), and address headers split
//! into name, mailbox and host. mail-parser decodes what it parses, so the values here are read from the
//! stored bytes at the offsets mail-parser found; addresses get their own small, total parser for the
//! same reason.

use mail_parser::{Header, HeaderName};
use serde::{Deserialize, Serialize};

/// What IMAP's ENVELOPE and a JMAP list need of a message's header, as the header says it: a header that
/// is absent is `None` (or an empty list), not filled in from another. When a header appears more than
/// once the last one counts, as mail-parser reads them, so IMAP and JMAP see the same values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(rename = "f", default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Address>,
    #[serde(rename = "se", default, skip_serializing_if = "Vec::is_empty")]
    pub sender: Vec<Address>,
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to: Vec<Address>,
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Address>,
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<Address>,
    #[serde(rename = "b", default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<Address>,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl Envelope {
    /// ENVELOPE's sender field: `Sender`, or `From` when there is no `Sender` (RFC 9051 §7.5.2).
    pub fn sender_or_from(&self) -> &[Address] {
        if self.sender.is_empty() {
            &self.from
        } else {
            &self.sender
        }
    }

    /// ENVELOPE's reply-to field: `Reply-To`, or `From` when there is no `Reply-To` (RFC 9051 §7.5.2).
    pub fn reply_to_or_from(&self) -> &[Address] {
        if self.reply_to.is_empty() {
            &self.from
        } else {
            &self.reply_to
        }
    }

    /// The envelope of the header block `headers` (mail-parser's, for `raw[..header_end]`).
    pub(super) fn read(raw: &[u8], headers: &[Header<'_>], header_end: usize) -> Envelope {
        let text = |name: HeaderName<'static>| last_value(raw, headers, &name, header_end);
        let list = |name: HeaderName<'static>| {
            text(name)
                .map(|value| address_list(&value))
                .unwrap_or_default()
        };
        Envelope {
            date: text(HeaderName::Date),
            subject: text(HeaderName::Subject),
            from: list(HeaderName::From),
            sender: list(HeaderName::Sender),
            reply_to: list(HeaderName::ReplyTo),
            to: list(HeaderName::To),
            cc: list(HeaderName::Cc),
            bcc: list(HeaderName::Bcc),
            in_reply_to: text(HeaderName::InReplyTo),
            message_id: text(HeaderName::MessageId),
        }
    }
}

/// One entry of an address list, as ENVELOPE lists it. A mailbox has `mailbox` and `host` both `Some`
/// (`host` is `Some("")` for an address without `@`). A group is two markers around its members: a
/// start with the group's name as `mailbox` and no `host`, and an end with all three `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The display name as written (quotes removed, encoded words kept), or a comment when the address
    /// has no display name (`bob@x (Bob)`).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// An obsolete source route (`<@relay1,@relay2:bob@x>` gives `@relay1,@relay2`), ENVELOPE's `adl`.
    /// Summaries made before it was kept have none.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

impl Address {
    /// `Some(name)` when this entry starts a group.
    pub fn group_start(&self) -> Option<&str> {
        match (&self.mailbox, &self.host) {
            (Some(group), None) => Some(group),
            _ => None,
        }
    }

    /// This entry ends a group.
    pub fn is_group_end(&self) -> bool {
        self.name.is_none() && self.mailbox.is_none() && self.host.is_none()
    }

    /// A mailbox `mailbox@host` without a display name or route.
    pub fn mailbox(mailbox: &str, host: &str) -> Address {
        Address {
            name: None,
            mailbox: Some(mailbox.to_string()),
            host: Some(host.to_string()),
            route: None,
        }
    }
}

/// The raw value of the last `name` header: unfolded, trimmed, not decoded (bytes that are not UTF-8 become
/// U+FFFD). `header_end` bounds the scan, so a value never runs past its own header block.
pub(super) fn last_value(
    raw: &[u8],
    headers: &[Header<'_>],
    name: &HeaderName<'_>,
    header_end: usize,
) -> Option<String> {
    let header = headers.iter().rev().find(|h| &h.name == name)?;
    Some(raw_value(raw, header.offset_start as usize, header_end))
}

/// The logical line starting at `start` (just after a header's colon) up to `end`, unfolded (RFC 5322
/// §2.2.3: each line break that a space or tab follows is removed) and trimmed.
fn raw_value(raw: &[u8], start: usize, end: usize) -> String {
    let end = end.min(raw.len());
    let start = start.min(end);
    let mut value = Vec::new();
    let mut i = start;
    while i < end {
        let byte = raw[i];
        if byte == b'\n' {
            if !matches!(raw.get(i + 1), Some(b' ' | b'\t')) || i + 1 >= end {
                break;
            }
        } else if !(byte == b'\r' && raw.get(i + 1) == Some(&b'\n')) {
            value.push(byte);
        }
        i += 1;
    }
    String::from_utf8_lossy(&value)
        .trim_matches([' ', '\t', '\r'])
        .to_string()
}

/// What has been read of one address list entry so far.
#[derive(Default)]
struct Entry {
    /// The words as a display name: quoted strings unquoted, words joined by one space.
    phrase: String,
    /// The same text as an addr-spec: everything but white space and comments, quoted strings kept quoted.
    spec: String,
    /// The inside of `<...>`, once seen.
    angle: Option<String>,
    /// The first comment.
    comment: Option<String>,
    /// White space or a comment came since the last word.
    space: bool,
}

impl Entry {
    fn word(&mut self, phrase: &str, spec: &str) {
        if self.angle.is_some() {
            return; // Text after `<...>` belongs to nothing.
        }
        if self.space && !self.phrase.is_empty() {
            self.phrase.push(' ');
        }
        self.space = false;
        self.phrase.push_str(phrase);
        self.spec.push_str(spec);
    }

    /// The mailbox this entry names, if it names anything.
    fn finish(self) -> Option<Address> {
        let (name, spec, route) = match self.angle {
            Some(inner) => {
                let inner = bare(&inner);
                // An obsolete source route (`<@relay:bob@x>`): ENVELOPE's adl, not part of the address.
                let (route, spec) = match inner.split_once(':') {
                    Some((route, rest)) if inner.starts_with('@') => {
                        (Some(route.to_string()), rest.to_string())
                    }
                    _ => (None, inner),
                };
                let name = Some(self.phrase).filter(|p| !p.is_empty()).or(self.comment);
                (name, spec, route)
            }
            None if self.spec.is_empty() => return None,
            None => (self.comment, self.spec, None),
        };
        let (mailbox, host) = split_at_domain(&spec);
        Some(Address {
            name: name.filter(|n| !n.is_empty()),
            route,
            ..Address::mailbox(mailbox, host)
        })
    }
}

/// `spec` without the white space and comments outside its quoted strings, which are not part of the
/// address (RFC 5322 §3.4.1: CFWS around its atoms): `<a (x)@ (y) b>` is `a@b`.
fn bare(spec: &str) -> String {
    let (mut quoted, mut escaped, mut comment_depth) = (false, false, 0usize);
    spec.chars()
        .filter(|&c| {
            match c {
                _ if escaped => {
                    escaped = false;
                    return comment_depth == 0;
                }
                '\\' if quoted || comment_depth > 0 => escaped = true,
                '"' if comment_depth == 0 => quoted = !quoted,
                '(' if !quoted => comment_depth += 1,
                ')' if !quoted && comment_depth > 0 => {
                    comment_depth -= 1;
                    return false;
                }
                c if c.is_whitespace() && !quoted => return false,
                _ => {}
            }
            comment_depth == 0
        })
        .collect()
}

/// `local@domain` split at the last `@` outside quotes; no `@` gives an empty domain.
fn split_at_domain(spec: &str) -> (&str, &str) {
    let (mut quoted, mut escaped, mut at) = (false, false, None);
    for (i, c) in spec.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '@' if !quoted => at = Some(i),
            _ => {}
        }
    }
    at.map_or((spec, ""), |i| (&spec[..i], &spec[i + 1..]))
}

/// Entries kept of one address field (group markers included); the rest are left out. Each costs about
/// 200 bytes in memory and is written into the stored summary and every ENVELOPE, so unbounded one field
/// of 600,000 tiny addresses (10 MB) took 130 MB to summarize. Real mail names far fewer.
pub const ADDRESSES_MAX: usize = 1_000;

/// The entries of an address header's raw value, at most [`ADDRESSES_MAX`] (and a group's end marker).
/// Total and lenient: whatever cannot be read as an address is skipped or read as best it can; an
/// unterminated group, quote, comment or `<` ends at the end of the value.
pub(super) fn address_list(value: &str) -> Vec<Address> {
    let mut out = Vec::new();
    let mut entry = Entry::default();
    let mut in_group = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if out.len() >= ADDRESSES_MAX {
            entry = Entry::default();
            break;
        }
        match c {
            '"' => {
                let (mut unquoted, mut quoted) = (String::new(), String::from('"'));
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                unquoted.push(escaped);
                                quoted.extend(['\\', escaped]);
                            }
                        }
                        _ => {
                            unquoted.push(c);
                            quoted.push(c);
                        }
                    }
                }
                quoted.push('"');
                entry.word(&unquoted, &quoted);
            }
            '(' => {
                let mut comment = String::new();
                let mut depth = 1usize;
                while let Some(c) = chars.next() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                comment.push(escaped);
                            }
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    comment.push(c);
                }
                entry
                    .comment
                    .get_or_insert_with(|| comment.trim().to_string());
                entry.space = true;
            }
            '<' if entry.angle.is_none() => {
                entry.angle = Some(chars.by_ref().take_while(|&c| c != '>').collect());
            }
            ':' if !in_group && entry.angle.is_none() => {
                let group = std::mem::take(&mut entry).phrase;
                out.push(Address {
                    mailbox: Some(group),
                    ..group_end()
                });
                in_group = true;
            }
            ',' | ';' => {
                out.extend(std::mem::take(&mut entry).finish());
                if c == ';' && in_group {
                    out.push(group_end());
                    in_group = false;
                }
            }
            c if c.is_whitespace() => entry.space = true,
            c => {
                let text = c.encode_utf8(&mut [0; 4]).to_string();
                entry.word(&text, &text);
            }
        }
    }
    out.extend(entry.finish());
    if in_group {
        out.push(group_end());
    }
    out
}

fn group_end() -> Address {
    Address {
        name: None,
        mailbox: None,
        host: None,
        route: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(name: Option<&str>, mailbox: &str, host: &str) -> Address {
        Address {
            name: name.map(str::to_string),
            ..Address::mailbox(mailbox, host)
        }
    }

    fn group(name: &str) -> Address {
        Address {
            mailbox: Some(name.to_string()),
            ..group_end()
        }
    }

    #[test]
    fn names_are_as_written_and_never_decoded() {
        assert_eq!(
            address_list(
                "\"Doe, John\" <john@x>, =?utf-8?q?J=C3=B6rg?= <jorg@y>, bob@z (Bob B), <@relay:c@w>"
            ),
            [
                mailbox(Some("Doe, John"), "john", "x"),
                mailbox(Some("=?utf-8?q?J=C3=B6rg?="), "jorg", "y"),
                mailbox(Some("Bob B"), "bob", "z"),
                Address {
                    route: Some("@relay".into()),
                    ..mailbox(None, "c", "w")
                },
            ]
        );
        assert_eq!(
            address_list("John  Q.  Public <jqp@x>, \"a\\\"b\" < a @ b >"),
            [
                mailbox(Some("John Q. Public"), "jqp", "x"),
                mailbox(Some("a\"b"), "a", "b"),
            ]
        );
    }

    #[test]
    fn comments_and_space_inside_the_angle_brackets_are_not_the_address() {
        assert_eq!(
            address_list("<user-from (comment)@ (comment) domain.org>"),
            [mailbox(None, "user-from", "domain.org")]
        );
        assert_eq!(
            address_list("Name <a(x(nested)\\)y)@b>, <\"q (not a comment)\"@c>"),
            [
                mailbox(Some("Name"), "a", "b"),
                mailbox(None, "\"q (not a comment)\"", "c"),
            ]
        );
        let routed = address_list("<@r1,@r2:bob@x>");
        assert_eq!(routed[0].route.as_deref(), Some("@r1,@r2"));
        assert_eq!(routed[0].mailbox.as_deref(), Some("bob"));
    }

    #[test]
    fn a_group_is_a_start_marker_its_members_and_an_end_marker() {
        assert_eq!(
            address_list("team: alice@x, Bob <bob@y>;, carol@z"),
            [
                group("team"),
                mailbox(None, "alice", "x"),
                mailbox(Some("Bob"), "bob", "y"),
                group_end(),
                mailbox(None, "carol", "z"),
            ]
        );
        assert_eq!(
            address_list("undisclosed-recipients:;"),
            [group("undisclosed-recipients"), group_end()]
        );
        assert!(group("g").group_start() == Some("g") && group_end().is_group_end());
        assert_eq!(mailbox(None, "a", "b").group_start(), None);
        // Unterminated: the group ends with the value.
        assert_eq!(
            address_list("g: a@b"),
            [group("g"), mailbox(None, "a", "b"), group_end()]
        );
    }

    #[test]
    fn malformed_lists_give_what_can_be_read() {
        assert_eq!(address_list(""), []);
        assert_eq!(address_list(" , ,(just a comment)"), []);
        assert_eq!(address_list("root"), [mailbox(None, "root", "")]);
        assert_eq!(
            address_list("\"unterminated <a@b>"),
            [mailbox(None, "\"unterminated <a@b>\"", "")]
        );
        assert_eq!(address_list("\"a@b\"@c"), [mailbox(None, "\"a@b\"", "c")]);
        assert_eq!(
            address_list("<\"john doe\" @ x>"),
            [mailbox(None, "\"john doe\"", "x")]
        );
        assert_eq!(address_list("x <a@b"), [mailbox(Some("x"), "a", "b")]);
        assert_eq!(address_list("<>"), [mailbox(None, "", "")]);
    }

    #[test]
    fn a_field_lists_at_most_a_bounded_number_of_addresses_and_groups_stay_closed() {
        let many = "a@b, ".repeat(3 * ADDRESSES_MAX);
        let listed = address_list(&many);
        assert_eq!(listed.len(), ADDRESSES_MAX);
        assert_eq!(listed[ADDRESSES_MAX - 1], mailbox(None, "a", "b"));
        let grouped = address_list(&format!("g: {many};"));
        assert_eq!(grouped.len(), ADDRESSES_MAX + 1);
        assert_eq!(grouped[0], group("g"));
        assert!(grouped[ADDRESSES_MAX].is_group_end());
    }

    #[test]
    fn raw_values_are_unfolded_and_trimmed_but_not_decoded() {
        let raw = b"Subject:  =?utf-8?q?a?=\r\n\t b \r\nX: y\r\n";
        assert_eq!(raw_value(raw, 8, raw.len()), "=?utf-8?q?a?=\t b");
        assert_eq!(raw_value(b"Subject:\n", 8, 9), "");
        assert_eq!(raw_value(b"S: a\n b", 2, 7), "a b");
        // The end of the header block bounds a value even mid-fold.
        assert_eq!(raw_value(b"S: a\n b", 2, 5), "a");
        assert_eq!(raw_value(b"S: \xff", 2, 4), "\u{fffd}");
        assert_eq!(raw_value(b"S: a", 9, 4), "");
    }
}
