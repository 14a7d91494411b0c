//! EmailSubmission objects kept after sending (RFC 8621 §7): `/get`, `/changes`, `/query`, and `/set`'s
//! update and destroy. An account keeps its latest [`crate::store::rules::SUBMISSIONS_KEPT_MAX`] for a
//! week at least; each is stored as the object a client reads, made when it was sent. Mail is sent at
//! once, so every kept submission is `final`: it cannot be undone, only forgotten.
//!
//! The state is the highest number kept and how many are kept: the store never gives a number twice, so
//! after a change the pair is one the account has not had with other contents.

use serde_json::{Map, Value, json};

use super::request::{MethodError, MethodResult};
use super::{
    Ctx, filter_matches, filter_within_limits, get_ids, known_properties, pick, set_error,
    since_state, window,
};

const PROPERTIES: &[&str] = &[
    "id",
    "identityId",
    "emailId",
    "threadId",
    "envelope",
    "sendAt",
    "undoStatus",
    "deliveryStatus",
    "dsnBlobIds",
    "mdnBlobIds",
];

/// A kept submission's id: its number in the store.
pub fn id_of(number: u64) -> String {
    format!("s{number}")
}

fn number_of(id: &str) -> Option<u64> {
    id.strip_prefix('s')?.parse().ok()
}

/// The account's kept submissions, oldest first, and the state they make.
async fn kept(ctx: &Ctx<'_>) -> Result<(Vec<Map<String, Value>>, String), MethodError> {
    let rows = ctx.store().submissions(ctx.account.id).await?;
    let state = format!("{}-{}", rows.last().map_or(0, |(n, _)| *n), rows.len());
    let objects = rows
        .into_iter()
        .filter_map(|(n, text)| {
            let mut object: Map<String, Value> = serde_json::from_str(&text).ok()?;
            object.insert("id".into(), json!(id_of(n)));
            Some(object)
        })
        .collect();
    Ok((objects, state))
}

/// The state now (for `/set`'s oldState and newState).
pub async fn state(ctx: &Ctx<'_>) -> Result<String, MethodError> {
    Ok(kept(ctx).await?.1)
}

/// Keeps a sent submission; its id. Mail already went, so a failure to keep it is only logged (and
/// the random id it gets then is one `/get` will not find).
pub async fn keep(ctx: &Ctx<'_>, object: &Map<String, Value>) -> String {
    let text = Value::Object(object.clone()).to_string();
    let now = chrono::Utc::now().timestamp_micros();
    match ctx.store().add_submission(ctx.account.id, &text, now).await {
        Ok(n) => id_of(n),
        Err(e) => {
            tracing::warn!(error = %e, "a sent JMAP submission could not be kept");
            format!("x{:016x}", rand::random::<u64>())
        }
    }
}

pub async fn get(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let wanted = known_properties(&args, PROPERTIES)?;
    let ids = get_ids(&args)?;
    let (all, state) = kept(ctx).await?;
    let (list, not_found) = pick(all, ids, wanted.as_deref());
    Ok(json!({"accountId": ctx.account_id(), "state": state, "list": list, "notFound": not_found}))
}

/// No change log is kept: a client at an older state reads them again.
pub async fn changes(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let since = since_state(&args)?;
    if since != state(ctx).await? {
        return Err(MethodError::new("cannotCalculateChanges"));
    }
    Ok(
        json!({"accountId": ctx.account_id(), "oldState": since, "newState": since,
        "hasMoreChanges": false, "created": [], "updated": [], "destroyed": []}),
    )
}

/// Whether a kept submission meets one FilterCondition (RFC 8621 §7.3).
fn meets(object: &Map<String, Value>, condition: &Map<String, Value>) -> Result<bool, MethodError> {
    for (key, want) in condition {
        let among = |property: &str| match want.as_array() {
            Some(list) => Ok(list.contains(&object[property])),
            None => Err(MethodError::invalid(format!("{key} is a list of ids"))),
        };
        let sent = object["sendAt"].as_str().unwrap_or("");
        let date = || {
            want.as_str()
                .filter(|d| chrono::DateTime::parse_from_rfc3339(d).is_ok())
                .ok_or_else(|| MethodError::invalid(format!("{key} is a UTCDate")))
        };
        let ok = match key.as_str() {
            "identityIds" => among("identityId")?,
            "emailIds" => among("emailId")?,
            "threadIds" => among("threadId")?,
            "undoStatus" => object["undoStatus"] == *want,
            "before" => sent < date()?,
            "after" => sent >= date()?,
            other => {
                return Err(MethodError::with(
                    "unsupportedFilter",
                    format!("no submission filter {other}"),
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn query(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let (all, state) = kept(ctx).await?;
    let filter = args.get("filter").cloned().unwrap_or(Value::Null);
    filter_within_limits(&filter)?;
    let mut found = Vec::new();
    for object in &all {
        if filter_matches(&filter, &mut |c| meets(object, c))? {
            found.push(object);
        }
    }
    // Sorted by each comparator in turn (RFC 8621 §7.3: emailId, threadId, sentAt), else oldest first.
    let sort = match args.get("sort") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.clone(),
        Some(_) => return Err(MethodError::invalid("sort is a list of comparators")),
    };
    let mut keys = Vec::new();
    for comparator in &sort {
        super::check_collation(comparator)?;
        let property = match comparator.get("property").and_then(Value::as_str) {
            Some("emailId") => "emailId",
            Some("threadId") => "threadId",
            Some("sentAt") => "sendAt",
            _ => return Err(MethodError::new("unsupportedSort")),
        };
        let ascending = comparator
            .get("isAscending")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        keys.push((property, ascending));
    }
    found.sort_by(|a, b| {
        for (property, ascending) in &keys {
            let order = a[*property]
                .as_str()
                .unwrap_or("")
                .cmp(b[*property].as_str().unwrap_or(""));
            let order = if *ascending { order } else { order.reverse() };
            if order.is_ne() {
                return order;
            }
        }
        std::cmp::Ordering::Equal
    });
    let ids: Vec<String> = found
        .iter()
        .map(|o| o["id"].as_str().unwrap_or("").to_string())
        .collect();
    let total = ids.len();
    let mut out = json!({"accountId": ctx.account_id(), "queryState": state,
        "canCalculateChanges": false});
    window(&args, &ids)?.fill(&mut out);
    if args.get("calculateTotal").and_then(Value::as_bool) == Some(true) {
        out["total"] = json!(total);
    }
    Ok(out)
}

/// `/set`'s updates and destroys of kept submissions: an update may only name properties with the
/// values they have (undoing is `cannotUnsend`: the mail went at once); a destroy forgets one.
pub async fn change(
    ctx: &Ctx<'_>,
    update: &Map<String, Value>,
    destroy: &[String],
) -> Result<[Value; 4], MethodError> {
    let (all, _) = kept(ctx).await?;
    let (mut updated, mut not_updated) = (Map::new(), Map::new());
    for (id, patch) in update {
        let target = ctx.resolve(id);
        let Some(object) = all.iter().find(|o| o["id"] == target) else {
            not_updated.insert(id.clone(), set_error("notFound", "no such submission"));
            continue;
        };
        let Some(patch) = patch.as_object() else {
            not_updated.insert(
                id.clone(),
                set_error("invalidPatch", "a patch is an object"),
            );
            continue;
        };
        let refusal = patch.iter().find_map(|(key, value)| match key.as_str() {
            "undoStatus" if value == "canceled" => Some(set_error(
                "cannotUnsend",
                "submissions are sent at once; this one has gone",
            )),
            _ if object.get(key) == Some(value) => None,
            _ => Some(json!({"type": "invalidProperties", "properties": [key],
                "description": format!("{key} cannot be changed")})),
        });
        match refusal {
            Some(e) => not_updated.insert(id.clone(), e),
            None => updated.insert(id.clone(), Value::Null),
        };
    }
    let (mut destroyed, mut not_destroyed) = (Vec::new(), Map::new());
    for id in destroy {
        let target = ctx.resolve(id);
        let gone = match number_of(target) {
            Some(n) => ctx.store().destroy_submission(ctx.account.id, n).await?,
            None => false,
        };
        match gone {
            true => destroyed.push(json!(id)),
            false => {
                not_destroyed.insert(id.clone(), set_error("notFound", "no such submission"));
            }
        }
    }
    Ok([
        Value::Object(updated),
        Value::Object(not_updated),
        Value::Array(destroyed),
        Value::Object(not_destroyed),
    ])
}
