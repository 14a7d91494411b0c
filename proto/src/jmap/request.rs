//! The shape of a JMAP API request and response (RFC 8620 §3): method calls, result references between
//! them, method-level errors and request-level problems. No store, no HTTP: values in, values out; the
//! `fuzz/` target `jmap_request` feeds it arbitrary bytes.

use serde_json::{Map, Value, json};

/// The capabilities this server has; a request using anything else is refused whole.
pub const CORE: &str = "urn:ietf:params:jmap:core";
pub const MAIL: &str = "urn:ietf:params:jmap:mail";
pub const SUBMISSION: &str = "urn:ietf:params:jmap:submission";
pub const VACATION_RESPONSE: &str = "urn:ietf:params:jmap:vacationresponse";
pub const CAPABILITIES: [&str; 4] = [CORE, MAIL, SUBMISSION, VACATION_RESPONSE];

/// Most method calls one request may carry (`maxCallsInRequest`).
pub const CALLS_MAX: usize = 32;
/// Most ids one `/get` reads, or objects one `/set` changes (`maxObjectsInGet`, `maxObjectsInSet`).
pub const OBJECTS_MAX: usize = 500;
/// Most ids one `/query` returns (a larger `limit` is cut to it, RFC 8620 §5.5).
pub const QUERY_LIMIT_MAX: usize = 1000;
/// Deepest a result reference's path may go, and most values it may gather.
const POINTER_VALUES_MAX: usize = 100_000;

/// A method-level error (RFC 8620 §3.6.2): its type and, perhaps, words for the developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodError {
    pub kind: &'static str,
    pub description: Option<String>,
}

impl MethodError {
    pub fn new(kind: &'static str) -> MethodError {
        MethodError {
            kind,
            description: None,
        }
    }

    pub fn with(kind: &'static str, description: impl Into<String>) -> MethodError {
        MethodError {
            kind,
            description: Some(description.into()),
        }
    }

    pub fn invalid(description: impl Into<String>) -> MethodError {
        MethodError::with("invalidArguments", description)
    }

    pub fn to_value(&self) -> Value {
        let mut o = Map::new();
        o.insert("type".into(), self.kind.into());
        if let Some(d) = &self.description {
            o.insert("description".into(), d.clone().into());
        }
        Value::Object(o)
    }
}

/// A request-level problem (RFC 8620 §3.6.1, RFC 7807 problem details), with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    pub kind: &'static str,
    pub detail: String,
    /// For a `limit` problem, the limit's name (RFC 8620 §3.6.1: `maxCallsInRequest`, ...).
    pub limit: Option<&'static str>,
}

/// The problem type of a request past one of the server's limits.
pub const LIMIT: &str = "urn:ietf:params:jmap:error:limit";

impl Problem {
    pub fn new(status: u16, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            kind,
            detail: detail.into(),
            limit: None,
        }
    }

    /// A request past the limit named `limit`, which the problem names as RFC 8620 §3.6.1 asks.
    pub fn limit(status: u16, limit: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            limit: Some(limit),
            ..Problem::new(status, LIMIT, detail)
        }
    }

    pub fn body(&self) -> Value {
        let mut body = json!({"type": self.kind, "status": self.status, "detail": self.detail});
        if let Some(limit) = self.limit {
            body["limit"] = json!(limit);
        }
        body
    }
}

/// One method call as the client sent it.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: String,
    pub args: Map<String, Value>,
    pub id: String,
}

/// A parsed request: the capabilities it uses, its calls, and the creation ids it carries in.
#[derive(Debug, Clone)]
pub struct Request {
    pub using: Vec<String>,
    pub calls: Vec<Call>,
    pub created_ids: Option<Map<String, Value>>,
}

pub fn parse(body: &[u8]) -> Result<Request, Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        Problem::new(
            400,
            "urn:ietf:params:jmap:error:notJSON",
            "the body is not JSON",
        )
    })?;
    let not_request = |why: &str| Problem::new(400, "urn:ietf:params:jmap:error:notRequest", why);
    let Value::Object(mut o) = value else {
        return Err(not_request("a request is an object"));
    };
    let using: Vec<String> = match o.remove("using") {
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(not_request("using is a list of strings")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(not_request("using is a list of strings")),
    };
    if let Some(unknown) = using.iter().find(|u| !CAPABILITIES.contains(&u.as_str())) {
        return Err(Problem::new(
            400,
            "urn:ietf:params:jmap:error:unknownCapability",
            format!("this server does not have the capability {unknown}"),
        ));
    }
    let Some(Value::Array(method_calls)) = o.remove("methodCalls") else {
        return Err(not_request("methodCalls is a list"));
    };
    if method_calls.len() > CALLS_MAX {
        return Err(Problem::limit(
            400,
            "maxCallsInRequest",
            format!("at most {CALLS_MAX} method calls in one request"),
        ));
    }
    let mut calls = Vec::with_capacity(method_calls.len());
    for call in method_calls {
        let Value::Array(mut parts) = call else {
            return Err(not_request("a method call is [name, arguments, call id]"));
        };
        match (parts.len(), parts.pop(), parts.pop(), parts.pop()) {
            (3, Some(Value::String(id)), Some(Value::Object(args)), Some(Value::String(name))) => {
                calls.push(Call { name, args, id })
            }
            _ => return Err(not_request("a method call is [name, arguments, call id]")),
        }
    }
    let created_ids = match o.remove("createdIds") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(not_request("createdIds is an object")),
    };
    Ok(Request {
        using,
        calls,
        created_ids,
    })
}

/// Replaces every `#name` argument (a result reference, RFC 8620 §3.7) with what it points at in an
/// earlier response of this request. `responses` are (method name, arguments, call id).
pub fn resolve_references(
    args: &mut Map<String, Value>,
    responses: &[(String, Value, String)],
) -> Result<(), MethodError> {
    let referenced: Vec<String> = args
        .keys()
        .filter(|k| k.starts_with('#'))
        .cloned()
        .collect();
    for key in referenced {
        let name = &key[1..];
        if args.contains_key(name) {
            return Err(MethodError::invalid(format!(
                "both {name} and #{name} were given"
            )));
        }
        let reference = args.remove(&key).expect("listed");
        let bad = || MethodError::new("invalidResultReference");
        let result_of = reference.get("resultOf").and_then(Value::as_str);
        let method = reference.get("name").and_then(Value::as_str);
        let path = reference.get("path").and_then(Value::as_str);
        let (Some(result_of), Some(method), Some(path)) = (result_of, method, path) else {
            return Err(bad());
        };
        let (_, response, _) = responses
            .iter()
            .find(|(n, _, id)| id == result_of && n == method)
            .ok_or_else(bad)?;
        let mut count = 0;
        let value = pointer(response, path, &mut count).ok_or_else(bad)?;
        args.insert(name.to_string(), value);
    }
    Ok(())
}

/// A JSON pointer (RFC 6901) with JMAP's `*`: applied to an array, it maps the rest of the path over
/// every item and flattens arrays it gets back.
fn pointer(value: &Value, path: &str, count: &mut usize) -> Option<Value> {
    *count += 1;
    if *count > POINTER_VALUES_MAX {
        return None;
    }
    if path.is_empty() {
        return Some(value.clone());
    }
    let rest = path.strip_prefix('/')?;
    let (token, after) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let token = token.replace("~1", "/").replace("~0", "~");
    match value {
        Value::Array(items) if token == "*" => {
            let mut out = Vec::new();
            for item in items {
                match pointer(item, after, count)? {
                    Value::Array(inner) => out.extend(inner),
                    one => out.push(one),
                }
            }
            Some(Value::Array(out))
        }
        Value::Array(items) => pointer(items.get(token.parse::<usize>().ok()?)?, after, count),
        Value::Object(o) => pointer(o.get(&token)?, after, count),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_or_say_why_not() {
        let r = parse(br#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":1},"c1"]]}"#).unwrap();
        assert_eq!(r.calls[0].name, "Core/echo");
        assert_eq!(r.calls[0].id, "c1");
        assert_eq!(
            parse(b"{").unwrap_err().kind,
            "urn:ietf:params:jmap:error:notJSON"
        );
        assert_eq!(
            parse(br#"{"using":["urn:x"],"methodCalls":[]}"#)
                .unwrap_err()
                .kind,
            "urn:ietf:params:jmap:error:unknownCapability"
        );
        assert_eq!(
            parse(br#"{"using":[],"methodCalls":[["x",{},1]]}"#)
                .unwrap_err()
                .kind,
            "urn:ietf:params:jmap:error:notRequest"
        );
    }

    #[test]
    fn result_references_follow_paths_with_stars() {
        let responses = vec![(
            "Email/get".to_string(),
            json!({"list": [{"threadId": "t1"}, {"threadId": "t2"}], "ids": ["a"]}),
            "c0".to_string(),
        )];
        let mut args =
            json!({"#ids": {"resultOf": "c0", "name": "Email/get", "path": "/list/*/threadId"}})
                .as_object()
                .unwrap()
                .clone();
        resolve_references(&mut args, &responses).unwrap();
        assert_eq!(args["ids"], json!(["t1", "t2"]));
        let mut wrong = json!({"#ids": {"resultOf": "c0", "name": "Email/query", "path": "/ids"}})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            resolve_references(&mut wrong, &responses).unwrap_err().kind,
            "invalidResultReference"
        );
    }
}
