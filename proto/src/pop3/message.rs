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
    for line in lines(raw) {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        // A CR before LF is the line end; any other CR stays as it was.
        let text = if line.ends_with(b"\n") {
            text.strip_suffix(b"\r").unwrap_or(text)
        } else {
            text
        };
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
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
