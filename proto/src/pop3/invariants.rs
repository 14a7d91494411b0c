//! Properties the fuzz target (`fuzz/fuzz_targets/pop3.rs`) checks on arbitrary input.

use super::{Decoder, Event, LINE_BYTES_MAX, crlf_size, dot_stuff, parse_command, top};

/// Feeds `data` to a decoder in pieces whose sizes come from the data itself, parses every line, and shapes
/// `data` as a message. Panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let mut decoder = Decoder::new();
    let mut buf = Vec::new();
    let mut lines = 0;
    let step = data.first().map_or(1, |&b| usize::from(b % 17) + 1);
    for chunk in data.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            let (used, event) = decoder.decode(&buf);
            assert!(used <= buf.len());
            buf.drain(..used);
            assert!(
                buf.len() < LINE_BYTES_MAX,
                "decoder holds a whole line limit"
            );
            match event {
                Some(Event::Line(line)) => {
                    assert!(line.len() < LINE_BYTES_MAX);
                    assert!(!line.contains(&b'\n'));
                    lines += 1;
                    let _ = parse_command(&line);
                }
                Some(Event::TooLong) => {}
                None if used == 0 => break,
                None => {}
            }
        }
    }
    assert!(lines <= data.iter().filter(|&&b| b == b'\n').count());

    let mut out = Vec::new();
    dot_stuff(data, &mut out);
    assert!(out.ends_with(b".\r\n"));
    let body = &out[..out.len() - 3];
    let mut unstuffed = 0usize;
    for line in body.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "every line ends in CRLF");
        assert_ne!(&line[..line.len() - 2], b".", "no line is a lone dot");
        unstuffed += line.len() - usize::from(line.first() == Some(&b'.'));
    }
    assert_eq!(unstuffed as u64, crlf_size(data));
    // Streamed (a large RETR), in pieces split where the data says: the same bytes.
    let mut streamed = Vec::new();
    let mut stuffer = super::DotStuffer::default();
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    for piece in [&data[..split], &data[split..]] {
        for chunk in piece.chunks(7) {
            stuffer.feed(chunk, &mut streamed);
        }
    }
    stuffer.finish(&mut streamed);
    assert_eq!(streamed, out, "streamed stuffing equals whole");
    let head = top(data, u32::from(data.len() as u8));
    assert!(data.starts_with(head));
}
