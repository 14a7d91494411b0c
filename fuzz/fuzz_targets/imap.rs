#![no_main]
//! Arbitrary bytes, split at arbitrary points, through the IMAP command decoder (framing here, parsing by
//! imap-codec): the same events however the bytes arrive, commands held within their limits, no panic.
//! And the same bytes as UIDs and an expunge: the EXPUNGE numbers a view reports replay to its new state;
//! as a mailbox name: modified UTF-7 round-trips, and only canonical forms decode; as messages linked
//! any way: THREAD names each exactly once.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jmail_proto::imap::invariants::check_decoder(data);
    jmail_proto::imap::invariants::check_view(data);
    jmail_proto::imap::invariants::check_utf7(data);
    jmail_proto::imap::invariants::check_threads(data);
});
