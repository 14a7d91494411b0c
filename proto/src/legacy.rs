//! The Jmail v1.0 exchange (docs/protocol-v1.md): no framing, one `send()` per message, read with
//! `recv(1024)`. Pure helpers: recognizing a v1 client, reading its inputs, and writing the mailbox JSON a
//! v1 client can take in one read.

/// The v1 server's replies, byte for byte.
pub const GOOD_VERSION: &[u8] = b"good boi UWU";
pub const BAD_VERSION: &[u8] = b"badver";
pub const LOGIN_OK: &[u8] = b"1969";
pub const LOGIN_FAILED: &[u8] = b"1234";
pub const LOGIN_FAILED_TEXT: &[u8] = b"Logon failed";
/// The v1 client's refresh command.
pub const REFRESH: &[u8] = b"Banky";
/// A v1 client reads every reply with `recv(1024)`: a mailbox must fit in this many bytes.
pub const REPLY_BYTES_MAX: usize = 1024;

/// True when a connection's first bytes are a v1 client's version (a decimal number such as `1.0`), not a
/// native command (which starts with a letter).
pub fn is_v1_start(first: &[u8]) -> bool {
    first.first().is_some_and(u8::is_ascii_digit)
}

/// Parses a v1 version (`1.0`, `1`, `1.25`).
pub fn parse_version(chunk: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(chunk).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    text.parse().ok()
}

/// What a logged-in v1 client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Refresh,
    /// `(<recipient>)<text>`; a literal `\n` in the text is a line break.
    Send {
        to: String,
        text: String,
    },
    Invalid,
}

pub fn parse_input(chunk: &[u8]) -> Input {
    if chunk == REFRESH {
        return Input::Refresh;
    }
    let Ok(text) = std::str::from_utf8(chunk) else {
        return Input::Invalid;
    };
    let Some(rest) = text.strip_prefix('(') else {
        return Input::Invalid;
    };
    let Some((to, body)) = rest.split_once(')') else {
        return Input::Invalid;
    };
    let to = to.trim();
    if to.is_empty() {
        return Input::Invalid;
    }
    Input::Send {
        to: to.to_string(),
        text: body.trim_start_matches(' ').replace("\\n", "\n"),
    }
}

/// Every way to read `chunk` as a user name (at most `name_bytes_max` bytes) directly followed by a
/// password, for when a client's two `send()`s arrived as one read. The caller keeps the splits whose name
/// is a real user.
pub fn credential_splits(chunk: &str, name_bytes_max: usize) -> impl Iterator<Item = (&str, &str)> {
    chunk
        .char_indices()
        .skip(1)
        .map(|(i, _)| i)
        .take_while(move |&i| i <= name_bytes_max)
        .map(move |i| (&chunk[..i], &chunk[i..]))
}

/// One message as a v1 client shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sender: String,
    /// `YYYY-MM-DD HH:MM:SS.ffffff`.
    pub timestamp: String,
    pub text: String,
}

/// Marks a text shortened to fit.
const CUT_MARK: &str = " [...]";

/// Writes the mailbox as v1's JSON object, `{"<sender> At:<timestamp>": "<text>", ...}`, oldest first.
/// Only the newest entries that fit in `max_bytes` are included; when not even the newest fits, its text
/// is shortened (marked ` [...]`). The result is always a whole JSON document of at most `max_bytes`.
/// `entries` are newest first.
pub fn mailbox_json(entries: &[Entry], max_bytes: usize) -> String {
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut size = 2; // {}
    for e in entries {
        let key = key_json(e, &kept);
        let value = serde_json::to_string(&e.text).expect("strings serialize");
        let cost = key.len() + 1 + value.len() + usize::from(!kept.is_empty());
        if size + cost <= max_bytes {
            size += cost;
            kept.push((key, value));
            continue;
        }
        let room = max_bytes.saturating_sub(size + key.len() + 1);
        if kept.is_empty()
            && let Some(value) = shortened(&e.text, room)
        {
            kept.push((key, value));
        }
        break;
    }
    let body: Vec<String> = kept.iter().rev().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", body.join(","))
}

/// The entry's key; a repeat of an earlier key gets a counter so no entry overwrites another.
fn key_json(e: &Entry, kept: &[(String, String)]) -> String {
    let base = format!("{} At:{}", e.sender, e.timestamp);
    let mut key = serde_json::to_string(&base).expect("strings serialize");
    let mut n = 2;
    while kept.iter().any(|(k, _)| *k == key) {
        key = serde_json::to_string(&format!("{base} ({n})")).expect("strings serialize");
        n += 1;
    }
    key
}

/// The longest prefix of `text` whose JSON string, with the cut mark, fits in `room` bytes.
fn shortened(text: &str, room: usize) -> Option<String> {
    let mut end = text.len();
    loop {
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let candidate = format!("{}{CUT_MARK}", &text[..end]);
        let json = serde_json::to_string(&candidate).expect("strings serialize");
        if json.len() <= room {
            return Some(json);
        }
        if end == 0 {
            return None;
        }
        // Shrink by what is over, at least one byte.
        end = end.saturating_sub((json.len() - room).max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sender: &str, text: &str) -> Entry {
        Entry {
            sender: sender.into(),
            timestamp: "2026-11-30 12:00:00.000001".into(),
            text: text.into(),
        }
    }

    #[test]
    fn inputs() {
        assert_eq!(parse_input(b"Banky"), Input::Refresh);
        assert_eq!(
            parse_input(b"(bob) hi\\nthere"),
            Input::Send {
                to: "bob".into(),
                text: "hi\nthere".into()
            }
        );
        assert_eq!(
            parse_input(b"(bob)x"),
            Input::Send {
                to: "bob".into(),
                text: "x".into()
            }
        );
        assert_eq!(parse_input(b"bob hi"), Input::Invalid);
        assert_eq!(parse_input(b"() hi"), Input::Invalid);
        assert_eq!(parse_input(b"\xff"), Input::Invalid);
        assert!(is_v1_start(b"1.0"));
        assert!(!is_v1_start(b"JMAIL 2.0"));
        assert_eq!(parse_version(b"1.0"), Some(1.0));
        assert_eq!(parse_version(b"x"), None);
    }

    #[test]
    fn splits() {
        let s: Vec<_> = credential_splits("bobpw", 64).collect();
        assert_eq!(
            s,
            vec![("b", "obpw"), ("bo", "bpw"), ("bob", "pw"), ("bobp", "w")]
        );
    }

    #[test]
    fn mailbox_keeps_newest_that_fit_and_is_whole_json() {
        assert_eq!(mailbox_json(&[], 1024), "{}");
        let entries: Vec<Entry> = (0..100)
            .map(|i| entry("alice", &format!("message {i}")))
            .collect();
        let json = mailbox_json(&entries, 1024);
        assert!(json.len() <= 1024);
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&json).unwrap();
        assert!(parsed.len() > 5);
        // The newest (entries[0]) is last, as the original appended.
        assert!(json.ends_with("\"message 0\"}"), "{json}");
        assert!(parsed.contains_key("alice At:2026-11-30 12:00:00.000001 (2)"));
    }

    #[test]
    fn a_huge_newest_message_is_shortened_not_cut() {
        let big = "ü".repeat(2000);
        let json = mailbox_json(&[entry("bob", &big), entry("carol", "older")], 1024);
        assert!(json.len() <= 1024, "{}", json.len());
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&json).unwrap();
        let text = parsed.values().next().unwrap().as_str().unwrap();
        assert!(text.ends_with(" [...]"));
        assert_eq!(parsed.len(), 1);
    }
}
