//! JMAP requests and method errors: the pure parts are in `jmail_proto::jmap::request`; here, how a store
//! failure looks to a client, and the result type methods return.

pub use jmail_proto::jmap::request::*;
use serde_json::Value;

pub type MethodResult = Result<Value, MethodError>;

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
