//! The automatic reply's bytes (RFC 3834 §3): from the address the message was sent to, to its sender,
//! marked `Auto-Submitted: auto-replied`, threaded under the message it answers.

use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use mail_parser::Message;

use crate::store::{NewMessage, Vacation};

/// What a reply says when its owner gave no text.
const DEFAULT_TEXT: &str =
    "This is an automatic reply: I am away, and will read your message when I am back.";
/// Characters of the answered message's subject kept in the reply's ("Auto: ...").
const SUBJECT_CHARS_MAX: usize = 200;

/// The reply from `from` to `to` answering `head`.
pub fn build(vacation: &Vacation, from: &str, to: &str, head: &Message<'_>) -> NewMessage {
    let now = chrono::Utc::now();
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let message_id = format!("{:032x}.auto@{domain}", rand::random::<u128>());
    let subject = match &vacation.subject {
        Some(subject) => subject.clone(),
        None => {
            // Decoded, a stranger's subject may hold line breaks (`=0D=0A` in an encoded word):
            // kept out, so it cannot add fields to a reply this server signs.
            let theirs: String = head
                .subject()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .take(SUBJECT_CHARS_MAX)
                .collect();
            format!("Auto: {theirs}")
        }
    };
    let text = match (&vacation.text_body, &vacation.html_body) {
        (Some(text), _) => text.clone(),
        (None, Some(html)) => text_of_html(html),
        (None, None) => DEFAULT_TEXT.to_string(),
    };
    let mut builder = MessageBuilder::new()
        .from(from)
        .to(to)
        .subject(subject.as_str())
        .date(now.timestamp())
        .message_id(message_id.as_str())
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .text_body(text);
    if let Some(html) = &vacation.html_body {
        builder = builder.html_body(html.as_str());
    }
    if let Some(id) = head.message_id() {
        let mut references: Vec<String> = head
            .references()
            .as_text_list()
            .map(|ids| ids.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        // RFC 5322 §3.6.4: the parent's references, then the parent.
        references.truncate(20);
        references.push(id.to_string());
        builder = builder.in_reply_to(id).references(references);
    }
    let raw = builder
        .write_to_vec()
        .expect("writing a message to memory cannot fail");
    NewMessage::new(
        raw,
        from.to_string(),
        subject,
        Some(message_id),
        now.timestamp_micros(),
    )
}

/// Readable text of an HTML body, for the plain part when only HTML was given: tags dropped, paragraph
/// and line breaks kept, entities decoded.
fn text_of_html(html: &str) -> String {
    let broken = html
        .replace("<br>", "\n")
        .replace("<br/>", "\n")
        .replace("<br />", "\n")
        .replace("</p>", "\n\n")
        .replace("</div>", "\n");
    let bare = ammonia::Builder::empty().clean(&broken).to_string();
    bare.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_answers_its_message() {
        let original = "From: ann@else.test\r\nTo: bob@example.org\r\nSubject: Lunch?\r\n\
                        Message-ID: <m2@else.test>\r\nReferences: <m1@else.test>\r\n\r\n";
        let head = mail_parser::MessageParser::default()
            .parse_headers(original.as_bytes())
            .unwrap();
        let vacation = Vacation {
            enabled: true,
            html_body: Some("<p>Away &amp; out</p><br>Back <b>Monday</b>".into()),
            ..Vacation::default()
        };
        let reply = build(&vacation, "bob@example.org", "ann@else.test", &head);
        let text = String::from_utf8(reply.raw.clone()).unwrap();
        assert!(text.contains("Auto-Submitted: auto-replied\r\n"), "{text}");
        assert!(text.contains("Subject: Auto: Lunch?\r\n"), "{text}");
        assert!(text.contains("In-Reply-To: <m2@else.test>\r\n"), "{text}");
        assert!(
            text.contains("References: <m1@else.test> <m2@else.test>"),
            "{text}"
        );
        assert!(text.contains("To: <ann@else.test>\r\n"), "{text}");
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.raw)
            .unwrap();
        assert_eq!(
            parsed.body_text(0).unwrap().trim(),
            "Away & out\r\n\r\n\r\nBack Monday"
        );
        assert!(parsed.body_html(0).unwrap().contains("<b>Monday</b>"));
    }

    #[test]
    fn a_subject_with_line_breaks_adds_no_field() {
        let original = "From: x@else.test\r\nTo: bob@example.org\r\n\
                        Subject: =?utf-8?q?Hi=0D=0ABcc:_victim@else.test?=\r\n\r\n";
        let head = mail_parser::MessageParser::default()
            .parse_headers(original.as_bytes())
            .unwrap();
        let reply = build(
            &Vacation::default(),
            "bob@example.org",
            "x@else.test",
            &head,
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.raw)
            .unwrap();
        assert_eq!(parsed.subject(), Some("Auto: HiBcc: victim@else.test"));
        assert!(parsed.bcc().is_none());
        assert!(!String::from_utf8_lossy(&reply.raw).contains("\r\nBcc:"));
    }
}
