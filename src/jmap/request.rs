//! JMAP requests and method errors: the pure parts are in `jmail_proto::jmap::request`; here, how a store
//! failure looks to a client, and the result type methods return.

pub use jmail_proto::jmap::request::*;
use serde_json::Value;

pub type MethodResult = Result<Value, MethodError>;

/// Bytes a parsed JSON value may take for each `[`, `]`, `{`, `}`, `,` or `:` of its text: a `Value` is
/// 32 bytes, and lists and maps grow by doubling. Parsing `[0,0,0,...]` took 20 times its text.
const VALUE_BYTES_PER_TOKEN: usize = 64;
/// Bodies up to this are parsed on the async worker; larger ones on the blocking pool, so that other
/// clients' sessions are not held up by them.
const PARSE_INLINE_BYTES_MAX: usize = 64 * 1024;

/// The structural characters of JSON text outside its strings: about one per value it holds.
fn structural_tokens(text: &[u8]) -> usize {
    let (mut count, mut in_string, mut escaped) = (0, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b']' | b'{' | b'}' | b',' | b':' => count += 1,
                _ => {}
            }
        }
    }
    count
}

/// [`parse`] of a body read by `super::body::read`, with what its parsed form will take drawn from the
/// server's input budget first (a request of a million tiny values is refused when the budget cannot
/// hold it, instead of taking memory no one counted), and a large one parsed off the async workers.
/// The share is to be kept until the request is answered.
pub async fn parse_charged(
    body: super::body::ReadBody,
) -> Result<(Request, crate::caps::InputShare), Problem> {
    let super::body::ReadBody { bytes, mut share } = body;
    let estimate = bytes
        .len()
        .saturating_add(structural_tokens(&bytes).saturating_mul(VALUE_BYTES_PER_TOKEN));
    if share.hold(estimate).is_err() {
        return Err(Problem::new(
            503,
            "about:blank",
            "the server is busy; try again shortly",
        ));
    }
    if bytes.len() <= PARSE_INLINE_BYTES_MAX {
        return parse(&bytes).map(|r| (r, share));
    }
    match tokio::task::spawn_blocking(move || parse(&bytes)).await {
        Ok(parsed) => parsed.map(|r| (r, share)),
        Err(_) => Err(Problem::new(
            500,
            "about:blank",
            "the request could not be read",
        )),
    }
}

/// Most comparators one `/query` may sort by.
pub const COMPARATORS_MAX: usize = 8;

/// A failure of the store, as a client sees it: no internal text (it goes to the log).
impl From<crate::store::StoreError> for MethodError {
    fn from(e: crate::store::StoreError) -> MethodError {
        use crate::store::StoreError as E;
        match e {
            E::OverQuota(_) => MethodError::new("overQuota"),
            E::Conflict(_) => MethodError::with(
                "serverUnavailable",
                "a concurrent change conflicted; try again",
            ),
            E::LowOnDisk => MethodError::with(
                "serverUnavailable",
                "the server's disk is nearly full; try again later",
            ),
            other => {
                tracing::warn!(error = %other, "JMAP method failed in the store");
                MethodError::new("serverFail")
            }
        }
    }
}

#[cfg(test)]
mod parse_cost_tests {
    use super::*;

    #[test]
    fn structure_is_counted_outside_strings_only() {
        assert_eq!(structural_tokens(br#"[0,0,0]"#), 4);
        assert_eq!(structural_tokens(br#"{"a,b:[c]":"x\"],"}"#), 3);
        assert_eq!(structural_tokens(b"\"unterminated [,,,"), 0);
    }
}
