//! Mailbox/get, /changes, /query and /set (RFC 8621 §2) over the store's mailboxes. Names are paths
//! with `/` between levels, as IMAP shows them: a JMAP mailbox's `name` is the last level and its
//! `parentId` the mailbox named by the rest.

use serde_json::{Map, Value, json};

use super::request::{MethodError, MethodResult};
use super::{
    Ctx, check_state, filter_matches, filter_within_limits, get_ids, ids, properties, set_error,
    window,
};
use crate::store::{MailboxInfo, Role, StoreError};

const DELIMITER: char = '/';

/// The Mailbox state: the account's change counter and the newest mailbox id then (so `/changes` tells
/// mailboxes made since from those changed).
pub async fn state(ctx: &mut Ctx<'_>) -> Result<String, MethodError> {
    let modseq = ctx
        .store()
        .account_modseq(ctx.account.id)
        .await?
        .unwrap_or(0);
    Ok(state_of(modseq, ctx.mailboxes().await?))
}

/// The Mailbox state from the account's change counter and its mailboxes.
pub fn state_of(account_modseq: u64, mailboxes: &[MailboxInfo]) -> String {
    let newest = mailboxes.iter().map(|m| m.id).max().unwrap_or(0);
    format!("{account_modseq}.{newest}")
}

fn parse_state(s: &str) -> Option<(u64, i64)> {
    let (modseq, newest) = s.split_once('.')?;
    Some((modseq.parse().ok()?, newest.parse().ok()?))
}

fn parent_name(name: &str) -> Option<&str> {
    name.rsplit_once(DELIMITER).map(|(parent, _)| parent)
}

fn leaf(name: &str) -> &str {
    name.rsplit_once(DELIMITER).map_or(name, |(_, leaf)| leaf)
}

fn sort_order(role: Option<Role>) -> u32 {
    match role {
        Some(r) => {
            1 + Role::DEFAULTS
                .iter()
                .position(|(d, _)| *d == r)
                .unwrap_or(0) as u32
        }
        None => 100,
    }
}

/// Most messages one `Mailbox/get` reads (their stored summaries, about 1 µs each) to work out thread
/// and unread counts, over all its mailboxes: a mailbox that would pass it reports its message counts in their
/// place, so a client asking for every property of a large account again and again costs little.
pub const THREAD_COUNT_MESSAGES_MAX: u64 = 20_000;

/// What `Mailbox/get` counts by reading a mailbox's messages (RFC 8621 §2).
struct Counts {
    total_threads: u64,
    unread_threads: u64,
    /// Messages with neither `$seen` nor `$draft` (the store counts unseen ones, drafts among them).
    unread_emails: u64,
}

/// A mailbox's `totalThreads`, `unreadThreads` and `unreadEmails`: the conversations it has a message
/// of, those with an unread (neither `$seen` nor `$draft`) message in it, and those messages. (The RFC
/// counts an unread message of the thread anywhere but Trash and Junk; this counts those in the
/// mailbox.) Past the budget, the store's message and unseen counts stand in.
async fn counts(
    ctx: &mut Ctx<'_>,
    m: &MailboxInfo,
    budget: &mut u64,
) -> Result<Counts, MethodError> {
    if m.messages == 0 || m.messages > *budget {
        return Ok(Counts {
            total_threads: m.messages,
            unread_threads: m.unseen,
            unread_emails: m.unseen,
        });
    }
    *budget -= m.messages;
    let user = ctx.account.id;
    let uids = ctx.uids(m.id).await?;
    let (mut all, mut unread) = (
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    );
    let mut unread_emails = 0;
    for row in ctx.summaries(m.id, &uids).await? {
        let id = ids::EmailId {
            blob: row.meta.blob,
        };
        let thread = super::email::thread_of(user, id, row.summary.as_deref());
        let read = row.meta.flags & (crate::store::flags::SEEN | crate::store::flags::DRAFT) != 0;
        if !read {
            unread.insert(thread.clone());
            unread_emails += 1;
        }
        all.insert(thread);
    }
    Ok(Counts {
        total_threads: all.len() as u64,
        unread_threads: unread.len() as u64,
        unread_emails,
    })
}

fn object(m: &MailboxInfo, all: &[MailboxInfo]) -> Value {
    let parent = parent_name(&m.name)
        .and_then(|p| all.iter().find(|x| x.name == p))
        .map(|p| ids::mailbox(p.id));
    let is_inbox = m.role == Some(Role::Inbox);
    json!({
        "id": ids::mailbox(m.id),
        "name": leaf(&m.name),
        "parentId": parent,
        "role": m.role.map(Role::as_str),
        "sortOrder": sort_order(m.role),
        "totalEmails": m.messages,
        "unreadEmails": m.unseen,
        "totalThreads": m.messages,
        "unreadThreads": m.unseen,
        "myRights": {
            "mayReadItems": true, "mayAddItems": true, "mayRemoveItems": true,
            "maySetSeen": true, "maySetKeywords": true, "mayCreateChild": true,
            "mayRename": !is_inbox, "mayDelete": !is_inbox, "maySubmit": true,
        },
        "isSubscribed": m.subscribed,
    })
}

/// Only the properties asked for (and always the id).
pub fn pick(mut full: Value, props: &Option<Vec<String>>) -> Value {
    let Some(props) = props else {
        return full;
    };
    let Some(o) = full.as_object_mut() else {
        return full;
    };
    o.retain(|k, _| k == "id" || props.iter().any(|p| p == k));
    full
}

/// Every property a Mailbox has (RFC 8621 §2).
const PROPERTIES: [&str; 11] = [
    "id",
    "name",
    "parentId",
    "role",
    "sortOrder",
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
    "myRights",
    "isSubscribed",
];

pub async fn get(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let wanted = get_ids(&args)?;
    let props = properties(&args, "properties")?;
    if let Some(unknown) = props
        .iter()
        .flatten()
        .find(|p| !PROPERTIES.contains(&p.as_str()))
    {
        return Err(MethodError::invalid(format!(
            "no Mailbox property {unknown}"
        )));
    }
    let state = state(ctx).await?;
    let all = ctx.mailboxes().await?.to_vec();
    let mut chosen = Vec::new();
    let mut not_found = Vec::new();
    match wanted {
        None => chosen.extend(all.iter()),
        Some(wanted) => {
            for id in wanted {
                match ids::parse_mailbox(ctx.resolve(&id))
                    .and_then(|n| all.iter().find(|m| m.id == n))
                {
                    Some(m) => chosen.push(m),
                    None => not_found.push(id),
                }
            }
        }
    }
    let counts_wanted = props.as_ref().is_none_or(|p| {
        p.iter()
            .any(|p| p == "totalThreads" || p == "unreadThreads" || p == "unreadEmails")
    });
    let mut list = Vec::with_capacity(chosen.len());
    let mut budget = THREAD_COUNT_MESSAGES_MAX;
    for m in chosen {
        let mut o = object(m, &all);
        if counts_wanted {
            let counts = counts(ctx, m, &mut budget).await?;
            o["totalThreads"] = json!(counts.total_threads);
            o["unreadThreads"] = json!(counts.unread_threads);
            o["unreadEmails"] = json!(counts.unread_emails);
        }
        list.push(pick(o, &props));
    }
    Ok(json!({"accountId": ctx.account_id(), "state": state, "list": list, "notFound": not_found}))
}

pub async fn changes(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let since = super::since_state(&args)?;
    let max = super::state::max_changes(&args)?;
    let (modseq, newest) =
        parse_state(since).ok_or_else(|| MethodError::new("cannotCalculateChanges"))?;
    let new_state = state(ctx).await?;
    let (changed, gone) = ctx
        .store()
        .mailboxes_changed(ctx.account.id, modseq)
        .await?;
    let created: Vec<String> = changed
        .iter()
        .filter(|&&id| id > newest)
        .map(|&id| ids::mailbox(id))
        .collect();
    let updated: Vec<String> = changed
        .iter()
        .filter(|&&id| id <= newest)
        .map(|&id| ids::mailbox(id))
        .collect();
    let destroyed: Vec<String> = gone
        .iter()
        .filter(|&&id| id <= newest)
        .map(|&id| ids::mailbox(id))
        .collect();
    // The mailboxes' changes carry no modseq of their own, so there is no state part-way to give:
    // more than `maxChanges` asks the client to read them afresh (RFC 8620 §5.2 allows it).
    if created.len() + updated.len() + destroyed.len() > max {
        return Err(MethodError::new("cannotCalculateChanges"));
    }
    Ok(json!({
        "accountId": ctx.account_id(), "oldState": since, "newState": new_state,
        "hasMoreChanges": false, "created": created, "updated": updated, "destroyed": destroyed,
        "updatedProperties": null,
    }))
}

fn matches(m: &MailboxInfo, all: &[MailboxInfo], filter: &Value) -> Result<bool, MethodError> {
    filter_matches(filter, &mut |condition| {
        for (key, want) in condition {
            let ok = match key.as_str() {
                "parentId" => {
                    let parent = parent_name(&m.name)
                        .and_then(|p| all.iter().find(|x| x.name == p))
                        .map(|p| ids::mailbox(p.id));
                    parent.as_deref() == want.as_str()
                }
                "name" => want
                    .as_str()
                    .is_some_and(|w| leaf(&m.name).to_lowercase().contains(&w.to_lowercase())),
                "role" => m.role.map(Role::as_str) == want.as_str(),
                "hasAnyRole" => want.as_bool() == Some(m.role.is_some()),
                "isSubscribed" => want.as_bool() == Some(m.subscribed),
                other => {
                    return Err(MethodError::with(
                        "unsupportedFilter",
                        format!("no mailbox filter {other}"),
                    ));
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

pub async fn query(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let state = state(ctx).await?;
    let all = ctx.mailboxes().await?.to_vec();
    let filter = args.get("filter").cloned().unwrap_or(Value::Null);
    let flag = |name: &str| match args.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(MethodError::invalid(format!("{name} is true or false"))),
    };
    let (filter_as_tree, sort_as_tree) = (flag("filterAsTree")?, flag("sortAsTree")?);
    filter_within_limits(&filter)?;
    let mut matching = std::collections::HashSet::new();
    for m in &all {
        if matches(m, &all, &filter)? {
            matching.insert(m.name.as_str());
        }
    }
    // filterAsTree (RFC 8621 §2.3): a mailbox counts only when every mailbox above it does too.
    let shown = |m: &MailboxInfo| {
        matching.contains(m.name.as_str())
            && (!filter_as_tree || ancestors(&m.name).all(|a| matching.contains(a)))
    };
    let mut found: Vec<&MailboxInfo> = all.iter().filter(|m| shown(m)).collect();
    let sort = args
        .get("sort")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if sort.len() > super::request::COMPARATORS_MAX {
        return Err(MethodError::invalid(
            "sort is a list of at most 8 comparators",
        ));
    }
    let mut comparators = Vec::with_capacity(sort.len());
    for comparator in &sort {
        super::check_collation(comparator)?;
        let ascending = comparator
            .get("isAscending")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let by_name = match comparator.get("property").and_then(Value::as_str) {
            Some("name") => true,
            Some("sortOrder") => false,
            _ => return Err(MethodError::new("unsupportedSort")),
        };
        comparators.push((by_name, ascending));
    }
    let siblings = |a: &MailboxInfo, b: &MailboxInfo| {
        comparators
            .iter()
            .map(|&(by_name, ascending)| {
                let order = if by_name {
                    leaf(&a.name).cmp(leaf(&b.name))
                } else {
                    sort_order(a.role).cmp(&sort_order(b.role))
                };
                if ascending { order } else { order.reverse() }
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    if sort_as_tree {
        // Each mailbox after its parent, siblings in the order asked: compare the two paths from the
        // top, at the first level where they part.
        found.sort_by(|a, b| tree_order(a, b, &all, &siblings));
    } else {
        found.sort_by(|a, b| siblings(a, b));
    }
    let found: Vec<String> = found.iter().map(|m| ids::mailbox(m.id)).collect();
    let mut out = json!({
        "accountId": ctx.account_id(), "queryState": state, "canCalculateChanges": false,
        "total": found.len(),
    });
    window(&args, &found)?.fill(&mut out);
    Ok(out)
}

/// The names of the mailboxes above `name`, nearest first.
fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(parent_name(name), |n| parent_name(n))
}

/// Tree order: `a` and `b` compared by their ancestors (or themselves) at the first level where their
/// paths differ, so a parent precedes its children and each subtree stays together.
fn tree_order(
    a: &MailboxInfo,
    b: &MailboxInfo,
    all: &[MailboxInfo],
    siblings: &impl Fn(&MailboxInfo, &MailboxInfo) -> std::cmp::Ordering,
) -> std::cmp::Ordering {
    fn path(m: &MailboxInfo) -> Vec<&str> {
        let mut names: Vec<&str> = ancestors(&m.name).collect();
        names.reverse();
        names.push(&m.name);
        names
    }
    let (pa, pb) = (path(a), path(b));
    for (x, y) in pa.iter().zip(&pb) {
        if x != y {
            let find = |n: &str| all.iter().find(|m| m.name == n);
            return match (find(x), find(y)) {
                (Some(x), Some(y)) => siblings(x, y).then_with(|| x.name.cmp(&y.name)),
                _ => x.cmp(y),
            };
        }
    }
    pa.len().cmp(&pb.len())
}

/// The full name a mailbox gets under `parent` (a mailbox id, perhaps `#creationId`, or null).
async fn full_name(ctx: &mut Ctx<'_>, parent: Option<&Value>, name: &str) -> Result<String, Value> {
    if name.is_empty() || name.contains(DELIMITER) {
        return Err(json!({"type": "invalidProperties", "properties": ["name"],
            "description": format!("a name is not empty and has no {DELIMITER}")}));
    }
    match parent {
        None | Some(Value::Null) => Ok(name.to_string()),
        Some(Value::String(id)) => {
            let id = ctx.resolve(id).to_string();
            let parent = match ids::parse_mailbox(&id) {
                Some(n) => ctx.mailbox(n).await.ok().flatten(),
                None => None,
            };
            match parent {
                Some(p) => Ok(format!("{}{DELIMITER}{name}", p.name)),
                None => Err(json!({"type": "invalidProperties", "properties": ["parentId"]})),
            }
        }
        Some(_) => Err(json!({"type": "invalidProperties", "properties": ["parentId"]})),
    }
}

/// Creations in an order where a mailbox whose `parentId` is another's creation id comes after it.
fn parents_first(create: Map<String, Value>) -> Vec<(String, Value)> {
    let mut pending: Vec<(String, Value)> = create.into_iter().collect();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let waits = |object: &Value, pending: &[(String, Value)]| {
            object
                .get("parentId")
                .and_then(Value::as_str)
                .and_then(|p| p.strip_prefix('#'))
                .is_some_and(|cid| pending.iter().any(|(c, _)| c == cid))
        };
        let ready: Vec<usize> = (0..pending.len())
            .filter(|&i| !waits(&pending[i].1, &pending))
            .collect();
        if ready.is_empty() {
            // A cycle: what is left fails on its unknown parent.
            ordered.append(&mut pending);
            break;
        }
        for i in ready.into_iter().rev() {
            ordered.push(pending.remove(i));
        }
    }
    ordered
}

fn store_set_error(e: StoreError) -> Value {
    match e {
        StoreError::MailboxExists => {
            json!({"type": "invalidProperties", "properties": ["name"], "description": "a mailbox of that name exists"})
        }
        StoreError::MailboxRefused(why) if why == crate::store::INSIDE_ITSELF => {
            json!({"type": "invalidProperties", "properties": ["parentId"], "description": why})
        }
        StoreError::BadMailboxName(why) | StoreError::MailboxRefused(why) => {
            json!({"type": "invalidProperties", "properties": ["name"], "description": why})
        }
        StoreError::TooManyMailboxes(n) => set_error("overQuota", format!("at most {n} mailboxes")),
        StoreError::NoSuchMailbox => set_error("notFound", "no such mailbox"),
        other => {
            tracing::warn!(error = %other, "Mailbox/set failed in the store");
            set_error("serverFail", "the change was not made")
        }
    }
}

pub async fn set(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let old_state = state(ctx).await?;
    check_state(&args, &old_state)?;
    let user = ctx.account.id;
    let super::SetArgs {
        create,
        update,
        destroy,
    } = super::SetArgs::read(&args)?;
    let remove_emails = args
        .get("onDestroyRemoveEmails")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (mut created, mut not_created) = (Map::new(), Map::new());
    for (cid, object) in parents_first(create) {
        // Only what a client sets; the counts, rights and id are the server's (RFC 8620 §5.3).
        if let Some(bad) = object.as_object().and_then(|o| {
            o.keys().find(|k| {
                !["name", "parentId", "role", "sortOrder", "isSubscribed"].contains(&k.as_str())
            })
        }) {
            not_created.insert(
                cid,
                json!({"type": "invalidProperties", "properties": [bad]}),
            );
            continue;
        }
        let name = object.get("name").and_then(Value::as_str).unwrap_or("");
        if object.get("role").is_some_and(|r| !r.is_null()) {
            not_created.insert(
                cid,
                json!({"type": "invalidProperties", "properties": ["role"],
                "description": "every role already has its mailbox"}),
            );
            continue;
        }
        let full = match full_name(ctx, object.get("parentId"), name).await {
            Ok(f) => f,
            Err(e) => {
                not_created.insert(cid, e);
                continue;
            }
        };
        let subscribed = object.get("isSubscribed").and_then(Value::as_bool) != Some(false);
        match ctx.store().create_mailbox(user, &full, subscribed).await {
            Ok(id) => {
                // A name still subscribed from a deleted mailbox comes back subscribed; the client's
                // explicit `false` wins over that.
                if !subscribed
                    && let Some(made) = ctx.store().mailbox(user, &full).await?
                    && made.subscribed
                {
                    ctx.store().subscribe(user, &full, false).await?;
                }
                ctx.changed();
                ctx.created.insert(cid.clone(), ids::mailbox(id));
                created.insert(
                    cid,
                    json!({"id": ids::mailbox(id), "role": null, "sortOrder": 100,
                    "totalEmails": 0, "unreadEmails": 0, "totalThreads": 0, "unreadThreads": 0,
                    "myRights": {"mayReadItems": true, "mayAddItems": true, "mayRemoveItems": true,
                        "maySetSeen": true, "maySetKeywords": true, "mayCreateChild": true,
                        "mayRename": true, "mayDelete": true, "maySubmit": true}}),
                );
            }
            Err(e) => {
                not_created.insert(cid, store_set_error(e));
            }
        }
    }
    let (mut updated, mut not_updated) = (Map::new(), Map::new());
    for (id, patch) in update {
        // Answered under the id it names (RFC 8620 §5.3), a `#creationId` resolved.
        let id = ctx.resolve(&id).to_string();
        let Some(current) = (match ids::parse_mailbox(ctx.resolve(&id)) {
            Some(n) => ctx.mailbox(n).await?,
            None => None,
        }) else {
            not_updated.insert(id, set_error("notFound", "no such mailbox"));
            continue;
        };
        let Some(patch) = patch.as_object() else {
            not_updated.insert(id, set_error("invalidPatch", "a patch is an object"));
            continue;
        };
        // Any other property may be named only with the value it has (RFC 8620 §5.3): a client may
        // send back the object it read.
        let fixed: Vec<&String> = patch
            .keys()
            .filter(|k| !["name", "parentId", "isSubscribed", "sortOrder"].contains(&k.as_str()))
            .collect();
        if !fixed.is_empty() {
            let args = json!({"ids": [&id], "properties": &fixed});
            let now = match args {
                Value::Object(args) => get(ctx, args).await.ok(),
                _ => None,
            };
            let now = now.as_ref().and_then(|reply| reply["list"].get(0));
            let differ: Vec<&String> = fixed
                .into_iter()
                .filter(|k| now.and_then(|o| o.get(k.as_str())) != patch.get(k.as_str()))
                .collect();
            if !differ.is_empty() {
                not_updated.insert(
                    id,
                    json!({"type": "invalidProperties", "properties": differ}),
                );
                continue;
            }
        }
        // INBOX keeps its name and place (`mayRename` is false): IMAP's RENAME of INBOX, which moves
        // its mail out, is not what a JMAP client asks for here.
        if current.role == Some(Role::Inbox)
            && (patch
                .get("name")
                .is_some_and(|n| n.as_str() != Some(leaf(&current.name)))
                || patch.get("parentId").is_some_and(|p| !p.is_null()))
        {
            not_updated.insert(
                id,
                set_error("forbidden", "the inbox cannot be renamed or moved"),
            );
            continue;
        }
        let result: Result<(), Value> = async {
            if patch.contains_key("name") || patch.contains_key("parentId") {
                let name = patch
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(leaf(&current.name))
                    .to_string();
                let parent = match patch.get("parentId") {
                    Some(p) => p.clone(),
                    None => match parent_name(&current.name) {
                        Some(p) => match ctx
                            .mailboxes()
                            .await
                            .ok()
                            .and_then(|all| all.iter().find(|m| m.name == p).map(|m| m.id))
                        {
                            Some(pid) => json!(ids::mailbox(pid)),
                            None => Value::Null,
                        },
                        None => Value::Null,
                    },
                };
                let full = full_name(ctx, Some(&parent), &name).await?;
                if full != current.name {
                    ctx.store()
                        .rename_mailbox(user, &current.name, &full)
                        .await
                        .map_err(store_set_error)?;
                    ctx.changed();
                }
            }
            if let Some(sub) = patch.get("isSubscribed").and_then(Value::as_bool) {
                let name = ctx
                    .mailbox(current.id)
                    .await
                    .ok()
                    .flatten()
                    .map_or(current.name.clone(), |m| m.name);
                ctx.store()
                    .subscribe(user, &name, sub)
                    .await
                    .map_err(store_set_error)?;
                ctx.changed();
            }
            Ok(())
        }
        .await;
        match result {
            // The sort order is the server's (by role); a different one asked for is told back.
            Ok(()) => match patch.get("sortOrder") {
                Some(asked) if asked.as_u64() != Some(u64::from(sort_order(current.role))) => {
                    updated.insert(id, json!({"sortOrder": sort_order(current.role)}));
                }
                _ => {
                    updated.insert(id, Value::Null);
                }
            },
            Err(e) => {
                not_updated.insert(id, e);
            }
        }
    }
    let (mut destroyed, mut not_destroyed) = (Vec::new(), Map::new());
    for id in destroy {
        let id = ctx.resolve(&id).to_string();
        let Some(current) = (match ids::parse_mailbox(ctx.resolve(&id)) {
            Some(n) => ctx.mailbox(n).await?,
            None => None,
        }) else {
            not_destroyed.insert(id, set_error("notFound", "no such mailbox"));
            continue;
        };
        let prefix = format!("{}{DELIMITER}", current.name);
        if ctx
            .mailboxes()
            .await?
            .iter()
            .any(|m| m.name.starts_with(&prefix))
        {
            not_destroyed.insert(id, set_error("mailboxHasChild", "it has child mailboxes"));
            continue;
        }
        if current.messages > 0 && !remove_emails {
            not_destroyed.insert(id, set_error("mailboxHasEmail", "it holds messages"));
            continue;
        }
        match ctx.store().delete_mailbox(user, &current.name).await {
            Ok(()) => {
                ctx.changed();
                destroyed.push(id);
            }
            Err(StoreError::MailboxRefused(why)) => {
                not_destroyed.insert(id, set_error("forbidden", why));
            }
            Err(e) => {
                not_destroyed.insert(id, store_set_error(e));
            }
        }
    }
    let new_state = state(ctx).await?;
    Ok(json!({
        "accountId": ctx.account_id(), "oldState": old_state, "newState": new_state,
        "created": created, "updated": updated, "destroyed": destroyed,
        "notCreated": not_created, "notUpdated": not_updated, "notDestroyed": not_destroyed,
    }))
}
