//! `Email/query`'s filter (RFC 8621 §4.4.1) compiled into the search [`Query`] IMAP SEARCH runs too,
//! once per mailbox searched: `inMailbox` and `inMailboxOtherThan` become "all" or "nothing" there, so
//! a mailbox the filter rules out is never read.

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

/// The filter (`null`: everything) as a search of the mailbox whose JMAP id is `mailbox`.
pub fn compile(filter: &Value, mailbox: &str) -> Result<Query, FilterError> {
    let mut nodes = 0;
    let query = match filter {
        Value::Null => Query::All,
        f => node(f, mailbox, 0, &mut nodes)?,
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

fn node(f: &Value, mailbox: &str, depth: usize, nodes: &mut usize) -> Result<Query, FilterError> {
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
            .map(|c| node(c, mailbox, depth + 1, nodes))
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
    condition(o, mailbox)
}

fn condition(o: &Map<String, Value>, mailbox: &str) -> Result<Query, FilterError> {
    let mut all = Vec::new();
    for (name, value) in o {
        all.push(one(name, value, mailbox)?);
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

fn one(name: &str, value: &Value, mailbox: &str) -> Result<Query, FilterError> {
    let text = |field: Field| -> Result<Query, FilterError> {
        Ok(Query::Envelope(field, string(name, value)?.to_lowercase()))
    };
    Ok(match name {
        "inMailbox" => match string(name, value)? == mailbox {
            true => Query::All,
            false => Query::Nothing,
        },
        "inMailboxOtherThan" => {
            let ids = value
                .as_array()
                .filter(|ids| ids.len() <= IDS_MAX)
                .ok_or_else(|| {
                    unsupported(format!(
                        "inMailboxOtherThan is a list of at most {IDS_MAX} ids"
                    ))
                })?;
            match ids.iter().any(|id| id.as_str() == Some(mailbox)) {
                true => Query::Nothing,
                false => Query::All,
            }
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
            compile(&f, "m1").unwrap(),
            Query::Flag(crate::flags::SEEN, true)
        );
        assert_eq!(compile(&f, "m2").unwrap(), Query::Nothing);
        let other = json!({"operator": "NOT", "conditions": [{"inMailboxOtherThan": ["m1"]}]});
        assert_eq!(compile(&other, "m1").unwrap(), Query::All);
        assert_eq!(compile(&other, "m3").unwrap(), Query::Nothing);
        assert!(names_mailboxes(&other));
        assert_eq!(compile(&Value::Null, "m3").unwrap(), Query::All);
    }

    #[test]
    fn conditions_become_search_keys() {
        let f = json!({"operator": "OR", "conditions": [
            {"from": "Alice", "minSize": 10},
            {"before": "2024-01-02T00:00:00Z", "notKeyword": "Work"}
        ]});
        assert_eq!(
            compile(&f, "m1").unwrap(),
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
            assert!(compile(&bad, "m1").is_err(), "{bad}");
        }
        let mut deep = json!({"text": "x"});
        for _ in 0..=DEPTH_MAX {
            deep = json!({"operator": "NOT", "conditions": [deep]});
        }
        assert!(compile(&deep, "m1").is_err());
    }
}
