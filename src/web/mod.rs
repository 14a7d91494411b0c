//! HTTP: health, metrics and client autoconfiguration, on an HTTPS listener (the server's certificate) and a plain
//! one that serves loopback clients and sends everyone else to HTTPS. axum routes; hyper serves each
//! connection on the stream the server's accept loop hands over (already TLS on the HTTPS listener).
//! JMAP lives in `crate::jmap`; its routes are merged here.
//!
//! Connections are kept alive between requests (JMAP clients make many). Each is bounded: the wait for
//! a request's header (`idle_secs_unauth`), the whole handling of a request, its body read included
//! ([`request_deadline`]), and every write ([`write_deadline::WriteDeadline`]), so a client that trickles
//! or never reads holds its slot no longer than those allow.

mod admin;
mod autoconfig;
mod html_cost;
mod webmail;
mod write_deadline;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::conn::{Shared, Stream};

/// Longest body a request may carry (an autodiscover request is a few hundred bytes).
const REQUEST_BODY_BYTES_MAX: usize = 16 * 1024;
/// Most bytes of request line and headers held for one request.
const HEADER_BYTES_MAX: usize = 64 * 1024;
/// Longest an email address in a request may be.
const ADDRESS_BYTES_MAX: usize = 320;

#[derive(Clone)]
struct Web {
    ctx: Shared,
    /// The client is on this machine: only it may read `/metrics` (a scraper elsewhere goes through a
    /// proxy of the operator's).
    local: bool,
}

/// Serves one HTTP connection until the client is done, idle too long, or the server shuts down.
pub async fn serve(stream: Stream, peer: SocketAddr, ctx: Shared, tls: bool) {
    let limits = &ctx.config.limits;
    let idle = Duration::from_secs(limits.idle_secs_unauth);
    let shutdown = ctx.shutdown.clone();
    let jmap = crate::jmap::http::JmapState {
        ctx: ctx.clone(),
        peer,
        tls,
    };
    let app = if tls || peer.ip().is_loopback() {
        router(Web {
            ctx: ctx.clone(),
            local: peer.ip().is_loopback(),
        })
        .merge(crate::jmap::http::router(jmap.clone()))
        .merge(webmail::router(jmap.clone()))
        .merge(admin::router(jmap))
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            request_deadline,
        ))
    } else {
        redirect_router(ctx.config.https_port, ctx.config.hostname().to_string())
    };
    let stream =
        write_deadline::WriteDeadline::new(stream, Duration::from_secs(limits.write_secs_max));
    let service = hyper_util::service::TowerToHyperService::new(app);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(idle)
        .keep_alive(true)
        .max_buf_size((limits.line_bytes_max * 2).clamp(8192, HEADER_BYTES_MAX))
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        }
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
        }
    }
}

/// The longest body the route of `path` reads: JMAP's API and uploads (read after their login, at
/// `data_bytes_per_sec_min`) take large ones; every other route a few KiB.
fn body_bytes_max(path: &str, limits: &crate::config::Limits) -> u64 {
    if path == "/jmap/api" {
        crate::jmap::http::REQUEST_BYTES_MAX as u64
    } else if path.starts_with("/jmap/upload/") {
        limits.message_bytes_max as u64
    } else {
        REQUEST_BODY_BYTES_MAX as u64
    }
}

/// The most one request may take to be read and answered (its reply's writes are bounded apart): the
/// time to send a header, a login's penalty wait, and its body at the slowest rate a client may send
/// (`data_bytes_per_sec_min`). A request past it gets 408 and the connection closes. A Content-Length
/// past what its route reads is refused at once (413): believed, it bought a stranger a slot for 45
/// minutes on a route that reads 16 KiB.
async fn request_deadline(
    State(ctx): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limits = &ctx.config.limits;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let path = request.uri().path();
    let route_max = body_bytes_max(path, limits);
    // JMAP's own routes answer an oversized request with RFC 8620's `limit` problem, after the login.
    let tells_its_own = path == "/jmap/api" || path.starts_with("/jmap/upload/");
    if announced > route_max && !tells_its_own {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            "request body too large\n",
        )
            .into_response();
    }
    let deadline = Duration::from_secs(
        limits
            .idle_secs_unauth
            .saturating_add(limits.line_secs_max)
            .saturating_add(limits.login_penalty_secs_max)
            .saturating_add(announced.min(route_max) / limits.data_bytes_per_sec_min.max(1)),
    );
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            "request took too long\n",
        )
            .into_response(),
    }
}

fn router(state: Web) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(thunderbird),
        )
        .route("/mail/config-v1.1.xml", get(thunderbird))
        .route("/autodiscover/autodiscover.xml", post(outlook))
        .route("/Autodiscover/Autodiscover.xml", post(outlook))
        .route("/apple/jmail.mobileconfig", get(apple))
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .with_state(state)
}

/// Plain HTTP from off loopback: everything moves to HTTPS (or is refused when there is none).
fn redirect_router(https_port: Option<u16>, host: String) -> Router {
    Router::new().fallback(move |uri: Uri| {
        let host = host.clone();
        async move {
            let Some(port) = https_port else {
                return (StatusCode::FORBIDDEN, "use HTTPS\n").into_response();
            };
            let authority = match port {
                443 => host,
                port => format!("{host}:{port}"),
            };
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            let target = format!("https://{authority}{path}");
            match HeaderValue::from_str(&target) {
                Ok(location) => (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, location)],
                )
                    .into_response(),
                Err(_) => StatusCode::BAD_REQUEST.into_response(),
            }
        }
    })
}

/// 200 when the store answers, 503 when it does not (a load balancer takes the node out).
async fn healthz(State(web): State<Web>) -> Response {
    match web.ctx.store.first_user().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// The counters in Prometheus's text format, for clients on this machine.
async fn metrics(State(web): State<Web>) -> Response {
    if !web.local {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served to this machine only\n",
        )
            .into_response();
    }
    let mut text = crate::metrics::METRICS.render();
    // Read from the store at scrape time: the queue is shared by every node.
    if let Ok(depth) = web.ctx.admin.queue_depth().await {
        text += &format!(
            "# HELP jmail_queue_depth Messages waiting in the outbound queue (entries, one per destination domain).\n\
             # TYPE jmail_queue_depth gauge\njmail_queue_depth {}\n",
            depth
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct AddressQuery {
    emailaddress: Option<String>,
}

/// The domain and login an address stands for here: one of this server's domains (else the primary
/// one), and its local part.
fn account_of(web: &Web, address: Option<&str>) -> (String, String) {
    let config = &web.ctx.config;
    let address = address
        .filter(|a| a.len() <= ADDRESS_BYTES_MAX)
        .unwrap_or("");
    match address.rsplit_once('@') {
        Some((local, domain)) if config.is_local_domain(domain) => {
            (domain.to_ascii_lowercase(), local.to_string())
        }
        _ => (
            config.primary_domain().to_string(),
            address.split('@').next().unwrap_or("").to_string(),
        ),
    }
}

fn xml_response(body: String, content_type: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn thunderbird(State(web): State<Web>, Query(q): Query<AddressQuery>) -> Response {
    let (domain, _) = account_of(&web, q.emailaddress.as_deref());
    let offer = autoconfig::Offer::of(&web.ctx.config);
    xml_response(autoconfig::thunderbird(&offer, &domain), "application/xml")
}

/// Outlook posts `<EMailAddress>...</EMailAddress>` in a small XML request.
async fn outlook(State(web): State<Web>, body: String) -> Response {
    let address = body
        .split_once("<EMailAddress>")
        .and_then(|(_, rest)| rest.split_once("</EMailAddress>"))
        .map(|(address, _)| address.trim().to_string());
    let (_, login) = account_of(&web, address.as_deref());
    let offer = autoconfig::Offer::of(&web.ctx.config);
    xml_response(autoconfig::outlook(&offer, &login), "application/xml")
}

async fn apple(State(web): State<Web>, Query(q): Query<AddressQuery>) -> Response {
    let Some(address) = q.emailaddress.filter(|a| a.contains('@')) else {
        return (StatusCode::BAD_REQUEST, "give ?emailaddress=you@domain\n").into_response();
    };
    let (_, login) = account_of(&web, Some(&address));
    let offer = autoconfig::Offer::of(&web.ctx.config);
    match autoconfig::apple(&offer, &address, &login) {
        Some(profile) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/x-apple-aspen-config"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"jmail.mobileconfig\"",
                ),
            ],
            profile,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no mail listeners to configure\n").into_response(),
    }
}
