//! JMAP's pure parts on arbitrary bytes: a request parsed, its result references resolved against a
//! response made of the same bytes, and any JSON value compiled as an Email/query filter. Nothing may
//! panic, and a reference may not gather without bound.
#![no_main]

use jmail_proto::jmap::{filter, request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = request::parse(data) {
        let earlier: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
        let responses = vec![("Email/query".to_string(), earlier, "c0".to_string())];
        for mut call in req.calls {
            let _ = request::resolve_references(&mut call.args, &responses);
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = filter::compile(&value, &["m1", "m2"]);
        let _ = filter::copy_safe(&value);
        let _ = filter::names_mailboxes(&value);
    }
});
