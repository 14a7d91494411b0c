//! A resumable decoder for native-protocol commands: feed it whatever bytes have arrived, take events out.
//!
//! The decoder owns no IO. The connection appends socket reads to a buffer, calls [`Decoder::decode`], drops
//! the consumed prefix and acts on the event. Every length is checked against [`Limits`] before anything is
//! buffered, so a peer can make the decoder hold at most `line_bytes_max` bytes of a line plus one body of at
//! most the current literal allowance.

use super::parse::{LineError, Parsed, parse_line};
use super::{Command, DecodeError};

/// Size limits the decoder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line, line end included. Costs this much buffer per connection at worst.
    pub line_bytes_max: usize,
    /// Most recipients one SEND may name.
    pub recipients_max: usize,
}

/// What the decoder found at the front of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole command.
    Command(Command),
    /// A synchronizing literal of this many bytes was accepted: the server must now send a continuation line
    /// (`+ ...`) so the client sends the bytes.
    LiteralWanted(usize),
    /// The command was rejected; the decoder has resynchronized and the session may go on.
    Bad(DecodeError),
    /// The stream cannot be resynchronized (a non-synchronizing literal that is not allowed): close it.
    Fatal(DecodeError),
}

#[derive(Debug)]
enum State {
    /// Waiting for a command line.
    Line,
    /// Skipping the rest of an over-long line.
    DiscardLine,
    /// Reading the body of a SEND.
    Body {
        recipients: Vec<String>,
        subject: String,
        keep_sent: bool,
        body: Vec<u8>,
        len: usize,
    },
    /// Skipping the body of a rejected SEND whose literal was non-synchronizing.
    SkipBody { remaining: usize },
    /// After a literal: the line end that closes the command.
    LiteralEnd { command: Option<Command> },
}

/// Turns a byte stream into [`Event`]s. See the module docs.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Largest SEND body accepted now; `None` before login, when no literal is allowed at all.
    literal_bytes_max: Option<usize>,
    state: State,
}

impl Decoder {
    /// A decoder that accepts no literal until [`Decoder::allow_literals`] is called.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            literal_bytes_max: None,
            state: State::Line,
        }
    }

    /// Bytes of a message body the decoder holds now (what a server counts against its budget for
    /// input in flight).
    pub fn held_bytes(&self) -> usize {
        match &self.state {
            State::Body { body, .. } => body.capacity(),
            _ => 0,
        }
    }

    /// What the decoder is in the middle of, given how many undecoded bytes are `buffered`.
    pub fn pending(&self, buffered: usize) -> crate::Pending {
        match self.state {
            State::Line if buffered == 0 => crate::Pending::Nothing,
            State::Line | State::DiscardLine | State::LiteralEnd { .. } => crate::Pending::Line,
            State::Body { .. } | State::SkipBody { .. } => crate::Pending::Body,
        }
    }

    /// Allows SEND bodies up to `max` bytes (called after login).
    pub fn allow_literals(&mut self, max: usize) {
        self.literal_bytes_max = Some(max);
    }

    /// Decodes at most one event from the front of `input`. Returns how many bytes were consumed; when that is
    /// 0 and no event came, more input is needed.
    pub fn decode(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        match &mut self.state {
            State::Line => self.decode_line(input),
            State::DiscardLine => match memchr_newline(input) {
                Some(i) => {
                    self.state = State::Line;
                    (i + 1, None)
                }
                None => (input.len(), None),
            },
            State::Body { body, len, .. } => {
                let take = (*len - body.len()).min(input.len());
                body.extend_from_slice(&input[..take]);
                if body.len() == *len {
                    let State::Body {
                        recipients,
                        subject,
                        keep_sent,
                        body,
                        ..
                    } = std::mem::replace(&mut self.state, State::Line)
                    else {
                        unreachable!("matched above")
                    };
                    self.state = State::LiteralEnd {
                        command: Some(Command::Send {
                            recipients,
                            subject,
                            keep_sent,
                            body,
                        }),
                    };
                }
                (take, None)
            }
            State::SkipBody { remaining } => {
                let take = (*remaining).min(input.len());
                *remaining -= take;
                if *remaining == 0 {
                    self.state = State::LiteralEnd { command: None };
                }
                (take, None)
            }
            State::LiteralEnd { command } => {
                let used = match input {
                    [] | [b'\r'] => return (0, None),
                    [b'\n', ..] => 1,
                    [b'\r', b'\n', ..] => 2,
                    _ => {
                        self.state = State::DiscardLine;
                        return (
                            0,
                            Some(Event::Bad(DecodeError::Syntax(
                                "a literal must be followed by a line end",
                            ))),
                        );
                    }
                };
                let event = command.take().map(Event::Command);
                self.state = State::Line;
                (used, event)
            }
        }
    }

    fn decode_line(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        let window = &input[..input.len().min(self.limits.line_bytes_max)];
        let Some(end) = memchr_newline(window) else {
            if input.len() >= self.limits.line_bytes_max {
                // Only the window is dropped here: the line end may already be buffered, and what follows
                // it is the next command.
                self.state = State::DiscardLine;
                let err = DecodeError::LineTooLong {
                    max: self.limits.line_bytes_max,
                };
                return (window.len(), Some(Event::Bad(err)));
            }
            return (0, None);
        };
        let raw = &window[..end];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let consumed = end + 1;
        if raw.iter().all(|&b| b == b' ') {
            return (consumed, None);
        }
        let parsed = match parse_line(raw, self.limits.recipients_max) {
            Ok(parsed) => parsed,
            Err(LineError { err, literal }) => return (consumed, Some(self.reject(err, literal))),
        };
        match parsed {
            Parsed::Command(command) => (consumed, Some(Event::Command(command))),
            Parsed::Send(send) => {
                let Some(max) = self.literal_bytes_max else {
                    let literal = Some((send.len, send.sync));
                    return (
                        consumed,
                        Some(self.reject(DecodeError::NotAllowed, literal)),
                    );
                };
                if send.len > max as u64 {
                    let err = DecodeError::LiteralTooLarge { max };
                    return (consumed, Some(self.reject_unskippable(err, send.sync)));
                }
                let len = send.len as usize;
                self.state = if len == 0 {
                    State::LiteralEnd {
                        command: Some(Command::Send {
                            recipients: send.recipients,
                            subject: send.subject,
                            keep_sent: send.keep_sent,
                            body: Vec::new(),
                        }),
                    }
                } else {
                    State::Body {
                        keep_sent: send.keep_sent,
                        recipients: send.recipients,
                        subject: send.subject,
                        body: Vec::with_capacity(len.min(64 * 1024)),
                        len,
                    }
                };
                let event = send.sync.then_some(Event::LiteralWanted(len));
                (consumed, event)
            }
        }
    }

    /// Rejects a line; a non-synchronizing literal it announced is skipped when it fits the allowance.
    fn reject(&mut self, err: DecodeError, literal: Option<(u64, bool)>) -> Event {
        match literal {
            Some((len, false)) => {
                let allowance = self.literal_bytes_max.unwrap_or(0) as u64;
                if len > allowance {
                    return Event::Fatal(err);
                }
                self.state = State::SkipBody {
                    remaining: len as usize,
                };
                if len == 0 {
                    self.state = State::LiteralEnd { command: None };
                }
                Event::Bad(err)
            }
            _ => Event::Bad(err),
        }
    }

    fn reject_unskippable(&mut self, err: DecodeError, sync: bool) -> Event {
        if sync {
            Event::Bad(err)
        } else {
            Event::Fatal(err)
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        line_bytes_max: 64,
        recipients_max: 3,
    };

    /// Feeds `input` one byte at a time (the hardest split) and collects the events.
    fn events_bytewise(dec: &mut Decoder, input: &[u8]) -> Vec<Event> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for &b in input {
            buf.push(b);
            drain(dec, &mut buf, &mut out);
        }
        out
    }

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

    fn events(dec: &mut Decoder, input: &[u8]) -> Vec<Event> {
        let mut buf = input.to_vec();
        let mut out = Vec::new();
        drain(dec, &mut buf, &mut out);
        out
    }

    #[test]
    fn send_with_sync_literal_split_anywhere() {
        let mut dec = Decoder::new(LIMITS);
        dec.allow_literals(100);
        let ev = events_bytewise(&mut dec, b"SEND bob \"hi\" {7}\r\nab\r\ncd\n\r\nNOOP\n");
        assert_eq!(
            ev,
            vec![
                Event::LiteralWanted(7),
                Event::Command(Command::Send {
                    recipients: vec!["bob".into()],
                    subject: "hi".into(),
                    keep_sent: false,
                    body: b"ab\r\ncd\n".to_vec()
                }),
                Event::Command(Command::Noop),
            ]
        );
    }

    #[test]
    fn literal_before_login_is_refused_and_skipped() {
        let mut dec = Decoder::new(LIMITS);
        let ev = events(&mut dec, b"SEND bob {3+}\r\nabc\r\n");
        assert_eq!(ev[0], Event::Fatal(DecodeError::NotAllowed));
        let mut dec = Decoder::new(LIMITS);
        let ev = events(&mut dec, b"SEND bob {3}\r\nNOOP\r\n");
        assert_eq!(
            ev,
            vec![
                Event::Bad(DecodeError::NotAllowed),
                Event::Command(Command::Noop)
            ]
        );
    }

    #[test]
    fn oversized_literal() {
        let mut dec = Decoder::new(LIMITS);
        dec.allow_literals(5);
        assert_eq!(
            events(&mut dec, b"SEND bob {6}\r\n"),
            vec![Event::Bad(DecodeError::LiteralTooLarge { max: 5 })]
        );
        assert_eq!(
            events(&mut dec, b"SEND bob {6+}\r\n"),
            vec![Event::Fatal(DecodeError::LiteralTooLarge { max: 5 })]
        );
    }

    #[test]
    fn rejected_nonsync_send_skips_its_body() {
        let mut dec = Decoder::new(LIMITS);
        dec.allow_literals(100);
        let ev = events(&mut dec, b"SEND a,b,c,d {4+}\r\nLIST\r\nNOOP\r\n");
        assert_eq!(
            ev,
            vec![
                Event::Bad(DecodeError::TooManyRecipients { max: 3 }),
                Event::Command(Command::Noop)
            ]
        );
    }

    #[test]
    fn overlong_line_is_reported_once_then_resyncs() {
        let mut dec = Decoder::new(LIMITS);
        let mut input = vec![b'x'; 200];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let ev = events_bytewise(&mut dec, &input);
        assert_eq!(
            ev,
            vec![
                Event::Bad(DecodeError::LineTooLong { max: 64 }),
                Event::Command(Command::Noop)
            ]
        );
    }

    #[test]
    fn overlong_line_in_one_read_keeps_the_next_command() {
        let mut dec = Decoder::new(LIMITS);
        for len in [64, 65, 200] {
            let mut input = vec![b'x'; len];
            input.extend_from_slice(b"\r\nNOOP\r\nNOOP\r\n");
            assert_eq!(
                events(&mut dec, &input),
                vec![
                    Event::Bad(DecodeError::LineTooLong { max: 64 }),
                    Event::Command(Command::Noop),
                    Event::Command(Command::Noop)
                ],
                "line of {len}"
            );
        }
    }

    #[test]
    fn empty_bodies_complete_without_more_input() {
        let mut dec = Decoder::new(LIMITS);
        dec.allow_literals(10);
        let send = Event::Command(Command::Send {
            recipients: vec!["bob".into()],
            subject: String::new(),
            keep_sent: false,
            body: Vec::new(),
        });
        assert_eq!(
            events(&mut dec, b"SEND bob {0+}\r\n\r\n"),
            vec![send.clone()]
        );
        assert_eq!(
            events(&mut dec, b"SEND bob {0}\r\n\r\n"),
            vec![Event::LiteralWanted(0), send]
        );
    }

    #[test]
    fn bad_bytes_and_blank_lines() {
        let mut dec = Decoder::new(LIMITS);
        let ev = events(&mut dec, b"\r\n\nNO\0OP\r\n\xff\xfe\r\nnoop\r\n");
        assert_eq!(
            ev,
            vec![
                Event::Bad(DecodeError::ControlCharacter),
                Event::Bad(DecodeError::NotUtf8),
                Event::Command(Command::Noop)
            ]
        );
    }

    #[test]
    fn literal_must_be_followed_by_line_end() {
        let mut dec = Decoder::new(LIMITS);
        dec.allow_literals(10);
        let ev = events(&mut dec, b"SEND bob {2+}\r\nabXYZ\r\nNOOP\r\n");
        assert_eq!(
            ev,
            vec![
                Event::Bad(DecodeError::Syntax(
                    "a literal must be followed by a line end"
                )),
                Event::Command(Command::Noop)
            ]
        );
    }
}
