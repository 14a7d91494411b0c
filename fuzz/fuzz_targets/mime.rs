#![no_main]
//! Arbitrary bytes as a stored message through what every reader is shown and what submission checks:
//! no panic, nothing that drives a terminal in what a terminal is shown, and every listed attachment can
//! be fetched. Then through the summary delivery stores for IMAP and JMAP: every part's offsets lie in
//! order within its parent, the bounds hold, and the JSON reads back the same
//! (`proto/src/summary/invariants.rs`); and the ENVELOPE and BODYSTRUCTURE written from it are what
//! imap-codec's response parser reads, and every BODY[section] lies within the message
//! (`proto/src/imap/invariants.rs`). The author domain an inbound check asks about is one domain of
//! labels (or a literal), and dropping this server's Authentication-Results keeps the body as it was.

use jmail_proto::mime::{attachment_contents, authors, render, summarize};
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
    if let Ok(domain) = jmail_proto::mime::author_domain(data) {
        assert!(!domain.is_empty() && !domain.split('.').any(str::is_empty) || domain.starts_with('['));
    }
    let kept = jmail_proto::header_fields::strip_own_results(data, "mx.test");
    assert!(kept.len() <= data.len());
    let body = |m: &[u8]| m.windows(4).position(|w| w == b"\r\n\r\n").map(|p| m[p..].to_vec());
    if let Some(b) = body(data) {
        assert_eq!(body(&kept), Some(b));
    }
    jmail_proto::summary::invariants::check(data);
    jmail_proto::imap::invariants::check_structure(data);
    jmail_proto::imap::invariants::check_sections(data);
});
