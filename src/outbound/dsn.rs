//! Delivery status notifications (RFC 3464, RFC 6522): what the sender finds in their INBOX when a
//! message could not be delivered to some recipients. A readable explanation, the machine-readable
//! `message/delivery-status` part, and the original message's header (RFC 3462 `text/rfc822-headers`).

use rand::Rng;

/// One recipient that failed, and why.
pub struct Failed<'a> {
    pub recipient: &'a str,
    /// The remote server's reply or our own reason, as one line.
    pub diagnostic: &'a str,
    /// RFC 3463 status, `5.1.1`.
    pub status: String,
    /// The remote server that refused, if one did.
    pub remote: Option<&'a str>,
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

/// The notification's bytes. `original` is the failed message (its header is quoted); `arrival` the
/// time it was queued, in microseconds.
pub fn build(
    hostname: &str,
    sender: &str,
    failed: &[Failed<'_>],
    original: &[u8],
    arrival_micros: i64,
) -> Vec<u8> {
    let now = chrono::Utc::now();
    let boundary = format!("=_jmail_{:016x}", rand::thread_rng().r#gen::<u64>());
    let arrival = chrono::DateTime::from_timestamp_micros(arrival_micros)
        .unwrap_or(now)
        .to_rfc2822();
    let mut text = format!(
        "This is the mail system at {hostname}.\r\n\r\nYour message could not be delivered to \
         {} of its recipients; the mail system gave up on them:\r\n\r\n",
        if failed.len() == 1 { "one" } else { "some" }
    );
    let mut status = format!("Reporting-MTA: dns; {hostname}\r\nArrival-Date: {arrival}\r\n");
    for f in failed {
        text.push_str(&format!(
            "<{}>: {}\r\n",
            clean(f.recipient),
            clean(f.diagnostic)
        ));
        status.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\n",
            clean(f.recipient),
            f.status
        ));
        if let Some(remote) = f.remote {
            status.push_str(&format!("Remote-MTA: dns; {}\r\n", clean(remote)));
        }
        status.push_str(&format!(
            "Diagnostic-Code: smtp; {}\r\n",
            clean(f.diagnostic)
        ));
    }
    let header_end = original
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| {
            original
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| p + 1)
        })
        .unwrap_or(original.len());
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {}\r\n\
         Message-ID: <{:016x}.dsn@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\
         \r\n--{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Description: Notification\r\n\r\n\
         {text}\
         \r\n--{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         Content-Description: Delivery report\r\n\r\n\
         {status}\
         \r\n--{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         Content-Description: Undelivered message headers\r\n\r\n",
        clean(sender),
        now.to_rfc2822(),
        rand::thread_rng().r#gen::<u64>(),
    )
    .into_bytes();
    out.extend_from_slice(&original[..header_end]);
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

    #[test]
    fn report_parts() {
        let original = b"From: a@a.test\r\nSubject: hi\r\n\r\nsecret body\r\n";
        let failed = [Failed {
            recipient: "nobody@b.test",
            diagnostic: "550 5.1.1 <nobody@b.test>: no such user\r\nX-Evil: 1",
            status: "5.1.1".into(),
            remote: Some("mx.b.test"),
        }];
        let dsn = String::from_utf8(build("mx.a.test", "a@a.test", &failed, original, 0)).unwrap();
        assert!(dsn.contains("report-type=delivery-status"));
        assert!(dsn.contains(
            "Final-Recipient: rfc822; nobody@b.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(dsn.contains(
            "Diagnostic-Code: smtp; 550 5.1.1 <nobody@b.test>: no such user  X-Evil: 1\r\n"
        ));
        assert!(dsn.contains("Subject: hi\r\n"));
        assert!(!dsn.contains("secret body"), "only the header is returned");
        let parsed = jmail_proto::summary::summarize_message(dsn.as_bytes()).to_json();
        assert!(parsed.contains("delivery-status"), "{parsed}");
    }
}
