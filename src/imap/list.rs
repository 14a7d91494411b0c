//! LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9), with LIST-EXTENDED (RFC 5258: selection and
//! RETURN options, several patterns), LIST-STATUS (RFC 5819) and SPECIAL-USE (RFC 6154).

use jmail_proto::imap::extended::ListExtended;
use jmail_proto::imap::imap_types::mailbox::{ListMailbox, Mailbox};

use super::mailboxes::{StatusItem, wire_name};
use super::respond::{self, ok};
use super::session::Session;
use crate::driver::Outcome;
use crate::store::rules::SEPARATOR;
use crate::store::{MailboxInfo, Role};

/// What a LIST (of any form) or LSUB asks for.
pub(super) struct ListRequest {
    lsub: bool,
    /// Wire bytes (the `INBOX` atom as `INBOX`).
    reference: Vec<u8>,
    patterns: Vec<Vec<u8>>,
    subscribed_only: bool,
    special_use_only: bool,
    recursive_match: bool,
    return_subscribed: bool,
    return_status: Option<Vec<String>>,
    /// The client used LIST-EXTENDED syntax (responses may carry extended data).
    extended: bool,
}

fn mailbox_bytes(m: &Mailbox<'_>) -> Vec<u8> {
    match m {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(o) => o.as_ref().to_vec(),
    }
}

impl ListRequest {
    /// LIST or LSUB as RFC 3501 has them.
    pub(super) fn plain(reference: &Mailbox<'_>, pattern: &ListMailbox<'_>, lsub: bool) -> Self {
        let pattern: &[u8] = match pattern {
            ListMailbox::Token(t) => t.as_ref(),
            ListMailbox::String(s) => s.as_ref(),
        };
        ListRequest {
            lsub,
            reference: mailbox_bytes(reference),
            patterns: vec![pattern.to_vec()],
            subscribed_only: lsub,
            special_use_only: false,
            recursive_match: false,
            return_subscribed: false,
            return_status: None,
            extended: false,
        }
    }

    pub(super) fn extended(l: ListExtended) -> Self {
        ListRequest {
            lsub: false,
            reference: l.reference,
            patterns: l.patterns,
            subscribed_only: l.subscribed_only,
            special_use_only: l.special_use_only,
            recursive_match: l.recursive_match,
            // RFC 5258 §3.1: selecting SUBSCRIBED implies returning it.
            return_subscribed: l.return_subscribed || l.subscribed_only,
            return_status: l.return_status,
            extended: true,
        }
    }
}

/// Longest LIST pattern (reference included), in bytes: twice the longest mailbox name, which leaves
/// room for wildcards. Matching costs this times the name's length per mailbox.
pub const LIST_PATTERN_BYTES_MAX: usize = 2 * crate::store::rules::MAILBOX_NAME_BYTES_MAX;
/// Most patterns one LIST-EXTENDED command may give.
pub const LIST_PATTERNS_MAX: usize = 16;
/// Most steps one LIST's matching may take: the characters of its patterns times those of the account's
/// names (each name is matched against each pattern once). About 20 ms of CPU; an ordinary LIST takes a
/// thousandth of it. 993 names of 504 bytes against sixteen 1 KB patterns full of `*a*a*` took 19 s of
/// CPU on an async worker, and eight sessions doing it held up every other user's commands for 16 s.
pub const LIST_MATCH_STEPS_MAX: u64 = 20_000_000;

/// Whether `name` matches a LIST pattern: `*` matches anything, `%` anything but the separator. The
/// pattern runs as a set of positions advanced a character at a time, so the cost is the pattern's length
/// times the name's whatever the wildcards (backtracking would be exponential in them).
fn matches_pattern(pattern: &[char], name: &[char]) -> bool {
    let wild = |c: char| c == '*' || c == '%';
    // A wildcard may match nothing: reaching it reaches the position after it too.
    let close = |at: &mut [bool]| {
        for j in 0..pattern.len() {
            if at[j] && wild(pattern[j]) {
                at[j + 1] = true;
            }
        }
    };
    let mut at = vec![false; pattern.len() + 1];
    let mut next = vec![false; pattern.len() + 1];
    at[0] = true;
    close(&mut at);
    for &c in name {
        next.fill(false);
        for (j, &p) in pattern.iter().enumerate() {
            if !at[j] {
                continue;
            }
            match p {
                '*' => next[j] = true,
                '%' if c != SEPARATOR => next[j] = true,
                '%' => {}
                p if p == c => next[j + 1] = true,
                _ => {}
            }
        }
        close(&mut next);
        if !next.contains(&true) {
            return false;
        }
        std::mem::swap(&mut at, &mut next);
    }
    at[pattern.len()]
}

/// Whether a (canonical) mailbox name matches a pattern; INBOX matches in any case, also where a
/// wildcard follows it (`inbox*` lists INBOX and what is under it, not `inboxes`).
pub(super) fn pattern_matches(pattern: &str, name: &str) -> bool {
    let inbox_prefix = |s: &str| s.get(..5).is_some_and(|f| f.eq_ignore_ascii_case("INBOX"));
    let canon = |s: &str| -> Vec<char> {
        match s.get(5..) {
            Some(rest) if inbox_prefix(s) && (rest.is_empty() || rest.starts_with(SEPARATOR)) => {
                format!("INBOX{rest}").chars().collect()
            }
            _ => s.chars().collect(),
        }
    };
    let name = canon(name);
    if matches_pattern(&canon(pattern), &name) {
        return true;
    }
    let in_inbox = name.len() >= 5
        && name[..5] == ['I', 'N', 'B', 'O', 'X']
        && name.get(5).is_none_or(|&c| c == SEPARATOR);
    in_inbox
        && inbox_prefix(pattern)
        && matches_pattern(
            &format!("INBOX{}", &pattern[5..])
                .chars()
                .collect::<Vec<_>>(),
            &name,
        )
}

/// The names above existing mailboxes that are no mailbox themselves, in order.
fn missing_levels(mailboxes: &[MailboxInfo]) -> std::collections::BTreeSet<String> {
    let names: std::collections::HashSet<&str> =
        mailboxes.iter().map(|m| m.name.as_str()).collect();
    let mut missing = std::collections::BTreeSet::new();
    for m in mailboxes {
        for (at, _) in m.name.match_indices(SEPARATOR) {
            let level = &m.name[..at];
            if !level.is_empty() && !names.contains(level) {
                missing.insert(level.to_string());
            }
        }
    }
    missing
}

fn role_attribute(role: Option<Role>) -> Option<&'static str> {
    match role? {
        Role::Inbox => None,
        Role::Sent => Some("\\Sent"),
        Role::Drafts => Some("\\Drafts"),
        Role::Trash => Some("\\Trash"),
        Role::Junk => Some("\\Junk"),
        Role::Archive => Some("\\Archive"),
    }
}

impl Session {
    pub(super) async fn list(&mut self, tag: &str, request: ListRequest) -> Outcome {
        let verb = if request.lsub { "LSUB" } else { "LIST" };
        let mut status_items = Vec::new();
        for name in request.return_status.iter().flatten() {
            match StatusItem::named(name) {
                Some(item) => status_items.push(item),
                None => {
                    return self.protocol_error(super::respond::bad(tag, "Unknown STATUS item"));
                }
            }
        }
        let Some(reference) = wire_name(&request.reference, self.utf8()) else {
            return self.bad_name(tag);
        };
        if request.patterns.len() > LIST_PATTERNS_MAX {
            return self.protocol_error(super::respond::bad(tag, "Too many patterns"));
        }
        let mut patterns = Vec::new();
        for p in &request.patterns {
            if reference.len() + p.len() > LIST_PATTERN_BYTES_MAX {
                return self.protocol_error(super::respond::bad(tag, "Pattern too long"));
            }
            match wire_name(p, self.utf8()) {
                Some(p) => patterns.push(format!("{reference}{p}")),
                None => return self.bad_name(tag),
            }
        }
        let mut out = Vec::new();
        if patterns.len() == 1 && request.patterns[0].is_empty() {
            // The hierarchy delimiter and root (RFC 9051 §6.3.9).
            out.extend_from_slice(format!("* {verb} (\\Noselect) \"/\" \"\"\r\n").as_bytes());
            out.extend(ok(tag, &format!("{verb} completed")));
            return Outcome::go_on(out);
        }
        let mailboxes = match self.store.mailboxes(self.user()).await {
            Ok(m) => m,
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        // Names still subscribed whose mailbox is gone (RFC 3501 §6.3.6): subscribed, never special-use.
        let kept = match request.subscribed_only && !request.special_use_only {
            true => match self.store.kept_subscriptions(self.user()).await {
                Ok(kept) => kept,
                Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
            },
            false => Vec::new(),
        };
        let chars = |names: &mut dyn Iterator<Item = &str>| -> u64 {
            names.map(|n| n.chars().count() as u64 + 1).sum()
        };
        let steps = chars(&mut patterns.iter().map(String::as_str)).saturating_mul(chars(
            &mut mailboxes
                .iter()
                .map(|m| m.name.as_str())
                .chain(kept.iter().map(String::as_str)),
        ));
        if steps > LIST_MATCH_STEPS_MAX {
            return Outcome::go_on(super::respond::no(
                tag,
                Some("LIMIT"),
                "These patterns are too costly to match against this many mailboxes; use fewer or shorter ones",
            ));
        }
        // Each name is matched once: the checks below ask again of the same names (descendants).
        let listed: std::collections::HashSet<&str> = mailboxes
            .iter()
            .map(|m| m.name.as_str())
            .chain(kept.iter().map(String::as_str))
            .filter(|name| patterns.iter().any(|p| pattern_matches(p, name)))
            .collect();
        let unlisted = |name: &str| !listed.contains(name);
        let dialect = self.dialect();
        let selected = |m: &MailboxInfo| {
            (!request.subscribed_only || m.subscribed)
                && (!request.special_use_only || role_attribute(m.role).is_some())
        };
        for mailbox in &mailboxes {
            if unlisted(&mailbox.name) {
                continue;
            }
            let prefix = format!("{}{SEPARATOR}", mailbox.name);
            let descendants = || mailboxes.iter().filter(|m| m.name.starts_with(&prefix));
            let kept_below = || kept.iter().any(|k| k.starts_with(&prefix) && unlisted(k));
            let mut child_info = false;
            if !selected(mailbox) {
                // LSUB: an unsubscribed parent of a subscribed mailbox the pattern passes over (`%`)
                // is listed \Noselect in its place (RFC 3501 §6.3.9).
                let hidden_subscribed =
                    || descendants().any(|d| d.subscribed && unlisted(&d.name)) || kept_below();
                if request.lsub && hidden_subscribed() {
                    out.extend_from_slice(b"* LSUB (\\Noselect) \"/\" ");
                    respond::mailbox_name(&mut out, &mailbox.name, dialect);
                    out.extend_from_slice(b"\r\n");
                    continue;
                }
                // RECURSIVEMATCH: a parent of a selected mailbox the patterns do not list themselves is
                // listed for its sake (RFC 5258 §3.5).
                let unlisted_selected =
                    || descendants().any(|d| selected(d) && unlisted(&d.name)) || kept_below();
                if !(request.recursive_match && unlisted_selected()) {
                    continue;
                }
                child_info = true;
            }
            let mut attributes = vec![if descendants().next().is_some() {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            }];
            attributes.extend(role_attribute(mailbox.role));
            if mailbox.subscribed && !request.lsub && (self.rev2 || request.return_subscribed) {
                attributes.push("\\Subscribed");
            }
            out.extend_from_slice(format!("* {verb} ({}) \"/\" ", attributes.join(" ")).as_bytes());
            respond::mailbox_name(&mut out, &mailbox.name, dialect);
            if child_info && request.extended {
                let why = if request.subscribed_only {
                    "SUBSCRIBED"
                } else {
                    "SPECIAL-USE"
                };
                out.extend_from_slice(format!(" (\"CHILDINFO\" (\"{why}\"))").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            if !status_items.is_empty()
                && !child_info
                && let Err(e) = self.status_line(&mut out, mailbox, &status_items).await
            {
                return Outcome::go_on(self.store_failure(tag, &e));
            }
        }
        if !request.lsub && !request.subscribed_only && !request.special_use_only {
            // Levels of the hierarchy that are no mailbox (a parent deleted, or never made) are
            // listed \Noselect where a pattern ending in `%` matches them (RFC 3501 §6.3.8), so a
            // client walking the tree a level at a time reaches what is below them.
            let ending_in_percent: Vec<&String> =
                patterns.iter().filter(|p| p.ends_with('%')).collect();
            for level in missing_levels(&mailboxes) {
                if ending_in_percent.iter().any(|p| pattern_matches(p, &level)) {
                    out.extend_from_slice(
                        format!("* {verb} (\\Noselect \\HasChildren) \"/\" ").as_bytes(),
                    );
                    respond::mailbox_name(&mut out, &level, dialect);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        if !kept.is_empty() {
            // LSUB cannot select them; LIST-EXTENDED says they do not exist (RFC 5258 §3).
            let attributes = match request.lsub {
                true => "\\Noselect",
                false => "\\Subscribed \\NonExistent",
            };
            for name in kept.iter().filter(|n| !unlisted(n)) {
                out.extend_from_slice(format!("* {verb} ({attributes}) \"/\" ").as_bytes());
                respond::mailbox_name(&mut out, name, dialect);
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend(ok(tag, &format!("{verb} completed")));
        Outcome::go_on(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(pattern_matches("*", "a/b/c"));
        assert!(pattern_matches("%", "INBOX"));
        assert!(!pattern_matches("%", "a/b"));
        assert!(pattern_matches("a/%", "a/b"));
        assert!(!pattern_matches("a/%", "a/b/c"));
        assert!(pattern_matches("a/*", "a/b/c"));
        assert!(pattern_matches("inbox", "INBOX"));
        assert!(pattern_matches("Inbox/%", "INBOX/x"));
        assert!(pattern_matches("inbox*", "INBOX"));
        assert!(pattern_matches("inbox*", "INBOX/x/y"));
        assert!(pattern_matches("inBOX%", "INBOX"));
        assert!(!pattern_matches("inbox*", "INBOXES"));
        assert!(pattern_matches("INBOX*", "INBOXES"));
        assert!(!pattern_matches("Sent", "sent"));
        assert!(pattern_matches("S%t", "Sent"));
        assert!(pattern_matches("Entw*", "Entwürfe"));
        assert!(!pattern_matches("Entwü", "Entwürfe"));
        assert!(pattern_matches("%/%/c", "a/b/c"));
        assert!(!pattern_matches("%/c", "a/b/c"));
        assert!(pattern_matches("*%*%", "x"));
    }

    #[test]
    fn many_wildcards_cost_no_more_than_their_length() {
        // Backtracking would not finish here in a lifetime; the position set takes a moment.
        let name: String = "a".repeat(512);
        let pattern = format!("{}b", "*a".repeat(400));
        assert!(!pattern_matches(&pattern, &name));
        assert!(pattern_matches(&"*a".repeat(400), &name[..400]));
    }
}
