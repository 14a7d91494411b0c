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
    if nesting_work(&body) > HTML_NESTING_WORK_MAX {
        // Too deeply nested to be cleaned in bounded time: its text, as text.
        let text = message.body_text(0).unwrap_or_default();
        let body = format!("<pre>{}</pre>", ammonia::clean_text(&text));
        return Some(clean(&body, images));
    }
    Some(clean(&body, images))
}

/// The most work the HTML parser under ammonia may be given by one message, as [`nesting_work`]
/// estimates it. html5ever walks its stack of open elements at each start tag, so n nested elements
/// cost about n²/2 steps: 100,000 nested `<div>`s (500 KB, well within a message's size) took 37 s of
/// CPU here, and a million would take an hour, on the blocking pool where nothing can cancel it. 50
/// million is 10,000 nested elements, about 0.2 s; real mail nests a few dozen deep.
const HTML_NESTING_WORK_MAX: u64 = 50_000_000;

/// Elements that never hold others (void elements): they do not deepen the stack.
const VOID_ELEMENTS: [&[u8]; 13] = [
    b"area", b"base", b"br", b"col", b"embed", b"hr", b"img", b"input", b"link", b"meta",
    b"source", b"track", b"wbr",
];

/// Elements a start tag of their own kind closes when one is the current element (`<li>a<li>b`).
const SELF_CLOSING_SIBLINGS: [&[u8]; 8] =
    [b"p", b"li", b"dt", b"dd", b"tr", b"td", b"th", b"option"];

/// Elements an end tag of a special element closes on its way down (HTML's "implied end tags").
const IMPLIED_END: [&[u8]; 10] = [
    b"dd",
    b"dt",
    b"li",
    b"optgroup",
    b"option",
    b"p",
    b"rb",
    b"rp",
    b"rt",
    b"rtc",
];

/// HTML's "special" elements (less the void ones): an end tag of another element stops at them,
/// closing nothing (`<span><div></span>` leaves both open).
const SPECIAL: [&[u8]; 70] = [
    b"address",
    b"applet",
    b"article",
    b"aside",
    b"basefont",
    b"bgsound",
    b"blockquote",
    b"body",
    b"button",
    b"caption",
    b"center",
    b"colgroup",
    b"dd",
    b"details",
    b"dir",
    b"div",
    b"dl",
    b"dt",
    b"fieldset",
    b"figcaption",
    b"figure",
    b"footer",
    b"form",
    b"frame",
    b"frameset",
    b"h1",
    b"h2",
    b"h3",
    b"h4",
    b"h5",
    b"h6",
    b"head",
    b"header",
    b"hgroup",
    b"html",
    b"iframe",
    b"keygen",
    b"li",
    b"listing",
    b"main",
    b"marquee",
    b"menu",
    b"nav",
    b"noembed",
    b"noframes",
    b"noscript",
    b"object",
    b"ol",
    b"p",
    b"param",
    b"plaintext",
    b"pre",
    b"script",
    b"search",
    b"section",
    b"select",
    b"style",
    b"summary",
    b"table",
    b"tbody",
    b"td",
    b"template",
    b"textarea",
    b"tfoot",
    b"th",
    b"thead",
    b"title",
    b"tr",
    b"ul",
    b"xmp",
];

fn is_in(list: &[&[u8]], name: &[u8]) -> bool {
    list.contains(&name)
}

/// The sum, over the start tags of `html`, of how deeply each is nested: a linear estimate of what
/// parsing it costs (see [`HTML_NESTING_WORK_MAX`]); it stops counting once past that. It keeps the
/// stack of open elements as the parser does, erring towards deeper: an end tag walks down the stack
/// to its element and closes it with those above, but stops, closing nothing, at a special element
/// (other than one an end tag implies the end of, for a special end tag). Counting every end tag as a
/// close let `<div></x>` repeated 60,000 times pass as flat, and taking any match let
/// `<span><div></span>` repeated pass: each took over 20 s of CPU to clean.
fn nesting_work(html: &str) -> u64 {
    let bytes = html.as_bytes();
    let name_at = |at: usize| {
        let end = bytes[at..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map_or(bytes.len(), |n| at + n);
        bytes[at..end].to_ascii_lowercase()
    };
    let mut open: Vec<Vec<u8>> = Vec::new();
    let mut work = 0u64;
    let mut at = 0;
    while let Some(found) = bytes[at..].iter().position(|&b| b == b'<') {
        at += found + 1;
        match bytes.get(at) {
            Some(b'/') if bytes.get(at + 1).is_some_and(u8::is_ascii_alphabetic) => {
                let name = name_at(at + 1);
                let special_end = is_in(&SPECIAL, &name);
                let mut closes = None;
                for (i, node) in open.iter().enumerate().rev() {
                    // Looking down the stack costs what the parser's own look costs: counted too.
                    work = work.saturating_add(1);
                    if *node == name {
                        closes = Some(i);
                        break;
                    }
                    let passed_over = special_end && is_in(&IMPLIED_END, node);
                    if is_in(&SPECIAL, node) && !passed_over {
                        break;
                    }
                }
                if let Some(i) = closes {
                    open.truncate(i);
                }
            }
            Some(b) if b.is_ascii_alphabetic() => {
                let name = name_at(at);
                if !is_in(&VOID_ELEMENTS, &name) {
                    if is_in(&SELF_CLOSING_SIBLINGS, &name) && open.last() == Some(&name) {
                        open.pop();
                    }
                    open.push(name);
                }
                work = work.saturating_add(open.len() as u64);
            }
            _ => {}
        }
        if work > HTML_NESTING_WORK_MAX {
            break;
        }
    }
    work
}

/// Whether a URL would fetch from elsewhere (a remote image, a tracking pixel).
fn remote(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("http:") || lower.starts_with("https:") || lower.starts_with("//")
}

/// A message's HTML made safe to show: a whole document with no script in it, and (unless `images`)
/// no remote image; and how many remote images were taken out.
pub fn clean(body: &str, images: bool) -> (String, usize) {
    let blocked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = blocked.clone();
    let cleaned = ammonia::Builder::default()
        .add_generic_attributes(["style", "align", "width", "height", "bgcolor", "color"])
        .add_tag_attributes("td", ["valign", "colspan", "rowspan"])
        .add_tag_attributes("font", ["face", "size"])
        .add_tags(["font", "center"])
        .url_schemes(["http", "https", "mailto", "data", "cid"].into())
        .attribute_filter(move |element, attribute, value| {
            let remote_source = match (element, attribute) {
                ("img", "src") | (_, "background") => remote(value),
                (_, "style") => value.to_ascii_lowercase().contains("url("),
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
    let document = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'none'; object-src 'none'\">\
         <base target=\"_blank\"><style>body{{font:14px/1.4 system-ui,sans-serif;margin:0;word-wrap:break-word}}\
         img{{max-width:100%;height:auto}}</style></head><body>{cleaned}</body></html>"
    );
    let blocked = blocked.load(std::sync::atomic::Ordering::Relaxed);
    (document, blocked)
}

#[cfg(test)]
mod tests {
    use super::{HTML_NESTING_WORK_MAX, clean, cleaned_html, nesting_work};

    #[test]
    fn deep_nesting_is_estimated_before_it_is_parsed() {
        // About 10,000 nested elements: the most cleaned as HTML.
        let nested = |n: usize| "<div>".repeat(n) + "x" + &"</div>".repeat(n);
        assert!(nesting_work(&nested(9_900)) <= HTML_NESTING_WORK_MAX);
        assert!(nesting_work(&nested(10_100)) > HTML_NESTING_WORK_MAX);
        // A long flat newsletter (50,000 rows of a table, lines broken, paragraphs never closed)
        // is cheap however long.
        let row = "<tr><td><p>row<br><img src=x></td></tr>\n";
        let flat = "<table>".to_string() + &row.repeat(50_000);
        assert!(
            nesting_work(&flat) <= 20 * 50_000 + 1,
            "{}",
            nesting_work(&flat)
        );
        assert_eq!(nesting_work("a < b </ c <"), 0);
        // End tags of elements that are not open close nothing: still 20,000 deep.
        assert!(nesting_work(&"<div></x>".repeat(20_000)) > HTML_NESTING_WORK_MAX);
        assert!(nesting_work(&"<div></DIV>".repeat(20_000)) < 100_000);
        // An end tag closes what was opened after its element too.
        assert_eq!(nesting_work("<div><span><b></div><i>"), 1 + 2 + 3 + 3 + 1);
        // ...but not past a special element: `</span>` under an open `<div>` closes nothing.
        assert!(nesting_work(&"<span><div></span>".repeat(10_000)) > HTML_NESTING_WORK_MAX);
        // Siblings that close each other, and implied ends, keep a list flat.
        assert!(nesting_work(&"<option><span>".repeat(10_000)) > HTML_NESTING_WORK_MAX);
        assert!(nesting_work(&"<ul><li>a<li>b<li><p>c</ul>".repeat(10_000)) < 200_000);
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
        let (html, blocked) = clean(hostile, false);
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
        let (html, blocked) = clean(hostile, true);
        assert!(
            html.contains("https://t.example/p.gif") && blocked == 0,
            "{html}"
        );
        assert!(!html.contains("<script") && !html.contains("onerror"));
    }
}
