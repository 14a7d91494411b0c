//! Properties the decoder keeps on any input, shared by the fuzz target (fuzz/) and the unit tests.

use super::{Decoder, Event, Limits};

/// Feeds `data` to a decoder in chunks whose sizes come from the data itself, and checks that the decoder
/// never over-consumes, always progresses or asks for more, and never yields a SEND body larger than allowed.
/// Panics on a violation.
pub fn check_decoder(data: &[u8]) {
    let (&split, data) = match data.split_first() {
        Some(x) => x,
        None => return,
    };
    let limits = Limits {
        line_bytes_max: 64,
        recipients_max: 4,
    };
    let literal_max = 128;
    let mut decoder = Decoder::new(limits);
    if split & 1 == 1 {
        decoder.allow_literals(literal_max);
    }
    let chunk = usize::from(split >> 1).max(1);
    let mut buf: Vec<u8> = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let (used, event) = decoder.decode(&buf);
            assert!(used <= buf.len(), "consumed more than the input");
            buf.drain(..used);
            // A line is never held beyond its limit.
            assert!(
                buf.len() <= limits.line_bytes_max + literal_max + 2,
                "buffer grew past the limits"
            );
            match event {
                Some(Event::Command(super::Command::Send {
                    body, recipients, ..
                })) => {
                    assert!(body.len() <= literal_max);
                    assert!(recipients.len() <= limits.recipients_max);
                }
                Some(Event::Fatal(_)) => return,
                Some(_) => {}
                None if used == 0 => break,
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// A cheap stand-in for the fuzzer on stable: many pseudo-random and structured inputs.
    #[test]
    fn decoder_survives_random_input() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let fragments: [&[u8]; 12] = [
            b"SEND a,b {5}\r\n",
            b"SEND a {3+}\r\n",
            b"hello",
            b"\r\n",
            b"\n",
            b"LOGIN \"x\\\"y\" z\r\n",
            b"{99999999999}",
            b"\xff\x00",
            b"LIST 18446744073709551616\r\n",
            b"READ 0\r\n",
            b"\"",
            b" ",
        ];
        for _ in 0..20_000 {
            let mut input = vec![(next() & 0xff) as u8];
            for _ in 0..(next() % 12) {
                if next() % 3 == 0 {
                    input.extend((0..next() % 40).map(|_| (next() & 0xff) as u8));
                } else {
                    input.extend_from_slice(fragments[(next() % 12) as usize]);
                }
            }
            super::check_decoder(&input);
        }
    }
}
