//! Modified UTF-7 (RFC 3501 §5.1.3), the form mailbox names take on the wire for IMAP4rev1 clients
//! that have not enabled UTF-8 (IMAP4rev2 and UTF8=ACCEPT clients get UTF-8 itself). Printable ASCII
//! but `&` stands for itself, `&` is `&-`, and every other run of characters is `&`, the modified base64
//! (`,` for `/`, no padding) of its UTF-16 big-endian form, and `-`.
//!
//! Decoding is strict: only the one canonical spelling of a name is accepted (RFC 3501 forbids encoding
//! printable ASCII, or splitting a run, or leaving bits over), so a name has exactly one wire form and
//! two spellings can never name two different mailboxes, or the same one.

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};

/// A name that is not canonical modified UTF-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf7;

fn engine() -> GeneralPurpose {
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
            .expect("64 distinct printable characters");
    GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(false),
    )
}

fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c) && c != '&'
}

/// `name` in modified UTF-7.
pub fn encode(name: &str) -> String {
    let engine = engine();
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if !run.is_empty() {
            let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&engine.encode(bytes));
            out.push('-');
            run.clear();
        }
    };
    for c in name.chars() {
        if is_direct(c) {
            flush(&mut run, &mut out);
            out.push(c);
        } else if c == '&' {
            flush(&mut run, &mut out);
            out.push_str("&-");
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The name a modified UTF-7 `wire` form spells; [`NotUtf7`] unless `wire` is that name's canonical
/// form.
pub fn decode(wire: &str) -> Result<String, NotUtf7> {
    let engine = engine();
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-').ok_or(NotUtf7)?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = engine.decode(encoded).map_err(|_| NotUtf7)?;
            if bytes.len() % 2 != 0 {
                return Err(NotUtf7);
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            out.push_str(&String::from_utf16(&units).map_err(|_| NotUtf7)?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    // Canonical only: one spelling per name (no encoded ASCII, no split runs, no bytes outside ASCII).
    if encode(&out) == wire {
        Ok(out)
    } else {
        Err(NotUtf7)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3501_examples_and_round_trips() {
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(encode("Ärger 🎉"), "&AMQ-rger &2DzfiQ-");
        for name in [
            "",
            "INBOX",
            "a&b",
            "Ärger 🎉",
            "x\u{7f}y",
            "tab\there",
            "&&",
        ] {
            assert_eq!(decode(&encode(name)).unwrap(), name, "{name:?}");
        }
    }

    #[test]
    fn the_invariants_hold_for_awkward_names() {
        for name in ["&", "&-", "&AGE-", "-&", "\u{0}", "a\u{fffd}b", "&2DzfiQ-x"] {
            super::super::invariants::check_utf7(name.as_bytes());
        }
    }

    #[test]
    fn only_the_canonical_form_is_accepted() {
        for wire in [
            "&U,BTFw",    // unterminated
            "&AGE-",      // "a" encoded
            "&U,A-&U,A-", // one run split in two
            "&U,BTF-",    // bits left over
            "&2D0-",      // half a surrogate pair
            "caf\u{e9}",  // 8-bit as itself
            "&AMQ-&AGE-", // ASCII after a run, encoded
            "&Jjo!",      // a character outside base64
        ] {
            assert_eq!(decode(wire), Err(NotUtf7), "{wire:?}");
        }
    }
}
