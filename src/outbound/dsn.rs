//! Delivery status notifications (RFC 3464, RFC 6522): what the sender finds in their INBOX when a
//! message could not be delivered to some recipients, or, when they asked (RFC 3461 `NOTIFY=SUCCESS`),
//! that it was delivered. A readable explanation, the machine-readable `message/delivery-status` part,
//! and the original message's header (RFC 3462 `text/rfc822-headers`) or, with `RET=FULL`, all of it.

use rand::Rng;

/// What became of one recipient (RFC 3464 §2.3.3 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delivered,
    /// Handed to a server that does not offer DSN: no report will come from further on.
    Relayed,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// One recipient's report.
pub struct Report<'a> {
    pub recipient: &'a str,
    pub action: Action,
    /// RFC 3463 status, `5.1.1`.
    pub status: String,
    /// The remote server's reply or our own reason, as one line.
    pub diagnostic: Option<&'a str>,
    /// The remote server that answered, if one did.
    pub remote: Option<&'a str>,
    /// The address as the sender first wrote it (RFC 3461 `ORCPT`).
    pub original_recipient: Option<&'a str>,
}

/// What a notification is about as a whole.
pub struct Notice<'a> {
    pub hostname: &'a str,
    /// The envelope sender, to whom it goes.
    pub to: &'a str,
    /// The sender's name for the transaction (RFC 3461 `ENVID`).
    pub envid: Option<&'a str>,
    /// When the message was received, in microseconds.
    pub arrival_micros: i64,
    /// The message reported on: its header is quoted, or all of it when `whole` (`RET=FULL`).
    pub original: &'a [u8],
    pub whole: bool,
}

/// The enhanced status code in a reply text (`550 5.1.1 no such user` → `5.1.1`), else `fallback`.
pub fn status_of(diagnostic: &str, fallback: &str) -> String {
    diagnostic
        .split_whitespace()
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
        .unwrap_or_else(|| fallback.to_string())
}

/// What the readable part says before the recipients of each action.
fn preamble(action: Action, failed: usize) -> &'static str {
    match action {
        Action::Failed if failed == 1 => {
            "Your message could not be delivered to one of its recipients; the mail system gave up on it:"
        }
        Action::Failed => {
            "Your message could not be delivered to some of its recipients; the mail system gave up on them:"
        }
        Action::Delivered => "Your message was delivered to:",
        Action::Relayed => {
            "Your message was passed on, for these recipients, to a server that sends no delivery reports:"
        }
    }
}

/// The notification's bytes: one report per recipient, in one message.
pub fn build(notice: &Notice<'_>, reports: &[Report<'_>]) -> Vec<u8> {
    let hostname = notice.hostname;
    let now = chrono::Utc::now();
    let boundary = format!("=_jmail_{:016x}", rand::thread_rng().r#gen::<u64>());
    let arrival = chrono::DateTime::from_timestamp_micros(notice.arrival_micros)
        .unwrap_or(now)
        .to_rfc2822();
    let failed = reports
        .iter()
        .filter(|r| r.action == Action::Failed)
        .count();
    let mut text = format!("This is the mail system at {hostname}.\r\n");
    for action in [Action::Failed, Action::Delivered, Action::Relayed] {
        let these: Vec<&Report<'_>> = reports.iter().filter(|r| r.action == action).collect();
        if these.is_empty() {
            continue;
        }
        text.push_str(&format!("\r\n{}\r\n\r\n", preamble(action, failed)));
        for r in these {
            match r.diagnostic {
                Some(d) => text.push_str(&format!("<{}>: {}\r\n", clean(r.recipient), clean(d))),
                None => text.push_str(&format!("<{}>\r\n", clean(r.recipient))),
            }
        }
    }
    // RFC 6533: a report naming a non-ASCII address, or returning non-ASCII header bytes, is a global
    // one, whose addresses are of type `utf-8`.
    let global = !notice.to.is_ascii()
        || reports.iter().any(|r| {
            !r.recipient.is_ascii() || r.original_recipient.is_some_and(|o| !o.is_ascii())
        })
        || !notice.original[..crate::message::header_end(notice.original)].is_ascii();
    let address_type = |address: &str| match address.is_ascii() {
        true => "rfc822",
        false => "utf-8",
    };
    let mut status = String::new();
    if let Some(envid) = notice.envid {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", clean(envid)));
    }
    status.push_str(&format!(
        "Reporting-MTA: dns; {hostname}\r\nArrival-Date: {arrival}\r\n"
    ));
    for r in reports {
        status.push_str("\r\n");
        if let Some(original) = r.original_recipient {
            status.push_str(&format!(
                "Original-Recipient: {}; {}\r\n",
                address_type(original),
                clean(original)
            ));
        }
        status.push_str(&format!(
            "Final-Recipient: {}; {}\r\nAction: {}\r\nStatus: {}\r\n",
            address_type(r.recipient),
            clean(&jmail_proto::smtp_client::path_address(r.recipient)),
            r.action.word(),
            r.status
        ));
        if let Some(remote) = r.remote {
            status.push_str(&format!("Remote-MTA: dns; {}\r\n", clean(remote)));
        }
        if let Some(d) = r.diagnostic {
            // A plain report's fields are ASCII (RFC 3464); a remote server's text may not be.
            let d = match global {
                true => clean(d),
                false => clean(d).replace(|c: char| !c.is_ascii(), "?"),
            };
            status.push_str(&format!("Diagnostic-Code: smtp; {d}\r\n"));
        }
    }
    let subject = match failed {
        0 => "Successful Mail Delivery Report",
        _ => "Undelivered Mail Returned to Sender",
    };
    let (returned, original) = match (notice.whole, global) {
        (true, false) => (
            "Content-Type: message/rfc822\r\nContent-Description: The message\r\n\r\n",
            notice.original,
        ),
        (true, true) => (
            "Content-Type: message/global\r\nContent-Description: The message\r\n\r\n",
            notice.original,
        ),
        (false, false) => (
            "Content-Type: text/rfc822-headers\r\nContent-Description: The message's header\r\n\r\n",
            &notice.original[..crate::message::header_end(notice.original)],
        ),
        (false, true) => (
            "Content-Type: message/global-headers\r\nContent-Description: The message's header\r\n\r\n",
            &notice.original[..crate::message::header_end(notice.original)],
        ),
    };
    let report_type = match global {
        true => "global-delivery-status",
        false => "delivery-status",
    };
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{}>\r\n\
         Subject: {subject}\r\n\
         Date: {}\r\n\
         Message-ID: <{:016x}.dsn@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type={report_type};\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\
         \r\n--{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Description: Notification\r\n\r\n\
         {text}\
         \r\n--{boundary}\r\n\
         Content-Type: message/{report_type}\r\n\
         Content-Description: Delivery report\r\n\r\n\
         {status}\
         \r\n--{boundary}\r\n\
         {returned}",
        clean(notice.to),
        now.to_rfc2822(),
        rand::thread_rng().r#gen::<u64>(),
    )
    .into_bytes();
    out.extend_from_slice(original);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// Remote text placed in a header or report line: one line, printable.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(status_of("550 5.1.1 <x>: no such user", "5.0.0"), "5.1.1");
        assert_eq!(status_of("550 no such user", "5.0.0"), "5.0.0");
        assert_eq!(status_of("mx said: 452 4.2.2 full", "4.0.0"), "4.2.2");
    }

    fn notice<'a>(original: &'a [u8], whole: bool, envid: Option<&'a str>) -> Notice<'a> {
        Notice {
            hostname: "mx.a.test",
            to: "a@a.test",
            envid,
            arrival_micros: 0,
            original,
            whole,
        }
    }

    #[test]
    fn failure_report_parts() {
        let original = b"From: a@a.test\r\nSubject: hi\r\n\r\nsecret body\r\n";
        let failed = [Report {
            recipient: "nobody@b.test",
            action: Action::Failed,
            diagnostic: Some("550 5.1.1 <nobody@b.test>: no such user\r\nX-Evil: 1"),
            status: "5.1.1".into(),
            remote: Some("mx.b.test"),
            original_recipient: None,
        }];
        let dsn = String::from_utf8(build(&notice(original, false, None), &failed)).unwrap();
        assert!(dsn.contains("report-type=delivery-status"));
        assert!(dsn.contains("Subject: Undelivered Mail Returned to Sender\r\n"));
        assert!(dsn.contains(
            "Final-Recipient: rfc822; nobody@b.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(dsn.contains(
            "Diagnostic-Code: smtp; 550 5.1.1 <nobody@b.test>: no such user  X-Evil: 1\r\n"
        ));
        assert!(dsn.contains("Content-Type: text/rfc822-headers\r\n"));
        assert!(dsn.contains("Subject: hi\r\n"));
        assert!(!dsn.contains("Original-Envelope-Id"));
        assert!(!dsn.contains("secret body"), "only the header is returned");
        let parsed = jmail_proto::summary::summarize_message(dsn.as_bytes()).to_json();
        assert!(parsed.contains("delivery-status"), "{parsed}");
    }

    #[test]
    fn success_report_names_the_envelope_and_original_recipient() {
        let original = b"From: a@a.test\r\nSubject: hi\r\n\r\nsecret body\r\n";
        let reports = [
            Report {
                recipient: "bob@b.test",
                action: Action::Delivered,
                diagnostic: None,
                status: "2.0.0".into(),
                remote: None,
                original_recipient: Some("Bob@B.test"),
            },
            Report {
                recipient: "carol@c.test",
                action: Action::Relayed,
                diagnostic: Some("250 2.0.0 ok"),
                status: "2.0.0".into(),
                remote: Some("mx.c.test"),
                original_recipient: None,
            },
        ];
        let dsn =
            String::from_utf8(build(&notice(original, false, Some("QQ1")), &reports)).unwrap();
        assert!(dsn.contains("Subject: Successful Mail Delivery Report\r\n"));
        assert!(dsn.contains("Original-Envelope-Id: QQ1\r\nReporting-MTA: dns; mx.a.test\r\n"));
        assert!(dsn.contains(
            "\r\nOriginal-Recipient: rfc822; Bob@B.test\r\nFinal-Recipient: rfc822; bob@b.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
        ));
        assert!(dsn.contains(
            "Final-Recipient: rfc822; carol@c.test\r\nAction: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx.c.test\r\n"
        ));
        assert!(dsn.contains("Your message was delivered to:\r\n\r\n<bob@b.test>\r\n"));
        assert!(!dsn.contains("secret body"));
    }

    #[test]
    fn ret_full_returns_the_whole_message() {
        let original = b"From: a@a.test\r\nSubject: hi\r\n\r\nsecret body\r\n";
        let failed = [Report {
            recipient: "nobody@b.test",
            action: Action::Failed,
            diagnostic: None,
            status: "5.0.0".into(),
            remote: None,
            original_recipient: None,
        }];
        let dsn = String::from_utf8(build(&notice(original, true, None), &failed)).unwrap();
        assert!(dsn.contains(
            "Content-Type: message/rfc822\r\nContent-Description: The message\r\n\r\nFrom: a@a.test\r\nSubject: hi\r\n\r\nsecret body\r\n"
        ));
    }
}
