//! The webmail in a real browser (Debian's Chromium, headless, driven by playwright-core: tests/web/):
//! sign in, read, reply with an attachment, new mail by SMTP appearing without a reload, a hostile HTML
//! message whose scripts never run, flag, move, delete, a draft, a forward, the keyboard, a phone-sized screen, and the admin page. Screenshots
//! of each screen are kept in target/webmail-screenshots/. Afterwards the store is checked: the reply
//! reached bob with its attachment, and the user the admin page added exists.

use jmail::server::Service;
use jmail::store::{MailStore, Wanted};

use crate::harness::TestServer;

const LUNCH: &[u8] = b"From: Bob <bob@localhost>\r\nTo: alice@localhost\r\nSubject: Lunch plans\r\n\
Message-ID: <lunch@localhost>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nShall we meet at noon by the river?\r\n";
const HOSTILE: &[u8] = b"From: mallory@example.net\r\nTo: alice@localhost\r\nSubject: Hostile\r\n\
MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>Hello <script>window.pwned = 1; alert('script')</script></p>\
<img src=x onerror=\"window.pwned = 2; alert('onerror')\">\
<a href=\"javascript:window.pwned=3;alert('link')\">Click me</a>\
<img src=\"https://tracker.example/pixel.gif\"><iframe src=\"https://evil.example\"></iframe>\
<img src=\"ht&#9;tp://127.0.0.1:9/tab.png\"><img src=\"\\\\127.0.0.1:9/bs.png\">\
<div style=\"background-image:image-set('http://127.0.0.1:9/set.png' 1x)\">set</div>\
<div style=\"background:u\\72 l(http://127.0.0.1:9/esc.png)\">esc</div>\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webmail_in_a_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is needed for the webmail test: apt-get install chromium (scripts/test does)"
    );
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "playwright-core is needed: npm ci --prefix tests/web (scripts/test does)"
    );
    let s = TestServer::start_with(|c| {
        c.https_port = Some(0);
        c.smtp_port = Some(0);
        c.admins = vec!["alice".to_string()];
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    for raw in [LUNCH, HOSTILE] {
        s.store
            .deliver(
                &["alice".to_string()],
                jmail::message::imported(raw.to_vec()),
                None,
            )
            .await
            .unwrap();
    }
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/webmail-screenshots");
    let out = tokio::process::Command::new("node")
        .arg(web.join("webmail.mjs"))
        .arg(format!(
            "https://127.0.0.1:{}",
            s.addr_of(Service::Https).port()
        ))
        .arg(s.addr_of(Service::Smtp).port().to_string())
        .arg(&shots)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The reply reached bob, with its attachment, and nothing else of the page's doing went astray.
    let bob = s.store.credentials("bob").await.unwrap().unwrap();
    let snapshot = s.store.snapshot(bob.inbox).await.unwrap();
    let uids: Vec<u32> = snapshot.messages.iter().map(|(u, _)| *u).collect();
    let rows = s
        .store
        .messages(
            bob.inbox,
            &uids,
            Wanted {
                summary: false,
                raw_bytes_max: 1 << 20,
            },
        )
        .await
        .unwrap();
    let reply = rows
        .iter()
        .find(|r| r.meta.subject == "Re: Lunch plans")
        .expect("bob got the reply");
    let raw = String::from_utf8_lossy(reply.raw.as_deref().unwrap()).to_string();
    assert!(raw.contains("In-Reply-To: <lunch@localhost>"), "{raw}");
    assert!(
        raw.contains("notes.txt") && raw.contains("Noon it is."),
        "{raw}"
    );
    let forwarded = rows
        .iter()
        .find(|r| r.meta.subject == "Fwd: Re: Lunch plans")
        .expect("bob got the forward");
    let raw = String::from_utf8_lossy(forwarded.raw.as_deref().unwrap()).to_string();
    assert!(
        raw.contains("notes.txt"),
        "the attachment went with it: {raw}"
    );
    assert!(
        s.user_names().await.contains(&"dave".to_string()),
        "the admin page added dave"
    );
    // The automatic reply as the page saved it: whole days in the browser's zone, the last one included.
    let alice = s.store.credentials("alice").await.unwrap().unwrap();
    let (away, version) = s.store.vacation(alice.id).await.unwrap();
    assert_eq!(version, 1);
    assert!(away.enabled);
    assert_eq!(away.subject.as_deref(), Some("Out until Friday"));
    assert_eq!(away.text_body.as_deref(), Some("Back on the 12th."));
    assert_eq!(away.html_body, None);
    let (from, to) = (away.from_micros.unwrap(), away.to_micros.unwrap());
    let day = 86_400_000_000;
    assert_eq!(to - from, 5 * day, "the 5th to the 9th, both included");
    let jan_5_utc = 1_767_571_200_000_000;
    assert!((from - jan_5_utc).abs() <= 14 * 3_600_000_000, "{from}");
    for screen in [
        "1-sign-in",
        "2-inbox",
        "4-reply",
        "5-hostile-message",
        "7-phone-list",
        "9-admin",
    ] {
        assert!(shots.join(format!("{screen}.png")).exists(), "{screen}");
    }
    s.stop().await;
}
