//! The webmail: its page, script and style sheet (embedded in the binary), and the one thing it asks of
//! the server beyond JMAP: a message's HTML made safe to show (`/webmail/html/{emailId}`).
//!
//! The page's defences: a Content-Security-Policy that lets only this origin's script run (no inline
//! script, no eval), no framing by other sites (`frame-ancestors 'none'`, X-Frame-Options), no
//! referrer. A message's HTML is cleaned by ammonia (no script, no event handlers, no forms, no
//! frames), its remote images dropped until the reader asks for them, and the page shows it in an
//! iframe sandboxed without scripts: a sanitizer bug alone still runs nothing.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mail_parser::MessageParser;
use serde_json::json;

use crate::jmap::http::JmapState;

const INDEX: &str = include_str!("webmail/index.html");
const SCRIPT: &str = include_str!("webmail/webmail.js");
const STYLE: &str = include_str!("webmail/webmail.css");
const ADMIN: &str = include_str!("webmail/admin.html");
const ADMIN_SCRIPT: &str = include_str!("webmail/admin.js");

/// The page's policy. `img-src` allows remote images because a message's own, once the reader asks,
/// load inside its iframe (which inherits this policy); until then the sanitizer has removed them.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data: blob: https: http:; connect-src 'self'; frame-src 'self'; font-src 'self'; \
frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn router(state: JmapState) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/webmail.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/webmail.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/admin",
            get(|| async { page(ADMIN, "text/html; charset=utf-8") }),
        )
        .route(
            "/admin.js",
            get(|| async { page(ADMIN_SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route("/webmail/html/{email}", get(html))
        .with_state(state)
}

/// One of the embedded files, with the page's security headers.
fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[derive(serde::Deserialize)]
struct HtmlQuery {
    images: Option<u8>,
}

/// The cleaned HTML of a message (its HTML body, or its text as HTML), and how many remote images
/// were left out.
async fn html(
    State(s): State<JmapState>,
    Path(email): Path<String>,
    Query(q): Query<HtmlQuery>,
    headers: HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Ok(account) =
        crate::jmap::auth::authenticate(&s.ctx, s.peer.ip(), s.tls, authorization).await
    else {
        return (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    };
    // Cleaning runs on the blocking pool: it counts among the account's requests at once.
    let Some(_entered) = s
        .ctx
        .jmap_requests
        .try_enter(account.id, crate::jmap::http::CONCURRENT_REQUESTS_MAX)
    else {
        return crate::jmap::http::too_many_at_once(
            "1",
            "too many requests of this account at once\n",
        );
    };
    let not_found = || (StatusCode::NOT_FOUND, "no such email\n").into_response();
    let Some(id) = crate::jmap::ids::parse_email(&email) else {
        return not_found();
    };
    let ctx = crate::jmap::Ctx::new(&s.ctx, &account);
    let raw = match ctx.first_copy(id).await {
        Ok(Some(copy)) => ctx.store().fetch(copy.mailbox, copy.uid, false).await,
        _ => return not_found(),
    };
    let Ok(Some(raw)) = raw else {
        return not_found();
    };
    let images = q.images == Some(1);
    let cleaned = tokio::task::spawn_blocking(move || cleaned_html(&raw, images))
        .await
        .ok()
        .flatten();
    let (html, blocked) = cleaned.unwrap_or_default();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        json!({"html": html, "blockedImages": blocked}).to_string(),
    )
        .into_response()
}

/// The HTML to show of the message `raw` (its HTML body, or its text as HTML) and how many remote images
/// were left out; `None` when it does not parse.
fn cleaned_html(raw: &[u8], images: bool) -> Option<(String, usize)> {
    let message = MessageParser::default().parse(raw)?;
    let body = message.body_html(0)?.into_owned();
    if super::html_cost::too_costly(&body) {
        // Too deeply nested to be cleaned in bounded time: its text, as text.
        let text = message.body_text(0).unwrap_or_default();
        let body = format!("<pre>{}</pre>", ammonia::clean_text(&text));
        return Some(clean(&body, images, Inline::default()));
    }
    Some(clean(&body, images, inline_images(&message)))
}

/// A message's own images by Content-ID (without its angle brackets, lower case), as `data:` URLs for
/// `<img src="cid:...">` (RFC 2392): an iframe that may load nothing else can show them, and the page
/// needs no authenticated fetch. Raster types only, [`INLINE_IMAGES_BYTES_MAX`] in all.
type Inline = std::collections::HashMap<String, String>;

/// Bytes of a message's own images put in its HTML as `data:` URLs; past it they are left out.
const INLINE_IMAGES_BYTES_MAX: usize = 4 << 20;

fn inline_images(message: &mail_parser::Message<'_>) -> Inline {
    use base64::Engine as _;
    use mail_parser::MimeHeaders as _;
    let mut inline = Inline::new();
    let mut budget = INLINE_IMAGES_BYTES_MAX;
    for part in &message.parts {
        let (Some(id), Some(kind)) = (part.content_id(), part.content_type()) else {
            continue;
        };
        let subtype = kind.subtype().unwrap_or_default().to_ascii_lowercase();
        let raster = ["png", "jpeg", "jpg", "gif", "webp", "bmp"].contains(&subtype.as_str());
        let bytes = part.contents();
        if !kind.ctype().eq_ignore_ascii_case("image") || !raster || bytes.len() > budget {
            continue;
        }
        budget -= bytes.len();
        let id = id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_lowercase();
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        inline.insert(id, format!("data:image/{subtype};base64,{data}"));
    }
    inline
}

/// Whether a URL may fetch from elsewhere (a remote image, a tracking pixel): anything but the
/// message's own data (`data:`, `cid:`). Read as a browser reads it: tabs and line breaks inside a URL
/// are dropped and `\` is `/`, so `ht&#9;tp://` and `\\host/` are remote too.
fn remote(url: &str) -> bool {
    let plain: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    !(plain.starts_with("data:") || plain.starts_with("cid:"))
}

/// Whether a style attribute may load an image: `url(`, `image-set(`, `-webkit-image-set(`, or a CSS
/// escape, which could spell either.
fn loads_in_style(style: &str) -> bool {
    let lower = style.to_ascii_lowercase();
    lower.contains("url") || lower.contains("image") || lower.contains('\\')
}

/// A message's HTML made safe to show: a whole document with no script in it, and (unless `images`)
/// no remote image; its own images (`cid:`) from `inline`; and how many remote images were taken out.
fn clean(body: &str, images: bool, inline: Inline) -> (String, usize) {
    let blocked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = blocked.clone();
    let cleaned = ammonia::Builder::default()
        .add_generic_attributes(["style", "align", "width", "height", "bgcolor", "color"])
        .add_tag_attributes("td", ["valign", "colspan", "rowspan"])
        .add_tag_attributes("font", ["face", "size"])
        .add_tags(["font", "center"])
        .url_schemes(["http", "https", "mailto", "data", "cid"].into())
        .attribute_filter(move |element, attribute, value| {
            if let ("img", "src") = (element, attribute)
                && let Some(id) = value
                    .trim()
                    .get(..4)
                    .filter(|s| s.eq_ignore_ascii_case("cid:"))
                    .map(|_| &value.trim()[4..])
            {
                return inline
                    .get(&id.to_lowercase())
                    .map(|data| data.clone().into());
            }
            let remote_source = match (element, attribute) {
                ("img", "src") | (_, "background") => remote(value),
                (_, "style") => loads_in_style(value),
                _ => false,
            };
            if remote_source && !images {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return None;
            }
            Some(value.into())
        })
        .clean(body)
        .to_string();
    // The browser holds the line the filter draws: without the reader's word, the document may load no
    // image but its own data, whatever spelling got past the filter.
    let images_from = if images {
        "data: https: http:"
    } else {
        "data:"
    };
    let document = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src {images_from}; \
         style-src 'unsafe-inline'; script-src 'none'; object-src 'none'\">\
         <base target=\"_blank\"><style>body{{font:14px/1.4 system-ui,sans-serif;margin:0;word-wrap:break-word}}\
         img{{max-width:100%;height:auto}}</style></head><body>{cleaned}</body></html>"
    );
    let blocked = blocked.load(std::sync::atomic::Ordering::Relaxed);
    (document, blocked)
}

#[cfg(test)]
mod tests {
    use super::{Inline, clean, cleaned_html};

    #[test]
    fn deep_nesting_is_shown_as_text() {
        // A message of 200,000 nested elements (1 MB) is shown as its text.
        let raw = format!(
            "Subject: deep\r\nContent-Type: text/html\r\n\r\n{}deep inside<b>&amp;</b>{}",
            "<div>".repeat(200_000),
            "</div>".repeat(200_000)
        );
        let (html, blocked) = cleaned_html(raw.as_bytes(), false).unwrap();
        assert!(
            html.contains("<pre>deep inside&amp;</pre>"),
            "{}",
            &html[..200]
        );
        assert!(!html.contains("<div>") && blocked == 0);
    }

    #[test]
    fn scripts_handlers_and_remote_images_are_taken_out() {
        let hostile = r#"<p onclick="steal()">Hi<script>alert(1)</script><img src="https://t.example/p.gif" onerror="x()">
<a href="javascript:alert(2)">link</a><iframe src="https://evil.example"></iframe><div style="background:url(https://t.example/b)">x</div></p>"#;
        let (html, blocked) = clean(hostile, false, Inline::default());
        for gone in [
            "<script",
            "onclick",
            "onerror",
            "javascript:",
            "<iframe",
            "t.example",
        ] {
            assert!(!html.contains(gone), "{gone} in {html}");
        }
        assert_eq!(blocked, 2);
        let (html, blocked) = clean(hostile, true, Inline::default());
        assert!(
            html.contains("https://t.example/p.gif") && blocked == 0,
            "{html}"
        );
        assert!(!html.contains("<script") && !html.contains("onerror"));
    }

    #[test]
    fn remote_images_in_any_spelling_are_held_back_and_the_policy_says_so() {
        // Each of these loaded a tracker in Chromium when only `http:`, `https:`, `//` and `url(` counted.
        let spellings = [
            r#"<img src="ht&#9;tp://t.example/tab.png">"#,
            r#"<img src="ht&#10;tp://t.example/nl.png">"#,
            r#"<img src="\\t.example/bs.png">"#,
            r#"<img src="/\t.example/sbs.png">"#,
            r#"<div style="background:u\72 l(http://t.example/esc.png)">x</div>"#,
            r#"<div style="background-image:image-set('http://t.example/set.png' 1x)">x</div>"#,
            r#"<div style="background-image:-webkit-image-set('http://t.example/wset.png' 1x)">x</div>"#,
            r#"<div style="border-image-source:image-set('http://t.example/bset.png' 1x)">x</div>"#,
        ];
        for spelling in spellings {
            let (html, blocked) = clean(spelling, false, Inline::default());
            assert_eq!(blocked, 1, "{spelling}: {html}");
            assert!(!html.contains("t.example"), "{spelling}: {html}");
            assert!(html.contains("img-src data:;"), "{html}");
        }
        // The message's own images stay (a part it does not have is no image); shown on request,
        // remote ones are allowed by the policy.
        let (html, blocked) = clean(
            r#"<img src="data:image/png;base64,AAAA"><img src="cid:nowhere">"#,
            false,
            Inline::default(),
        );
        assert_eq!(blocked, 0);
        assert!(
            html.contains("data:image/png") && !html.contains("cid:"),
            "{html}"
        );
        let (html, _) = clean(spellings[0], true, Inline::default());
        assert!(html.contains("img-src data: https: http:;"), "{html}");
    }

    #[test]
    fn a_message_shows_its_own_images() {
        let raw = "Subject: logo\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/html\r\n\r\n<p>Hi<img src=\"cid:Logo1@x\"><img src=\"CID:big@x\"></p>\r\n\
--b\r\nContent-Type: image/png\r\nContent-ID: <logo1@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
--b\r\nContent-Type: image/svg+xml\r\nContent-ID: <big@x>\r\n\r\n<svg/>\r\n\
--b--\r\n";
        let (html, blocked) = cleaned_html(raw.as_bytes(), false).unwrap();
        assert_eq!(blocked, 0);
        // The PNG by its Content-ID in any case; the SVG (no raster image) is left out.
        assert!(
            html.contains(r#"<img src="data:image/png;base64,iVBORw0KGgo=">"#),
            "{html}"
        );
        assert_eq!(html.matches("<img").count(), 2, "{html}");
        assert!(!html.contains("svg") && !html.contains("cid:"), "{html}");
    }
}
