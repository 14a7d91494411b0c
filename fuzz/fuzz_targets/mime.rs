#![no_main]
//! Arbitrary bytes as a stored message through what every reader is shown: no panic, and the displayed
//! fields are text.

use jmail_proto::mime::{is_text, render, summarize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let r = render(data);
    let _ = is_text(data);
    let (from, subject, _message_id, _date) = summarize(data);
    // Strings are valid UTF-8 by construction; a panic anywhere above is the finding.
    assert!(r.from.len() + r.subject.len() + from.len() + subject.len() < 64 * data.len() + 1024);
});
