//! Splits a POP3 byte stream into lines. Resumable: feed it whatever has arrived, take events out.

use super::LINE_BYTES_MAX;

/// What the decoder found at the front of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One line, its line end (CRLF or a bare LF) removed. Whether it is a command or a SASL response is the
    /// session's to decide.
    Line(Vec<u8>),
    /// A line longer than [`LINE_BYTES_MAX`]: reported once, then skipped up to its line end.
    TooLong,
}

/// Turns a byte stream into [`Event`]s, holding at most [`LINE_BYTES_MAX`] bytes of any line.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Skipping the rest of an over-long line.
    discarding: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// What the decoder is in the middle of, given how many undecoded bytes are `buffered`.
    pub fn pending(&self, buffered: usize) -> crate::Pending {
        if self.discarding || buffered > 0 {
            crate::Pending::Line
        } else {
            crate::Pending::Nothing
        }
    }

    /// Decodes at most one event from the front of `input`. Returns how many bytes were consumed; when that
    /// is 0 and no event came, more input is needed.
    pub fn decode(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        if self.discarding {
            return match newline(input) {
                Some(i) => {
                    self.discarding = false;
                    (i + 1, None)
                }
                None => (input.len(), None),
            };
        }
        let window = &input[..input.len().min(LINE_BYTES_MAX)];
        match newline(window) {
            Some(end) => {
                let line = &window[..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                (end + 1, Some(Event::Line(line.to_vec())))
            }
            None if input.len() >= LINE_BYTES_MAX => {
                // Only the window is dropped: the line end may already be buffered, and what follows it is
                // the next command.
                self.discarding = true;
                (window.len(), Some(Event::TooLong))
            }
            None => (0, None),
        }
    }
}

fn newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(dec: &mut Decoder, buf: &mut Vec<u8>, out: &mut Vec<Event>) {
        loop {
            let (n, ev) = dec.decode(buf);
            buf.drain(..n);
            let progressed = n > 0 || ev.is_some();
            out.extend(ev);
            if !progressed {
                break;
            }
        }
    }

    fn bytewise(input: &[u8]) -> Vec<Event> {
        let (mut dec, mut buf, mut out) = (Decoder::new(), Vec::new(), Vec::new());
        for &b in input {
            buf.push(b);
            drain(&mut dec, &mut buf, &mut out);
        }
        out
    }

    fn whole(input: &[u8]) -> Vec<Event> {
        let (mut dec, mut buf, mut out) = (Decoder::new(), input.to_vec(), Vec::new());
        drain(&mut dec, &mut buf, &mut out);
        out
    }

    fn line(s: &[u8]) -> Event {
        Event::Line(s.to_vec())
    }

    #[test]
    fn crlf_and_bare_lf_split_anywhere() {
        let input = b"USER bob\r\nPASS a b\nSTAT\r\n\r\nNO";
        let want = vec![
            line(b"USER bob"),
            line(b"PASS a b"),
            line(b"STAT"),
            line(b""),
        ];
        assert_eq!(bytewise(input), want);
        assert_eq!(whole(input), want);
    }

    #[test]
    fn overlong_line_is_reported_once_then_resyncs() {
        for len in [
            LINE_BYTES_MAX - 1,
            LINE_BYTES_MAX,
            LINE_BYTES_MAX + 1,
            10 * LINE_BYTES_MAX,
        ] {
            let mut input = vec![b'x'; len];
            input.extend_from_slice(b"\r\nNOOP\r\n");
            let want = vec![Event::TooLong, line(b"NOOP")];
            assert_eq!(whole(&input), want, "line of {len}");
            assert_eq!(bytewise(&input), want, "line of {len}");
        }
        // The longest line that fits, line end included.
        let mut input = vec![b'x'; LINE_BYTES_MAX - 2];
        input.extend_from_slice(b"\r\n");
        assert_eq!(whole(&input), vec![line(&input[..LINE_BYTES_MAX - 2])]);
    }
}
