//! One user-name rule on every protocol: `bob`, `Bob` and `bob@<a local domain>` are user bob; another
//! domain's `bob` is nobody, refused exactly like a wrong password.

use base64::Engine;
use jmail::server::Service;

use crate::harness::{Raw, TestServer};

const FORMS: [&str; 5] = [
    "bob",
    "Bob",
    "bob@localhost",
    "BOB@LocalHost",
    "bob@mail.example",
];

#[tokio::test]
async fn every_protocol_takes_the_same_name_forms() {
    let s = TestServer::start_with(|c| {
        c.pop3_port = Some(0);
        c.submission_port = Some(0);
        c.domains = vec!["localhost".into(), "mail.example".into()];
        // The refused forms are failures from one address: no penalty waits, no block.
        c.limits.login_penalty_secs_max = 0;
        c.limits.login_block_failures = 1000;
    })
    .await;
    s.add_user("bob", "bob-pw").await;
    for (name, ok) in FORMS.iter().map(|f| (*f, true)).chain([
        ("bob@example.org", false),
        ("bob@", false),
        ("@localhost", false),
    ]) {
        let mut native = s.raw().await;
        native.send(b"JMAIL 2.0\r\n").await;
        native.expect_prefix("OK JMAIL 2.0 ").await;
        native
            .send(format!("LOGIN {name} bob-pw\r\n").as_bytes())
            .await;
        let want = if ok {
            "OK LOGIN welcome"
        } else {
            "NO AUTH invalid user name or password"
        };
        native.expect(want).await;

        let mut pop3 = Raw::plain(s.pop3_addr()).await;
        pop3.line().await;
        pop3.send(format!("USER {name}\r\nPASS bob-pw\r\n").as_bytes())
            .await;
        pop3.expect("+OK send PASS").await;
        let reply = pop3.line().await;
        assert_eq!(reply.starts_with("+OK"), ok, "POP3 {name}: {reply}");
        if !ok {
            assert_eq!(reply, "-ERR [AUTH] invalid user name or password");
        }

        let mut smtp = Raw::plain(s.addr_of(Service::Submission)).await;
        smtp.line().await;
        let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{name}\0bob-pw"));
        smtp.send(format!("EHLO x\r\nAUTH PLAIN {plain}\r\n").as_bytes())
            .await;
        let reply = loop {
            let line = smtp.line().await;
            if !line.starts_with("250") {
                break line;
            }
        };
        assert_eq!(reply.starts_with("235 "), ok, "submission {name}: {reply}");
    }
}
