#![no_main]
//! Arbitrary bytes as a stored message through what every reader is shown and what submission checks:
//! no panic, nothing that drives a terminal in what a terminal is shown, and every listed attachment can
//! be fetched; and through the summary stored at delivery: every part's offsets lie inside the message
//! and inside its parent's body, and the summary survives its JSON form.

use jmail_proto::mime::{attachment_contents, authors, render, summarize};
use jmail_proto::summary::{Part, Summary, summarize_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let r = render(data);
    let (from, subject, _message_id, _date) = summarize(data);
    // Strings are valid UTF-8 by construction; a panic anywhere above is the finding.
    assert!(r.from.len() + r.subject.len() + from.len() + subject.len() < 64 * data.len() + 1024);
    let shown = r.to_terminal_text();
    assert!(!shown.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
    for (i, a) in r.attachments.iter().enumerate() {
        assert_eq!(attachment_contents(data, i).map(|b| b.len()), Some(a.size));
    }
    let a = authors(data);
    assert!(a.addresses.iter().all(|address| address.contains('@')));
    let s = summarize_message(data);
    check_part(&s.structure, 0, data.len() as u64);
    assert_eq!(Summary::from_json(&s.to_json()).as_ref(), Some(&s));
});

/// A part lies within `[from, to)` and its children and attached message within its body.
fn check_part(p: &Part, from: u64, to: u64) {
    assert!(from <= p.header_start && p.header_start <= p.body_start);
    assert!(p.body_start <= p.body_end && p.body_end <= to);
    assert_eq!(p.size, p.body_end - p.body_start);
    for child in &p.children {
        check_part(child, p.body_start, p.body_end);
    }
    if let Some(m) = &p.message {
        check_part(&m.structure, p.body_start, p.body_end);
    }
}
