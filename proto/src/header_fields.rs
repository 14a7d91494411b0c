//! A message's header fields taken one by one (each with its folded lines), to drop some of them:
//! the Authentication-Results fields that claim this server's name, DKIM signatures past a bound.

use std::borrow::Cow;

/// Whether `field` (a whole field, its name first) is named `name`, in any case.
pub fn field_named(field: &[u8], name: &str) -> bool {
    field.len() > name.len()
        && field[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        && field[name.len()..]
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t'))
            == Some(&b':')
}

/// Where each header field of `message` is (its name first, with its folded lines and line end).
fn field_spans(message: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(message.len());
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= header_end {
            return None;
        }
        // One field: its first line and the folded lines after it.
        let mut end = i;
        loop {
            match message[end..header_end].iter().position(|&b| b == b'\n') {
                Some(n) => end += n + 1,
                None => {
                    end = header_end;
                    break;
                }
            }
            if end >= header_end || !matches!(message[end], b' ' | b'\t') {
                break;
            }
        }
        let span = i..end;
        i = end;
        Some(span)
    })
}

/// Where the first field named `name` is in `head` (a message's first bytes), if its header has one
/// there.
pub fn first_field(head: &[u8], name: &str) -> Option<std::ops::Range<usize>> {
    field_spans(head).find(|span| field_named(&head[span.clone()], name))
}

/// `message` with only the header fields (each with its folded lines) that `keep` says yes to;
/// borrowed when it keeps them all.
pub fn keep_fields(message: &[u8], mut keep: impl FnMut(&[u8]) -> bool) -> Cow<'_, [u8]> {
    // Filled only from the first field dropped: most messages keep every field and are not copied.
    let mut out: Option<Vec<u8>> = None;
    let mut header_end = 0;
    for span in field_spans(message) {
        header_end = span.end;
        let field = &message[span.clone()];
        match (&mut out, keep(field)) {
            (Some(out), true) => out.extend_from_slice(field),
            (Some(_), false) => {}
            (None, true) => {}
            (None, false) => {
                let mut kept = Vec::with_capacity(message.len());
                kept.extend_from_slice(&message[..span.start]);
                out = Some(kept);
            }
        }
    }
    match out {
        Some(mut out) => {
            out.extend_from_slice(&message[header_end..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(message),
    }
}

/// `message` without the Authentication-Results fields that claim to come from `hostname` (RFC 8601
/// §5: a forger, or a user sending to a colleague, could otherwise hand readers a "pass" of ours).
/// Others' are kept.
pub fn strip_own_results<'m>(message: &'m [u8], hostname: &str) -> Cow<'m, [u8]> {
    keep_fields(message, |field| !is_own_result(field, hostname))
}

fn is_own_result(field: &[u8], hostname: &str) -> bool {
    if !field_named(field, "Authentication-Results") {
        return false;
    }
    let text = String::from_utf8_lossy(field);
    let value = text.split_once(':').map(|(_, v)| v).unwrap_or("");
    // The authserv-id is the first token of the value, after any comments (RFC 8601 §2.2 allows CFWS
    // before it) and before `;`; a trailing dot names the same host.
    let id = skip_comments(value)
        .split(|c: char| c == ';' || c.is_whitespace())
        .next()
        .unwrap_or("");
    // The id may be a quoted string (RFC 8601 §2.2: `value`).
    let id = id.trim_matches('"');
    let id = id.strip_suffix('.').unwrap_or(id);
    id.eq_ignore_ascii_case(hostname)
}

/// `value` from its first character that is neither white space nor inside a comment (comments
/// nest, RFC 5322 §3.2.2; a backslash quotes the next character).
fn skip_comments(value: &str) -> &str {
    let mut depth = 0usize;
    let mut escaped = false;
    for (at, c) in value.char_indices() {
        match (escaped, depth, c) {
            (true, _, _) => escaped = false,
            (false, d, '\\') if d > 0 => escaped = true,
            (false, _, '(') => depth += 1,
            (false, d, ')') if d > 0 => depth -= 1,
            (false, 0, c) if !c.is_whitespace() => return &value[at..],
            _ => {}
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_field_of_a_name_is_found_in_the_header_only() {
        let m = b"DKIM-Signature: v=1;\r\n b=x\r\nreturn-path : <a@b>\r\nSubject: s\r\n\r\nReturn-Path: <no>\r\n";
        let span = first_field(m, "Return-Path").unwrap();
        assert_eq!(&m[span], b"return-path : <a@b>\r\n");
        assert_eq!(
            first_field(b"Subject: s\r\n\r\nReturn-Path: <no>\r\n", "Return-Path"),
            None
        );
    }

    #[test]
    fn own_results_are_removed_others_kept() {
        let m = b"Authentication-Results: mx.b.test;\r\n\tdmarc=pass header.from=a.test\r\n\
AUTHENTICATION-RESULTS: MX.B.TEST; spf=pass\r\n\
Authentication-Results: (c) mx.b.test; dmarc=pass\r\n\
Authentication-Results: (a (nested\\) one)) \r\n mx.b.test.; dmarc=pass\r\n\
Authentication-Results: \"mx.b.test\"; dmarc=pass\r\n\
Authentication-Results: other.example; dkim=fail\r\n\
Authentication-Results: (mx.b.test) other.example; dkim=fail\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.b.test; in the body stays\r\n";
        let out = String::from_utf8(strip_own_results(m, "mx.b.test").into_owned()).unwrap();
        assert_eq!(
            out,
            "Authentication-Results: other.example; dkim=fail\r\n\
Authentication-Results: (mx.b.test) other.example; dkim=fail\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.b.test; in the body stays\r\n"
        );
        let clean = b"Subject: hi\r\n\r\nbody";
        assert!(matches!(
            strip_own_results(clean, "mx.b.test"),
            Cow::Borrowed(_)
        ));
    }
}
