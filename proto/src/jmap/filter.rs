//! `Email/query`'s filter (RFC 8621 §4.4.1) compiled into the search [`Query`] IMAP SEARCH runs too,
//! once per mailbox searched: `inMailbox` and `inMailboxOtherThan` become "all" or "nothing" there, so
//! a mailbox the filter rules out is never read. That answers for an Email by its copy in the mailbox
//! searched; where the answer can depend on which copy ([`copy_safe`] says), an Email with copies in
//! several mailboxes is compiled again with all of them.

use serde_json::{Map, Value};

use super::keywords::{self, Keyword};
use crate::imap::search::{Field, Query, TEXT_KEYS_MAX};

/// Deepest nesting of operators in one filter.
pub const DEPTH_MAX: usize = 16;
/// Most conditions and operators in one filter.
pub const NODES_MAX: usize = 256;
/// Most mailbox ids one `inMailboxOtherThan` may list (each is compared for every mailbox searched).
pub const IDS_MAX: usize = 1000;

/// Why a filter cannot run (JMAP's `unsupportedFilter`), in words for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn unsupported(what: impl Into<String>) -> FilterError {
    FilterError(what.into())
}

/// The filter (`null`: everything) as a search of messages that are in the mailboxes whose JMAP ids
/// are `mailboxes` (the one mailbox searched, or every mailbox an Email is in).
pub fn compile(filter: &Value, mailboxes: &[&str]) -> Result<Query, FilterError> {
    let mut nodes = 0;
    let query = match filter {
        Value::Null => Query::All,
        f => node(f, mailboxes, 0, &mut nodes)?,
    };
    if query.text_keys() > TEXT_KEYS_MAX {
        return Err(unsupported(format!(
            "at most {TEXT_KEYS_MAX} text conditions in one filter"
        )));
    }
    Ok(simplify(query))
}

/// Whether the filter names any mailbox (`inMailbox` or `inMailboxOtherThan`) anywhere.
pub fn names_mailboxes(filter: &Value) -> bool {
    match filter {
        Value::Object(o) => {
            o.contains_key("inMailbox")
                || o.contains_key("inMailboxOtherThan")
                || o.get("conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| c.iter().any(names_mailboxes))
        }
        _ => false,
    }
}

/// Whether searching each mailbox with [`compile`] finds exactly the Emails the filter matches, however
/// many mailboxes an Email is in: true unless a mailbox condition sits under NOT, or two meet under
/// one AND. (`NOT inMailbox A` holds for an Email's copy in B though the Email is in A; `inMailbox A AND
/// inMailbox B` holds for no single copy though the Email is in both.) Under OR, and beside conditions
/// on the message itself, which every copy shares, one copy answers for the Email.
pub fn copy_safe(filter: &Value) -> bool {
    let Value::Object(o) = filter else {
        return true;
    };
    let Some(op) = o.get("operator") else {
        let named = ["inMailbox", "inMailboxOtherThan"]
            .iter()
            .filter(|k| o.contains_key(**k))
            .count();
        return named <= 1;
    };
    let conditions = o
        .get("conditions")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    match op.as_str() {
        Some("OR") => conditions.iter().all(copy_safe),
        Some("AND") => {
            let naming: Vec<&Value> = conditions.iter().filter(|c| names_mailboxes(c)).collect();
            naming.len() <= 1 && naming.into_iter().all(copy_safe)
        }
        _ => !conditions.iter().any(names_mailboxes),
    }
}

fn node(
    f: &Value,
    mailboxes: &[&str],
    depth: usize,
    nodes: &mut usize,
) -> Result<Query, FilterError> {
    *nodes += 1;
    if depth > DEPTH_MAX || *nodes > NODES_MAX {
        return Err(unsupported(format!(
            "a filter has at most {NODES_MAX} conditions, nested at most {DEPTH_MAX} deep"
        )));
    }
    let Value::Object(o) = f else {
        return Err(unsupported("a filter is an object"));
    };
    if let Some(op) = o.get("operator") {
        let conditions = o
            .get("conditions")
            .and_then(Value::as_array)
            .ok_or_else(|| unsupported("an operator needs its conditions"))?;
        let parts = conditions
            .iter()
            .map(|c| node(c, mailboxes, depth + 1, nodes))
            .collect::<Result<Vec<_>, _>>()?;
        return match op.as_str() {
            Some("AND") => Ok(Query::And(parts)),
            Some("OR") => Ok(parts
                .into_iter()
                .reduce(|a, b| Query::Or(Box::new(a), Box::new(b)))
                .unwrap_or(Query::Nothing)),
            Some("NOT") => Ok(Query::Not(Box::new(
                parts
                    .into_iter()
                    .reduce(|a, b| Query::Or(Box::new(a), Box::new(b)))
                    .unwrap_or(Query::Nothing),
            ))),
            _ => Err(unsupported("operator is AND, OR or NOT")),
        };
    }
    condition(o, mailboxes)
}

fn condition(o: &Map<String, Value>, mailboxes: &[&str]) -> Result<Query, FilterError> {
    let mut all = Vec::new();
    for (name, value) in o {
        all.push(one(name, value, mailboxes)?);
    }
    Ok(Query::And(all))
}

fn string<'a>(name: &str, value: &'a Value) -> Result<&'a str, FilterError> {
    value
        .as_str()
        .ok_or_else(|| unsupported(format!("{name} is a string")))
}

fn number(name: &str, value: &Value) -> Result<u64, FilterError> {
    value
        .as_u64()
        .ok_or_else(|| unsupported(format!("{name} is an unsigned integer")))
}

/// A UTCDate (`2024-01-02T03:04:05Z`) as microseconds since the epoch.
pub fn utc_date_micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn keyword_query(name: &str, value: &Value, present: bool) -> Result<Query, FilterError> {
    Ok(match keywords::parse(string(name, value)?) {
        Keyword::System(bit) => Query::Flag(bit, present),
        Keyword::Named(word) => Query::Keyword(word.to_lowercase(), present),
    })
}

/// "All" when `holds`, else "nothing".
fn all_if(holds: bool) -> Query {
    match holds {
        true => Query::All,
        false => Query::Nothing,
    }
}

fn one(name: &str, value: &Value, mailboxes: &[&str]) -> Result<Query, FilterError> {
    let text = |field: Field| -> Result<Query, FilterError> {
        Ok(Query::Envelope(field, string(name, value)?.to_lowercase()))
    };
    Ok(match name {
        "inMailbox" => all_if(mailboxes.contains(&string(name, value)?)),
        "inMailboxOtherThan" => {
            let ids = value
                .as_array()
                .filter(|ids| ids.len() <= IDS_MAX)
                .ok_or_else(|| {
                    unsupported(format!(
                        "inMailboxOtherThan is a list of at most {IDS_MAX} ids"
                    ))
                })?;
            let other = |m: &&str| !ids.iter().any(|id| id.as_str() == Some(*m));
            all_if(mailboxes.iter().any(other))
        }
        "before" | "after" => {
            let at = utc_date_micros(string(name, value)?)
                .ok_or_else(|| unsupported(format!("{name} is a UTCDate")))?;
            match name {
                "before" => Query::ArrivedBefore(at),
                _ => Query::ArrivedSince(at),
            }
        }
        "minSize" => Query::Not(Box::new(Query::Smaller(number(name, value)?))),
        "maxSize" => Query::Smaller(number(name, value)?),
        "hasKeyword" => keyword_query(name, value, true)?,
        "notKeyword" => keyword_query(name, value, false)?,
        "hasAttachment" => Query::HasAttachment(
            value
                .as_bool()
                .ok_or_else(|| unsupported("hasAttachment is true or false"))?,
        ),
        "text" => Query::Text(string(name, value)?.to_lowercase()),
        "from" => text(Field::From)?,
        "to" => text(Field::To)?,
        "cc" => text(Field::Cc)?,
        "bcc" => text(Field::Bcc)?,
        "subject" => text(Field::Subject)?,
        "body" => Query::Body(string(name, value)?.to_lowercase()),
        "header" => {
            let parts = value
                .as_array()
                .filter(|p| (1..=2).contains(&p.len()))
                .ok_or_else(|| unsupported("header is [name] or [name, value]"))?;
            let field = parts[0]
                .as_str()
                .ok_or_else(|| unsupported("a header name is a string"))?;
            let needle = parts.get(1).and_then(Value::as_str).unwrap_or("");
            Query::Header(field.to_lowercase(), needle.to_lowercase())
        }
        other => {
            return Err(unsupported(format!(
                "the filter condition {other} is not supported"
            )));
        }
    })
}

/// Folds "all" and "nothing" through the operators, so a filter that rules a mailbox out is `Nothing`.
pub fn simplify(q: Query) -> Query {
    match q {
        Query::And(all) => {
            let mut kept = Vec::new();
            for part in all.into_iter().map(simplify) {
                match part {
                    Query::Nothing => return Query::Nothing,
                    Query::All => {}
                    other => kept.push(other),
                }
            }
            match kept.len() {
                0 => Query::All,
                1 => kept.pop().expect("one"),
                _ => Query::And(kept),
            }
        }
        Query::Or(a, b) => match (simplify(*a), simplify(*b)) {
            (Query::All, _) | (_, Query::All) => Query::All,
            (Query::Nothing, x) | (x, Query::Nothing) => x,
            (a, b) => Query::Or(Box::new(a), Box::new(b)),
        },
        Query::Not(a) => match simplify(*a) {
            Query::All => Query::Nothing,
            Query::Nothing => Query::All,
            x => Query::Not(Box::new(x)),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mailbox_conditions_fold_per_mailbox() {
        let f = json!({"inMailbox": "m1", "hasKeyword": "$seen"});
        assert_eq!(
            compile(&f, &["m1"]).unwrap(),
            Query::Flag(crate::flags::SEEN, true)
        );
        assert_eq!(compile(&f, &["m2"]).unwrap(), Query::Nothing);
        let other = json!({"operator": "NOT", "conditions": [{"inMailboxOtherThan": ["m1"]}]});
        assert_eq!(compile(&other, &["m1"]).unwrap(), Query::All);
        assert_eq!(compile(&other, &["m3"]).unwrap(), Query::Nothing);
        assert!(names_mailboxes(&other));
        assert_eq!(compile(&Value::Null, &["m3"]).unwrap(), Query::All);
    }

    #[test]
    fn an_email_in_several_mailboxes_is_compiled_with_all_of_them() {
        let not_in = json!({"operator": "NOT", "conditions": [{"inMailbox": "m1"}]});
        assert_eq!(compile(&not_in, &["m2"]).unwrap(), Query::All);
        assert_eq!(compile(&not_in, &["m1", "m2"]).unwrap(), Query::Nothing);
        let both =
            json!({"operator": "AND", "conditions": [{"inMailbox": "m1"}, {"inMailbox": "m2"}]});
        assert_eq!(compile(&both, &["m1"]).unwrap(), Query::Nothing);
        assert_eq!(compile(&both, &["m1", "m2"]).unwrap(), Query::All);
        let other = json!({"inMailboxOtherThan": ["m1"]});
        assert_eq!(compile(&other, &["m1"]).unwrap(), Query::Nothing);
        assert_eq!(compile(&other, &["m1", "m2"]).unwrap(), Query::All);
        assert!(!copy_safe(&not_in) && !copy_safe(&both));
        assert!(!copy_safe(
            &json!({"inMailbox": "m1", "inMailboxOtherThan": ["m2"]})
        ));
        for safe in [
            Value::Null,
            json!({"inMailbox": "m1", "hasKeyword": "$seen"}),
            json!({"inMailboxOtherThan": ["m1"]}),
            json!({"operator": "OR", "conditions": [{"inMailbox": "m1"}, {"inMailbox": "m2"}]}),
            json!({"operator": "AND", "conditions": [{"inMailbox": "m1"}, {"text": "x"}]}),
            json!({"operator": "NOT", "conditions": [{"from": "a"}]}),
        ] {
            assert!(copy_safe(&safe), "{safe}");
        }
    }

    #[test]
    fn conditions_become_search_keys() {
        let f = json!({"operator": "OR", "conditions": [
            {"from": "Alice", "minSize": 10},
            {"before": "2024-01-02T00:00:00Z", "notKeyword": "Work"}
        ]});
        assert_eq!(
            compile(&f, &["m1"]).unwrap(),
            Query::Or(
                Box::new(Query::And(vec![
                    Query::Envelope(Field::From, "alice".into()),
                    Query::Not(Box::new(Query::Smaller(10))),
                ])),
                Box::new(Query::And(vec![
                    Query::ArrivedBefore(1_704_153_600_000_000),
                    Query::Keyword("work".into(), false),
                ])),
            )
        );
    }

    #[test]
    fn what_cannot_run_is_refused_not_ignored() {
        for bad in [
            json!({"allInThreadHaveKeyword": "$seen"}),
            json!({"before": "yesterday"}),
            json!({"operator": "XOR", "conditions": []}),
            json!({"header": []}),
            json!("text"),
            json!({"inMailboxOtherThan": vec!["m1"; IDS_MAX + 1]}),
        ] {
            assert!(compile(&bad, &["m1"]).is_err(), "{bad}");
        }
        let mut deep = json!({"text": "x"});
        for _ in 0..=DEPTH_MAX {
            deep = json!({"operator": "NOT", "conditions": [deep]});
        }
        assert!(compile(&deep, &["m1"]).is_err());
    }
}
