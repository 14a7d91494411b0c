//! What must hold of the IMAP decoder for any input; the `imap` fuzz target runs [`check_decoder`] on
//! arbitrary bytes.

use super::decoder::{Decoder, Event, Limits};

const LIMITS: Limits = Limits {
    line_bytes_max: 256,
    literal_bytes_max: 64,
    command_bytes_max: 100,
};

/// The events `input` gives, under `limits`, when it arrives in pieces of `step` bytes, and the most
/// bytes the decoder ever made its caller hold for one command.
pub fn run(input: &[u8], step: usize, limits: Limits) -> (Vec<Event>, usize) {
    let mut d = Decoder::new(limits);
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut held_max = 0;
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let (used, event) = d.decode(&buf);
            assert!(used <= buf.len(), "used past the input");
            buf.drain(..used);
            held_max = held_max.max(d.held_bytes());
            match event {
                Some(e) => events.push(e),
                None if used == 0 => break,
                None => {}
            }
        }
    }
    (events, held_max)
}

/// The same events whatever pieces the bytes arrive in (the first byte of `data` picks the piece size),
/// and a command never held past its limits: lines of `line_bytes_max` around literals within
/// `command_bytes_max`.
pub fn check_decoder(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let (whole, held_whole) = run(input, input.len(), LIMITS);
    let (pieces, held_pieces) = run(input, usize::from(step % 17) + 1, LIMITS);
    assert_eq!(whole, pieces, "events depend on how the bytes arrive");
    // A command can hold at most its literals plus one line per literal and one more.
    let lines = LIMITS.command_bytes_max + 1;
    let bound = LIMITS.command_bytes_max + lines * LIMITS.line_bytes_max;
    assert!(held_whole.max(held_pieces) <= bound);
}
