#![no_main]
//! Arbitrary bytes as a remote server's replies and as a message to send: no panic; the same replies
//! whichever way the bytes arrive; every reply within its limits; and the DATA form of a message, in any
//! split, is CRLF-only, ends with the one `.` line, and un-stuffs to the message with its line ends made
//! CRLF.

use jmail_proto::smtp_client::{DataEncoder, REPLY_LINE_BYTES_MAX, REPLY_LINES_MAX, ReplyReader};
use libfuzzer_sys::fuzz_target;

fn replies(data: &[u8], piece: usize) -> Vec<Result<(u16, Vec<String>), String>> {
    let mut reader = ReplyReader::default();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let (used, reply) = reader.next(&buf);
            buf.drain(..used);
            match reply {
                Some(Ok(r)) => {
                    assert!((200..600).contains(&r.code));
                    assert!(!r.lines.is_empty() && r.lines.len() <= REPLY_LINES_MAX);
                    // Counted in characters: an invalid byte is shown as U+FFFD, three bytes of UTF-8.
                    assert!(r.lines.iter().all(|l| l.chars().count() < REPLY_LINE_BYTES_MAX));
                    out.push(Ok((r.code, r.lines)));
                }
                // After an error the client drops the connection: what follows means nothing.
                Some(Err(e)) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
                None => break,
            }
        }
        assert!(buf.len() < REPLY_LINE_BYTES_MAX, "never holds more than a line");
    }
    out
}

fn encoded(data: &[u8], piece: usize) -> Vec<u8> {
    let mut enc = DataEncoder::default();
    let mut out = Vec::new();
    for chunk in data.chunks(piece) {
        enc.encode(chunk, &mut out);
    }
    enc.finish(&mut out);
    out
}

/// The message as the receiver stores it: dot-stuffing undone, the final `.` line gone.
fn unstuffed(wire: &[u8]) -> Vec<u8> {
    let body = &wire[..wire.len() - 3];
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

fn crlf_only(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let piece = 1 + data.first().copied().unwrap_or(0) as usize % 64;
    let whole = replies(data, data.len().max(1));
    assert_eq!(whole, replies(data, piece), "replies differ when split");

    let wire = encoded(data, data.len().max(1));
    assert_eq!(wire, encoded(data, piece), "DATA differs when split");
    assert!(wire.ends_with(b".\r\n"));
    for (i, &b) in wire.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && wire[i - 1] == b'\r', "bare LF at {i}"),
            b'\r' => assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            _ => {}
        }
    }
    let lines: Vec<&[u8]> = wire.split(|&b| b == b'\n').collect();
    let end_lines = lines.iter().filter(|l| **l == b".\r").count();
    assert_eq!(end_lines, 1, "one end-of-data line");
    assert_eq!(unstuffed(&wire), crlf_only(data));
});
