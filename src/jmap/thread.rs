//! Thread/get and Thread/changes (RFC 8621 §3). A thread is the messages whose conversation root (the
//! first Message-ID of References, else In-Reply-To, else their own; kept in each stored summary) is the
//! same. Thread/get reads the account's summaries (not its messages' bytes); a thread index in the store
//! would make that cost what the thread holds.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::email::thread_of;
use super::ids::EmailId;
use super::request::{MethodError, MethodResult};
use super::{Ctx, get_ids};

pub async fn get(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let state = super::state::email_state(ctx).await?;
    let wanted: Vec<String> = get_ids(&args)?.unwrap_or_default();
    let wanted_set: HashSet<&str> = wanted.iter().map(String::as_str).collect();
    let mut members = if wanted.is_empty() {
        BTreeMap::new()
    } else {
        members_of(ctx, &wanted_set).await?
    };
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    for id in wanted {
        match members.get_mut(&id) {
            Some(emails) => {
                emails.sort();
                // An Email with copies in several mailboxes is one member, at its first arrival.
                let mut seen = HashSet::new();
                emails.retain(|(_, e)| seen.insert(*e));
                let email_ids: Vec<String> = emails.iter().map(|(_, e)| e.to_string()).collect();
                list.push(json!({"id": id, "emailIds": email_ids}));
            }
            None => not_found.push(id),
        }
    }
    Ok(json!({"accountId": ctx.account_id(), "state": state, "list": list, "notFound": not_found}))
}

/// The threads of the Emails changed since the state. A destroyed Email's thread cannot be told (its
/// summary is gone): then `cannotCalculateChanges`, and the client reads its threads again.
pub async fn changes(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let since = super::since_state(&args)?;
    let max = super::state::max_changes(&args)?;
    let Some((created, updated, destroyed, new_state, more)) =
        super::state::email_changes_since(ctx, since, max).await?
    else {
        return Err(MethodError::new("cannotCalculateChanges"));
    };
    if !destroyed.is_empty() {
        return Err(MethodError::new("cannotCalculateChanges"));
    }
    let user = ctx.account.id;
    let emails: Vec<EmailId> = created
        .iter()
        .chain(&updated)
        .filter_map(|id| super::ids::parse_email(id))
        .collect();
    // Each Email's summary from its first copy, read a mailbox at a time (not a read per Email).
    let copies = ctx.copies(&emails).await?;
    let mut firsts: BTreeMap<crate::store::MailboxId, Vec<u32>> = BTreeMap::new();
    for copy in emails.iter().filter_map(|e| copies.get(e)?.first()) {
        firsts.entry(copy.mailbox).or_default().push(copy.uid);
    }
    let mut summaries: HashMap<EmailId, Option<String>> = HashMap::new();
    for (mailbox, mut uids) in firsts {
        uids.sort_unstable();
        uids.dedup();
        for row in ctx.summaries(mailbox, &uids).await? {
            summaries.insert(
                EmailId {
                    blob: row.meta.blob,
                },
                row.summary,
            );
        }
    }
    let created_emails: HashSet<EmailId> = created
        .iter()
        .filter_map(|id| super::ids::parse_email(id))
        .collect();
    let mut threads = Vec::new();
    // Threads an Email created since the state is in: new unless an older Email is in them too.
    let mut maybe_new = HashSet::new();
    let mut seen = HashSet::new();
    for e in emails {
        let Some(summary) = summaries.get(&e) else {
            continue;
        };
        let t = thread_of(user, e, summary.as_deref());
        if created_emails.contains(&e) {
            maybe_new.insert(t.clone());
        }
        if seen.insert(t.clone()) {
            threads.push(t);
        }
    }
    let older = with_older_members(ctx, &maybe_new, &created_emails).await?;
    let (new, changed): (Vec<String>, Vec<String>) = threads
        .into_iter()
        .partition(|t| maybe_new.contains(t) && !older.contains(t));
    Ok(json!({
        "accountId": ctx.account_id(), "oldState": since, "newState": new_state,
        "hasMoreChanges": more, "created": new, "updated": changed, "destroyed": [],
    }))
}

/// Which of `threads` hold an Email not among `created`: they existed before.
async fn with_older_members(
    ctx: &mut Ctx<'_>,
    threads: &HashSet<String>,
    created: &HashSet<EmailId>,
) -> Result<HashSet<String>, MethodError> {
    if threads.is_empty() {
        return Ok(HashSet::new());
    }
    let threads: HashSet<&str> = threads.iter().map(String::as_str).collect();
    let members = members_of(ctx, &threads).await?;
    Ok(members
        .into_iter()
        .filter(|(_, emails)| emails.iter().any(|(_, e)| !created.contains(e)))
        .map(|(thread, _)| thread)
        .collect())
}

/// The messages of each of `threads`, as (arrival, email id), from every copy in the account: reads
/// the account's summaries, not its messages' bytes.
async fn members_of(
    ctx: &mut Ctx<'_>,
    threads: &HashSet<&str>,
) -> Result<BTreeMap<String, Vec<(i64, EmailId)>>, MethodError> {
    let user = ctx.account.id;
    let mut members: BTreeMap<String, Vec<(i64, EmailId)>> = BTreeMap::new();
    for mailbox in ctx.mailboxes().await?.to_vec() {
        if mailbox.messages == 0 {
            continue;
        }
        let uids = ctx.uids(mailbox.id).await?;
        for row in ctx.summaries(mailbox.id, &uids).await? {
            let id = EmailId {
                blob: row.meta.blob,
            };
            let thread = thread_of(user, id, row.summary.as_deref());
            if threads.contains(thread.as_str()) {
                members
                    .entry(thread)
                    .or_default()
                    .push((row.meta.internal_date_micros, id));
            }
        }
    }
    Ok(members)
}
