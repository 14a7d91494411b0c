//! Properties every summary keeps, whatever the bytes: checked by the fuzz target
//! (`fuzz/fuzz_targets/mime.rs`) on arbitrary input and by the unit tests on every example.

use super::{Body, DEPTH_MAX, PARTS_MAX, Part, Summary, summarize_message, summarize_with};

/// Summarizes `data` and checks the summary: [`check_structure`]'s invariants, and mail-parser parsing
/// every field gives the same summary. Returns the summary; panics when an invariant breaks.
pub fn check(data: &[u8]) -> Summary {
    let summary = check_structure(data);
    assert_eq!(
        summary,
        summarize_with(&mail_parser::MessageParser::default(), data),
        "the summary's parser, which skips the fields it reads raw, sees what a full parse sees"
    );
    summary
}

/// Summarizes `data` and checks the summary: every part's offsets are in order and inside its parent's
/// body, after its elder sibling (an encapsulated message is exactly its part's body, the whole message
/// exactly `data`), a multipart lists at least one part, the bounds hold, part 1 always exists, and the
/// JSON reads back the same. (A message of more pieces than mail-parser's budget may be summarized
/// differently by a full parse, which spends the budget sooner: such a message is checked with this.)
pub fn check_structure(data: &[u8]) -> Summary {
    let summary = summarize_message(data);
    let mut parts = 0;
    check_message(data, &summary, (0, data.len()), 0, &mut parts);
    assert!(parts <= PARTS_MAX, "{parts} parts described");
    assert!(summary.part(&[1]).is_some(), "a message always has part 1");
    assert_eq!(
        Summary::from_json(&summary.to_json()).as_ref(),
        Some(&summary),
        "JSON round trip"
    );
    summary
}

fn check_message(
    data: &[u8],
    message: &Summary,
    range: (usize, usize),
    depth: usize,
    parts: &mut usize,
) {
    let root = &message.structure;
    assert_eq!(
        (root.header_start, root.body_end),
        range,
        "a message is exactly its range"
    );
    check_part(data, root, range, depth, parts);
}

fn check_part(
    data: &[u8],
    part: &Part,
    (low, high): (usize, usize),
    depth: usize,
    parts: &mut usize,
) {
    *parts += 1;
    assert!(depth <= DEPTH_MAX, "described at depth {depth}");
    assert!(
        low <= part.header_start
            && part.header_start <= part.body_start
            && part.body_start <= part.body_end
            && part.body_end <= high
            && high <= data.len(),
        "offsets {}..{}..{} outside {low}..{high}",
        part.header_start,
        part.body_start,
        part.body_end
    );
    if let Some(lines) = part.lines {
        let feeds = part.body(data).iter().filter(|&&b| b == b'\n').count();
        assert_eq!(lines, feeds as u64);
    }
    let body = (part.body_start, part.body_end);
    match &part.body {
        Body::Opaque => {}
        Body::Multipart(children) => {
            assert!(!children.is_empty(), "an empty multipart");
            let mut low = part.body_start;
            for child in children {
                check_part(data, child, (low, part.body_end), depth + 1, parts);
                low = child.body_end;
            }
        }
        Body::Message(inner) => check_message(data, inner, body, depth + 1, parts),
    }
}
