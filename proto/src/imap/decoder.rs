//! A resumable decoder for IMAP commands: feed it the bytes that have arrived, take events out.
//!
//! Framing is done here, parsing by imap-codec. The decoder finds where a command ends (its lines and the
//! literals they announce), checks every line and every literal against [`Limits`] before waiting for
//! more, asks for the continuation line a synchronizing literal needs, and only then hands the whole
//! command to imap-codec's parser. The connection keeps the bytes: the decoder uses none of them until the
//! command is complete (it returns 0 used meanwhile) and remembers how far it has framed, so no byte is
//! framed twice and a command costs at most `line_bytes_max` per line plus its allowed literals.
//!
//! Besides commands, a session sometimes expects one line of another kind: a SASL response after an
//! AUTHENTICATE continuation, or `DONE` to end IDLE ([`Decoder::expect`]).

use imap_codec::decode::Decoder as _;
use imap_codec::{AuthenticateDataCodec, CommandCodec, IdleDoneCodec};
use imap_types::IntoStatic;
use imap_types::auth::AuthenticateData;
use imap_types::command::Command;

/// Size limits the decoder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line of a command (a command with literals has several), line end included.
    pub line_bytes_max: usize,
    /// Largest literal accepted: a message being appended once logged in, a password before.
    pub literal_bytes_max: usize,
    /// Most bytes one command may add up to, its lines and literals together, before its last line. Each
    /// literal is checked against it as announced, so a command (even one of many empty literals) never
    /// holds more than this plus one line.
    pub command_bytes_max: usize,
}

/// What the session expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Command,
    /// One line answering an AUTHENTICATE continuation (base64, or `*` to cancel).
    AuthenticateData,
    /// `DONE`, ending IDLE.
    IdleDone,
}

/// Why a command was refused before it was parsed, or could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a command imap-codec can read (a syntax error, or a command it does not know).
    Syntax,
    /// A line longer than `line_bytes_max`.
    LineTooLong,
    /// A literal larger than allowed (its announced size).
    LiteralTooBig(u64),
}

/// What the decoder found.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Command(Box<Command<'static>>),
    /// A synchronizing literal was accepted: the session must send a continuation request (`+ ...`) now,
    /// or the client sends nothing more.
    ContinuationWanted,
    /// The answer to an AUTHENTICATE continuation.
    AuthenticateData(AuthenticateData<'static>),
    IdleDone,
    /// A command in a form imap-codec does not parse, read by [`crate::imap::extended`].
    Extended {
        tag: String,
        extension: crate::imap::extended::Extension,
    },
    /// The command (its tag when one could be read) was refused and skipped; the session goes on.
    Bad {
        tag: Option<String>,
        why: Refusal,
    },
    /// The stream cannot be followed any further (an over-long line, or a non-synchronizing literal that
    /// is too large, whose bytes are coming anyway): say BYE and close.
    Fatal {
        tag: Option<String>,
        why: Refusal,
    },
}

/// Where framing of the current command has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// In a line that begins at `line_start`.
    Line { line_start: usize },
    /// In a literal whose bytes end at `end`.
    Literal { end: usize },
}

/// Turns a byte stream into [`Event`]s. See the module docs.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    expect: Expect,
    frame: Frame,
    /// After a [`Event::Fatal`]: the stream cannot be followed, and whatever comes is thrown away.
    lost: bool,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            expect: Expect::Command,
            frame: Frame::Line { line_start: 0 },
            lost: false,
        }
    }

    /// Changes the limits (a larger literal once logged in); applies from the next command.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// What the next line is: a command (the default, and after every other kind), an AUTHENTICATE
    /// response, or IDLE's DONE.
    pub fn expect(&mut self, expect: Expect) {
        self.expect = expect;
    }

    /// Bytes of the current command the caller holds for it (the connection counts them against its
    /// budget): everything framed so far.
    pub fn held_bytes(&self) -> usize {
        match self.frame {
            Frame::Line { line_start } => line_start,
            Frame::Literal { end } => end,
        }
    }

    /// What the decoder is in the middle of, given how many undecoded bytes are `buffered`.
    pub fn pending(&self, buffered: usize) -> crate::Pending {
        match self.frame {
            Frame::Literal { .. } => crate::Pending::Body,
            Frame::Line { .. } if buffered == 0 => crate::Pending::Nothing,
            Frame::Line { .. } => crate::Pending::Line,
        }
    }

    /// Decodes at most one event from the front of `input` (everything not yet used). Returns how many
    /// bytes were used: 0 while a command is incomplete (call again with more input appended).
    pub fn decode(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        if self.lost {
            return (input.len(), None);
        }
        loop {
            match self.frame {
                Frame::Literal { end } => {
                    if input.len() < end {
                        return (0, None);
                    }
                    self.frame = Frame::Line { line_start: end };
                }
                Frame::Line { line_start } => {
                    let rest = &input[line_start.min(input.len())..];
                    let Some(lf) = memchr::memchr(b'\n', rest) else {
                        if rest.len() > self.limits.line_bytes_max {
                            return self.fatal(input, Refusal::LineTooLong);
                        }
                        return (0, None);
                    };
                    if lf + 1 > self.limits.line_bytes_max {
                        return self.fatal(input, Refusal::LineTooLong);
                    }
                    let line_end = line_start + lf + 1;
                    if self.expect != Expect::Command {
                        return self.one_line(&input[..line_end]);
                    }
                    match literal_announced(&input[line_start..line_end]) {
                        None => return self.command(&input[..line_end]),
                        Some(announced) => {
                            if let Some(refused) = self.check_literal(input, line_end, announced) {
                                return refused;
                            }
                            self.frame = Frame::Literal {
                                end: line_end + announced.length as usize,
                            };
                            if announced.synchronizing {
                                return (0, Some(Event::ContinuationWanted));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Refuses a literal past the limits: a synchronizing one is skipped with its line (the client sends
    /// nothing until told to); a non-synchronizing one is on its way, so the stream is lost.
    fn check_literal(
        &mut self,
        input: &[u8],
        line_end: usize,
        announced: Announced,
    ) -> Option<(usize, Option<Event>)> {
        // What the command holds once this literal has arrived: everything framed so far, and it.
        let total = (line_end as u64).saturating_add(announced.length);
        if announced.length <= self.limits.literal_bytes_max as u64
            && total <= self.limits.command_bytes_max as u64
        {
            return None;
        }
        let why = Refusal::LiteralTooBig(announced.length);
        if announced.synchronizing {
            let tag = tag_of(input);
            self.reset();
            Some((line_end, Some(Event::Bad { tag, why })))
        } else {
            Some(self.fatal(input, why))
        }
    }

    /// The whole command is in `command`: parse it. Anything but one whole command (a syntax error, a
    /// command imap-codec does not know, bytes left over) is refused with the command's tag.
    fn command(&mut self, command: &[u8]) -> (usize, Option<Event>) {
        self.reset();
        let event = match CommandCodec::default().decode(command) {
            Ok((&[], parsed)) => Event::Command(Box::new(parsed.into_static())),
            _ => match (tag_of(command), crate::imap::extended::parse(command)) {
                (Some(tag), Some(extension)) => Event::Extended { tag, extension },
                (tag, _) => Event::Bad {
                    tag,
                    why: Refusal::Syntax,
                },
            },
        };
        (command.len(), Some(event))
    }

    /// One line of another kind than a command; the decoder expects commands again after it.
    fn one_line(&mut self, line: &[u8]) -> (usize, Option<Event>) {
        let expect = self.expect;
        self.expect = Expect::Command;
        self.reset();
        let event = match expect {
            Expect::AuthenticateData => match AuthenticateDataCodec::default().decode(line) {
                Ok((&[], data)) => Event::AuthenticateData(data.into_static()),
                _ => Event::Bad {
                    tag: None,
                    why: Refusal::Syntax,
                },
            },
            Expect::IdleDone => match IdleDoneCodec::default().decode(line) {
                Ok((&[], _)) => Event::IdleDone,
                _ => Event::Bad {
                    tag: None,
                    why: Refusal::Syntax,
                },
            },
            Expect::Command => unreachable!("commands are framed by decode"),
        };
        (line.len(), Some(event))
    }

    fn fatal(&mut self, input: &[u8], why: Refusal) -> (usize, Option<Event>) {
        let tag = tag_of(input);
        self.reset();
        self.lost = true;
        (input.len(), Some(Event::Fatal { tag, why }))
    }

    fn reset(&mut self) {
        self.frame = Frame::Line { line_start: 0 };
    }
}

/// A literal announced at the end of a line: `{n}`, `{n+}` (LITERAL+), `~{n}` (BINARY, same framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announced {
    length: u64,
    synchronizing: bool,
}

/// The literal a line (line end included) announces, if it ends in one. A length too large to count is
/// announced as `u64::MAX`, which every limit refuses.
fn literal_announced(line: &[u8]) -> Option<Announced> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let (digits, synchronizing) = match inner[open + 1..].strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => match inner[open + 1..].strip_suffix(b"-") {
            Some(digits) => (digits, false),
            None => (&inner[open + 1..], true),
        },
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    Some(Announced {
        length: length.unwrap_or(u64::MAX),
        synchronizing,
    })
}

/// The tag a command begins with, when it has a usable one (RFC 9051's `tag`: ASTRING-CHAR but `+`), for
/// a tagged BAD; `None` gets an untagged one.
pub fn tag_of(command: &[u8]) -> Option<String> {
    const TAG_BYTES_MAX: usize = 64;
    let end = command
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
    let tag = &command[..end];
    let usable = !tag.is_empty()
        && tag.len() <= TAG_BYTES_MAX
        && tag.iter().all(|&b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+')
        });
    usable.then(|| String::from_utf8_lossy(tag).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_types::command::CommandBody;

    const LIMITS: Limits = Limits {
        line_bytes_max: 1024,
        literal_bytes_max: 100,
        command_bytes_max: 150,
    };

    /// Every event `input` gives when it arrives in pieces of `step` bytes.
    fn events(input: &[u8], step: usize) -> Vec<Event> {
        super::super::invariants::run(input, step, LIMITS).0
    }

    fn tag_and_name(e: &Event) -> (String, String) {
        match e {
            Event::Command(c) => (c.tag.inner().to_string(), c.body.name().to_string()),
            other => panic!("not a command: {other:?}"),
        }
    }

    #[test]
    fn commands_in_any_pieces() {
        let input = b"a1 NOOP\r\na2 LOGIN alice {4}\r\npass\r\na3 APPEND INBOX (\\Seen) {5+}\r\nhello\r\na4 LOGOUT\r\n";
        for step in [1, 2, 3, 7, 1000] {
            let got = events(input, step);
            assert_eq!(got.len(), 5, "step {step}: {got:?}");
            assert_eq!(tag_and_name(&got[0]), ("a1".into(), "NOOP".into()));
            assert_eq!(
                got[1],
                Event::ContinuationWanted,
                "only the synchronizing literal"
            );
            assert_eq!(tag_and_name(&got[2]), ("a2".into(), "LOGIN".into()));
            assert_eq!(tag_and_name(&got[3]), ("a3".into(), "APPEND".into()));
            assert_eq!(tag_and_name(&got[4]), ("a4".into(), "LOGOUT".into()));
        }
    }

    #[test]
    fn a_literal_holds_any_bytes_and_is_not_framed_as_lines() {
        let got = events(b"a LOGIN {10+}\r\nx\r\ny {3}\r\n {1+}\r\nz\r\n", 1);
        let [Event::Command(c)] = got.as_slice() else {
            panic!("{got:?}")
        };
        let CommandBody::Login { username, .. } = &c.body else {
            panic!("{c:?}")
        };
        assert_eq!(username.as_ref(), b"x\r\ny {3}\r\n");
    }

    #[test]
    fn bad_commands_are_skipped_with_their_tag() {
        let got = events(b"t1 FROB x\r\n* NOOP\r\nt3 NOOP\r\n", 4);
        assert_eq!(
            got[0],
            Event::Bad {
                tag: Some("t1".into()),
                why: Refusal::Syntax
            }
        );
        assert_eq!(
            got[1],
            Event::Bad {
                tag: None,
                why: Refusal::Syntax
            }
        );
        assert_eq!(tag_and_name(&got[2]), ("t3".into(), "NOOP".into()));
    }

    #[test]
    fn literals_past_the_limits() {
        // Synchronizing: refused before the client sends it; the session goes on.
        let got = events(b"a APPEND INBOX {101}\r\nb NOOP\r\n", 5);
        assert_eq!(
            got[0],
            Event::Bad {
                tag: Some("a".into()),
                why: Refusal::LiteralTooBig(101)
            }
        );
        assert_eq!(tag_and_name(&got[1]), ("b".into(), "NOOP".into()));
        // Two literals of one command together past command_bytes_max.
        let got = events(b"a LOGIN {80+}\r\n", 100);
        assert_eq!(got, vec![]);
        let mut input = b"a LOGIN {80+}\r\n".to_vec();
        input.extend_from_slice(&[b'u'; 80]);
        input.extend_from_slice(b" {80}\r\n");
        let got = events(&input, 9);
        assert_eq!(
            got[0],
            Event::Bad {
                tag: Some("a".into()),
                why: Refusal::LiteralTooBig(80)
            }
        );
        // Empty literals, one after another: the command's own bytes reach the limit all the same.
        let flood = b"a LOGIN {0}\r\n".repeat(20);
        let got = events(&flood, 7);
        let refused = Event::Bad {
            tag: Some("a".into()),
            why: Refusal::LiteralTooBig(0),
        };
        assert!(got.contains(&refused), "{got:?}");
        // Non-synchronizing and too big: its bytes come anyway, so the stream is lost.
        let got = events(b"a APPEND INBOX {101+}\r\nxxxx", 3);
        assert_eq!(
            got,
            vec![Event::Fatal {
                tag: Some("a".into()),
                why: Refusal::LiteralTooBig(101)
            }]
        );
        let got = events(b"a APPEND INBOX {99999999999999999999999+}\r\n", 64);
        assert!(matches!(
            got[0],
            Event::Fatal {
                why: Refusal::LiteralTooBig(u64::MAX),
                ..
            }
        ));
    }

    #[test]
    fn an_overlong_line_is_fatal_once_it_passes_the_limit() {
        let mut d = Decoder::new(LIMITS);
        let mut long = b"a NOOP ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 1024));
        let (used, event) = d.decode(&long);
        assert_eq!(used, long.len());
        assert!(matches!(
            event,
            Some(Event::Fatal {
                why: Refusal::LineTooLong,
                ..
            })
        ));
    }

    #[test]
    fn authenticate_and_idle_lines() {
        let mut d = Decoder::new(LIMITS);
        d.expect(Expect::AuthenticateData);
        let (used, e) = d.decode(b"AGFsaWNlAHB3\r\na NOOP\r\n");
        assert_eq!(used, 14);
        assert!(matches!(
            e,
            Some(Event::AuthenticateData(AuthenticateData::Continue(_)))
        ));
        d.expect(Expect::AuthenticateData);
        assert!(matches!(
            d.decode(b"*\r\n").1,
            Some(Event::AuthenticateData(AuthenticateData::Cancel))
        ));
        d.expect(Expect::IdleDone);
        assert_eq!(d.decode(b"done\r\n"), (6, Some(Event::IdleDone)));
        d.expect(Expect::IdleDone);
        assert!(matches!(d.decode(b"a NOOP\r\n").1, Some(Event::Bad { .. })));
        // Commands again after either.
        assert!(matches!(d.decode(b"a NOOP\r\n").1, Some(Event::Command(_))));
    }

    /// Search keys nest up to imap-codec's `SEARCH_KEY_DEPTH_MAX` (64, vendored; 9 as published): a
    /// right-nested chain of 60 `OR`s parses, on a thread of 1 MiB of stack (tokio's workers have 2);
    /// deeper is refused as before, without recursing further.
    #[test]
    fn long_or_chains_parse_and_depth_stays_bounded() {
        let limits = Limits {
            line_bytes_max: 1 << 20,
            literal_bytes_max: 100,
            command_bytes_max: 1 << 20,
        };
        let parse = move |command: Vec<u8>| {
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || {
                    let mut d = Decoder::new(limits);
                    match d.decode(&command) {
                        (_, Some(Event::Command(_))) => true,
                        (_, Some(Event::Bad { .. })) => false,
                        other => panic!("{other:?}"),
                    }
                })
                .expect("thread")
                .join()
                .expect("no stack overflow")
        };
        let chain = |n: usize| {
            let mut c = b"a UID SEARCH".to_vec();
            for i in 1..=n {
                c.extend_from_slice(format!(" OR UID {i}").as_bytes());
            }
            c.extend_from_slice(b" UID 999\r\n");
            c
        };
        assert!(parse(chain(60)));
        let nested = |n: usize| {
            let mut c = b"a SEARCH ".to_vec();
            c.extend(std::iter::repeat_n(b'(', n));
            c.extend_from_slice(b"NOT ALL");
            c.extend(std::iter::repeat_n(b')', n));
            c.extend_from_slice(b"\r\n");
            c
        };
        assert!(parse(nested(62)));
        assert!(!parse(nested(64)));
        assert!(!parse(nested(100_000)));
    }

    #[test]
    fn literal_announcements() {
        let a = |l: &[u8]| literal_announced(l);
        assert_eq!(
            a(b"x {5}\r\n"),
            Some(Announced {
                length: 5,
                synchronizing: true
            })
        );
        assert_eq!(
            a(b"x {5+}\r\n"),
            Some(Announced {
                length: 5,
                synchronizing: false
            })
        );
        assert_eq!(
            a(b"x ~{5}\n"),
            Some(Announced {
                length: 5,
                synchronizing: true
            })
        );
        assert_eq!(a(b"x {}\r\n"), None);
        assert_eq!(a(b"x {5a}\r\n"), None);
        assert_eq!(a(b"x \"{5}\" y\r\n"), None);
        assert_eq!(tag_of(b"A001 NOOP"), Some("A001".into()));
        assert_eq!(tag_of(b"+ NOOP"), None);
        assert_eq!(tag_of(b"NOOP"), None, "a tag alone is not a command");
    }
}
