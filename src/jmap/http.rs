//! JMAP's HTTP resources (RFC 8620 §2, §3.1, §6, §7.3): the session at `/.well-known/jmap`, the API at
//! `/jmap/api`, uploads, downloads, the event source, and `/jmap/token` where the web page trades a
//! password for a bearer token. Each authenticates on its own; every reply is JSON or the blob itself.

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::auth::{self, Refused};
use super::request::{self, CALLS_MAX, CAPABILITIES, OBJECTS_MAX, Problem};
use crate::conn::Shared;
use crate::store::Account;

/// The session object's state: it changes only with this server's capabilities.
pub const SESSION_STATE: &str = "1";
/// Largest API request body (`maxSizeRequest`).
pub const REQUEST_BYTES_MAX: usize = 10 * 1024 * 1024;
/// API requests and uploads one account may have in flight at once, together (`gate.rs`); what the
/// session object tells clients.
pub const CONCURRENT_REQUESTS_MAX: usize = 4;
const CONCURRENT_UPLOADS_MAX: usize = CONCURRENT_REQUESTS_MAX;
/// Event sources one account may hold open at once (a browser tab or device each): 2,000 of one user's
/// were all taken, each with its feed subscription, bounded only by the per-address connection cap.
const EVENT_SOURCES_PER_ACCOUNT_MAX: usize = 32;

#[derive(Clone)]
pub struct JmapState {
    pub ctx: Shared,
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The JMAP routes, for one connection.
pub fn router(state: JmapState) -> Router {
    Router::new()
        .route("/.well-known/jmap", get(session))
        .route("/jmap/session", get(session))
        // These read their bodies themselves, after the login (`login_then_read`).
        .route("/jmap/api", post(api))
        .route("/jmap/upload/{account}", post(upload))
        .route("/jmap/upload/{account}/", post(upload))
        .route("/jmap/download/{account}/{blob}/{name}", get(download))
        .route("/jmap/eventsource", get(eventsource))
        .route(
            "/jmap/token",
            post(token).layer(DefaultBodyLimit::max(4096)),
        )
        .route("/jmap/logout", post(logout))
        .with_state(state)
}

fn problem(p: Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        p.body().to_string(),
    )
        .into_response()
}

fn json_response(value: &Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}

fn refused(r: Refused) -> Response {
    refused_challenging(r, false)
}

/// A refusal; an unauthorized one challenges for Basic, or for Bearer when that is what the client
/// sent (RFC 6750 §3): a browser shows a password dialog on a Basic challenge, which a page holding a
/// token must never cause.
fn refused_challenging(r: Refused, bearer: bool) -> Response {
    match r {
        Refused::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                if bearer {
                    "Bearer realm=\"jmail\", error=\"invalid_token\""
                } else {
                    "Basic realm=\"jmail\", charset=\"UTF-8\""
                },
            )],
            "authentication required\n",
        )
            .into_response(),
        Refused::Plaintext => (
            StatusCode::FORBIDDEN,
            "passwords are accepted over HTTPS only\n",
        )
            .into_response(),
        Refused::Blocked => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "60")],
            "too many failed logins; try again later\n",
        )
            .into_response(),
        Refused::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "temporarily unavailable\n",
        )
            .into_response(),
    }
}

async fn login(s: &JmapState, headers: &HeaderMap) -> Result<Account, Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let bearer = authorization.is_some_and(|a| {
        a.get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
    });
    auth::authenticate(&s.ctx, s.peer.ip(), s.tls, authorization)
        .await
        .map_err(|r| refused_challenging(r, bearer))
}

/// `https://host[:port]` as the client reached this server (its Host header, when it is a plain host
/// name or address), else the configured host name and this listener's port.
fn base_url(s: &JmapState, headers: &HeaderMap) -> String {
    let scheme = if s.tls { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    match host {
        Some(h) => format!("{scheme}://{h}"),
        None => {
            let port = if s.tls {
                s.ctx.config.https_port
            } else {
                s.ctx.config.http_port
            };
            format!(
                "{scheme}://{}:{}",
                s.ctx.config.hostname(),
                port.unwrap_or(443)
            )
        }
    }
}

/// The session object (RFC 8620 §2).
pub fn session_object(s: &JmapState, account: &Account, base: &str) -> Value {
    let account_id = super::ids::account(account.id);
    let limits = &s.ctx.config.limits;
    let core = json!({
        "maxSizeUpload": limits.message_bytes_max,
        "maxConcurrentUpload": CONCURRENT_UPLOADS_MAX,
        "maxSizeRequest": REQUEST_BYTES_MAX,
        "maxConcurrentRequests": CONCURRENT_REQUESTS_MAX,
        "maxCallsInRequest": CALLS_MAX,
        "maxObjectsInGet": OBJECTS_MAX,
        "maxObjectsInSet": OBJECTS_MAX,
        "collationAlgorithms": super::COLLATIONS,
    });
    let mail = json!({
        "maxMailboxesPerEmail": null,
        "maxMailboxDepth": null,
        "maxSizeMailboxName": 255,
        "maxSizeAttachmentsPerEmail": limits.message_bytes_max,
        "emailQuerySortOptions": ["receivedAt", "size", "from", "to", "subject", "sentAt", "hasKeyword"],
        "mayCreateTopLevelMailbox": true,
    });
    let submission = json!({"maxDelayedSend": 0, "submissionExtensions": {"DSN": []}});
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(CAPABILITIES[0].into(), core);
    capabilities.insert(CAPABILITIES[1].into(), json!({}));
    capabilities.insert(CAPABILITIES[2].into(), json!({}));
    capabilities.insert(CAPABILITIES[3].into(), json!({}));
    json!({
        "capabilities": capabilities,
        "accounts": {
            account_id.clone(): {
                "name": format!("{}@{}", account.name, s.ctx.config.primary_domain()),
                "isPersonal": true,
                "isReadOnly": false,
                "accountCapabilities": {
                    (request::MAIL): mail,
                    (request::SUBMISSION): submission,
                    (request::VACATION_RESPONSE): {},
                },
            }
        },
        "primaryAccounts": {
            (request::MAIL): account_id.clone(),
            (request::SUBMISSION): account_id.clone(),
            (request::VACATION_RESPONSE): account_id,
        },
        "username": account.name,
        "apiUrl": format!("{base}/jmap/api"),
        "downloadUrl": format!("{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}"),
        "uploadUrl": format!("{base}/jmap/upload/{{accountId}}/"),
        "eventSourceUrl": format!("{base}/jmap/eventsource?types={{types}}&closeafter={{closeafter}}&ping={{ping}}"),
        "state": SESSION_STATE,
    })
}

async fn session(State(s): State<JmapState>, headers: HeaderMap) -> Response {
    let account = match login(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = base_url(&s, &headers);
    json_response(&session_object(&s, &account, &base))
}

/// A request a browser sent from another site's page (RFC 6454 `Origin` naming another host, or Fetch
/// metadata saying so): refused, so that a page elsewhere cannot make a logged-in browser (one that
/// kept a Basic password) read or send mail. Clients that are not browsers send neither header.
pub fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if text("sec-fetch-site").is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
        return true;
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn forbidden_cross_site() -> Response {
    (
        StatusCode::FORBIDDEN,
        "requests from other sites' pages are refused\n",
    )
        .into_response()
}

/// Too many of an account's requests at once (429).
pub fn too_many_at_once(retry_after_secs: &'static str, what: &'static str) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after_secs)],
        what,
    )
        .into_response()
}

/// The caller's account, a place among its requests at once, then its body: a stranger's body, or one
/// past the account's requests at once, is never read (or held).
async fn login_then_read(
    s: &JmapState,
    headers: &HeaderMap,
    body: Body,
    (max, limit): (usize, &'static str),
) -> Result<(Account, super::gate::Entered, super::body::ReadBody), Response> {
    if cross_site(headers) {
        return Err(forbidden_cross_site());
    }
    let account = login(s, headers).await?;
    let Some(entered) = s
        .ctx
        .jmap_requests
        .try_enter(account.id, CONCURRENT_REQUESTS_MAX)
    else {
        return Err(problem(Problem::limit(
            400,
            "maxConcurrentRequests",
            "too many requests of this account at once",
        )));
    };
    // A length said to be too large is refused before a byte of it is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(super::body::BodyRefused::TooLarge.response(limit));
    }
    let body = super::body::read(body, max, &s.ctx)
        .await
        .map_err(|refused| refused.response(limit))?;
    Ok((account, entered, body))
}

async fn api(State(s): State<JmapState>, headers: HeaderMap, body: Body) -> Response {
    let (account, _entered, body) =
        match login_then_read(&s, &headers, body, (REQUEST_BYTES_MAX, "maxSizeRequest")).await {
            Ok(read) => read,
            Err(r) => return r,
        };
    // `_share` holds the request's part of the input budget until it is answered.
    let (req, _share) = match request::parse_charged(body).await {
        Ok(parsed) => parsed,
        Err(p) => return problem(p),
    };
    json_response(&super::run(&s.ctx, &account, req).await)
}

/// The account id in a path, checked to be the logged-in account's.
fn same_account(account: &Account, id: &str) -> bool {
    super::ids::parse_account(id) == Some(account.id)
}

async fn upload(
    State(s): State<JmapState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let max = s.ctx.config.limits.message_bytes_max;
    let limit = (max, "maxSizeUpload");
    let (account, _entered, read) = match login_then_read(&s, &headers, body, limit).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    let body = read.bytes;
    if !same_account(&account, &account_id) {
        return (StatusCode::NOT_FOUND, "no such account\n").into_response();
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|t| t.len() <= 255)
        .unwrap_or("application/octet-stream")
        .to_string();
    let size = body.len();
    match super::blobs::put(&*s.ctx.store, account.id, body.to_vec(), &media_type).await {
        Err(e) => {
            tracing::warn!(error = %e, "JMAP upload: the store failed");
            refused(Refused::Unavailable)
        }
        Ok(Some(key)) => {
            let blob = super::ids::BlobId::Upload { key, part: None };
            (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"accountId": account_id, "blobId": blob.to_string(), "type": media_type, "size": size})
                    .to_string(),
            )
                .into_response()
        }
        Ok(None) => problem(Problem::limit(
            413,
            "uploadBytesHeld",
            "no room for more uploads now; use or let go of earlier ones",
        )),
    }
}

#[derive(serde::Deserialize)]
struct DownloadQuery {
    accept: Option<String>,
}

/// `attachment` with the file name for every browser: an ASCII `filename` (what is not ASCII as `_`)
/// and, for a name that is not all ASCII, RFC 6266's `filename*` in UTF-8, percent-encoded.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    if name.is_ascii() {
        return format!("attachment; filename=\"{ascii}\"");
    }
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A media type safe to put in a header (and not one a browser would run as a page of this origin).
fn safe_media_type(t: &str) -> Option<&str> {
    let ok = !t.is_empty()
        && t.len() <= 255
        && t.contains('/')
        && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !t.contains(['\r', '\n']);
    ok.then_some(t)
}

async fn download(
    State(s): State<JmapState>,
    Path((account_id, blob, name)): Path<(String, String, String)>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Response {
    let account = match login(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let not_found = || (StatusCode::NOT_FOUND, "no such blob\n").into_response();
    if !same_account(&account, &account_id) {
        return not_found();
    }
    let Some(blob) = super::ids::parse_blob(&blob) else {
        return not_found();
    };
    let mut ctx = super::Ctx::new(&s.ctx, &account);
    let (bytes, stored_type) = match super::blobs::read_typed(&mut ctx, &blob).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(_) => return refused(Refused::Unavailable),
    };
    let media = q
        .accept
        .as_deref()
        .and_then(safe_media_type)
        .map_or(stored_type, str::to_string);
    let file_name: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(200)
        .collect();
    let disposition = content_disposition(&file_name);
    let mut response = Response::new(Body::from(bytes));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&media)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // A blob is never a page of this site: no scripts, no sniffing, even if opened directly.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, immutable, max-age=31536000"),
    );
    response
}

#[derive(serde::Deserialize)]
struct EventSourceQuery {
    types: Option<String>,
    closeafter: Option<String>,
    ping: Option<u64>,
}

async fn eventsource(
    State(s): State<JmapState>,
    Query(q): Query<EventSourceQuery>,
    headers: HeaderMap,
) -> Response {
    let account = match login(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(entered) = s
        .ctx
        .jmap_event_sources
        .try_enter(account.id, EVENT_SOURCES_PER_ACCOUNT_MAX)
    else {
        return too_many_at_once("60", "too many event sources open for this account\n");
    };
    let types = super::push::Types::parse(q.types.as_deref().unwrap_or("*"));
    let close_after_state = q.closeafter.as_deref() == Some("state");
    let stream = super::push::events(
        s.ctx.clone(),
        account,
        types,
        close_after_state,
        q.ping.unwrap_or(0),
    )
    .await;
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        // The stream holds the account's place while it is open.
        Body::from_stream(futures_util::StreamExt::map(stream, move |event| {
            let _held = &entered;
            event
        })),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct TokenRequest {
    username: String,
    password: String,
}

/// A password for a bearer token (the web page's sign-in). JSON only: a form on another site cannot
/// send `application/json` without the browser asking this server first, which it does not allow.
async fn token(State(s): State<JmapState>, headers: HeaderMap, body: Bytes) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !is_json {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/json\n",
        )
            .into_response();
    }
    if !crate::conn::plaintext_auth_allowed(s.peer.ip(), s.tls, s.ctx.config.allow_plaintext_auth) {
        return refused(Refused::Plaintext);
    }
    let Ok(req) = serde_json::from_slice::<TokenRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "give username and password\n").into_response();
    };
    let account =
        match auth::password_login(&s.ctx, s.peer.ip(), &req.username, &req.password).await {
            Ok(a) => a,
            Err(Refused::Unauthorized) => {
                return (StatusCode::UNAUTHORIZED, "wrong name or password\n").into_response();
            }
            Err(r) => return refused(r),
        };
    match auth::issue_token(&s.ctx, &account) {
        Some(t) => json_response(&json!({
            "accessToken": t,
            "tokenType": "Bearer",
            "expiresIn": auth::TOKEN_SECS,
            "accountId": super::ids::account(account.id),
            "username": account.name,
        })),
        None => refused(Refused::Unavailable),
    }
}

/// Signing out: every bearer token of the account issued until now stops working, on every node
/// (tokens are signed, not stored; the account keeps from when they count). 204 when done.
async fn logout(State(s): State<JmapState>, headers: HeaderMap) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let account = match auth::authenticate(&s.ctx, s.peer.ip(), s.tls, authorization).await {
        Ok(a) => a,
        Err(r) => return refused(r),
    };
    // A durable write: it counts among the account's requests at once, as every other.
    let Some(_entered) = s
        .ctx
        .jmap_requests
        .try_enter(account.id, CONCURRENT_REQUESTS_MAX)
    else {
        return too_many_at_once("1", "too many requests of this account at once\n");
    };
    match auth::end_tokens(&s.ctx, &account).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_in_any_script() {
        assert_eq!(
            super::content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\""
        );
        assert_eq!(
            super::content_disposition("report é.pdf"),
            "attachment; filename=\"report _.pdf\"; filename*=UTF-8''report%20%C3%A9.pdf"
        );
    }
}
