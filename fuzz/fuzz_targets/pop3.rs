#![no_main]
//! Arbitrary bytes, split at arbitrary points, through the POP3 line decoder and command parser, and shaped
//! as a message for RETR and TOP.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jmail_proto::pop3::invariants::check(data);
});
