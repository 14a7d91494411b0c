//! SMTP (RFC 5321) framing: command lines, parsed by `smtp-proto`, and the DATA stream, with dot-unstuffing
//! and line-end normalization. Pure and resumable: feed whatever bytes have arrived, get back how many were
//! used and what they made.

pub mod chunk;

pub use smtp_proto::{self as wire, Request};

/// Longest command line accepted, line end included. RFC 5321 §4.5.3.1.4 sets 512 octets, and service
/// extensions (SIZE, BODY, SMTPUTF8 addresses) may add to it; a connection buffers at most this much of a
/// command.
pub const COMMAND_LINE_BYTES_MAX: usize = 2048;

/// What [`LineFramer::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One line without its line end (CRLF, or a bare LF, which commands may use).
    Line(&'a [u8]),
    /// A line over [`COMMAND_LINE_BYTES_MAX`]; its bytes were thrown away up to and including its end.
    TooLong,
}

/// Splits command lines off a buffer, throwing away over-long ones without holding them.
#[derive(Debug, Default)]
pub struct LineFramer {
    /// Inside an over-long line: drop bytes until its end.
    discarding: bool,
}

impl LineFramer {
    /// What the framer is in the middle of, given how many undecoded bytes are `buffered`.
    pub fn pending(&self, buffered: usize) -> crate::Pending {
        if self.discarding || buffered > 0 {
            crate::Pending::Line
        } else {
            crate::Pending::Nothing
        }
    }

    /// Returns how many bytes of `buf` were used, and a frame when one is complete. `(0, None)`: wait for
    /// more bytes. `(n, None)` with `n > 0`: bytes of an over-long line were dropped; call again.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> (usize, Option<Frame<'a>>) {
        let window = &buf[..buf.len().min(COMMAND_LINE_BYTES_MAX)];
        match memchr::memchr(b'\n', window) {
            Some(end) if self.discarding => {
                self.discarding = false;
                (end + 1, Some(Frame::TooLong))
            }
            Some(end) => {
                let line = &buf[..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                (end + 1, Some(Frame::Line(line)))
            }
            None if buf.len() >= COMMAND_LINE_BYTES_MAX => {
                self.discarding = true;
                (window.len(), None)
            }
            None if self.discarding => (buf.len(), None),
            None => (0, None),
        }
    }
}

/// Why a command line was not understood; each maps to one reply code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command")]
    Unknown,
    #[error("syntax: {0}")]
    Syntax(String),
    #[error("bad address")]
    BadAddress,
    #[error("unsupported parameter {0}")]
    UnsupportedParameter(String),
}

/// The domain an address literal stands in for while smtp-proto, which reads no address literals,
/// parses the line; the literal is put back in the address afterwards.
const LITERAL_STAND_IN: &str = "address-literal.invalid";

/// Parses one command line (without its line end).
pub fn parse_command(line: &[u8]) -> Result<Request<String>, CommandError> {
    let literal = address_literal(line);
    let mut owned = Vec::with_capacity(line.len() + 2);
    match &literal {
        Some((at, end, _)) => {
            owned.extend_from_slice(&line[..*at]);
            owned.extend_from_slice(LITERAL_STAND_IN.as_bytes());
            owned.extend_from_slice(&line[*end..]);
        }
        None => owned.extend_from_slice(line),
    }
    owned.extend_from_slice(b"\r\n");
    let put_back = |address: &mut String| {
        if let Some((_, _, text)) = &literal
            && let Some(local) = address.strip_suffix(LITERAL_STAND_IN)
        {
            *address = format!("{local}{text}");
        }
    };
    match Request::parse(&mut owned.iter()) {
        Ok(request) => match request.into_owned() {
            // smtp-proto reads RFC 5321's `<Postmaster>` (no domain) as an empty recipient, and `<>`
            // too, which is no recipient at all (§4.1.1.3).
            Request::Rcpt { mut to } if to.address.is_empty() => {
                if !angle_content(line).eq_ignore_ascii_case(b"postmaster") {
                    return Err(CommandError::BadAddress);
                }
                to.address = "postmaster".to_string();
                Ok(Request::Rcpt { to })
            }
            Request::Rcpt { to } if !domain_well_formed(&to.address) => {
                Err(CommandError::BadAddress)
            }
            Request::Mail { from } if !domain_well_formed(&from.address) => {
                Err(CommandError::BadAddress)
            }
            Request::Rcpt { mut to } => {
                put_back(&mut to.address);
                Ok(Request::Rcpt { to })
            }
            Request::Mail { mut from } => {
                put_back(&mut from.address);
                Ok(Request::Mail { from })
            }
            // These take no argument (RFC 5321 §4.1.1.4, .5, .10; RFC 3207 §4).
            request @ (Request::Data | Request::Rset | Request::Quit | Request::StartTls)
                if has_argument(line) =>
            {
                let verb = match request {
                    Request::Data => "DATA",
                    Request::Rset => "RSET",
                    Request::Quit => "QUIT",
                    _ => "STARTTLS",
                };
                Err(CommandError::Syntax(verb.to_string()))
            }
            request => Ok(request),
        },
        Err(wire::Error::UnknownCommand) => Err(CommandError::Unknown),
        Err(wire::Error::InvalidSenderAddress | wire::Error::InvalidRecipientAddress) => {
            Err(CommandError::BadAddress)
        }
        Err(wire::Error::SyntaxError { syntax }) => Err(CommandError::Syntax(syntax.to_string())),
        Err(wire::Error::InvalidParameter { param }) => {
            Err(CommandError::Syntax(format!("bad parameter {param}")))
        }
        Err(wire::Error::UnsupportedParameter { param }) => {
            Err(CommandError::UnsupportedParameter(param))
        }
        Err(_) => Err(CommandError::Syntax("unreadable command".to_string())),
    }
}

/// Whether an address's domain is a dot-string of labels (RFC 5321 §4.1.2): `a.test.` or `a..test`
/// would otherwise pass for a domain that compares unequal to `a.test` (a stranger's `MAIL
/// FROM:<alice@a.test.>` past the check that refuses local senders).
fn domain_well_formed(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((_, domain)) => domain.split('.').all(|label| !label.is_empty()),
        None => true,
    }
}

/// Whether a command line has anything after its verb.
fn has_argument(line: &[u8]) -> bool {
    line.trim_ascii().iter().any(|&b| b == b' ' || b == b'\t')
}

/// What is between the line's first `<` and the `>` after it (empty without them).
fn angle_content(line: &[u8]) -> &[u8] {
    let Some(open) = line.iter().position(|&b| b == b'<') else {
        return b"";
    };
    match line[open..].iter().position(|&b| b == b'>') {
        Some(close) => &line[open + 1..open + close],
        None => b"",
    }
}

/// An address literal (RFC 5321 §4.1.3: `[192.0.2.1]`, `[IPv6:2001:db8::1]`) as the domain of the
/// line's path: where it starts and ends in `line`, and its text. Only a literal that is a real
/// address counts; anything else is left for the parser to refuse.
fn address_literal(line: &[u8]) -> Option<(usize, usize, String)> {
    let content = angle_content(line);
    let open = line.iter().position(|&b| b == b'<')? + 1;
    let at = content.iter().rposition(|&b| b == b'@')?;
    let domain = &content[at + 1..];
    let inner = domain.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let inner = std::str::from_utf8(inner).ok()?;
    let valid = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    };
    if !valid {
        return None;
    }
    let start = open + at + 1;
    Some((start, start + domain.len(), format!("[{inner}]")))
}

/// The end of a DATA stream.
#[derive(Debug, PartialEq, Eq)]
pub enum DataEnd {
    /// The message, unstuffed, every line ending in CRLF.
    Message(Vec<u8>),
    /// The message was longer than allowed; its bytes were read and dropped.
    TooBig,
}

/// Receives the bytes after DATA's 354 up to the `CRLF . CRLF` that ends them.
///
/// Only `CRLF . CRLF` ends a message: a bare LF never helps form the end (the SMTP-smuggling attacks of
/// 2023 relied on servers that disagree about this). A bare LF or CR is stored as CRLF, so every stored
/// message has canonical line ends; a leading dot is removed from each line (RFC 5321 §4.5.2). Lines of any length
/// are kept, as §4.5.3.1 asks of receivers; only the whole message is limited.
#[derive(Debug)]
pub struct DataReceiver {
    body: Vec<u8>,
    bytes_max: usize,
    too_big: bool,
    at_line_start: bool,
    /// The line before this one ended in CRLF (or this is the first line).
    prev_line_crlf: bool,
    /// At a line start: saw `.` (1) or `.\r` (2).
    dot: u8,
    /// Last byte of the message so far (needed when the message itself is dropped).
    last: u8,
}

impl DataReceiver {
    /// Bytes of the message held now (what a server counts against its budget for input in flight).
    pub fn held_bytes(&self) -> usize {
        self.body.capacity()
    }

    pub fn new(bytes_max: usize) -> DataReceiver {
        DataReceiver {
            body: Vec::new(),
            bytes_max,
            too_big: false,
            at_line_start: true,
            prev_line_crlf: true,
            dot: 0,
            last: 0,
        }
    }

    /// Takes bytes; returns how many were used and, once the end was seen, the message. Bytes after the
    /// end are not used: they are the next pipelined command.
    pub fn push(&mut self, input: &[u8]) -> (usize, Option<DataEnd>) {
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            if self.at_line_start {
                match (self.dot, byte) {
                    (0, b'.') => {
                        self.dot = 1;
                        i += 1;
                        continue;
                    }
                    (1, b'\r') => {
                        self.dot = 2;
                        i += 1;
                        continue;
                    }
                    (2, b'\n') if self.prev_line_crlf => {
                        i += 1;
                        let end = if self.too_big {
                            DataEnd::TooBig
                        } else {
                            // A bare CR inside a line is made CRLF here, once (it cannot end
                            // the message, only confuse readers of it later).
                            DataEnd::Message(chunk::canonical_line_ends(std::mem::take(
                                &mut self.body,
                            )))
                        };
                        return (i, Some(end));
                    }
                    (2, _) => self.emit(b"\r"), // `.\r` not ending the message: unstuffed, the CR kept
                    _ => {}
                }
                self.dot = 0;
                self.at_line_start = false;
            }
            // Inside a line: copy up to and including its LF in one go.
            let rest = &input[i..];
            match memchr::memchr(b'\n', rest) {
                Some(pos) => {
                    let line = &rest[..pos];
                    if !line.is_empty() {
                        self.emit(line);
                    }
                    self.prev_line_crlf = self.last == b'\r';
                    if self.prev_line_crlf {
                        self.emit(b"\n");
                    } else {
                        self.emit(b"\r\n");
                    }
                    self.at_line_start = true;
                    i += pos + 1;
                }
                None => {
                    self.emit(rest);
                    i = input.len();
                }
            }
        }
        (i, None)
    }

    fn emit(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.last = last;
        }
        if self.too_big {
            return;
        }
        if self.body.len() + bytes.len() > self.bytes_max {
            self.too_big = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(input: &[u8], max: usize) -> (usize, Option<DataEnd>) {
        DataReceiver::new(max).push(input)
    }

    #[test]
    fn lines_and_limits() {
        let mut f = LineFramer::default();
        assert_eq!(f.next(b"EHLO x\r\nMAIL"), (8, Some(Frame::Line(b"EHLO x"))));
        assert_eq!(f.next(b"NOOP\n"), (5, Some(Frame::Line(b"NOOP"))));
        assert_eq!(f.next(b"MAIL"), (0, None));
        let long = vec![b'a'; COMMAND_LINE_BYTES_MAX + 10];
        assert_eq!(f.next(&long), (COMMAND_LINE_BYTES_MAX, None));
        assert_eq!(f.next(b"aaaa"), (4, None));
        assert_eq!(f.next(b"aa\r\nNOOP\r\n"), (4, Some(Frame::TooLong)));
        assert_eq!(f.next(b"NOOP\r\n"), (6, Some(Frame::Line(b"NOOP"))));
    }

    #[test]
    fn commands() {
        assert!(matches!(
            parse_command(b"MAIL FROM:<a@b.c> SIZE=100 BODY=8BITMIME"),
            Ok(Request::Mail { from }) if from.address == "a@b.c" && from.size == 100
        ));
        assert!(
            matches!(parse_command(b"rcpt to:<bob@x>"), Ok(Request::Rcpt { to }) if to.address == "bob@x")
        );
        assert_eq!(parse_command(b"FROB"), Err(CommandError::Unknown));
        assert!(parse_command(b"MAIL FROM:bob").is_err());
        for postmaster in [&b"RCPT TO:<Postmaster>"[..], b"rcpt to:<postmaster>"] {
            assert!(
                matches!(parse_command(postmaster), Ok(Request::Rcpt { to }) if to.address == "postmaster")
            );
        }
        // `<>` is a sender (bounces), never a recipient.
        assert_eq!(parse_command(b"RCPT TO:<>"), Err(CommandError::BadAddress));
        for line in [
            &b"MAIL FROM:<alice@a.test.>"[..],
            b"MAIL FROM:<alice@a..test>",
            b"RCPT TO:<bob@.a.test>",
            b"RCPT TO:<bob@>",
        ] {
            assert_eq!(
                parse_command(line),
                Err(CommandError::BadAddress),
                "{line:?}"
            );
        }
        assert!(
            matches!(parse_command(b"MAIL FROM:<>"), Ok(Request::Mail { from }) if from.address.is_empty())
        );
        for (verb, line) in [
            ("DATA", &b"DATA x"[..]),
            ("RSET", b"RSET x"),
            ("QUIT", b"QUIT now"),
            ("STARTTLS", b"STARTTLS foo"),
        ] {
            assert_eq!(
                parse_command(line),
                Err(CommandError::Syntax(verb.to_string()))
            );
        }
        assert_eq!(parse_command(b"QUIT "), Ok(Request::Quit));
    }

    #[test]
    fn address_literals() {
        for (line, address) in [
            (&b"MAIL FROM:<x@[192.0.2.1]>"[..], "x@[192.0.2.1]"),
            (
                b"MAIL FROM:<x@[IPv6:2001:db8::1]> SIZE=10",
                "x@[IPv6:2001:db8::1]",
            ),
        ] {
            assert!(
                matches!(parse_command(line), Ok(Request::Mail { from }) if from.address == address),
                "{line:?}"
            );
        }
        assert!(matches!(
            parse_command(b"RCPT TO:<bob@[127.0.0.1]>"),
            Ok(Request::Rcpt { to }) if to.address == "bob@[127.0.0.1]"
        ));
        for bad in [
            &b"MAIL FROM:<x@[999.0.0.1]>"[..],
            b"MAIL FROM:<x@[IPv6:zz]>",
            b"MAIL FROM:<x@[a.b]>",
        ] {
            assert!(parse_command(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn data_unstuffs_and_ends_only_at_crlf_dot_crlf() {
        let (used, end) = receive(b"a\r\n..b\r\n.\r\nQUIT\r\n", 100);
        assert_eq!(used, 11);
        assert_eq!(end, Some(DataEnd::Message(b"a\r\n.b\r\n".to_vec())));
        // Bare LFs become CRLF and never end the message.
        let (_, end) = receive(b"a\n.\nb\n.\r\nc\r\n.\r\n", 100);
        assert_eq!(
            end,
            Some(DataEnd::Message(b"a\r\n\r\nb\r\n\r\nc\r\n".to_vec()))
        );
        // An empty message.
        assert_eq!(receive(b".\r\n", 10), (3, Some(DataEnd::Message(vec![]))));
        // `.\r` followed by something else does not end the message; its bare CR is a line end.
        let (_, end) = receive(b".\rx\r\n.\r\n", 100);
        assert_eq!(end, Some(DataEnd::Message(b"\r\nx\r\n".to_vec())));
    }

    #[test]
    fn data_is_resumable_byte_by_byte() {
        let input = b"Subject: x\r\n\r\n..dot\nbare\r\n.\r\n";
        let whole = receive(input, 1000).1;
        let mut r = DataReceiver::new(1000);
        let mut got = None;
        for (n, b) in input.iter().enumerate() {
            let (used, end) = r.push(std::slice::from_ref(b));
            assert_eq!(used, 1);
            if end.is_some() {
                assert_eq!(n, input.len() - 1);
                got = end;
            }
        }
        assert_eq!(got, whole);
    }

    #[test]
    fn data_too_big_is_read_to_the_end() {
        let mut input = vec![b'x'; 50];
        input.extend_from_slice(b"\r\n.\r\nNOOP");
        assert_eq!(receive(&input, 10), (55, Some(DataEnd::TooBig)));
    }
}
