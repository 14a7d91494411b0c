//! Identity (RFC 8621 §6): the addresses an account sends as. Each of its own addresses (its name at each
//! of the server's domains) is one that cannot be destroyed (`i0` at the primary domain, `iN` at the N-th
//! other); the account may add more for those same addresses (`n1`, `n2`, ...: another display name or
//! signature), and set each one's name, replyTo, bcc and signatures. What it set is kept in the store
//! as one JSON text per account (all nodes see it), whose version is the state; the settings of an own
//! address are kept by its domain, so a change of the server's list of domains moves no one's name to
//! another address.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::request::{MethodError, MethodResult};
use super::{
    Ctx, SetArgs, check_state, get_ids, known_properties, pick, record_creation, set_error,
    since_state,
};

/// Characters of a display name at most (an identity's, or one in replyTo or bcc).
const NAME_CHARS_MAX: usize = 256;
/// Bytes of each signature at most (Gmail allows 10,000 characters).
const SIGNATURE_BYTES_MAX: usize = 16 * 1024;
/// Addresses in replyTo, and in bcc, at most.
const ADDRESSES_MAX: usize = 20;
/// Identities an account may add at most.
const ADDED_MAX: usize = 50;
/// Bytes the account's settings may take in all, as stored (each submission reads them): the limits
/// above allow about 1.7 MB; real settings are a few KB.
const SETTINGS_BYTES_MAX: usize = 256 * 1024;
/// Tries of a change when another change of the same account's identities came first.
const TRIES_MAX: usize = 5;

const PROPERTIES: &[&str] = &[
    "id",
    "name",
    "email",
    "replyTo",
    "bcc",
    "textSignature",
    "htmlSignature",
    "mayDelete",
];

/// What the account set, as the store keeps it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Settings {
    /// The number of the last identity added (ids are never used twice).
    #[serde(default)]
    added: u64,
    /// The account's own address at each domain (lower case), by domain.
    #[serde(default)]
    own: BTreeMap<String, Kept>,
    /// Those it added, by id (`n1`, `n2`, ...).
    #[serde(default)]
    identities: BTreeMap<String, Kept>,
}

/// One identity's settable properties; `email` only for an added one.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    reply_to: Option<Vec<Address>>,
    #[serde(default)]
    bcc: Option<Vec<Address>>,
    #[serde(default)]
    text_signature: String,
    #[serde(default)]
    html_signature: String,
}

/// RFC 8621 §4.1.2.3's EmailAddress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Address {
    #[serde(default)]
    name: Option<String>,
    email: String,
}

/// One identity as a client sees it.
struct Identity {
    id: String,
    email: String,
    kept: Kept,
    may_delete: bool,
}

impl Identity {
    fn object(&self) -> Map<String, Value> {
        let k = &self.kept;
        let object = json!({"id": self.id, "name": k.name, "email": self.email,
            "replyTo": k.reply_to, "bcc": k.bcc, "textSignature": k.text_signature,
            "htmlSignature": k.html_signature, "mayDelete": self.may_delete});
        match object {
            Value::Object(map) => map,
            _ => unreachable!("built as an object"),
        }
    }
}

/// The account's settings and their version. Text the store holds that this build cannot read (it
/// never writes such) counts as nothing set, so the account still has its own addresses.
async fn load(ctx: &Ctx<'_>) -> Result<(Settings, u64), MethodError> {
    let (text, version) = ctx.store().identity_settings(ctx.account.id).await?;
    let settings = text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok((settings, version))
}

/// Every identity of the account: its own addresses, then those it added for addresses still its own.
fn identities(ctx: &Ctx<'_>, settings: &Settings) -> Vec<Identity> {
    let config = &ctx.shared.config;
    let mut domains = vec![config.primary_domain().to_string()];
    for d in &config.domains {
        if !domains.iter().any(|x| x.eq_ignore_ascii_case(d)) {
            domains.push(d.to_ascii_lowercase());
        }
    }
    let mut all: Vec<Identity> = domains
        .into_iter()
        .enumerate()
        .map(|(i, d)| Identity {
            id: format!("i{i}"),
            email: format!("{}@{d}", ctx.account.name),
            kept: settings.own.get(&d).cloned().unwrap_or_default(),
            may_delete: false,
        })
        .collect();
    all.extend(settings.identities.iter().filter_map(|(id, kept)| {
        let email = kept.email.clone()?;
        (id.starts_with('n') && own_address(ctx, &email)).then(|| Identity {
            id: id.clone(),
            email,
            kept: kept.clone(),
            may_delete: true,
        })
    }));
    all
}

/// Whether `address` is the account's own at one of this server's domains (a bare name is not an
/// address one sends as).
pub fn own_address(ctx: &Ctx<'_>, address: &str) -> bool {
    address.contains('@')
        && ctx
            .shared
            .config
            .local_part(address)
            .is_some_and(|local| local.eq_ignore_ascii_case(&ctx.account.name))
}

/// The address an identity sends as; `None` for an id that is not one of the account's.
pub async fn email_of(ctx: &Ctx<'_>, id: &str) -> Result<Option<String>, MethodError> {
    let (settings, _) = load(ctx).await?;
    Ok(identities(ctx, &settings)
        .into_iter()
        .find(|i| i.id == id)
        .map(|i| i.email))
}

pub async fn get(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let wanted = known_properties(&args, PROPERTIES)?;
    let ids = get_ids(&args)?;
    let (settings, version) = load(ctx).await?;
    let all = identities(ctx, &settings)
        .iter()
        .map(Identity::object)
        .collect();
    let (list, not_found) = pick(all, ids, wanted.as_deref());
    Ok(
        json!({"accountId": ctx.account_id(), "state": version.to_string(), "list": list,
              "notFound": not_found}),
    )
}

/// No change log is kept for identities: a client at an older state reads them again.
pub async fn changes(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let since = since_state(&args)?;
    let (_, version) = load(ctx).await?;
    if since != version.to_string() {
        return Err(MethodError::new("cannotCalculateChanges"));
    }
    Ok(
        json!({"accountId": ctx.account_id(), "oldState": since, "newState": since,
        "hasMoreChanges": false, "created": [], "updated": [], "destroyed": []}),
    )
}

/// What one `/set` did, before it is stored.
#[derive(Default)]
struct Outcome {
    created: Vec<(String, Result<Value, Value>)>,
    updated: Map<String, Value>,
    not_updated: Map<String, Value>,
    destroyed: Vec<String>,
    not_destroyed: Map<String, Value>,
    changed: bool,
}

pub async fn set(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let set = SetArgs::read(&args)?;
    for _ in 0..TRIES_MAX {
        let (mut settings, version) = load(ctx).await?;
        let old_state = version.to_string();
        // Checked on every try: a change asked for at one state is never made at a later one.
        check_state(&args, &old_state)?;
        let outcome = apply(ctx, &set, &mut settings);
        let new_state = match outcome.changed {
            false => Some(old_state.clone()),
            true => {
                let text = serde_json::to_string(&settings).map_err(|_| {
                    MethodError::with("serverFail", "the identities could not be written")
                })?;
                if text.len() > SETTINGS_BYTES_MAX {
                    return Err(MethodError::with(
                        "requestTooLarge",
                        format!("an account's identities take {SETTINGS_BYTES_MAX} bytes at most"),
                    ));
                }
                ctx.store()
                    .set_identity_settings(ctx.account.id, &text, version)
                    .await?
                    .map(|v| v.to_string())
            }
        };
        // Another change came first: everything is worked out again from what it left.
        let Some(new_state) = new_state else {
            continue;
        };
        let (mut created, mut not_created) = (Map::new(), Map::new());
        for (cid, result) in outcome.created {
            record_creation(ctx, cid, result, &mut created, &mut not_created);
        }
        return Ok(
            json!({"accountId": ctx.account_id(), "oldState": old_state, "newState": new_state,
                  "created": created, "notCreated": not_created,
                  "updated": outcome.updated, "notUpdated": outcome.not_updated,
                  "destroyed": outcome.destroyed, "notDestroyed": outcome.not_destroyed}),
        );
    }
    Err(MethodError::with(
        "serverUnavailable",
        "the identities kept changing meanwhile; try again",
    ))
}

/// `set` applied to `settings`: creates, then updates, then destroys (RFC 8620 §5.3's order).
fn apply(ctx: &Ctx<'_>, set: &SetArgs, settings: &mut Settings) -> Outcome {
    let mut out = Outcome::default();
    let mut created_ids: BTreeMap<String, String> = BTreeMap::new();
    for (cid, object) in &set.create {
        let result = create(ctx, object, settings);
        if let Ok(made) = &result {
            out.changed = true;
            created_ids.insert(cid.clone(), made["id"].as_str().unwrap_or("").to_string());
        }
        out.created.push((cid.clone(), result));
    }
    let resolve = |id: &str| match id.strip_prefix('#') {
        Some(cid) => created_ids
            .get(cid)
            .cloned()
            .unwrap_or_else(|| ctx.resolve(id).to_string()),
        None => id.to_string(),
    };
    for (id, patch) in &set.update {
        let target = resolve(id);
        let Some(current) = identities(ctx, settings)
            .into_iter()
            .find(|i| i.id == target)
        else {
            out.not_updated
                .insert(id.clone(), set_error("notFound", "no such identity"));
            continue;
        };
        let Some(patch) = patch.as_object() else {
            out.not_updated.insert(
                id.clone(),
                set_error("invalidPatch", "a patch is an object"),
            );
            continue;
        };
        let mut kept = current.kept.clone();
        match patch_kept(&mut kept, patch, &current) {
            Ok(()) => {
                if kept != current.kept {
                    out.changed = true;
                    match current.may_delete {
                        true => settings.identities.insert(current.id.clone(), kept),
                        false => {
                            let domain = current.email.rsplit_once('@').map_or("", |(_, d)| d);
                            settings.own.insert(domain.to_string(), kept)
                        }
                    };
                }
                out.updated.insert(id.clone(), Value::Null);
            }
            Err(e) => {
                out.not_updated.insert(id.clone(), e);
            }
        }
    }
    for id in &set.destroy {
        let target = resolve(id);
        match identities(ctx, settings).iter().find(|i| i.id == target) {
            None => {
                out.not_destroyed
                    .insert(id.clone(), set_error("notFound", "no such identity"));
            }
            Some(i) if !i.may_delete => {
                out.not_destroyed.insert(
                    id.clone(),
                    set_error(
                        "forbidden",
                        "the account's own address at one of the server's domains stays",
                    ),
                );
            }
            Some(_) => {
                settings.identities.remove(&target);
                out.changed = true;
                out.destroyed.push(id.clone());
            }
        }
    }
    out
}

/// One identity added for one of the account's own addresses; the server-set properties, or why not.
fn create(ctx: &Ctx<'_>, object: &Value, settings: &mut Settings) -> Result<Value, Value> {
    let Some(object) = object.as_object() else {
        return Err(set_error("invalidProperties", "an identity is an object"));
    };
    if let Some(server_set) = ["id", "mayDelete"]
        .into_iter()
        .find(|p| object.contains_key(*p))
    {
        return Err(invalid(server_set, "the server sets it".into()));
    }
    let email = match object.get("email") {
        Some(Value::String(email)) => email.clone(),
        _ => return Err(invalid("email", "email is required, a string".into())),
    };
    if !own_address(ctx, &email) {
        return Err(set_error(
            "forbiddenFrom",
            "an identity is one of the account's own addresses",
        ));
    }
    let added = settings
        .identities
        .keys()
        .filter(|id| id.starts_with('n'))
        .count();
    if added >= ADDED_MAX {
        return Err(set_error(
            "overQuota",
            format!("an account may add {ADDED_MAX} identities"),
        ));
    }
    let (local, domain) = email.rsplit_once('@').unwrap_or((&email, ""));
    let mut kept = Kept {
        email: Some(format!("{local}@{}", domain.to_ascii_lowercase())),
        ..Kept::default()
    };
    let fields: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| *k != "email")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    set_fields(&mut kept, &fields)?;
    settings.added += 1;
    let id = format!("n{}", settings.added);
    settings.identities.insert(id.clone(), kept);
    Ok(json!({"id": id, "mayDelete": true}))
}

/// A patch applied to an identity's kept properties. `id`, `email` and `mayDelete` may be named only
/// with the values they have (RFC 8620 §5.3).
fn patch_kept(
    kept: &mut Kept,
    patch: &Map<String, Value>,
    current: &Identity,
) -> Result<(), Value> {
    let mut fields = Map::new();
    for (key, value) in patch {
        let unchanged = match key.as_str() {
            "id" => Some(value.as_str() == Some(current.id.as_str())),
            "email" => Some(value.as_str() == Some(current.email.as_str())),
            "mayDelete" => Some(value.as_bool() == Some(current.may_delete)),
            _ => None,
        };
        match unchanged {
            Some(true) => {}
            Some(false) => return Err(invalid(key, format!("{key} cannot be changed"))),
            None => {
                fields.insert(key.clone(), value.clone());
            }
        }
    }
    set_fields(kept, &fields)
}

/// The settable properties in `fields`, checked against their types and limits.
fn set_fields(kept: &mut Kept, fields: &Map<String, Value>) -> Result<(), Value> {
    for (key, value) in fields {
        match key.as_str() {
            "name" => kept.name = text(key, value, NAME_CHARS_MAX, false)?,
            "textSignature" => kept.text_signature = text(key, value, SIGNATURE_BYTES_MAX, true)?,
            "htmlSignature" => kept.html_signature = text(key, value, SIGNATURE_BYTES_MAX, true)?,
            "replyTo" => kept.reply_to = addresses(key, value)?,
            "bcc" => kept.bcc = addresses(key, value)?,
            _ if key.contains('/') => {
                return Err(invalid(
                    key,
                    "identities are patched a whole property at a time".into(),
                ));
            }
            _ => return Err(invalid(key, format!("{key} is not a property one may set"))),
        }
    }
    Ok(())
}

/// A string property: at most `max` (characters for a name, bytes for a signature), null read as empty;
/// line breaks only in a signature, and no other control character anywhere.
fn text(key: &str, value: &Value, max: usize, lines: bool) -> Result<String, Value> {
    let s = match value {
        Value::Null => return Ok(String::new()),
        Value::String(s) => s,
        _ => return Err(invalid(key, format!("{key} is a string"))),
    };
    let length = if lines { s.len() } else { s.chars().count() };
    if length > max {
        return Err(invalid(key, format!("{key} is at most {max} long")));
    }
    let allowed = |c: char| !c.is_control() || (lines && matches!(c, '\r' | '\n' | '\t'));
    if !s.chars().all(allowed) {
        return Err(invalid(key, format!("{key} holds a control character")));
    }
    Ok(s.clone())
}

/// `replyTo` or `bcc`: null, or a list of EmailAddress objects.
fn addresses(key: &str, value: &Value) -> Result<Option<Vec<Address>>, Value> {
    if value.is_null() {
        return Ok(None);
    }
    let list: Vec<Address> = serde_json::from_value(value.clone())
        .map_err(|_| invalid(key, format!("{key} is null or a list of EmailAddress")))?;
    if list.len() > ADDRESSES_MAX {
        return Err(invalid(
            key,
            format!("{key} holds at most {ADDRESSES_MAX} addresses"),
        ));
    }
    for a in &list {
        let name_ok = a.name.as_deref().is_none_or(|n| {
            n.chars().count() <= NAME_CHARS_MAX && !n.chars().any(char::is_control)
        });
        let email_ok = a.email.len() <= 254
            && a.email
                .rsplit_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
            && !a.email.chars().any(|c| c.is_control() || c.is_whitespace());
        if !name_ok || !email_ok {
            return Err(invalid(key, format!("{key} holds an invalid address")));
        }
    }
    Ok(Some(list))
}

fn invalid(property: &str, why: String) -> Value {
    json!({"type": "invalidProperties", "properties": [property], "description": why})
}
