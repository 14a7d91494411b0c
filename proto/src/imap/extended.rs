//! The command forms imap-codec does not parse (docs/imap-codec.md), read here when the codec refused a
//! command: LIST-EXTENDED and LIST-STATUS (RFC 5258, RFC 5819: selection options, several patterns,
//! RETURN options), SEARCH's `RETURN (...)` (ESEARCH, RFC 4731 / RFC 9051), SORT's (ESORT, RFC 5267)
//! and STATUS's APPENDLIMIT (RFC 7889), the saved search result `$` (SEARCHRES, RFC 5182, part of
//! IMAP4rev2), and APPEND's `UTF8 (...)` wrapper (RFC 9755). Where the rest of a command is ordinary, the form the codec knows is rebuilt from the
//! command's own bytes and parsed by the codec, so criteria and names are read one way only.

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder as _;
use imap_types::IntoStatic;
use imap_types::command::Command;
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// What `$` (the saved search result) is rewritten to before the codec parses a command: a reversed
/// range of the two highest numbers, which no client means. The command comes back as
/// [`Extension::Saved`], so the session reads the marker as `$` only in commands that had one.
pub const SAVED_MARKER: &str = "4294967295:4294967294";

/// Whether a parsed set is [`SAVED_MARKER`].
pub fn is_saved_marker(set: &SequenceSet) -> bool {
    let high = |x: &SeqOrUid, n: u32| matches!(x, SeqOrUid::Value(v) if v.get() == n);
    match set.0.as_ref() {
        [Sequence::Range(a, b)] => high(a, u32::MAX) && high(b, u32::MAX - 1),
        _ => false,
    }
}

/// LIST with RFC 5258's options. Names are the wire bytes (quotes and literals undone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListExtended {
    pub reference: Vec<u8>,
    pub patterns: Vec<Vec<u8>>,
    /// Selection: only subscribed mailboxes (`SUBSCRIBED`).
    pub subscribed_only: bool,
    /// Selection: only mailboxes with a special use (`SPECIAL-USE`, RFC 6154).
    pub special_use_only: bool,
    /// `RECURSIVEMATCH`: a parent whose child matched the selection is listed too.
    pub recursive_match: bool,
    /// RETURN options.
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    /// `RETURN (STATUS (...))`: the item names, upper case.
    pub return_status: Option<Vec<String>>,
}

/// ESEARCH's and ESORT's RETURN options (RFC 4731, RFC 5267).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    /// SEARCHRES (RFC 5182): keep the result as `$`.
    Save,
}

/// A command in a form the codec does not parse.
#[derive(Debug, Clone, PartialEq)]
pub enum Extension {
    List(ListExtended),
    /// A SEARCH (the command, RETURN removed) and its RETURN options (none: `RETURN ()`, which is ALL).
    Search {
        command: Box<Command<'static>>,
        returns: Vec<SearchReturn>,
    },
    /// A SORT (the command, RETURN removed) and its RETURN options, as for SEARCH.
    Sort {
        command: Box<Command<'static>>,
        returns: Vec<SearchReturn>,
    },
    /// A STATUS that asked for APPENDLIMIT: the command (for its mailbox; its items are not to be
    /// used) and every item asked for, upper case, in order.
    StatusAppendLimit {
        command: Box<Command<'static>>,
        items: Vec<String>,
    },
    /// A command the codec parses once rewritten: `$` to [`SAVED_MARKER`] (inside [`Extension::Saved`]),
    /// or an APPEND without its `UTF8 (...)` wrapper.
    Command(Box<Command<'static>>),
    /// A command that named the saved search result `$`, each one rewritten to [`SAVED_MARKER`].
    Saved(Box<Extension>),
}

/// One token of a command line, with where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An atom (its bytes), or a quoted string or literal (its contents).
    Word {
        text: Vec<u8>,
        start: usize,
        end: usize,
    },
    Open(usize),
    Close(usize),
}

/// Splits a whole command (line ends, literals included) into tokens; `None` when it cannot.
fn tokens(command: &[u8]) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < command.len() {
        match command[i] {
            b' ' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push(Token::Open(i));
                i += 1;
            }
            b')' => {
                out.push(Token::Close(i));
                i += 1;
            }
            b'"' => {
                let start = i;
                let mut text = Vec::new();
                i += 1;
                loop {
                    match *command.get(i)? {
                        b'\\' => {
                            text.push(*command.get(i + 1)?);
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\r' | b'\n' => return None,
                        b => {
                            text.push(b);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Word {
                    text,
                    start,
                    end: i,
                });
            }
            b'{' | b'~' => {
                let start = i;
                let open = i + usize::from(command[i] == b'~');
                // `~` begins a literal8 only with `{` after it (`~}` once sliced backwards: a panic).
                if command.get(open) != Some(&b'{') {
                    return None;
                }
                let close = open + command[open..].iter().position(|&b| b == b'}')?;
                let digits = command[open + 1..close]
                    .strip_suffix(b"+")
                    .or_else(|| command[open + 1..close].strip_suffix(b"-"))
                    .unwrap_or(&command[open + 1..close]);
                let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
                let body = close
                    + 1
                    + if command.get(close + 1) == Some(&b'\r') {
                        2
                    } else {
                        1
                    };
                let text = command.get(body..body.checked_add(n)?)?.to_vec();
                i = body + n;
                out.push(Token::Word {
                    text,
                    start,
                    end: i,
                });
            }
            _ => {
                let start = i;
                while i < command.len() && !b" ()\r\n".contains(&command[i]) {
                    i += 1;
                }
                out.push(Token::Word {
                    text: command[start..i].to_vec(),
                    start,
                    end: i,
                });
            }
        }
    }
    Some(out)
}

fn word(t: &Token) -> Option<&[u8]> {
    match t {
        Token::Word { text, .. } => Some(text),
        _ => None,
    }
}

fn is(t: Option<&Token>, what: &str) -> bool {
    t.and_then(word)
        .is_some_and(|w| w.eq_ignore_ascii_case(what.as_bytes()))
}

/// One word of a parenthesised list and, when a list follows it, that list's words.
type ListWord = (String, Option<Vec<String>>);

/// The words of a parenthesised list starting at `tokens[at]` (an Open), upper case, with a nested
/// list's words after a word of its own (`STATUS (MESSAGES)` gives `STATUS`, then the list of the
/// nested ones); returns them and the index after the Close. A list nests one level at most, and a
/// deeper one is refused before it is read: a command of a million `(` must not recurse a million
/// times (that overflowed the stack and took the whole server down).
fn list_at(tokens: &[Token], at: usize) -> Option<(Vec<ListWord>, usize)> {
    words_at(tokens, at, true)
}

/// [`list_at`], with `nested` saying whether a list inside is allowed.
fn words_at(tokens: &[Token], at: usize, nested: bool) -> Option<(Vec<ListWord>, usize)> {
    if !matches!(tokens.get(at)?, Token::Open(_)) {
        return None;
    }
    let mut out: Vec<ListWord> = Vec::new();
    let mut i = at + 1;
    loop {
        match tokens.get(i)? {
            Token::Close(_) => return Some((out, i + 1)),
            Token::Word { text, .. } => {
                out.push((String::from_utf8_lossy(text).to_ascii_uppercase(), None));
                i += 1;
            }
            Token::Open(_) if nested => {
                let (inner, next) = words_at(tokens, i, false)?;
                let last = out.last_mut()?;
                last.1 = Some(inner.into_iter().map(|(w, _)| w).collect());
                i = next;
            }
            Token::Open(_) => return None,
        }
    }
}

/// Reads `command` (tag first, CRLF at the end, literals inline) when it is one of the forms this
/// module knows; `None` otherwise (the command then gets BAD).
pub fn parse(command: &[u8]) -> Option<Extension> {
    let tokens = tokens(command)?;
    if let Some(quoted) = utf8_atoms_quoted(command, &tokens) {
        return match CommandCodec::default().decode(&quoted) {
            Ok((&[], parsed)) => Some(Extension::Command(Box::new(parsed.into_static()))),
            // Quoted, no atom is 8-bit any more: this goes one level deep.
            _ => parse(&quoted),
        };
    }
    if let Some(rewritten) = without_saved(command, &tokens) {
        let inner = match CommandCodec::default().decode(&rewritten) {
            Ok((&[], parsed)) => Extension::Command(Box::new(parsed.into_static())),
            _ => parse_tokens(&rewritten, &self::tokens(&rewritten)?)?,
        };
        return Some(Extension::Saved(Box::new(inner)));
    }
    parse_tokens(command, &tokens)
}

/// `command` with every atom that is 8-bit UTF-8 (after the tag) made a quoted string; `None` when it
/// has none. Clients that enabled UTF-8 (Python's imaplib among them) send a name such as `Grüße` bare,
/// which the grammar's atoms (7-bit) do not allow but a quoted string does (RFC 9755 §3): read as
/// what the client meant, as Dovecot does.
fn utf8_atoms_quoted(command: &[u8], tokens: &[Token]) -> Option<Vec<u8>> {
    let mut rewritten = Vec::new();
    let mut copied = 0;
    for t in tokens.iter().skip(1) {
        let Token::Word { start, end, .. } = t else {
            continue;
        };
        let atom = &command[*start..*end];
        if atom.is_ascii() || b"\"{~".contains(&atom[0]) || std::str::from_utf8(atom).is_err() {
            continue;
        }
        rewritten.extend_from_slice(&command[copied..*start]);
        rewritten.push(b'"');
        for &b in atom {
            if b == b'"' || b == b'\\' {
                rewritten.push(b'\\');
            }
            rewritten.push(b);
        }
        rewritten.push(b'"');
        copied = *end;
    }
    if copied == 0 {
        return None;
    }
    rewritten.extend_from_slice(&command[copied..]);
    Some(rewritten)
}

/// Commands whose sets may be `$` (RFC 5182 §2.1).
const TAKES_SAVED: [&str; 8] = [
    "FETCH", "STORE", "COPY", "MOVE", "SEARCH", "SORT", "THREAD", "EXPUNGE",
];

/// Search keys whose next word is a string, a number or a date, never a set: `SUBJECT $` looks for a
/// dollar sign.
const KEYS_WITH_ARGUMENT: [&str; 22] = [
    "BCC",
    "BODY",
    "CC",
    "FROM",
    "KEYWORD",
    "SUBJECT",
    "TEXT",
    "TO",
    "UNKEYWORD",
    "HEADER",
    "BEFORE",
    "ON",
    "SINCE",
    "SENTBEFORE",
    "SENTON",
    "SENTSINCE",
    "LARGER",
    "SMALLER",
    "MODSEQ",
    "OLDER",
    "YOUNGER",
    "CHARSET",
];

/// `command` with each `$` standing for a set rewritten to [`SAVED_MARKER`]; `None` when it has none.
fn without_saved(command: &[u8], tokens: &[Token]) -> Option<Vec<u8>> {
    let verb_at = if is(tokens.get(1), "UID") { 2 } else { 1 };
    if !TAKES_SAVED.iter().any(|v| is(tokens.get(verb_at), v)) {
        return None;
    }
    let mut rewritten = Vec::with_capacity(command.len() + 32);
    let mut copied = 0;
    for (i, t) in tokens.iter().enumerate().skip(verb_at + 1) {
        let Token::Word { start, end, .. } = t else {
            continue;
        };
        // An atom `$`, not a quoted "$" or a literal.
        if &command[*start..*end] != b"$" {
            continue;
        }
        let after_key = |back: usize| {
            i.checked_sub(back)
                .and_then(|j| tokens.get(j))
                .is_some_and(|t| KEYS_WITH_ARGUMENT.iter().any(|k| is(Some(t), k)))
        };
        // `HEADER name value`: the value is two words after the key.
        let header_value = i >= 2 && is(tokens.get(i - 2), "HEADER");
        if after_key(1) || header_value {
            continue;
        }
        rewritten.extend_from_slice(&command[copied..*start]);
        rewritten.extend_from_slice(SAVED_MARKER.as_bytes());
        copied = *end;
    }
    if copied == 0 {
        return None;
    }
    rewritten.extend_from_slice(&command[copied..]);
    Some(rewritten)
}

fn parse_tokens(command: &[u8], tokens: &[Token]) -> Option<Extension> {
    let verb_at = if is(tokens.get(1), "UID") { 2 } else { 1 };
    if is(tokens.get(verb_at + 1), "RETURN") {
        if is(tokens.get(verb_at), "SEARCH") {
            let (command, returns) = returning(command, tokens, verb_at)?;
            return Some(Extension::Search { command, returns });
        }
        if is(tokens.get(verb_at), "SORT") {
            let (command, returns) = returning(command, tokens, verb_at)?;
            // SAVE is for SEARCH (ESORT's SAVE is not offered).
            if returns.contains(&SearchReturn::Save) {
                return None;
            }
            return Some(Extension::Sort { command, returns });
        }
    }
    if verb_at == 1 && is(tokens.get(1), "LIST") {
        return list(tokens).map(Extension::List);
    }
    if verb_at == 1 && is(tokens.get(1), "STATUS") {
        return status(command, tokens);
    }
    if verb_at == 1 && is(tokens.get(1), "APPEND") {
        return utf8_append(command, tokens).map(|c| Extension::Command(Box::new(c)));
    }
    None
}

/// APPEND's message given as `UTF8 (~{n}...)` (RFC 9755 §4, for a client that enabled UTF8=ACCEPT:
/// the message's header may be UTF-8): the command without the wrapper, parsed by the codec. One
/// message only (no MULTIAPPEND), and the wrapper is the command's last thing.
fn utf8_append(command: &[u8], tokens: &[Token]) -> Option<Command<'static>> {
    // Tag, APPEND, the mailbox, then `UTF8`, `(`, the literal8, `)`.
    let at = tokens.len().checked_sub(4).filter(|&at| at >= 3)?;
    let (
        Token::Word { start, end, .. },
        Token::Open(_),
        Token::Word {
            start: literal_start,
            end: literal_end,
            ..
        },
        Token::Close(close),
    ) = (
        &tokens[at],
        &tokens[at + 1],
        &tokens[at + 2],
        &tokens[at + 3],
    )
    else {
        return None;
    };
    // An atom `UTF8` (not a quoted "UTF8") and a literal8 (`~{n}`) in the parentheses.
    if !command[*start..*end].eq_ignore_ascii_case(b"UTF8") || command[*literal_start] != b'~' {
        return None;
    }
    let mut rewritten = Vec::with_capacity(command.len());
    rewritten.extend_from_slice(&command[..*start]);
    rewritten.extend_from_slice(&command[*literal_start..*literal_end]);
    rewritten.extend_from_slice(&command[close + 1..]);
    match CommandCodec::default().decode(&rewritten) {
        Ok((&[], parsed)) => Some(parsed.into_static()),
        _ => None,
    }
}

/// The command with the tokens `skip` (start and end indices into `tokens`, inclusive) cut out, parsed by
/// the codec.
fn reparse(command: &[u8], tokens: &[Token], skip: (usize, usize)) -> Option<Command<'static>> {
    let span = |t: &Token| match t {
        Token::Word { start, end, .. } => (*start, *end),
        Token::Open(at) | Token::Close(at) => (*at, at + 1),
    };
    let cut_start = span(&tokens[skip.0]).0;
    let cut_end = span(&tokens[skip.1]).1;
    let mut rebuilt = command[..cut_start].to_vec();
    let rest = &command[cut_end..];
    rebuilt.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
    match CommandCodec::default().decode(&rebuilt) {
        Ok((&[], parsed)) => Some(parsed.into_static()),
        _ => None,
    }
}

/// The command with `RETURN (...)` after its verb cut out and parsed by the codec, and the options.
fn returning(
    command: &[u8],
    tokens: &[Token],
    verb_at: usize,
) -> Option<(Box<Command<'static>>, Vec<SearchReturn>)> {
    let (options, after) = list_at(tokens, verb_at + 2)?;
    let mut returns = Vec::new();
    for (option, nested) in options {
        if nested.is_some() {
            return None;
        }
        let option = match option.as_str() {
            "MIN" => SearchReturn::Min,
            "MAX" => SearchReturn::Max,
            "ALL" => SearchReturn::All,
            "COUNT" => SearchReturn::Count,
            "SAVE" => SearchReturn::Save,
            _ => return None,
        };
        // Each once: `RETURN (MIN MIN)` reports MIN once.
        if !returns.contains(&option) {
            returns.push(option);
        }
    }
    let parsed = reparse(command, tokens, (verb_at + 1, after - 1))?;
    Some((Box::new(parsed), returns))
}

fn status(command: &[u8], tokens: &[Token]) -> Option<Extension> {
    // tag STATUS mailbox ( items )
    let (items, after) = list_at(tokens, 3)?;
    if after != tokens.len() || !items.iter().any(|(w, _)| w == "APPENDLIMIT") {
        return None;
    }
    let position = items.iter().position(|(w, _)| w == "APPENDLIMIT")?;
    // The APPENDLIMIT word is token 4 + position (items are single words here).
    if items.iter().any(|(_, nested)| nested.is_some()) {
        return None;
    }
    let at = 4 + position;
    let parsed = if items.len() == 1 {
        // `STATUS x (APPENDLIMIT)`: the codec wants at least one item; MESSAGES stands in.
        let mut rebuilt = command[..token_start(&tokens[at])].to_vec();
        rebuilt.extend_from_slice(b"MESSAGES)\r\n");
        match CommandCodec::default().decode(&rebuilt) {
            Ok((&[], parsed)) => parsed.into_static(),
            _ => return None,
        }
    } else {
        reparse(command, tokens, (at, at))?
    };
    Some(Extension::StatusAppendLimit {
        command: Box::new(parsed),
        items: items.into_iter().map(|(w, _)| w).collect(),
    })
}

fn token_start(t: &Token) -> usize {
    match t {
        Token::Word { start, .. } => *start,
        Token::Open(at) | Token::Close(at) => *at,
    }
}

fn list(tokens: &[Token]) -> Option<ListExtended> {
    let mut out = ListExtended::default();
    let mut i = 2;
    if matches!(tokens.get(i)?, Token::Open(_)) {
        let (options, next) = list_at(tokens, i)?;
        for (option, nested) in options {
            if nested.is_some() {
                return None;
            }
            match option.as_str() {
                "SUBSCRIBED" => out.subscribed_only = true,
                "SPECIAL-USE" => out.special_use_only = true,
                "RECURSIVEMATCH" => out.recursive_match = true,
                "REMOTE" => {}
                _ => return None,
            }
        }
        // RFC 5258: RECURSIVEMATCH alone is an error.
        if out.recursive_match && !out.subscribed_only && !out.special_use_only {
            return None;
        }
        i = next;
    }
    out.reference = word(tokens.get(i)?)?.to_vec();
    i += 1;
    match tokens.get(i)? {
        Token::Open(_) => {
            i += 1;
            loop {
                match tokens.get(i)? {
                    Token::Close(_) => break,
                    t => out.patterns.push(word(t)?.to_vec()),
                }
                i += 1;
            }
            i += 1;
            if out.patterns.is_empty() {
                return None;
            }
        }
        t => {
            out.patterns.push(word(t)?.to_vec());
            i += 1;
        }
    }
    if i < tokens.len() {
        if !is(tokens.get(i), "RETURN") {
            return None;
        }
        let (options, next) = list_at(tokens, i + 1)?;
        if next != tokens.len() {
            return None;
        }
        for (option, nested) in options {
            match (option.as_str(), nested) {
                ("SUBSCRIBED", None) => out.return_subscribed = true,
                ("CHILDREN", None) => out.return_children = true,
                ("SPECIAL-USE", None) => out.return_special_use = true,
                ("STATUS", Some(items)) if !items.is_empty() => out.return_status = Some(items),
                _ => return None,
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_types::command::CommandBody;
    use imap_types::extensions::binary::LiteralOrLiteral8;
    use imap_types::mailbox::Mailbox;

    #[test]
    fn hostile_forms_are_refused_without_a_panic_or_deep_recursion() {
        // `~` with no `{` after it.
        assert!(parse(b"a LIST (~} \"\" *\r\n").is_none());
        assert!(parse(b"a LIST (~").is_none());
        // Lists nested far deeper than any form has them: refused, without recursing once per `(`
        // (a million frames overflow any thread's stack).
        let mut deep = b"a LIST ".to_vec();
        deep.extend(std::iter::repeat_n(b'(', 1_000_000));
        deep.extend_from_slice(b"\r\n");
        assert!(parse(&deep).is_none());
        assert!(parse(b"a LIST (SUBSCRIBED (RECURSIVEMATCH (X))) \"\" *\r\n").is_none());
    }

    #[test]
    fn list_extended_forms() {
        let l = match parse(
            b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"INBOX\" Work/% {3}\r\nx*y) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
        ) {
            Some(Extension::List(l)) => l,
            other => panic!("{other:?}"),
        };
        assert_eq!(l.reference, b"");
        assert_eq!(
            l.patterns,
            vec![b"INBOX".to_vec(), b"Work/%".to_vec(), b"x*y".to_vec()]
        );
        assert!(l.subscribed_only && l.recursive_match && l.return_children);
        assert_eq!(
            l.return_status,
            Some(vec!["MESSAGES".to_string(), "UNSEEN".to_string()])
        );
        let l = match parse(b"b list \"\" \"*\" return (special-use)\r\n") {
            Some(Extension::List(l)) => l,
            other => panic!("{other:?}"),
        };
        assert!(l.return_special_use && !l.subscribed_only);
        assert_eq!(parse(b"c LIST (RECURSIVEMATCH) \"\" *\r\n"), None);
        assert_eq!(parse(b"c LIST \"\" * RETURN (BOGUS)\r\n"), None);
        assert_eq!(parse(b"c LIST \"\" () \r\n"), None);
    }

    #[test]
    fn search_return_is_cut_and_the_rest_parsed_by_the_codec() {
        match parse(b"t UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 SEEN 1:5\r\n") {
            Some(Extension::Search { command, returns }) => {
                assert_eq!(returns, vec![SearchReturn::Min, SearchReturn::Count]);
                assert!(matches!(
                    command.body,
                    CommandBody::Search { uid: true, .. }
                ));
                assert_eq!(command.tag.inner(), "t");
            }
            other => panic!("{other:?}"),
        }
        match parse(b"t SEARCH RETURN () ALL\r\n") {
            Some(Extension::Search { returns, .. }) => assert!(returns.is_empty()),
            other => panic!("{other:?}"),
        }
        match parse(b"t SEARCH RETURN (SAVE) ALL\r\n") {
            Some(Extension::Search { returns, .. }) => assert_eq!(returns, [SearchReturn::Save]),
            other => panic!("{other:?}"),
        }
    }

    fn saved(input: &[u8]) -> Extension {
        match parse(input) {
            Some(Extension::Saved(inner)) => *inner,
            other => panic!("{input:?}: {other:?}"),
        }
    }

    #[test]
    fn the_saved_result_is_read_where_a_set_may_stand() {
        let set = |command: &Command<'_>| match &command.body {
            CommandBody::Fetch { sequence_set, .. }
            | CommandBody::Store { sequence_set, .. }
            | CommandBody::Copy { sequence_set, .. }
            | CommandBody::Move { sequence_set, .. }
            | CommandBody::ExpungeUid { sequence_set } => is_saved_marker(sequence_set),
            other => panic!("{other:?}"),
        };
        for input in [
            &b"a FETCH $ (FLAGS)\r\n"[..],
            b"a UID FETCH $ FLAGS\r\n",
            b"a UID STORE $ +FLAGS (\\Seen)\r\n",
            b"a COPY $ Archive\r\n",
            b"a UID MOVE $ \"Trash\"\r\n",
            b"a UID EXPUNGE $\r\n",
        ] {
            match saved(input) {
                Extension::Command(c) => assert!(set(&c), "{input:?}"),
                other => panic!("{input:?}: {other:?}"),
            }
        }
        // In a search, `$` stands for a set (alone, after UID, under NOT), never for a string.
        match saved(b"a UID SEARCH RETURN (SAVE COUNT) UID $ NOT $ SUBJECT $ HEADER X-A $\r\n") {
            Extension::Search { command, returns } => {
                assert_eq!(returns, [SearchReturn::Save, SearchReturn::Count]);
                let CommandBody::Search { criteria, .. } = command.body else {
                    panic!("{command:?}");
                };
                use imap_types::search::SearchKey as K;
                let keys = criteria.as_ref();
                assert!(
                    matches!(&keys[0], K::Uid(set) if is_saved_marker(set)),
                    "{keys:?}"
                );
                assert!(
                    matches!(&keys[1], K::Not(k) if matches!(&**k, K::SequenceSet(set) if is_saved_marker(set))),
                    "{keys:?}"
                );
                assert!(
                    matches!(&keys[2], K::Subject(s) if s.as_ref() == b"$"),
                    "{keys:?}"
                );
                assert!(
                    matches!(&keys[3], K::Header(_, v) if v.as_ref() == b"$"),
                    "{keys:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        match saved(b"a SEARCH $\r\n") {
            Extension::Command(c) => assert!(matches!(c.body, CommandBody::Search { .. })),
            other => panic!("{other:?}"),
        }
        // A quoted "$", a `$` in a set with others, or in a command that takes no set: not the marker.
        assert!(!matches!(
            parse(b"a FETCH \"$\" FLAGS\r\n"),
            Some(Extension::Saved(_))
        ));
        assert_eq!(parse(b"a FETCH 1,$ FLAGS\r\n"), None);
        assert!(!matches!(
            parse(b"a LIST (SUBSCRIBED) \"\" $\r\n"),
            Some(Extension::Saved(_))
        ));
        // SAVE with SORT is not offered.
        assert_eq!(parse(b"t SORT RETURN (SAVE) (ARRIVAL) UTF-8 ALL\r\n"), None);
        assert!(!is_saved_marker(
            &SequenceSet::try_from("4294967295").expect("set")
        ));
    }

    #[test]
    fn sort_return_is_cut_and_the_rest_parsed_by_the_codec() {
        match parse(b"t UID SORT RETURN (MIN ALL) (REVERSE ARRIVAL) US-ASCII 1:5\r\n") {
            Some(Extension::Sort { command, returns }) => {
                assert_eq!(returns, vec![SearchReturn::Min, SearchReturn::All]);
                assert!(matches!(command.body, CommandBody::Sort { uid: true, .. }));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(b"t SORT RETURN (PARTIAL 1:5) (ARRIVAL) UTF-8 ALL\r\n"),
            None
        );
        assert_eq!(parse(b"t SORT RETURN (MIN) (BOGUS) UTF-8 ALL\r\n"), None);
    }

    #[test]
    fn bare_utf8_atoms_are_read_as_quoted_strings() {
        let create = |c: &str| match parse(c.as_bytes()) {
            Some(Extension::Command(c)) => match c.body {
                CommandBody::Create {
                    mailbox: Mailbox::Other(name),
                } => name.as_ref().to_vec(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        assert_eq!(create("a CREATE Grüße/Café\r\n"), "Grüße/Café".as_bytes());
        assert_eq!(create("a CREATE Grü\"ße\r\n"), "Grü\"ße".as_bytes());
        // Through the other extended forms too.
        match parse("a LIST (SUBSCRIBED) \"\" (Grü* Caf%)\r\n".as_bytes()) {
            Some(Extension::List(l)) => {
                assert_eq!(l.patterns, ["Grü*".as_bytes(), "Caf%".as_bytes()])
            }
            other => panic!("{other:?}"),
        }
        // Not UTF-8, or an 8-bit tag: still refused.
        assert!(parse(b"a CREATE Gr\xfc\xdfe\r\n").is_none());
        assert!(parse("ä CREATE x\r\n".as_bytes()).is_none());
    }

    #[test]
    fn append_takes_the_utf8_wrapper() {
        let message = "Subject: caf\u{e9}\r\n\r\nhi\r\n";
        let command = format!(
            "a APPEND INBOX (\\Seen) UTF8 (~{{{}}}\r\n{message})\r\n",
            message.len()
        );
        match parse(command.as_bytes()) {
            Some(Extension::Command(c)) => match c.body {
                CommandBody::Append {
                    mailbox,
                    message: LiteralOrLiteral8::Literal8(m),
                    flags,
                    ..
                } => {
                    assert_eq!(mailbox, Mailbox::Inbox);
                    assert_eq!(flags.len(), 1);
                    assert_eq!(m.data.as_ref(), message.as_bytes());
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        // Not a literal8, a quoted "UTF8", a second message, or nothing after the parenthesis.
        for bad in [
            "a APPEND INBOX UTF8 ({2}\r\nhi)\r\n",
            "a APPEND INBOX \"UTF8\" (~{2}\r\nhi)\r\n",
            "a APPEND INBOX UTF8 (~{2}\r\nhi) UTF8 (~{2}\r\nhi)\r\n",
            "a APPEND UTF8 (~{2}\r\nhi)\r\n",
            "a APPEND INBOX UTF8 (~{2}\r\nhi\r\n",
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn status_appendlimit() {
        for input in [
            &b"s STATUS INBOX (MESSAGES APPENDLIMIT UIDNEXT)\r\n"[..],
            b"s STATUS \"INBOX\" (APPENDLIMIT)\r\n",
        ] {
            match parse(input) {
                Some(Extension::StatusAppendLimit { command, items }) => {
                    assert!(
                        matches!(command.body, CommandBody::Status { .. }),
                        "{input:?}"
                    );
                    assert!(items.contains(&"APPENDLIMIT".to_string()));
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
        assert_eq!(parse(b"s STATUS INBOX (BOGUS)\r\n"), None);
    }
}
