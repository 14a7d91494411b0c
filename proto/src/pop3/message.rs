//! A stored message as POP3 sends it. RFC 1939 counts a message's octets with CRLF line ends, before
//! dot-stuffing; stored messages may have bare LF (imported mbox and Maildir keep their exact bytes), so the
//! transmitted form is the stored bytes with each bare LF made CRLF and an unterminated last line ended.
//! [`crlf_size`] is that form's length, which is what LIST and STAT announce and what RETR sends.

/// The message's lines, each with its line end (the last may have none).
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    raw.split_inclusive(|&b| b == b'\n')
}

/// The line without its line end (CRLF or bare LF).
fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Octets in the message as transmitted (CRLF line ends, every line ended), before dot-stuffing.
pub fn crlf_size(raw: &[u8]) -> u64 {
    let bare_lf = raw
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
        .count();
    let unended = matches!(raw.last(), Some(&b) if b != b'\n');
    (raw.len() + bare_lf + if unended { 2 } else { 0 }) as u64
}

/// Appends the multi-line body of a RETR or TOP reply: each line with a CRLF end, a line starting with `.`
/// gets another `.` in front, and `.` CRLF ends it (RFC 1939 §3).
pub fn dot_stuff(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(raw.len() + raw.len() / 32 + 5);
    let mut stuffer = DotStuffer::default();
    stuffer.feed(raw, out);
    stuffer.finish(out);
}

/// [`dot_stuff`] over a message that arrives in pieces (a large RETR streamed from the store): feeding
/// the pieces in order and then finishing gives the same bytes as `dot_stuff` of the whole, whatever the
/// split.
#[derive(Debug)]
pub struct DotStuffer {
    line_start: bool,
    /// A CR ended the last piece: whether it ends its line depends on the next byte.
    held_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            line_start: true,
            held_cr: false,
        }
    }
}

impl DotStuffer {
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if self.held_cr {
                self.held_cr = false;
                if b == b'\n' {
                    // A CR before LF is the line end; any other CR stays as it was.
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                    continue;
                }
                out.push(b'\r');
            }
            if self.line_start {
                self.line_start = false;
                if b == b'.' {
                    out.push(b'.');
                }
            }
            match b {
                b'\r' => self.held_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                }
                _ => out.push(b),
            }
        }
    }

    /// Ends an unended last line and appends the terminating `.` CRLF.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.held_cr {
            out.push(b'\r');
        }
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// The part of `raw` that TOP sends: the header, the blank line after it, and at most `body_lines` lines of
/// the body. A message without a blank line is all header.
pub fn top(raw: &[u8], body_lines: u32) -> &[u8] {
    let mut end = 0;
    let mut in_header = true;
    let mut left = body_lines;
    for line in lines(raw) {
        if in_header {
            in_header = !content(line).is_empty();
        } else if left == 0 {
            break;
        } else {
            left -= 1;
        }
        end += line.len();
    }
    &raw[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        dot_stuff(raw, &mut out);
        out
    }

    #[test]
    fn dot_stuffing_normalizes_line_ends() {
        assert_eq!(stuffed(b""), b".\r\n");
        assert_eq!(stuffed(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(
            stuffed(b"S: x\n\n.\r\n..two\nlast"),
            b"S: x\r\n\r\n..\r\n...two\r\nlast\r\n.\r\n"
        );
        assert_eq!(stuffed(b"cr\ronly\r"), b"cr\ronly\r\r\n.\r\n");
    }

    /// The stuffing the line-by-line reading of RFC 1939 gives, to hold the streaming one to.
    fn stuffed_by_lines(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines(raw) {
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let text = if line.ends_with(b"\n") {
                text.strip_suffix(b"\r").unwrap_or(text)
            } else {
                text
            };
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    #[test]
    fn streamed_stuffing_matches_whole_lines_at_every_split() {
        let samples: &[&[u8]] = &[
            b"",
            b"\r",
            b"\r\r\n\n\r",
            b".a\r\n..b\n.\r\n.",
            b"S: x\n\n.\r\n..two\nlast",
            b"cr\ronly\r",
            b"\n.\r.\n\r.\r\n",
        ];
        for raw in samples {
            let whole = stuffed_by_lines(raw);
            assert_eq!(stuffed(raw), whole, "{raw:?}");
            for a in 0..=raw.len() {
                for b in a..=raw.len() {
                    let mut out = Vec::new();
                    let mut s = DotStuffer::default();
                    s.feed(&raw[..a], &mut out);
                    s.feed(&raw[a..b], &mut out);
                    s.feed(&raw[b..], &mut out);
                    s.finish(&mut out);
                    assert_eq!(out, whole, "{raw:?} split at {a}, {b}");
                }
            }
        }
    }

    #[test]
    fn crlf_size_is_the_unstuffed_transmitted_length() {
        for raw in [
            &b""[..],
            b"a",
            b"a\n",
            b"a\r\n",
            b"\n\n\r\n\0\n\xff.\n\r",
            b".x\r\n.\n",
            b"\r\r\n\n\r",
        ] {
            let sent = stuffed(raw);
            let dots = lines(raw).filter(|l| l.first() == Some(&b'.')).count();
            assert_eq!(crlf_size(raw), (sent.len() - 3 - dots) as u64, "{raw:?}");
        }
    }

    #[test]
    fn top_takes_the_header_and_n_body_lines() {
        let m = b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\nthree";
        assert_eq!(top(m, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top(m, 2), b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\n");
        assert_eq!(top(m, 9), m);
        assert_eq!(top(b"A: 1\nB: 2\n", 0), b"A: 1\nB: 2\n");
        assert_eq!(top(b"A: 1\n\nbody\n", 1), b"A: 1\n\nbody\n");
        assert_eq!(top(b"\r\nbody\r\n", 0), b"\r\n");
    }
}
