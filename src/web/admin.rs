//! The admin page's API (`/admin/api/...`), for the users the config names in `admins`: users (add,
//! delete, password, quota), the outbound queue (list, retry, drop) and the server's state (listeners,
//! connections per protocol, users, stored bytes, queue). It authenticates like JMAP (Basic or the web
//! page's bearer token, in a header: no cookie, so another site cannot act through a signed-in browser).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::accounts::AccountError;
use crate::jmap::http::JmapState;
use crate::store::{QuotaSetting, StoreError};

pub fn router(state: JmapState) -> Router {
    Router::new()
        .route("/admin/api/status", get(status))
        .route("/admin/api/users", get(users).post(add_user))
        .route(
            "/admin/api/users/{name}",
            axum::routing::delete(delete_user),
        )
        .route("/admin/api/users/{name}/password", post(password))
        .route("/admin/api/users/{name}/quota", post(quota))
        .route("/admin/api/queue", get(queue))
        .route("/admin/api/queue/{id}/retry", post(retry))
        .route("/admin/api/queue/{id}", axum::routing::delete(drop_entry))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn failed(status: StatusCode, why: impl Into<String>) -> Response {
    reply(status, json!({"error": why.into()}))
}

/// Lets the request through when it comes from an admin, and not from another site's page (a browser
/// that kept an admin's Basic password would otherwise add users or change passwords for that page).
async fn admin(s: &JmapState, headers: &HeaderMap) -> Result<(), Response> {
    if crate::jmap::http::cross_site(headers) {
        return Err(failed(
            StatusCode::FORBIDDEN,
            "requests from other sites' pages are refused",
        ));
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let account = crate::jmap::auth::authenticate(&s.ctx, s.peer.ip(), s.tls, authorization)
        .await
        .map_err(|_| failed(StatusCode::UNAUTHORIZED, "sign in"))?;
    if s.ctx.config.admins.contains(&account.name) {
        Ok(())
    } else {
        Err(failed(
            StatusCode::FORBIDDEN,
            "this account is not an admin",
        ))
    }
}

macro_rules! admin_only {
    ($s:expr, $headers:expr) => {
        if let Err(r) = admin(&$s, &$headers).await {
            return r;
        }
    };
}

fn account_error(e: AccountError) -> Response {
    match e {
        AccountError::Name(e) => failed(StatusCode::BAD_REQUEST, e.to_string()),
        AccountError::Password => {
            failed(StatusCode::BAD_REQUEST, AccountError::Password.to_string())
        }
        AccountError::Store(e) => store_error(e),
    }
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::UserExists(_) => failed(StatusCode::CONFLICT, "that user exists"),
        StoreError::NoSuchUser(_) | StoreError::UnknownRecipient(_) => {
            failed(StatusCode::NOT_FOUND, "no such user")
        }
        other => {
            tracing::warn!(error = %other, "admin page: the store failed");
            failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store failed; try again",
            )
        }
    }
}

async fn status(State(s): State<JmapState>, headers: HeaderMap) -> Response {
    admin_only!(s, headers);
    let store = &s.ctx.admin;
    let users = match store.list_users().await {
        Ok(u) => u,
        Err(e) => return store_error(e),
    };
    let queue = store.queue_depth().await.unwrap_or_default();
    let c = &s.ctx.config;
    let listeners: Vec<Value> = [
        ("native", Some(c.port)),
        ("smtp", c.smtp_port),
        ("submission", c.submission_port),
        ("submissions", c.submissions_port),
        ("pop3", c.pop3_port),
        ("pop3s", c.pop3s_port),
        ("imap", c.imap_port),
        ("imaps", c.imaps_port),
        ("native_tls", c.native_tls_port),
        ("https", c.https_port),
        ("http", c.http_port),
    ]
    .into_iter()
    .filter_map(|(name, port)| {
        port.map(|p| json!({"protocol": name, "address": format!("{}:{p}", c.bind)}))
    })
    .collect();
    let connections: Vec<Value> = crate::metrics::METRICS
        .connections()
        .into_iter()
        .map(|(protocol, accepted, open)| json!({"protocol": protocol, "accepted": accepted, "open": open}))
        .collect();
    reply(
        StatusCode::OK,
        json!({
            "hostname": c.hostname(),
            "store": crate::store::open::describe(c),
            "listeners": listeners,
            "connections": connections,
            "users": users.len(),
            "storedBytes": users.iter().map(|u| u.usage.bytes).sum::<u64>(),
            "storedMessages": users.iter().map(|u| u.usage.messages).sum::<u64>(),
            "queue": queue,
        }),
    )
}

async fn users(State(s): State<JmapState>, headers: HeaderMap) -> Response {
    admin_only!(s, headers);
    match s.ctx.admin.list_users().await {
        Ok(list) => reply(
            StatusCode::OK,
            Value::Array(
                list.into_iter()
                    .map(|u| {
                        json!({"name": u.name, "messages": u.usage.messages, "bytes": u.usage.bytes,
                               "quotaBytes": u.quota.bytes, "quotaMessages": u.quota.messages,
                               "admin": s.ctx.config.admins.contains(&u.name)})
                    })
                    .collect(),
            ),
        ),
        Err(e) => store_error(e),
    }
}

#[derive(serde::Deserialize)]
struct NewUser {
    name: String,
    password: String,
}

async fn add_user(State(s): State<JmapState>, headers: HeaderMap, body: String) -> Response {
    admin_only!(s, headers);
    let Ok(u) = serde_json::from_str::<NewUser>(&body) else {
        return failed(StatusCode::BAD_REQUEST, "give name and password");
    };
    match crate::accounts::add_user(&*s.ctx.admin, &s.ctx.config, &u.name, &u.password).await {
        Ok(name) => {
            tracing::info!(user = %name, "admin page: user added");
            reply(StatusCode::CREATED, json!({"name": name}))
        }
        Err(e) => account_error(e),
    }
}

async fn delete_user(
    State(s): State<JmapState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    admin_only!(s, headers);
    match crate::accounts::delete_user(&*s.ctx.admin, &name).await {
        Ok(()) => {
            tracing::info!(user = %name, "admin page: user deleted");
            reply(StatusCode::OK, json!({"deleted": name}))
        }
        Err(e) => account_error(e),
    }
}

#[derive(serde::Deserialize)]
struct NewPassword {
    password: String,
}

async fn password(
    State(s): State<JmapState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    admin_only!(s, headers);
    let Ok(p) = serde_json::from_str::<NewPassword>(&body) else {
        return failed(StatusCode::BAD_REQUEST, "give password");
    };
    match crate::accounts::set_password(&*s.ctx.admin, &name, &p.password).await {
        Ok(()) => reply(StatusCode::OK, json!({"name": name})),
        Err(e) => account_error(e),
    }
}

/// A quota dimension as the page sends it: `null` (no change), `"default"`, `"unlimited"` or a number.
fn setting(v: Option<&Value>) -> Result<Option<QuotaSetting>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "default" => Ok(Some(QuotaSetting::Default)),
        Some(Value::String(s)) if s == "unlimited" => Ok(Some(QuotaSetting::Unlimited)),
        Some(Value::Number(n)) => n.as_u64().map(|n| Some(QuotaSetting::Limit(n))).ok_or(()),
        Some(_) => Err(()),
    }
}

async fn quota(
    State(s): State<JmapState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    admin_only!(s, headers);
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return failed(StatusCode::BAD_REQUEST, "give bytes and messages");
    };
    let (Ok(bytes), Ok(messages)) = (setting(v.get("bytes")), setting(v.get("messages"))) else {
        return failed(
            StatusCode::BAD_REQUEST,
            "a quota is a number, \"default\" or \"unlimited\"",
        );
    };
    match s.ctx.admin.set_quota(&name, bytes, messages).await {
        Ok(()) => reply(StatusCode::OK, json!({"name": name})),
        Err(e) => store_error(e),
    }
}

async fn queue(State(s): State<JmapState>, headers: HeaderMap) -> Response {
    admin_only!(s, headers);
    match s.ctx.admin.queue_list().await {
        Ok(list) => reply(StatusCode::OK, json!(list)),
        Err(e) => store_error(e),
    }
}

async fn retry(State(s): State<JmapState>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    admin_only!(s, headers);
    let now = chrono::Utc::now().timestamp_micros();
    match s.ctx.admin.queue_retry(Some(id), now).await {
        Ok(0) => failed(StatusCode::NOT_FOUND, "no such entry"),
        Ok(_) => {
            s.ctx.admin.queue_waker().notify_one();
            reply(StatusCode::OK, json!({"retried": id}))
        }
        Err(e) => store_error(e),
    }
}

async fn drop_entry(
    State(s): State<JmapState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    admin_only!(s, headers);
    match s.ctx.admin.queue_drop(id).await {
        Ok(true) => reply(StatusCode::OK, json!({"dropped": id})),
        Ok(false) => failed(StatusCode::NOT_FOUND, "no such entry"),
        Err(e) => store_error(e),
    }
}
