//! The `header:Name[:asForm][:all]` properties of an Email a client makes (RFC 8621 §4.6): each becomes
//! header fields of the message, in the form it names. A name another property already sets (From,
//! Subject, Message-ID ...), a `Content-*` field on the Email itself, an unknown form, or a value that
//! is not of its form is refused (`invalidProperties`), never dropped.

use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address as BuiltAddress;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::headers::url::URL;
use serde_json::{Map, Value, json};

/// Fields the Email's own properties write (`from`, `subject`, `messageId`, `sentAt` ...).
const SET_BY_PROPERTIES: [&str; 11] = [
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "sender",
    "subject",
    "message-id",
    "in-reply-to",
    "references",
    "date",
];

/// Longest raw value a `header:` property may give: a line of 998 octets less the longest name
/// (76) and `: `.
pub const RAW_VALUE_BYTES_MAX: usize = 998 - 76 - 2;

/// Most `header:` properties one Email may give.
pub const HEADER_PROPERTIES_MAX: usize = 100;

/// Adds the object's `header:` properties to `b`; the refusal names the property at fault.
pub fn add(
    mut b: MessageBuilder<'static>,
    object: &Map<String, Value>,
) -> Result<MessageBuilder<'static>, Value> {
    let given: Vec<(&String, &Value)> = object
        .iter()
        .filter(|(k, _)| k.starts_with("header:"))
        .collect();
    if given.len() > HEADER_PROPERTIES_MAX {
        return Err(refused(given[0].0, "too many header: properties"));
    }
    for (key, value) in given {
        let (name, form, all) = parse(key).filter(|_| form_allowed(key)).ok_or_else(|| {
            refused(
                key,
                "not a header property, or a form this field cannot take",
            )
        })?;
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("content-") || lower == "mime-version" {
            return Err(refused(key, "Content-* fields are the body parts'"));
        }
        if SET_BY_PROPERTIES.contains(&lower.as_str()) {
            return Err(refused(
                key,
                "this field is set by the Email's own property",
            ));
        }
        let values: Vec<&Value> = match (all, value) {
            (true, Value::Array(list)) => list.iter().collect(),
            (true, _) => return Err(refused(key, ":all takes a list of values")),
            (false, v) => vec![v],
        };
        for v in values {
            let field = field(form, v).ok_or_else(|| refused(key, "not a value of this form"))?;
            b = b.header(name.to_string(), field);
        }
    }
    Ok(b)
}

/// Fields RFC 8621 §4.1.2 gives each form to (any form may be used for a field it does not name).
const TEXT_FIELDS: [&str; 4] = ["subject", "comments", "keywords", "list-id"];
const ADDRESS_FIELDS: [&str; 12] = [
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-reply-to",
    "resent-to",
    "resent-cc",
    "resent-bcc",
];
const MESSAGE_ID_FIELDS: [&str; 4] = [
    "message-id",
    "in-reply-to",
    "references",
    "resent-message-id",
];
const DATE_FIELDS: [&str; 2] = ["date", "resent-date"];
const URL_FIELDS: [&str; 6] = [
    "list-help",
    "list-unsubscribe",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
];

/// Whether `header:Name[:asForm][:all]` is a header property whose form RFC 8621 §4.1.2 allows for
/// that field (`header:Subject:asDate` is not).
pub fn form_allowed(key: &str) -> bool {
    let Some((name, form, _)) = parse(key) else {
        return false;
    };
    let name = name.to_ascii_lowercase();
    let name = name.as_str();
    let in_any = [
        &TEXT_FIELDS[..],
        &ADDRESS_FIELDS,
        &MESSAGE_ID_FIELDS,
        &DATE_FIELDS,
        &URL_FIELDS,
    ]
    .iter()
    .any(|list| list.contains(&name));
    let fields: &[&str] = match form {
        "asRaw" => return true,
        "asText" => &TEXT_FIELDS,
        "asAddresses" | "asGroupedAddresses" => &ADDRESS_FIELDS,
        "asMessageIds" => &MESSAGE_ID_FIELDS,
        "asDate" => &DATE_FIELDS,
        "asURLs" => &URL_FIELDS,
        _ => return false,
    };
    fields.contains(&name) || !in_any
}

/// `header:Name[:asForm][:all]` as (name, form, all); `None` when it is not one.
fn parse(key: &str) -> Option<(&str, &str, bool)> {
    let mut pieces = key.strip_prefix("header:")?.split(':');
    let name = pieces.next()?;
    let valid_name = !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !valid_name {
        return None;
    }
    let (mut form, mut all) = ("asRaw", false);
    for (i, piece) in pieces.enumerate() {
        match piece {
            "all" => all = true,
            f if i == 0 && f.starts_with("as") => form = f,
            _ => return None,
        }
    }
    Some((name, form, all))
}

/// One field's value in `form`, as mail-builder writes it.
fn field(form: &str, v: &Value) -> Option<HeaderType<'static>> {
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    Some(match form {
        // The raw form is the value after the colon, as the client wrote it: one line (line breaks
        // are refused before), so no longer than a line may be (RFC 5322 §2.1.1: 998 octets).
        "asRaw" => {
            let raw = v.as_str()?.trim_start();
            if raw.len() > RAW_VALUE_BYTES_MAX {
                return None;
            }
            Raw::new(raw.to_string()).into()
        }
        "asText" => Text::new(v.as_str()?.to_string()).into(),
        "asURLs" => URL::new_list(strings(v)?.into_iter()).into(),
        "asMessageIds" => MessageId::new_list(strings(v)?.into_iter()).into(),
        "asDate" => {
            let d = chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
            Date::new(d.timestamp()).into()
        }
        "asAddresses" => {
            let mut list = Vec::new();
            for a in v.as_array()? {
                let email = a.get("email")?.as_str()?.to_string();
                let name = a.get("name").and_then(Value::as_str).map(str::to_string);
                list.push(BuiltAddress::new_address(name, email));
            }
            BuiltAddress::new_list(list).into()
        }
        _ => return None,
    })
}

fn refused(key: &str, why: &str) -> Value {
    json!({"type": "invalidProperties", "properties": [key], "description": why})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_properties_parse() {
        assert_eq!(parse("header:X-A"), Some(("X-A", "asRaw", false)));
        assert_eq!(
            parse("header:List-Post:asURLs:all"),
            Some(("List-Post", "asURLs", true))
        );
        assert_eq!(parse("header:X-A:all:asText"), None);
        assert_eq!(parse("header:"), None);
        assert_eq!(parse("header:X A"), None);
        assert!(field("asFoo", &json!("x")).is_none());
        assert!(form_allowed("header:Subject:asText"));
        assert!(form_allowed("header:X-Anything:asDate:all"));
        assert!(form_allowed("header:from:asGroupedAddresses"));
        assert!(!form_allowed("header:Subject:asDate"));
        assert!(!form_allowed("header:Subject:asMessageIds"));
        assert!(!form_allowed("header:From:asText"));
        assert!(!form_allowed("header:X-A:asFoo"));
        assert!(!form_allowed("header:X-A:all:asText"));
        assert!(!form_allowed("header:"));
        assert!(field("asDate", &json!("yesterday")).is_none());
        assert!(field("asRaw", &json!("x".repeat(RAW_VALUE_BYTES_MAX))).is_some());
        assert!(field("asRaw", &json!("x".repeat(RAW_VALUE_BYTES_MAX + 1))).is_none());
    }
}
