#![no_main]
//! Arbitrary bytes through the v1.0 input parsers and the mailbox writer: no panic, and the mailbox is
//! always whole JSON within its byte limit.

use jmail_proto::legacy::{Entry, REPLY_BYTES_MAX, credential_splits, mailbox_json, parse_input, parse_version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_input(data);
    let _ = parse_version(data);
    let text = String::from_utf8_lossy(data);
    for (name, password) in credential_splits(&text, 64) {
        assert_eq!(format!("{name}{password}"), text);
    }
    let entries: Vec<Entry> = text
        .split('\u{0}')
        .map(|t| Entry { sender: t.chars().take(20).collect(), timestamp: "2026-01-01 00:00:00.000000".into(), text: t.into() })
        .collect();
    let json = mailbox_json(&entries, REPLY_BYTES_MAX);
    assert!(json.len() <= REPLY_BYTES_MAX);
    let _: serde_json::Value = serde_json::from_str(&json).expect("whole JSON");
});
