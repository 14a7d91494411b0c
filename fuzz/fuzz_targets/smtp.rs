#![no_main]
//! Arbitrary bytes as SMTP commands, as a DATA stream and as a BDAT chunk, fed whole and in pieces: no
//! panic, the same result whichever way the bytes arrive, every stored line end a CRLF, and the size
//! limit kept.

use jmail_proto::smtp::chunk::{ChunkEnd, ChunkReceiver, canonical_line_ends};
use jmail_proto::smtp::{COMMAND_LINE_BYTES_MAX, DataEnd, DataReceiver, Frame, LineFramer, parse_command};
use libfuzzer_sys::fuzz_target;

const DATA_BYTES_MAX: usize = 4096;

fn lines(data: &[u8], piece: usize) -> Vec<Option<Vec<u8>>> {
    let mut framer = LineFramer::default();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let (used, frame) = framer.next(&buf);
            let got = match frame {
                Some(Frame::Line(line)) => {
                    assert!(line.len() < COMMAND_LINE_BYTES_MAX);
                    let _ = parse_command(line);
                    Some(Some(line.to_vec()))
                }
                Some(Frame::TooLong) => Some(None),
                None => None,
            };
            buf.drain(..used);
            if let Some(g) = got {
                out.push(g);
            } else if used == 0 {
                break;
            }
        }
        assert!(buf.len() < COMMAND_LINE_BYTES_MAX);
    }
    out
}

fn receive(data: &[u8], piece: usize) -> Option<(usize, DataEnd)> {
    let mut r = DataReceiver::new(DATA_BYTES_MAX);
    let mut offset = 0;
    for chunk in data.chunks(piece) {
        let (used, end) = r.push(chunk);
        offset += used;
        if let Some(end) = end {
            return Some((offset, end));
        }
        assert_eq!(used, chunk.len());
    }
    None
}

/// A chunk of the size the first two bytes say (at most the rest), fed in pieces.
fn chunk(data: &[u8], piece: usize) -> Option<(usize, ChunkEnd)> {
    let size = data.len().min(usize::from(u16::from_le_bytes([data[0], data[1]])));
    let mut r = ChunkReceiver::new(size as u64, true, DATA_BYTES_MAX);
    let mut offset = 0;
    for bytes in data.chunks(piece) {
        let (used, end) = r.push(bytes);
        offset += used;
        if let Some(end) = end {
            return Some((offset, end));
        }
        assert_eq!(used, bytes.len());
        assert!(r.held_bytes() <= DATA_BYTES_MAX);
    }
    r.is_done().then(|| (offset, r.end()))
}

fuzz_target!(|input: &[u8]| {
    let Some((&piece, data)) = input.split_first() else { return };
    let piece = usize::from(piece).max(1);
    assert_eq!(lines(data, data.len().max(1)), lines(data, piece));
    let whole = receive(data, data.len().max(1));
    assert_eq!(whole, receive(data, piece));
    if let Some((_, DataEnd::Message(m))) = whole {
        assert!(m.len() <= DATA_BYTES_MAX);
        for (i, b) in m.iter().enumerate() {
            if *b == b'\n' {
                assert!(i > 0 && m[i - 1] == b'\r', "bare LF stored");
            }
        }
    }
    if data.len() >= 2 {
        let whole = chunk(data, data.len());
        assert_eq!(whole, chunk(data, piece));
        if let Some((used, ChunkEnd::Bytes(bytes))) = whole {
            assert_eq!(bytes, &data[..used]);
            let canonical = canonical_line_ends(bytes);
            for (i, b) in canonical.iter().enumerate() {
                if *b == b'\n' {
                    assert!(i > 0 && canonical[i - 1] == b'\r', "bare LF left");
                }
            }
        }
    }
});
