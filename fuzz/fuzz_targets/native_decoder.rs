#![no_main]
//! Arbitrary bytes, split at arbitrary points, through the native-protocol decoder.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jmail_proto::native::invariants::check_decoder(data);
});
