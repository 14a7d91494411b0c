//! Reading a JMAP request's body (API calls, uploads) only after its sender has logged in, at the pace
//! and within the budget the mail protocols keep: up to `max` bytes, drawn from the server's input
//! budget (`input_bytes_max`) as they arrive, and after `line_secs_max` at no less than
//! `data_bytes_per_sec_min` on average. Without this, a stranger's `Content-Length: 10485760` with a
//! body sent all but its last byte made the server hold 10 MiB per connection before it asked who was
//! sending (400 connections: 4 GB), and a body never sent held its slot for 45 minutes.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::caps::InputShare;
use crate::conn::Shared;

/// Why a body was not read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefused {
    /// More than the route takes.
    TooLarge,
    /// Sent slower than the server waits for.
    TooSlow,
    /// The server's input budget is spent: other clients hold it now.
    Busy,
    /// The connection failed midway.
    Broken,
}

impl BodyRefused {
    /// The answer; a body too large is a JMAP `limit` problem naming `limit` (`maxSizeRequest`,
    /// `maxSizeUpload`). The connection closes: the rest of the body is not read.
    pub fn response(self, limit: &'static str) -> Response {
        let close = [(header::CONNECTION, "close")];
        match self {
            BodyRefused::TooLarge => {
                let problem = jmail_proto::jmap::request::Problem::limit(
                    413,
                    limit,
                    "the request is larger than this server takes",
                );
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    [
                        (header::CONTENT_TYPE, "application/problem+json"),
                        (header::CONNECTION, "close"),
                    ],
                    problem.body().to_string(),
                )
                    .into_response()
            }
            BodyRefused::TooSlow => (
                StatusCode::REQUEST_TIMEOUT,
                close,
                "the request's body came too slowly\n",
            )
                .into_response(),
            BodyRefused::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5"), (header::CONNECTION, "close")],
                "the server is busy; try again shortly\n",
            )
                .into_response(),
            BodyRefused::Broken => (
                StatusCode::BAD_REQUEST,
                close,
                "the request's body was cut off\n",
            )
                .into_response(),
        }
    }
}

/// A body read whole, and the share of the input budget it holds until dropped.
pub struct ReadBody {
    pub bytes: Bytes,
    pub share: InputShare,
}

/// Reads `body`, at most `max` bytes, at the pace described above.
pub async fn read(body: Body, max: usize, ctx: &Shared) -> Result<ReadBody, BodyRefused> {
    let limits = &ctx.config.limits;
    let grace = Duration::from_secs(limits.line_secs_max);
    let rate = limits.data_bytes_per_sec_min.max(1);
    let mut share = ctx.input.share();
    let mut stream = body.into_data_stream();
    let mut got: Vec<u8> = Vec::new();
    let start = tokio::time::Instant::now();
    loop {
        // By now the client must have sent `got` bytes at `rate` after the grace, and one more chunk.
        let allowed = grace + Duration::from_secs(got.len() as u64 / rate) + Duration::from_secs(1);
        let wait = (start + allowed).saturating_duration_since(tokio::time::Instant::now());
        let chunk = match tokio::time::timeout(wait, stream.next()).await {
            Err(_) => return Err(BodyRefused::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyRefused::Broken),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if got.len() + chunk.len() > max {
            return Err(BodyRefused::TooLarge);
        }
        // What the buffer takes, its spare room too, is what the budget counts.
        got.reserve(chunk.len());
        share.hold(got.capacity()).map_err(|_| BodyRefused::Busy)?;
        got.extend_from_slice(&chunk);
    }
    Ok(ReadBody {
        bytes: Bytes::from(got),
        share,
    })
}
