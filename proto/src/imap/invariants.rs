//! What must hold of the IMAP decoder (and of the searches and base subjects of what it decodes) for any
//! input; the `imap` fuzz target runs [`check_decoder`] on arbitrary bytes.

use super::decoder::{Decoder, Event, Limits};

const LIMITS: Limits = Limits {
    line_bytes_max: 256,
    literal_bytes_max: 64,
    command_bytes_max: 100,
};

/// The events `input` gives, under `limits`, when it arrives in pieces of `step` bytes, and the most
/// bytes the decoder ever made its caller hold for one command.
pub fn run(input: &[u8], step: usize, limits: Limits) -> (Vec<Event>, usize) {
    let mut d = Decoder::new(limits);
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut held_max = 0;
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let (used, event) = d.decode(&buf);
            assert!(used <= buf.len(), "used past the input");
            buf.drain(..used);
            held_max = held_max.max(d.held_bytes());
            match event {
                Some(e) => events.push(e),
                None if used == 0 => break,
                None => {}
            }
        }
    }
    (events, held_max)
}

/// The same events whatever pieces the bytes arrive in (the first byte of `data` picks the piece size),
/// and a command never held past its limits (`command_bytes_max` and the line being read).
pub fn check_decoder(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let (whole, held_whole) = run(input, input.len(), LIMITS);
    let (pieces, held_pieces) = run(input, usize::from(step % 17) + 1, LIMITS);
    assert_eq!(whole, pieces, "events depend on how the bytes arrive");
    // A command never holds more than command_bytes_max and the line being read.
    let bound = LIMITS.command_bytes_max + LIMITS.line_bytes_max;
    assert!(held_whole.max(held_pieces) <= bound);
    // Any text has a base subject (SORT's), whatever its bytes.
    let _ = super::sort::base_subject(&String::from_utf8_lossy(input));
    // Any search that parses compiles and can be matched against a message without a panic.
    for event in &whole {
        let keys = match event {
            Event::Command(c) => match &c.body {
                imap_types::command::CommandBody::Search { criteria, .. } => criteria.as_ref(),
                imap_types::command::CommandBody::Sort {
                    search_criteria, ..
                } => search_criteria.as_ref(),
                _ => continue,
            },
            Event::Extended {
                extension:
                    super::extended::Extension::Search { command, .. }
                    | super::extended::Extension::Sort { command, .. },
                ..
            } => match &command.body {
                imap_types::command::CommandBody::Search { criteria, .. } => criteria.as_ref(),
                imap_types::command::CommandBody::Sort {
                    search_criteria, ..
                } => search_criteria.as_ref(),
                _ => continue,
            },
            _ => continue,
        };
        check_search(keys);
    }
}

/// A search compiles and evaluates on a small message without a panic.
fn check_search(keys: &[imap_types::search::SearchKey<'_>]) {
    use super::search::{Candidate, Query, Ranges, Stars};
    const RAW: &[u8] = b"From: a@b\r\nSubject: =?UTF-8?Q?x=C3=BC?=\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nhi\r\n";
    let stars = Stars {
        last_seq: 3,
        last_uid: 9,
        recent: &Ranges::NONE,
        saved: None,
    };
    let Ok(query) = Query::compile(keys, stars) else {
        return;
    };
    let summary = crate::summary::summarize_message(RAW);
    let keywords = vec!["$x".to_string()];
    let m = Candidate::new(
        2,
        5,
        1,
        &keywords,
        50,
        0,
        3,
        Some(&summary.envelope),
        Some(RAW),
    );
    let _ = query.matches(&m);
    let _ = query.need();
}

/// ENVELOPE, BODYSTRUCTURE and BODY written for any message are what the grammar allows, as imap-codec's
/// own response parser reads it (a second, independent reading), for a client with UTF-8 and without.
/// imap-codec knows RFC 3501's grammar here, without RFC 9051's message/global, so that is left out.
pub fn check_structure(raw: &[u8]) {
    use super::structure::{Dialect, body_structure, envelope};
    use imap_codec::ResponseCodec;
    use imap_codec::decode::Decoder as _;
    let summary = crate::summary::summarize_message(raw);
    for utf8 in [false, true] {
        let s = Dialect {
            utf8,
            message_global: false,
        };
        let mut line = b"* 1 FETCH (ENVELOPE ".to_vec();
        line.extend(envelope(&summary.envelope, s));
        line.extend_from_slice(b" BODYSTRUCTURE ");
        line.extend(body_structure(&summary, true, s));
        line.extend_from_slice(b" BODY ");
        line.extend(body_structure(&summary, false, s));
        line.extend_from_slice(b")\r\n");
        match ResponseCodec::default().decode(&line) {
            Ok((rest, _)) => assert!(rest.is_empty(), "bytes after the response"),
            Err(e) => panic!(
                "not a FETCH response imap-codec reads ({e:?}): {}",
                String::from_utf8_lossy(&line)
            ),
        }
    }
}

/// Every section of any message names bytes inside the message (or nothing), never a panic.
pub fn check_sections(raw: &[u8]) {
    use super::section::{Bytes, Section, Text, locate};
    let summary = crate::summary::summarize_message(raw);
    let parts: [&[usize]; 7] = [&[], &[1], &[2], &[1, 1], &[1, 2], &[2, 1], &[1, 1, 1]];
    let texts = [
        None,
        Some(Text::Header),
        Some(Text::Text),
        Some(Text::Mime),
        Some(Text::HeaderFields {
            names: vec!["subject".into(), "FROM".into()],
            not: false,
        }),
        Some(Text::HeaderFields {
            names: vec!["subject".into()],
            not: true,
        }),
    ];
    for part in parts {
        for text in &texts {
            let section = Section {
                part: part.to_vec(),
                text: text.clone(),
            };
            match locate(raw, &summary, &section) {
                Some(Bytes::Stored(range)) => {
                    assert!(
                        range.start <= range.end && range.end <= raw.len(),
                        "{range:?}"
                    );
                }
                Some(Bytes::Made(made)) => assert!(made.len() <= raw.len() + 2),
                None => {}
            }
        }
    }
}

/// A session's view stays what a client following its responses believes: for UIDs and an expunge made
/// from `data`, removing each reported sequence number in turn from the old list gives the new one, and
/// any set selects UIDs the view has, in order.
pub fn check_view(data: &[u8]) {
    use super::view::View;
    let (uids, gone) = data.split_at(data.len() / 2);
    let uids: Vec<u32> = uids.iter().map(|&b| u32::from(b) + 1).collect();
    let gone: Vec<u32> = gone.iter().map(|&b| u32::from(b) + 1).collect();
    let mut view = View::new(uids);
    let mut client: Vec<u32> = (1..=view.exists()).filter_map(|s| view.uid_of(s)).collect();
    for seq in view.expunge(&gone) {
        assert!(
            seq >= 1 && (seq as usize) <= client.len(),
            "EXPUNGE {seq} of {}",
            client.len()
        );
        client.remove(seq as usize - 1);
    }
    let now: Vec<u32> = (1..=view.exists()).filter_map(|s| view.uid_of(s)).collect();
    assert_eq!(client, now);
    assert!(now.iter().all(|u| !gone.contains(u)));
}

/// Modified UTF-7: every name survives encoding, and whatever a wire form decodes to encodes back to it.
pub fn check_utf7(data: &[u8]) {
    use super::utf7::{decode, encode};
    let text = String::from_utf8_lossy(data);
    assert_eq!(decode(&encode(&text)).as_deref(), Ok(text.as_ref()));
    if let Ok(name) = decode(&text) {
        assert_eq!(encode(&name), text);
    }
}

/// Threading any messages, linked any way (each byte picks a message's own Message-ID, its subject and
/// a reference, so loops, duplicates and self-references all come up): both algorithms name every
/// message exactly once, in balanced parentheses, and never an empty thread.
pub fn check_threads(data: &[u8]) {
    use super::thread::{ThreadInput, ordered_subject, references};
    let messages: Vec<ThreadInput> = data
        .chunks(3)
        .enumerate()
        .map(|(i, c)| {
            let byte = |k: usize| c.get(k).copied().unwrap_or(0);
            let seq = i as u32 + 1;
            ThreadInput {
                seq,
                number: seq,
                sent: i64::from(byte(1) % 4),
                subject: ["", "A", "B"][usize::from(byte(2) % 3)].into(),
                reply: byte(2) % 2 == 0,
                message_id: (byte(0) % 8 != 0).then(|| format!("m{}", byte(0) % 8).into()),
                references: (0..byte(1) % 3)
                    .map(|k| format!("m{}", (byte(2) >> k) % 8).into())
                    .collect(),
            }
        })
        .collect();
    for forest in [ordered_subject(&messages), references(&messages)] {
        let response = forest.response();
        let mut depth = 0i64;
        for ch in response.chars() {
            depth += match ch {
                '(' => 1,
                ')' => -1,
                _ => 0,
            };
            assert!(depth >= 0, "{response}");
        }
        assert_eq!(depth, 0, "{response}");
        assert!(!response.contains("()"), "{response}");
        let mut numbers: Vec<u32> = response
            .split(|ch: char| !ch.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        numbers.sort_unstable();
        let all: Vec<u32> = (1..=messages.len() as u32).collect();
        assert_eq!(numbers, all, "{response}");
    }
}
