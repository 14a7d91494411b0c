#![no_main]
//! Arbitrary client responses through the SASL decoders: no panic, and PLAIN round-trips what it accepts.

use jmail_proto::sasl::{decode_login_step, decode_plain, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_login_step(data);
    if let Ok(c) = decode_plain(data) {
        let again = encode(format!("{}\0{}\0{}", c.authzid, c.user, c.password).as_bytes());
        assert_eq!(decode_plain(again.as_bytes()), Ok(c));
    }
});
