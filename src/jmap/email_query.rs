//! Email/query (RFC 8621 §4.4) and SearchSnippet/get (§5). The filter is compiled per mailbox into the
//! search IMAP SEARCH runs ([`crate::search`]), so a mailbox the filter rules out is never read and each
//! message is read only as deeply as the filter needs.

use std::cmp::Ordering;

use jmail_proto::imap::search::Query;
use jmail_proto::jmap::filter;
use jmail_proto::summary::Summary;
use mail_parser::MessageParser;
use serde_json::{Map, Value, json};

use super::ids::{self, EmailId};
use super::request::{MethodError, MethodResult};
use super::{Ctx, id_list, window};
use crate::store::{MailboxId, MessageMeta};

/// Message bytes the text conditions (`text`, `body`, headers) of one request's queries may read. 32
/// queries of 30 text conditions each over a 247 MB mailbox, in one request, took 36 s of CPU.
const SCAN_BYTES_MAX: u64 = 256 << 20;

/// One message found, with what sorting and collapsing need. What comes from the stored summary is
/// read from it once, as the message is found, and the summary is not kept: a query of a large
/// account holds these, not every match's summary.
struct Found {
    id: EmailId,
    meta: MessageMeta,
    /// The Date header's instant in seconds; 0 without a summary or a date that parses.
    sent_at: i64,
    /// The first To address, lower case; empty without one.
    first_to: String,
    /// The Message-ID naming its conversation ([`Summary::thread_key_from_json`]).
    thread_root: Option<String>,
}

impl Found {
    fn new(meta: MessageMeta, summary: Option<&str>) -> Found {
        let (envelope, thread_root) = summary
            .and_then(Summary::envelope_and_thread_key_from_json)
            .unzip();
        let sent_at = envelope
            .as_ref()
            .and_then(|e| e.date.as_deref())
            .and_then(mail_parser::DateTime::parse_rfc822)
            .map_or(0, |d| d.to_timestamp());
        let first_to = envelope
            .as_ref()
            .and_then(|e| e.to.first())
            .map(|a| {
                let mailbox = a.mailbox.as_deref().unwrap_or_default();
                let host = a.host.as_deref().unwrap_or_default();
                format!("{mailbox}@{host}").to_lowercase()
            })
            .unwrap_or_default();
        Found {
            id: EmailId { blob: meta.blob },
            meta,
            sent_at,
            first_to,
            thread_root: thread_root.flatten(),
        }
    }
}

#[derive(Debug, Clone)]
enum Key {
    ReceivedAt,
    Size,
    From,
    To,
    Subject,
    SentAt,
    HasKeyword(String),
}

fn comparators(args: &Map<String, Value>) -> Result<Vec<(Key, bool)>, MethodError> {
    let Some(sort) = args.get("sort").filter(|s| !s.is_null()) else {
        return Ok(vec![(Key::ReceivedAt, false)]);
    };
    let list = sort
        .as_array()
        .filter(|l| l.len() <= super::request::COMPARATORS_MAX)
        .ok_or_else(|| MethodError::invalid("sort is a list of at most 8 comparators"))?;
    list.iter()
        .map(|c| {
            super::check_collation(c)?;
            let ascending = c
                .get("isAscending")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let key = match c.get("property").and_then(Value::as_str) {
                Some("receivedAt") => Key::ReceivedAt,
                Some("size") => Key::Size,
                Some("from") => Key::From,
                Some("to") => Key::To,
                Some("subject") => Key::Subject,
                Some("sentAt") => Key::SentAt,
                Some("hasKeyword") => Key::HasKeyword(
                    c.get("keyword")
                        .and_then(Value::as_str)
                        .ok_or_else(|| MethodError::invalid("hasKeyword sorts by a keyword"))?
                        .to_string(),
                ),
                _ => return Err(MethodError::new("unsupportedSort")),
            };
            Ok((key, ascending))
        })
        .collect()
}

/// A subject as sorting sees it (RFC 5256's base subject, roughly): without `Re:`/`Fwd:` and case.
fn base_subject(s: &str) -> String {
    let mut s = s.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let cut = ["re:", "fwd:", "fw:", "aw:"]
            .iter()
            .find(|p| lower.starts_with(*p))
            .map(|p| p.len());
        match cut {
            Some(n) => s = s[n..].trim_start(),
            None => return s.to_lowercase(),
        }
    }
}

fn compare(a: &Found, b: &Found, key: &Key) -> Ordering {
    match key {
        Key::ReceivedAt => a
            .meta
            .internal_date_micros
            .cmp(&b.meta.internal_date_micros),
        Key::Size => a.meta.size.cmp(&b.meta.size),
        Key::From => a.meta.from.to_lowercase().cmp(&b.meta.from.to_lowercase()),
        Key::To => a.first_to.cmp(&b.first_to),
        Key::Subject => base_subject(&a.meta.subject).cmp(&base_subject(&b.meta.subject)),
        Key::SentAt => a.sent_at.cmp(&b.sent_at),
        Key::HasKeyword(k) => {
            let has = |f: &Found| {
                jmail_proto::jmap::keywords::names(f.meta.flags, &f.meta.keywords)
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(k))
            };
            has(a).cmp(&has(b))
        }
    }
}

/// Most copies of Emails an account holds more than once that one query compares mailbox by mailbox
/// (a filter no single copy can answer for, [`filter::copy_safe`]): about 2 MiB of them held at once.
const SHARED_COPIES_MAX: usize = 100_000;

/// The filter as a search of messages in `mailboxes`; `unsupportedFilter` for one that cannot run.
fn compile(filter_value: &Value, mailboxes: &[&str]) -> Result<Query, MethodError> {
    filter::compile(filter_value, mailboxes)
        .map_err(|e| MethodError::with("unsupportedFilter", e.to_string()))
}

/// Every Email of the account the filter matches, unsorted: each mailbox searched with the filter,
/// then, where one copy cannot answer for its Email, each Email held more than once searched again with
/// every mailbox it is in.
async fn find(
    ctx: &mut Ctx<'_>,
    filter_value: &Value,
    with_summary: bool,
) -> Result<Vec<Found>, MethodError> {
    let mut found = Vec::new();
    // A request's first search that reads messages runs whatever their size; later ones only while
    // the request has read less than SCAN_BYTES_MAX.
    let over_budget = ctx.scanned_bytes > SCAN_BYTES_MAX;
    for mailbox in ctx.mailboxes().await?.to_vec() {
        let query = compile(filter_value, &[&ids::mailbox(mailbox.id)])?;
        if query == Query::Nothing || mailbox.messages == 0 {
            continue;
        }
        if query.need() >= jmail_proto::imap::search::Need::Bytes {
            if over_budget {
                return Err(MethodError::with(
                    "requestTooLarge",
                    "this request has searched as much text as one may; send this query in another",
                ));
            }
            ctx.scanned_bytes = ctx.scanned_bytes.saturating_add(mailbox.bytes);
        }
        let uids = ctx.uids(mailbox.id).await?;
        found.extend(search(ctx, mailbox.id, &uids, &query, with_summary).await?);
    }
    if !filter::copy_safe(filter_value) {
        found = recheck_shared(ctx, filter_value, with_summary, found).await?;
    }
    Ok(found)
}

/// Replaces what the mailbox searches found of each Email with copies in several mailboxes by one
/// search of its first copy with the filter compiled for all of its mailboxes: `NOT inMailbox A` then
/// leaves out an Email that is in A whatever its other copies, and `inMailbox A AND inMailbox B` finds
/// one in both.
async fn recheck_shared(
    ctx: &mut Ctx<'_>,
    filter_value: &Value,
    with_summary: bool,
    mut found: Vec<Found>,
) -> Result<Vec<Found>, MethodError> {
    let shared = ctx
        .store()
        .shared_copies(ctx.account.id, SHARED_COPIES_MAX + 1)
        .await?;
    if shared.len() > SHARED_COPIES_MAX {
        return Err(MethodError::with(
            "unsupportedFilter",
            format!(
                "this account holds more than {SHARED_COPIES_MAX} copies of Emails in several mailboxes: \
                 filter without NOT around a mailbox, or two mailboxes under one AND"
            ),
        ));
    }
    let blobs: std::collections::HashSet<i64> = shared.iter().map(|c| c.blob).collect();
    found.retain(|f| !blobs.contains(&f.id.blob));
    // Emails in the same mailboxes are searched together, in the mailbox of their first copy.
    let mut groups: std::collections::BTreeMap<(Vec<MailboxId>, MailboxId), Vec<u32>> =
        Default::default();
    for copies in shared.chunk_by(|a, b| a.blob == b.blob) {
        let mut boxes: Vec<MailboxId> = copies.iter().map(|c| c.mailbox).collect();
        boxes.dedup();
        groups
            .entry((boxes, copies[0].mailbox))
            .or_default()
            .push(copies[0].uid);
    }
    for ((boxes, first), mut uids) in groups {
        let names: Vec<String> = boxes.iter().map(|m| ids::mailbox(*m)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let query = compile(filter_value, &names)?;
        if query == Query::Nothing {
            continue;
        }
        uids.sort_unstable();
        found.extend(search(ctx, first, &uids, &query, with_summary).await?);
    }
    Ok(found)
}

/// The messages among `uids` of `mailbox` that `query` matches.
async fn search(
    ctx: &Ctx<'_>,
    mailbox: MailboxId,
    uids: &[u32],
    query: &Query,
    with_summary: bool,
) -> Result<Vec<Found>, MethodError> {
    let rows = crate::search::evaluate(
        ctx.store(),
        &ctx.shared.input,
        mailbox,
        uids,
        query,
        with_summary,
        &|_| 0,
        move |r, _| Found::new(r.meta, r.summary.as_deref().filter(|_| with_summary)),
    )
    .await?;
    rows.ok_or_else(|| {
        MethodError::with(
            "serverUnavailable",
            "the server is busy with large messages; try again",
        )
    })
}

pub async fn query(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let sort = comparators(&args)?;
    let collapse = args
        .get("collapseThreads")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let filter_value = args.get("filter").cloned().unwrap_or(Value::Null);
    let state = super::state::email_state(ctx).await?;
    let with_summary = collapse || sort.iter().any(|(k, _)| matches!(k, Key::To | Key::SentAt));
    let mut found = find(ctx, &filter_value, with_summary).await?;
    found.sort_by(|a, b| {
        for (key, ascending) in &sort {
            let o = compare(a, b, key);
            let o = if *ascending { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    // An Email with copies in several mailboxes is found once per copy; it is listed once, where it
    // first sorts.
    let mut seen = std::collections::HashSet::new();
    found.retain(|f| seen.insert(f.id));
    let user = ctx.account.id;
    if collapse {
        let mut threads = std::collections::HashSet::new();
        found.retain(|f| {
            threads.insert(super::email::thread_by_root(
                user,
                f.id,
                f.thread_root.as_deref(),
            ))
        });
    }
    let all: Vec<String> = found.iter().map(|f| f.id.to_string()).collect();
    let mut out = json!({
        "accountId": ctx.account_id(), "queryState": state, "canCalculateChanges": false,
        "collapseThreads": collapse,
    });
    window(&args, &all)?.fill(&mut out);
    if args.get("calculateTotal").and_then(Value::as_bool) == Some(true) {
        out["total"] = json!(all.len());
    }
    Ok(out)
}

/// The words a filter searches text for (text, subject, body), lower case.
fn terms(filter: &Value, out: &mut Vec<String>) {
    let Value::Object(o) = filter else {
        return;
    };
    for key in ["text", "subject", "body"] {
        if let Some(s) = o.get(key).and_then(Value::as_str)
            && !s.trim().is_empty()
        {
            out.push(s.trim().to_lowercase());
        }
    }
    if let Some(c) = o.get("conditions").and_then(Value::as_array) {
        for f in c {
            terms(f, out);
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `text` HTML-escaped with each term marked; `None` when no term is in it.
fn highlight(text: &str, terms: &[String]) -> Option<String> {
    let lower = text.to_lowercase();
    // Lower-casing can change lengths; mark only where the lower-cased text lines up byte for byte.
    if lower.len() != text.len() {
        return None;
    }
    let mut marks: Vec<(usize, usize)> = Vec::new();
    for t in terms {
        let mut from = 0;
        while let Some(at) = lower[from..].find(t.as_str()) {
            marks.push((from + at, from + at + t.len()));
            from += at + t.len().max(1);
        }
    }
    if marks.is_empty() {
        return None;
    }
    marks.sort_unstable();
    let mut out = String::new();
    let mut at = 0;
    for (start, end) in marks {
        if start < at || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        out.push_str(&escape(&text[at..start]));
        out.push_str("<mark>");
        out.push_str(&escape(&text[start..end]));
        out.push_str("</mark>");
        at = end;
    }
    out.push_str(&escape(&text[at..]));
    Some(out)
}

/// Up to 255 characters of `text` around the first term found.
fn excerpt(text: &str, terms: &[String]) -> Option<String> {
    let lower = text.to_lowercase();
    if lower.len() != text.len() {
        return None;
    }
    let at = terms.iter().filter_map(|t| lower.find(t.as_str())).min()?;
    let mut start = at.saturating_sub(60);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let window: String = text[start..].chars().take(255).collect();
    let window = window.split_whitespace().collect::<Vec<_>>().join(" ");
    highlight(&window, terms)
}

pub async fn snippets(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let filter_value = args.get("filter").cloned().unwrap_or(Value::Null);
    let mut words = Vec::new();
    terms(&filter_value, &mut words);
    let email_ids = id_list(&args, "emailIds")?.unwrap_or_default();
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    for id in email_ids {
        let Some(e) = ids::parse_email(&id) else {
            not_found.push(id);
            continue;
        };
        let Some(copy) = ctx.first_copy(e).await? else {
            not_found.push(id);
            continue;
        };
        let Some(raw) = ctx.store().fetch(copy.mailbox, copy.uid, false).await? else {
            not_found.push(id);
            continue;
        };
        // The same budget as Email/get: 500 ids of large messages would otherwise parse gigabytes.
        super::email::charge_parsed(&mut ctx.parsed_bytes, raw.len() as u64)?;
        let (subject, preview) = match MessageParser::default().parse(&raw[..]) {
            Some(m) => {
                let subject = m.subject().and_then(|s| highlight(s, &words));
                let body: String = m
                    .text_bodies()
                    .filter_map(|p| p.text_contents())
                    .collect::<Vec<_>>()
                    .join("\n");
                (subject, excerpt(&body, &words))
            }
            None => (None, None),
        };
        list.push(json!({"emailId": id, "subject": subject, "preview": preview}));
    }
    Ok(json!({"accountId": ctx.account_id(), "list": list, "notFound": not_found}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_mark_terms_and_escape_the_rest() {
        assert_eq!(
            highlight("Lunch <b> at noon", &["noon".into()]).unwrap(),
            "Lunch &lt;b&gt; at <mark>noon</mark>"
        );
        assert_eq!(highlight("nothing here", &["lunch".into()]), None);
        assert_eq!(base_subject("Re: FWD: Lunch"), "lunch");
    }
}
