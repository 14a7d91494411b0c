//! Whom an automatic reply answers (RFC 3834 §2, RFC 5230 §4.5 and §4.6): only a person who wrote to the
//! user, never a machine, a list or the user; each sender once per interval. Pure: header fields in,
//! a verdict out.

use mail_parser::{HeaderName, HeaderValue, Message};

/// The least time between two replies to one sender: RFC 5230 §4.6's default of seven days.
pub const REPLY_INTERVAL_SECS: i64 = 7 * 24 * 3600;

/// Local parts that name a machine or a list's robot, not a person (as Postfix's and Exim's vacation
/// programs skip them). Compared in lower case; `*` at either end matches any prefix or suffix.
const ROBOTS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "listserv",
    "majordomo",
    "owner-*",
    "*-request",
    "*-owner",
    "*-bounces",
    "*-bounce",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "*+noreply",
];

/// Why a message gets no automatic reply from a user whose own addresses `own` recognises; `None`
/// when it gets one. `sender` is the envelope sender (MAIL FROM).
pub fn refusal(
    sender: &str,
    head: &Message<'_>,
    own: impl Fn(&str) -> bool,
) -> Option<&'static str> {
    let Some((local, _)) = sender.rsplit_once('@') else {
        return Some("the null sender or an address without a domain");
    };
    let local = local.to_ascii_lowercase();
    if ROBOTS.iter().any(|robot| matches_robot(&local, robot)) {
        return Some("a sender address that names a robot or a list");
    }
    if own(sender) {
        return Some("mail from the user");
    }
    let raw = |name: &str| head.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if raw("Auto-Submitted").is_some_and(|v| v.split(';').next().is_some_and(|v| v.trim() != "no"))
    {
        return Some("an automatic message (Auto-Submitted)");
    }
    if raw("Precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "list" | "junk")) {
        return Some("bulk or list mail (Precedence)");
    }
    if raw("X-Auto-Response-Suppress")
        .is_some_and(|v| v.split(',').any(|w| matches!(w.trim(), "oof" | "all")))
    {
        return Some("a sender that asked for no automatic replies");
    }
    let list = [
        HeaderName::ListId,
        HeaderName::ListPost,
        HeaderName::ListUnsubscribe,
        HeaderName::ListHelp,
        HeaderName::ListOwner,
        HeaderName::ListSubscribe,
        HeaderName::ListArchive,
    ];
    if head.headers().iter().any(|h| list.contains(&h.name)) {
        return Some("mail from a list (List-*)");
    }
    if addressed_as(head, own).is_none() {
        return Some("mail that does not name the user in To, Cc or Bcc");
    }
    None
}

/// The first of the user's own addresses the message names as a recipient (To, Cc, Bcc and their
/// Resent- forms), as written: the reply comes from it.
pub fn addressed_as(head: &Message<'_>, own: impl Fn(&str) -> bool) -> Option<String> {
    let recipients = [
        HeaderName::To,
        HeaderName::Cc,
        HeaderName::Bcc,
        HeaderName::ResentTo,
        HeaderName::ResentCc,
        HeaderName::ResentBcc,
    ];
    head.headers()
        .iter()
        .filter(|h| recipients.contains(&h.name))
        .filter_map(|h| match &h.value {
            HeaderValue::Address(list) => Some(list),
            _ => None,
        })
        .flat_map(|list| list.iter())
        .filter_map(|addr| addr.address())
        .find(|address| own(address))
        .map(str::to_string)
}

fn matches_robot(local: &str, robot: &str) -> bool {
    match (robot.strip_prefix('*'), robot.strip_suffix('*')) {
        (Some(suffix), _) => local.ends_with(suffix),
        (_, Some(prefix)) => local.starts_with(prefix),
        _ => local == robot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(sender: &str, head: &str) -> Option<&'static str> {
        let head = mail_parser::MessageParser::default()
            .parse_headers(head.as_bytes())
            .unwrap();
        refusal(sender, &head, |a| a.eq_ignore_ascii_case("bob@example.org"))
    }

    #[test]
    fn a_person_who_wrote_to_the_user_is_answered() {
        let head = "From: Ann <ann@else.test>\r\nTo: Bob <Bob@Example.org>\r\nSubject: hi\r\n\r\n";
        assert_eq!(verdict("ann@else.test", head), None);
        let cc = "From: ann@else.test\r\nTo: team@else.test\r\nCc: bob@example.org\r\n\r\n";
        assert_eq!(verdict("ann@else.test", cc), None);
        let no = "To: bob@example.org\r\nAuto-Submitted: no\r\n\r\n";
        assert_eq!(verdict("ann@else.test", no), None);
    }

    #[test]
    fn machines_lists_and_the_user_are_not() {
        let to = "To: bob@example.org\r\n";
        for (sender, extra) in [
            ("", ""),
            ("MAILER-DAEMON@else.test", ""),
            ("owner-list@else.test", ""),
            ("list-request@else.test", ""),
            ("no-reply@else.test", ""),
            ("bob@example.org", ""),
            ("ann@else.test", "Auto-Submitted: auto-replied\r\n"),
            ("ann@else.test", "Auto-Submitted: auto-generated; x=1\r\n"),
            ("ann@else.test", "Precedence: Bulk\r\n"),
            ("ann@else.test", "Precedence: list\r\n"),
            ("ann@else.test", "List-Id: <x.else.test>\r\n"),
            (
                "ann@else.test",
                "List-Unsubscribe: <mailto:u@else.test>\r\n",
            ),
            ("ann@else.test", "X-Auto-Response-Suppress: DR, OOF\r\n"),
        ] {
            let head = format!("{to}{extra}\r\n");
            assert!(verdict(sender, &head).is_some(), "{sender} {extra}");
        }
        let not_named = "To: everyone@else.test\r\n\r\n";
        assert!(verdict("ann@else.test", not_named).is_some());
    }
}
