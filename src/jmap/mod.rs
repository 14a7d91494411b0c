//! JMAP (RFC 8620 core, RFC 8621 mail): the session resource, the API, blobs and push, over the same
//! store and push feed as every other protocol, served by the web listener (`src/web`).
//!
//! The store keeps a message per mailbox and UID (the model IMAP shares); a JMAP Email is a message's
//! stored bytes, with a copy in each of its mailboxes: its id is the bytes' id, which every copy shares
//! and a move keeps, so it never changes (RFC 8621 §4.1.1) and one Email can be in several mailboxes
//! (an IMAP COPY makes it so). States come from the store's change counters: `/changes` reads only
//! what changed.

pub mod auth;
mod blobs;
mod body;
mod email;
mod email_body;
mod email_headers;
mod email_query;
mod email_set;
pub mod gate;
pub mod http;
mod identity;
pub mod ids;
mod mailbox;
mod push;
pub mod request;
mod state;
mod submission;
mod submission_kept;
mod thread;
mod vacation;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::conn::Shared;
use crate::store::{Account, Located, MailStore, MailboxId, MailboxInfo};
use request::{Call, MAIL, MethodError, MethodResult, SUBMISSION, VACATION_RESPONSE};

/// What every method of one request works with.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub account: &'a Account,
    /// Creation ids of this request (and those the client carried in) and the ids they became.
    pub created: HashMap<String, String>,
    /// Responses a method adds after its own (EmailSubmission's implicit `Email/set`).
    pub extra: Vec<(String, Value)>,
    /// The account's mailboxes, read once per request and again after a change.
    mailboxes: Option<Vec<MailboxInfo>>,
    /// Message bytes parsed, and bytes of JSON replied, by this request's calls so far: one budget for
    /// the whole request (`email::charge_parsed`), not one per call, or 32 calls would hold 32 times it.
    pub parsed_bytes: u64,
    pub reply_bytes: u64,
    /// Message bytes this request's queries have searched through (`email_query::SCAN_BYTES_MAX`).
    pub scanned_bytes: u64,
}

impl<'a> Ctx<'a> {
    pub fn new(shared: &'a Shared, account: &'a Account) -> Ctx<'a> {
        Ctx {
            shared,
            account,
            created: HashMap::new(),
            extra: Vec::new(),
            mailboxes: None,
            parsed_bytes: 0,
            reply_bytes: 0,
            scanned_bytes: 0,
        }
    }

    pub fn store(&self) -> &dyn MailStore {
        &*self.shared.store
    }

    pub fn account_id(&self) -> String {
        ids::account(self.account.id)
    }

    pub async fn mailboxes(&mut self) -> Result<&[MailboxInfo], MethodError> {
        if self.mailboxes.is_none() {
            self.mailboxes = Some(self.shared.store.mailboxes(self.account.id).await?);
        }
        Ok(self.mailboxes.as_deref().expect("just read"))
    }

    /// Forgets what was read of the mailboxes (after a change to them or their messages).
    pub fn changed(&mut self) {
        self.mailboxes = None;
    }

    /// The account's mailbox of this id, if it is one.
    pub async fn mailbox(&mut self, id: MailboxId) -> Result<Option<MailboxInfo>, MethodError> {
        Ok(self.mailboxes().await?.iter().find(|m| m.id == id).cloned())
    }

    /// An id as the client gave it, with `#creationId` read as what that creation became.
    pub fn resolve<'v>(&'v self, id: &'v str) -> &'v str {
        match id.strip_prefix('#') {
            Some(cid) => self.created.get(cid).map_or(id, String::as_str),
            None => id,
        }
    }
}

/// The arguments of a call, checked to be for this account.
pub fn for_account(ctx: &Ctx<'_>, args: &Map<String, Value>) -> Result<(), MethodError> {
    match args.get("accountId").and_then(Value::as_str) {
        Some(id) if id == ctx.account_id() => Ok(()),
        Some(_) => Err(MethodError::new("accountNotFound")),
        None => Err(MethodError::invalid("accountId is required")),
    }
}

/// Runs a request's calls in order and makes the response.
pub async fn run(shared: &Shared, account: &Account, req: request::Request) -> Value {
    let mut ctx = Ctx::new(shared, account);
    if let Some(carried) = &req.created_ids {
        for (cid, id) in carried {
            if let Some(id) = id.as_str() {
                ctx.created.insert(cid.clone(), id.to_string());
            }
        }
    }
    let mut responses: Vec<(String, Value, String)> = Vec::new();
    for Call { name, mut args, id } in req.calls {
        let result = match request::resolve_references(&mut args, &responses) {
            Ok(()) => call(&mut ctx, &req.using, &name, args).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(value) => responses.push((name, value, id.clone())),
            Err(e) => responses.push(("error".into(), e.to_value(), id.clone())),
        }
        for (extra_name, value) in std::mem::take(&mut ctx.extra) {
            responses.push((extra_name, value, id.clone()));
        }
    }
    let mut out = json!({
        "methodResponses": responses
            .into_iter()
            .map(|(n, v, id)| json!([n, v, id]))
            .collect::<Vec<_>>(),
        "sessionState": http::SESSION_STATE,
    });
    if req.created_ids.is_some() {
        out["createdIds"] = json!(ctx.created);
    }
    out
}

/// One method call.
async fn call(
    ctx: &mut Ctx<'_>,
    using: &[String],
    name: &str,
    args: Map<String, Value>,
) -> MethodResult {
    let has = |cap: &str| using.iter().any(|u| u == cap);
    let needs = match name.split('/').next().unwrap_or("") {
        "Core" | "Blob" => None,
        "Mailbox" | "Email" | "Thread" | "SearchSnippet" => Some(MAIL),
        "Identity" | "EmailSubmission" => Some(SUBMISSION),
        "VacationResponse" => Some(VACATION_RESPONSE),
        _ => return Err(MethodError::new("unknownMethod")),
    };
    if needs.is_some_and(|cap| !has(cap)) {
        return Err(MethodError::with(
            "unknownMethod",
            format!("{name} needs {} in using", needs.unwrap_or("")),
        ));
    }
    if name != "Core/echo" {
        for_account(ctx, &args)?;
    }
    match name {
        "Core/echo" => Ok(Value::Object(args)),
        "Blob/copy" => blobs::copy(ctx, args).await,
        "Mailbox/get" => mailbox::get(ctx, args).await,
        "Mailbox/changes" => mailbox::changes(ctx, args).await,
        "Mailbox/query" => mailbox::query(ctx, args).await,
        "Mailbox/queryChanges" | "Email/queryChanges" => {
            Err(MethodError::new("cannotCalculateChanges"))
        }
        "Mailbox/set" => mailbox::set(ctx, args).await,
        "Thread/get" => thread::get(ctx, args).await,
        "Thread/changes" => thread::changes(ctx, args).await,
        "Email/get" => email::get(ctx, args).await,
        "Email/changes" => state::email_changes(ctx, args).await,
        "Email/query" => email_query::query(ctx, args).await,
        "Email/set" => email_set::set(ctx, args).await,
        "Email/import" => email_set::import(ctx, args).await,
        "Email/parse" => email::parse(ctx, args).await,
        "SearchSnippet/get" => email_query::snippets(ctx, args).await,
        "Identity/get" => identity::get(ctx, args).await,
        "Identity/changes" => identity::changes(ctx, args).await,
        "Identity/set" => identity::set(ctx, args).await,
        "EmailSubmission/get" => submission_kept::get(ctx, args).await,
        "EmailSubmission/changes" => submission_kept::changes(ctx, args).await,
        "EmailSubmission/query" => submission_kept::query(ctx, args).await,
        "EmailSubmission/set" => submission::set(ctx, args).await,
        "VacationResponse/get" => vacation::get(ctx, args).await,
        "VacationResponse/set" => vacation::set(ctx, args).await,
        // Copying is between two accounts (RFC 8620 §5.4), and a login here has one.
        "Email/copy" => match args.get("fromAccountId").and_then(Value::as_str) {
            Some(from) if from == ctx.account_id() => Err(MethodError::invalid(
                "fromAccountId must be another account; within one, use Email/set",
            )),
            _ => Err(MethodError::new("fromAccountNotFound")),
        },
        _ => Err(MethodError::new("unknownMethod")),
    }
}

/// Reads `ids` (null: none given) as a list of strings of at most [`request::OBJECTS_MAX`].
pub fn id_list(args: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, MethodError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => {
            if a.len() > request::OBJECTS_MAX {
                return Err(MethodError::new("requestTooLarge"));
            }
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| MethodError::invalid(format!("{key} is a list of ids")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        Some(_) => Err(MethodError::invalid(format!("{key} is a list of ids"))),
    }
}

/// A /get's `ids`: [`id_list`], each id once in the order first given (RFC 8620 §5.1: a /get
/// returns each object once).
pub fn get_ids(args: &Map<String, Value>) -> Result<Option<Vec<String>>, MethodError> {
    Ok(id_list(args, "ids")?.map(|ids| {
        let mut seen = std::collections::HashSet::new();
        ids.into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }))
}

/// The collations a comparator may name (RFC 8620 §5.5: one the server does not offer is
/// `unsupportedSort`); the session's `collationAlgorithms`.
pub const COLLATIONS: [&str; 2] = ["i;ascii-casemap", "i;unicode-casemap"];

/// Refuses a comparator whose `collation` the server does not offer.
pub fn check_collation(comparator: &Value) -> Result<(), MethodError> {
    match comparator.get("collation") {
        None | Some(Value::Null) => Ok(()),
        Some(c) if c.as_str().is_some_and(|c| COLLATIONS.contains(&c)) => Ok(()),
        Some(_) => Err(MethodError::new("unsupportedSort")),
    }
}

/// Most names one `properties` (or `bodyProperties`) list may give: each is worked out for every object
/// returned, so the list is what multiplies a call's cost.
pub const PROPERTIES_MAX: usize = 64;

/// The `properties` argument: `None` for the default set.
pub fn properties(
    args: &Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<String>>, MethodError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() > PROPERTIES_MAX => Err(MethodError::invalid(format!(
            "{key} names at most {PROPERTIES_MAX} properties"
        ))),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| MethodError::invalid(format!("{key} is a list of names")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(MethodError::invalid(format!("{key} is a list of names"))),
    }
}

/// The `properties` argument of a `/get` whose objects have only `known` properties: one it does not
/// have is `invalidArguments` (RFC 8620 §5.1).
pub fn known_properties(
    args: &Map<String, Value>,
    known: &[&str],
) -> Result<Option<Vec<String>>, MethodError> {
    let wanted = properties(args, "properties")?;
    if let Some(unknown) = wanted
        .iter()
        .flatten()
        .find(|p| !known.contains(&p.as_str()))
    {
        return Err(MethodError::invalid(format!("no property {unknown}")));
    }
    Ok(wanted)
}

/// Checks a /query filter's size before it is run against every object (Email/query's own check is the
/// proto crate's, with the same bounds): at
/// most [`jmail_proto::jmap::filter::NODES_MAX`] conditions and operators, nested at most
/// [`jmail_proto::jmap::filter::DEPTH_MAX`] deep (a request of 10 MB could otherwise hold a million
/// conditions, each tested on each of a thousand mailboxes).
pub fn filter_within_limits(filter: &Value) -> Result<(), MethodError> {
    use jmail_proto::jmap::filter::{DEPTH_MAX, NODES_MAX};
    fn walk(filter: &Value, depth: usize, nodes: &mut usize) -> bool {
        *nodes += 1;
        if *nodes > NODES_MAX || depth > DEPTH_MAX {
            return false;
        }
        match filter.get("conditions").and_then(Value::as_array) {
            Some(conditions) => conditions.iter().all(|c| walk(c, depth + 1, nodes)),
            None => true,
        }
    }
    match walk(filter, 0, &mut 0) {
        true => Ok(()),
        false => Err(MethodError::with(
            "unsupportedFilter",
            format!("a filter has at most {NODES_MAX} conditions, {DEPTH_MAX} deep"),
        )),
    }
}

/// Judges one FilterCondition of a `/query`.
pub type Condition<'a> = dyn FnMut(&Map<String, Value>) -> Result<bool, MethodError> + 'a;

/// Whether `filter` (null, a FilterCondition, or a FilterOperator tree of them) matches, each condition
/// judged by `condition` (RFC 8620 §5.5).
pub fn filter_matches(filter: &Value, condition: &mut Condition<'_>) -> Result<bool, MethodError> {
    let filter = match filter {
        Value::Null => return Ok(true),
        Value::Object(f) => f,
        _ => return Err(MethodError::invalid("a filter is an object")),
    };
    let Some(operator) = filter.get("operator") else {
        return condition(filter);
    };
    let Some(conditions) = filter.get("conditions").and_then(Value::as_array) else {
        return Err(MethodError::invalid("a FilterOperator has conditions"));
    };
    let mut results = Vec::with_capacity(conditions.len());
    for c in conditions {
        results.push(filter_matches(c, condition)?);
    }
    match operator.as_str() {
        Some("AND") => Ok(results.iter().all(|&r| r)),
        Some("OR") => Ok(results.iter().any(|&r| r)),
        Some("NOT") => Ok(!results.iter().any(|&r| r)),
        _ => Err(MethodError::invalid("operator is AND, OR or NOT")),
    }
}

/// A `/get`'s answer from objects held whole (each with its `id`): those asked for (all when `ids` is
/// `None`), each once, with the `wanted` properties (and `id`); and the ids not found.
pub fn pick(
    all: Vec<Map<String, Value>>,
    ids: Option<Vec<String>>,
    wanted: Option<&[String]>,
) -> (Vec<Value>, Vec<String>) {
    let shown = |mut object: Map<String, Value>| {
        if let Some(wanted) = wanted {
            object.retain(|k, _| k == "id" || wanted.contains(k));
        }
        Value::Object(object)
    };
    let Some(ids) = ids else {
        return (all.into_iter().map(shown).collect(), Vec::new());
    };
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    for id in ids {
        match all.iter().find(|o| o["id"] == id.as_str()) {
            Some(found) if !list.iter().any(|o: &Value| o["id"] == found["id"]) => {
                list.push(shown(found.clone()))
            }
            Some(_) => {}
            None => not_found.push(id),
        }
    }
    (list, not_found)
}

/// A `/set` error object (RFC 8620 §5.3).
pub fn set_error(kind: &str, description: impl Into<String>) -> Value {
    json!({"type": kind, "description": description.into()})
}

/// The arguments' `ifInState`, checked against the current state.
pub fn check_state(args: &Map<String, Value>, current: &str) -> Result<(), MethodError> {
    match args.get("ifInState").and_then(Value::as_str) {
        Some(s) if s != current => Err(MethodError::new("stateMismatch")),
        _ => Ok(()),
    }
}

/// A `/query`'s page of results (RFC 8620 §5.5).
#[derive(Debug, PartialEq)]
pub struct Window {
    pub position: usize,
    pub ids: Vec<String>,
    /// The limit the server applied, when the request named none or a larger one: the response says
    /// so, or a client that does not page would take a cut-off list for the whole.
    pub server_limit: Option<usize>,
}

impl Window {
    /// Puts `position`, `ids` and, when the server set it, `limit` into a `/query` response.
    pub fn fill(self, out: &mut Value) {
        out["position"] = json!(self.position);
        out["ids"] = json!(self.ids);
        if let Some(limit) = self.server_limit {
            out["limit"] = json!(limit);
        }
    }
}

/// The position, anchor and limit of a `/query` (RFC 8620 §5.5), applied to the ids found.
pub fn window(args: &Map<String, Value>, found: &[String]) -> Result<Window, MethodError> {
    let asked = match args.get("limit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| MethodError::invalid("limit is an unsigned integer"))?,
        ),
    };
    let limit = asked.map_or(request::QUERY_LIMIT_MAX, |n| {
        n.min(request::QUERY_LIMIT_MAX as u64) as usize
    });
    let server_limit = (asked != Some(limit as u64)).then_some(limit);
    let start = match args.get("anchor").and_then(Value::as_str) {
        Some(anchor) => {
            let at = found
                .iter()
                .position(|id| id == anchor)
                .ok_or_else(|| MethodError::new("anchorNotFound"))?;
            let offset = args
                .get("anchorOffset")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            (at as i64).saturating_add(offset).max(0) as usize
        }
        None => {
            let position = args.get("position").and_then(Value::as_i64).unwrap_or(0);
            if position < 0 {
                (found.len() as i64).saturating_add(position).max(0) as usize
            } else {
                position as usize
            }
        }
    };
    let start = start.min(found.len());
    let end = start.saturating_add(limit).min(found.len());
    Ok(Window {
        position: start,
        ids: found[start..end].to_vec(),
        server_limit,
    })
}

/// A `/set`'s create, update and destroy arguments, at most [`request::OBJECTS_MAX`] in all.
pub struct SetArgs {
    pub create: Map<String, Value>,
    pub update: Map<String, Value>,
    pub destroy: Vec<String>,
}

impl SetArgs {
    pub fn read(args: &Map<String, Value>) -> Result<SetArgs, MethodError> {
        let object = |key: &str| {
            args.get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let set = SetArgs {
            create: object("create"),
            update: object("update"),
            destroy: id_list(args, "destroy")?.unwrap_or_default(),
        };
        if set.create.len() + set.update.len() + set.destroy.len() > request::OBJECTS_MAX {
            return Err(MethodError::new("requestTooLarge"));
        }
        Ok(set)
    }
}

/// Files one creation's outcome under `created` (remembering the id its creation id became) or
/// `not_created`.
pub fn record_creation(
    ctx: &mut Ctx<'_>,
    cid: String,
    result: Result<Value, Value>,
    created: &mut Map<String, Value>,
    not_created: &mut Map<String, Value>,
) {
    match result {
        Ok(v) => {
            if let Some(id) = v.get("id").and_then(Value::as_str) {
                ctx.created.insert(cid.clone(), id.to_string());
            }
            created.insert(cid, v);
        }
        Err(e) => {
            not_created.insert(cid, e);
        }
    }
}

/// Every id under `key` (an object's keys or a list), each refused with the same set error.
pub fn refuse_all(
    args: &Map<String, Value>,
    key: &str,
    kind: &str,
    description: &str,
) -> Map<String, Value> {
    let ids: Vec<String> = match args.get(key) {
        Some(Value::Object(o)) => o.keys().cloned().collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    ids.into_iter()
        .map(|id| (id, set_error(kind, description)))
        .collect()
}

/// The `sinceState` of a `/changes`.
pub fn since_state(args: &Map<String, Value>) -> Result<&str, MethodError> {
    args.get("sinceState")
        .and_then(Value::as_str)
        .ok_or_else(|| MethodError::invalid("sinceState is required"))
}

impl Ctx<'_> {
    /// Every UID of a mailbox, ascending.
    pub async fn uids(&self, mailbox: MailboxId) -> Result<Vec<u32>, MethodError> {
        Ok(self
            .store()
            .snapshot(mailbox)
            .await?
            .messages
            .into_iter()
            .map(|(uid, _)| uid)
            .collect())
    }

    /// Where the account keeps each of `emails` (any number: read in store-sized calls): its copies,
    /// ordered by mailbox and UID. An Email the account does not hold is left out.
    pub async fn copies(
        &self,
        emails: &[ids::EmailId],
    ) -> Result<BTreeMap<ids::EmailId, Vec<Located>>, MethodError> {
        let blobs: Vec<i64> = emails.iter().map(|e| e.blob).collect();
        let mut out: BTreeMap<ids::EmailId, Vec<Located>> = BTreeMap::new();
        for chunk in blobs.chunks(crate::store::MESSAGES_PER_CALL_MAX) {
            for at in self.store().locate(self.account.id, chunk).await? {
                out.entry(ids::EmailId { blob: at.blob })
                    .or_default()
                    .push(at);
            }
        }
        Ok(out)
    }

    /// Each of `emails`' expunged copies whose tombstones are kept (any number of Emails).
    pub async fn tombstones(
        &self,
        emails: &[ids::EmailId],
    ) -> Result<BTreeMap<ids::EmailId, Vec<crate::store::Tombstone>>, MethodError> {
        let blobs: Vec<i64> = emails.iter().map(|e| e.blob).collect();
        let mut out: BTreeMap<ids::EmailId, Vec<crate::store::Tombstone>> = BTreeMap::new();
        for chunk in blobs.chunks(crate::store::MESSAGES_PER_CALL_MAX) {
            for t in self.store().tombstones(self.account.id, chunk).await? {
                out.entry(ids::EmailId { blob: t.blob })
                    .or_default()
                    .push(t);
            }
        }
        Ok(out)
    }

    /// The copy an Email is read from (the first: lowest mailbox id, then UID), if the account holds it.
    pub async fn first_copy(&self, email: ids::EmailId) -> Result<Option<Located>, MethodError> {
        let found = self.store().locate(self.account.id, &[email.blob]).await?;
        Ok(found.into_iter().next())
    }

    /// The listing and stored summary of each of `uids` (any number: read in store-sized calls).
    pub async fn summaries(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<crate::store::Listed>, MethodError> {
        self.listed(mailbox, uids, 0).await
    }

    /// [`Ctx::summaries`], with the bytes of the messages of at most `raw_bytes_max` bytes.
    pub async fn listed(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        raw_bytes_max: u64,
    ) -> Result<Vec<crate::store::Listed>, MethodError> {
        let mut rows = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(crate::store::MESSAGES_PER_CALL_MAX) {
            let wanted = crate::store::Wanted {
                summary: true,
                raw_bytes_max,
            };
            rows.extend(self.store().messages(mailbox, chunk, wanted).await?);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("e{i}")).collect()
    }

    #[test]
    fn window_takes_extreme_offsets_without_overflow() {
        let found = ids(5);
        let at = |args: Value| {
            let w = window(args.as_object().unwrap(), &found).unwrap();
            (w.position, w.ids)
        };
        let (start, page) = at(json!({"anchor": "e2", "anchorOffset": i64::MAX}));
        assert_eq!((start, page.len()), (5, 0));
        let (start, page) = at(json!({"anchor": "e2", "anchorOffset": i64::MIN}));
        assert_eq!((start, page), (0, ids(5)));
        let (start, page) = at(json!({"position": i64::MIN, "limit": 2}));
        assert_eq!((start, page), (0, vec!["e0".to_string(), "e1".to_string()]));
        let (start, page) = at(json!({"position": -2}));
        assert_eq!((start, page), (3, vec!["e3".to_string(), "e4".to_string()]));
    }

    #[test]
    fn window_says_the_limit_it_set() {
        let found = ids(3);
        let limit = |args: Value| {
            window(args.as_object().unwrap(), &found)
                .unwrap()
                .server_limit
        };
        assert_eq!(limit(json!({})), Some(request::QUERY_LIMIT_MAX));
        assert_eq!(
            limit(json!({"limit": 1_000_000})),
            Some(request::QUERY_LIMIT_MAX)
        );
        assert_eq!(limit(json!({"limit": 2})), None);
    }
}
