//! An SMTP client's side of the wire, pure: replies as a client reads them (RFC 5321 §4.2: one or more
//! lines `NNN-text`, the last `NNN text`, all with the same code), resumable, every length against a
//! limit; a message body made fit for DATA (CRLF line ends, dot-stuffed, §4.5.2) a piece at a time; and
//! an address as MAIL and RCPT must write it.

/// Longest reply line accepted, line end included (RFC 5321 §4.5.3.1.5 says 512; servers send longer
/// EHLO lines and texts, so some room).
pub const REPLY_LINE_BYTES_MAX: usize = 2048;
/// Most lines of one reply (an EHLO reply lists one extension a line).
pub const REPLY_LINES_MAX: usize = 128;

/// One whole reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Each line's text after the code and separator, without its line end.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// The reply as one line of text, for logs, queue errors and notifications: `550 5.1.1 no such user`.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }
    /// The EHLO keywords (every line but the first), upper-cased, each with its parameters.
    pub fn extensions(&self) -> Vec<(String, String)> {
        self.lines
            .iter()
            .skip(1)
            .map(|l| match l.split_once(' ') {
                Some((k, v)) => (k.to_ascii_uppercase(), v.to_string()),
                None => (l.to_ascii_uppercase(), String::new()),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {REPLY_LINE_BYTES_MAX} bytes")]
    LineTooLong,
    #[error("reply of more than {REPLY_LINES_MAX} lines")]
    TooManyLines,
    #[error("not an SMTP reply line")]
    Malformed,
}

/// Gathers reply lines until a reply is whole.
#[derive(Debug, Default)]
pub struct ReplyReader {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyReader {
    /// Reads what it can from `input`: how many bytes it used, and a reply once one is whole. Call again
    /// with the rest; with too little input it uses nothing and returns `None`.
    pub fn next(&mut self, input: &[u8]) -> (usize, Option<Result<Reply, ReplyError>>) {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let Some(end) = memchr::memchr(b'\n', rest) else {
                if rest.len() >= REPLY_LINE_BYTES_MAX {
                    return (input.len(), Some(Err(ReplyError::LineTooLong)));
                }
                return (used, None);
            };
            if end + 1 > REPLY_LINE_BYTES_MAX {
                return (used + end + 1, Some(Err(ReplyError::LineTooLong)));
            }
            let line = &rest[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            used += end + 1;
            let (code, last, text) = match parse_line(line) {
                Some(parsed) => parsed,
                None => return (used, Some(Err(ReplyError::Malformed))),
            };
            if self.code.is_some_and(|c| c != code) {
                return (used, Some(Err(ReplyError::Malformed)));
            }
            self.code = Some(code);
            if self.lines.len() >= REPLY_LINES_MAX {
                return (used, Some(Err(ReplyError::TooManyLines)));
            }
            self.lines.push(text);
            if last {
                let reply = Reply {
                    code,
                    lines: std::mem::take(&mut self.lines),
                };
                self.code = None;
                return (used, Some(Ok(reply)));
            }
        }
    }
}

/// `NNN` then `-` (more follow), ` ` or nothing (the last), then text.
fn parse_line(line: &[u8]) -> Option<(u16, bool, String)> {
    if line.len() < 3
        || !line[..3].iter().all(u8::is_ascii_digit)
        || !(b'2'..=b'5').contains(&line[0])
    {
        return None;
    }
    let code =
        (line[0] - b'0') as u16 * 100 + (line[1] - b'0') as u16 * 10 + (line[2] - b'0') as u16;
    let (last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return None,
    };
    Some((code, last, String::from_utf8_lossy(text).into_owned()))
}

/// Turns a message, given in pieces, into DATA's form: every line end CRLF (a bare CR or LF becomes
/// one), a dot at the start of a line doubled. [`DataEncoder::finish`] adds the closing `.` line.
#[derive(Debug)]
pub struct DataEncoder {
    at_line_start: bool,
    after_cr: bool,
}

impl Default for DataEncoder {
    fn default() -> Self {
        DataEncoder {
            at_line_start: true,
            after_cr: false,
        }
    }
}

impl DataEncoder {
    /// Appends the encoded form of `piece` to `out`.
    pub fn encode(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        out.reserve(piece.len() + piece.len() / 64 + 2);
        for &b in piece {
            match b {
                b'\n' if self.after_cr => {
                    self.after_cr = false;
                    continue;
                }
                b'\r' | b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                    self.after_cr = b == b'\r';
                    continue;
                }
                b'.' if self.at_line_start => out.extend_from_slice(b".."),
                _ => out.push(b),
            }
            self.after_cr = false;
            self.at_line_start = false;
        }
    }

    /// The end of the message: a line end if the last line lacked one, then `.` CRLF.
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// `address` as a MAIL or RCPT path must carry it (RFC 5321 §4.1.2): a local part that is not a
/// dot-string (`a b`, `x"y`, `victim@third.test> NOTIFY=NEVER`) goes in quotes, with `"` and `\`
/// escaped. Addresses are kept unquoted, as they compare; written bare, such a local part would end
/// the path early and put words of the sender's choosing in the command.
pub fn path_address(address: &str) -> std::borrow::Cow<'_, str> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return address.into();
    };
    let atext =
        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    let dot_string = !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext));
    if dot_string {
        return address.into();
    }
    let mut quoted = String::with_capacity(address.len() + 4);
    quoted.push('"');
    for c in local.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push_str("\"@");
    quoted.push_str(domain);
    quoted.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_parts_that_are_not_dot_strings_are_quoted() {
        assert_eq!(path_address("a.b+c@x.test"), "a.b+c@x.test");
        assert_eq!(path_address(""), "");
        assert_eq!(path_address("postmaster"), "postmaster");
        assert_eq!(path_address("jörg@x.test"), "jörg@x.test");
        assert_eq!(path_address("a b@x.test"), "\"a b\"@x.test");
        assert_eq!(path_address("x\"y\\z@x.test"), "\"x\\\"y\\\\z\"@x.test");
        assert_eq!(path_address(".a@x.test"), "\".a\"@x.test");
        assert_eq!(
            path_address("victim@third.test> NOTIFY=NEVER ORCPT=rfc822;z@sink.test"),
            "\"victim@third.test> NOTIFY=NEVER ORCPT=rfc822;z\"@sink.test"
        );
    }

    #[test]
    fn multiline_in_pieces() {
        let input = b"250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n220 ready\r\n";
        for piece in 1..input.len() {
            let mut reader = ReplyReader::default();
            let mut buf = Vec::new();
            let mut replies = Vec::new();
            for chunk in input.chunks(piece) {
                buf.extend_from_slice(chunk);
                loop {
                    let (used, reply) = reader.next(&buf);
                    buf.drain(..used);
                    match reply {
                        Some(r) => replies.push(r.unwrap()),
                        None => break,
                    }
                }
            }
            assert_eq!(replies.len(), 2, "piece {piece}");
            assert_eq!(replies[0].code, 250);
            assert_eq!(
                replies[0].extensions(),
                vec![
                    ("PIPELINING".to_string(), String::new()),
                    ("STARTTLS".to_string(), String::new())
                ]
            );
            assert_eq!(replies[1].text(), "220 ready");
        }
    }

    #[test]
    fn data_encoding_in_any_pieces() {
        let message = b"Subject: x\r\n\r\n.one\nbare\rcr\r\n..two\r\nlast";
        let want = b"Subject: x\r\n\r\n..one\r\nbare\r\ncr\r\n...two\r\nlast\r\n.\r\n";
        for piece in 1..message.len() {
            let mut enc = DataEncoder::default();
            let mut out = Vec::new();
            for chunk in message.chunks(piece) {
                enc.encode(chunk, &mut out);
            }
            enc.finish(&mut out);
            assert_eq!(out, want.to_vec(), "piece {piece}");
        }
        let mut out = Vec::new();
        let mut enc = DataEncoder::default();
        enc.encode(b"a\r\n", &mut out);
        enc.finish(&mut out);
        assert_eq!(out, b"a\r\n.\r\n");
    }

    #[test]
    fn bad_replies() {
        let mut r = ReplyReader::default();
        assert_eq!(r.next(b"hello\r\n").1, Some(Err(ReplyError::Malformed)));
        let mut r = ReplyReader::default();
        assert_eq!(
            r.next(b"250-a\r\n550 b\r\n").1,
            Some(Err(ReplyError::Malformed))
        );
        let mut r = ReplyReader::default();
        let long = vec![b'2'; REPLY_LINE_BYTES_MAX + 1];
        assert_eq!(r.next(&long).1, Some(Err(ReplyError::LineTooLong)));
        let mut r = ReplyReader::default();
        let many = "250-x\r\n".repeat(REPLY_LINES_MAX + 1);
        assert_eq!(
            r.next(many.as_bytes()).1,
            Some(Err(ReplyError::TooManyLines))
        );
        let mut r = ReplyReader::default();
        assert_eq!(r.next(b"354\r\n").1.unwrap().unwrap().code, 354);
    }
}
