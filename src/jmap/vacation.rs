//! VacationResponse (RFC 8621 §8): the account's one automatic reply, id `singleton`, read and changed
//! here and sent by `crate::vacation` when mail arrives. Its state is the store's version of it.

use serde_json::{Map, Value, json};

use super::request::MethodResult;
use super::{Ctx, SetArgs, check_state, get_ids, known_properties, set_error};
use crate::store::Vacation;

/// The one object's id.
const SINGLETON: &str = "singleton";
const PROPERTIES: [&str; 7] = [
    "id",
    "isEnabled",
    "fromDate",
    "toDate",
    "subject",
    "textBody",
    "htmlBody",
];

pub async fn get(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let wanted = known_properties(&args, &PROPERTIES)?;
    let ids = get_ids(&args)?.unwrap_or_else(|| vec![SINGLETON.to_string()]);
    let (vacation, version) = ctx.store().vacation(ctx.account.id).await?;
    let mut object = object_of(&vacation);
    if let Some(wanted) = wanted {
        object.retain(|k, _| k == "id" || wanted.contains(k));
    }
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    for id in ids {
        match id == SINGLETON {
            true if list.is_empty() => list.push(Value::Object(object.clone())),
            true => {}
            false => not_found.push(id),
        }
    }
    Ok(
        json!({"accountId": ctx.account_id(), "state": version.to_string(), "list": list,
              "notFound": not_found}),
    )
}

pub async fn set(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let (mut vacation, version) = ctx.store().vacation(ctx.account.id).await?;
    let old_state = version.to_string();
    check_state(&args, &old_state)?;
    let set = SetArgs::read(&args)?;
    let singleton = |why: &str| set_error("singleton", why);
    let not_created: Map<String, Value> = set
        .create
        .keys()
        .map(|cid| {
            (
                cid.clone(),
                singleton("there is one VacationResponse, to update"),
            )
        })
        .collect();
    let not_destroyed: Map<String, Value> = set
        .destroy
        .iter()
        .map(|id| {
            (
                id.clone(),
                singleton("the VacationResponse cannot be destroyed"),
            )
        })
        .collect();
    let (mut updated, mut not_updated) = (Map::new(), Map::new());
    let mut new_state = old_state.clone();
    for (id, patch) in &set.update {
        if id != SINGLETON {
            not_updated.insert(id.clone(), set_error("notFound", "the one id is singleton"));
            continue;
        }
        let patched = patch
            .as_object()
            .ok_or_else(|| set_error("invalidPatch", "a patch is an object"))
            .and_then(|patch| apply(&mut vacation, patch));
        if let Err(e) = patched {
            not_updated.insert(id.clone(), e);
            continue;
        }
        let version = ctx.store().set_vacation(ctx.account.id, &vacation).await?;
        new_state = version.to_string();
        updated.insert(id.clone(), Value::Null);
    }
    Ok(
        json!({"accountId": ctx.account_id(), "oldState": old_state, "newState": new_state,
              "created": {}, "updated": updated, "destroyed": [],
              "notCreated": not_created, "notUpdated": not_updated, "notDestroyed": not_destroyed}),
    )
}

fn object_of(v: &Vacation) -> Map<String, Value> {
    let date = |micros: Option<i64>| micros.map(super::email::utc);
    let object = json!({"id": SINGLETON, "isEnabled": v.enabled, "fromDate": date(v.from_micros),
        "toDate": date(v.to_micros), "subject": v.subject, "textBody": v.text_body,
        "htmlBody": v.html_body});
    match object {
        Value::Object(map) => map,
        _ => unreachable!("built as an object"),
    }
}

/// `patch` applied to `v`: each key a property, each value its new one. A set error when a key is
/// not a property one may set, or a value not of its type or past its limit.
fn apply(v: &mut Vacation, patch: &Map<String, Value>) -> Result<(), Value> {
    let invalid = |property: &str, why: String| json!({"type": "invalidProperties", "properties": [property], "description": why});
    for (key, value) in patch {
        let text = || match value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(invalid(key, format!("{key} is a string or null"))),
        };
        let date = || match value {
            Value::Null => Ok(None),
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| Some(d.timestamp_micros()))
                .map_err(|_| invalid(key, format!("{key} is a UTCDate or null"))),
            _ => Err(invalid(key, format!("{key} is a UTCDate or null"))),
        };
        match key.as_str() {
            "isEnabled" => {
                v.enabled = value
                    .as_bool()
                    .ok_or_else(|| invalid(key, "isEnabled is true or false".into()))?
            }
            "fromDate" => v.from_micros = date()?,
            "toDate" => v.to_micros = date()?,
            "subject" => v.subject = text()?,
            "textBody" => v.text_body = text()?,
            "htmlBody" => v.html_body = text()?,
            _ => return Err(invalid(key, format!("{key} is not a property one may set"))),
        }
    }
    if let Some(why) = crate::vacation::invalid(v) {
        let property = why.split(':').next().unwrap_or("").to_string();
        return Err(invalid(&property, why));
    }
    Ok(())
}
