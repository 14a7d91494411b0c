//! Two Jmail hosts for two domains on two loopback addresses, with a DNS server of the test's own:
//! mail between them is queued, DKIM-signed, checked (SPF, DKIM, DMARC) and delivered; a bad recipient
//! comes back as a notification; a host that is down gets its mail once it is back; forged mail meets
//! the sender domain's DMARC policy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use jmail::config::Config;
use jmail::server::Service;
use jmail::store::QueueStore;
use rand::Rng;
use tempfile::TempDir;

use crate::dns::TestDns;
use crate::harness::{Raw, TestServer, connect_from};

/// Two loopback addresses of one random /24 and a port free on the first (both hosts listen for SMTP
/// on it, as real MX hosts all listen on 25).
pub fn addresses() -> (Ipv4Addr, Ipv4Addr, Ipv4Addr, u16) {
    let mut rng = rand::thread_rng();
    let (x, y) = (rng.gen_range(1..250u8), rng.gen_range(1..250u8));
    let a = Ipv4Addr::new(127, x, y, 2);
    let probe = std::net::TcpListener::bind((a, 0)).unwrap();
    let port = probe.local_addr().unwrap().port();
    (
        a,
        Ipv4Addr::new(127, x, y, 3),
        Ipv4Addr::new(127, x, y, 9),
        port,
    )
}

pub fn tune(c: &mut Config, domain: &str, ip: Ipv4Addr, port: u16, dns: SocketAddr) {
    c.bind = IpAddr::V4(ip);
    c.domains = vec![domain.to_string()];
    c.hostname = Some(format!("mx.{domain}"));
    c.smtp_port = Some(port);
    c.submission_port = Some(0);
    c.dns_servers = vec![dns];
    c.outbound_port = port;
    // Every host of these tests is on 127.0.0.x.
    c.outbound_private_addresses = true;
    c.inbound_auth_checks = true;
    c.limits.queue_retry_secs_min = 1;
    c.limits.queue_retry_secs_max = 1;
}

/// Publishes a domain: MX, the host's address, SPF, DKIM keys (made in its data dir) and DMARC.
pub fn publish(dns: &TestDns, domain: &str, ip: Ipv4Addr, dir: &TempDir, dmarc: &str) {
    let host = format!("mx.{domain}");
    dns.mx(domain, &host);
    dns.a(&host, ip);
    dns.txt(domain, &format!("v=spf1 ip4:{ip} -all"));
    let keys = jmail::outbound::dkim::Dkim::new(dir.path())
        .public_keys(domain)
        .unwrap();
    dns.txt(
        &format!(
            "{}._domainkey.{domain}",
            jmail::outbound::dkim::SELECTOR_ED25519
        ),
        &format!("v=DKIM1; k=ed25519; p={}", keys.ed25519),
    );
    dns.txt(
        &format!(
            "{}._domainkey.{domain}",
            jmail::outbound::dkim::SELECTOR_RSA
        ),
        &format!("v=DKIM1; k=rsa; p={}", keys.rsa),
    );
    dns.txt(&format!("_dmarc.{domain}"), &format!("v=DMARC1; {dmarc}"));
}

/// Sends with Python's smtplib over submission (AUTH PLAIN on loopback); checks every recipient was
/// taken.
pub async fn submit(
    s: &TestServer,
    user: &str,
    password: &str,
    from: &str,
    to: &[&str],
    subject: &str,
) {
    let taken = submit_with(s, (user, password, from), to, subject, (&[], &[])).await;
    assert_eq!(taken, "{}");
}

/// [`submit`] with these MAIL and RCPT options (RFC 3461's, say); what smtplib reports: `{}` when every
/// recipient was taken, the refused recipients' codes and texts, or MAIL's code and text.
pub async fn submit_with(
    s: &TestServer,
    (user, password, from): (&str, &str, &str),
    to: &[&str],
    subject: &str,
    (mail_options, rcpt_options): (&[&str], &[&str]),
) -> String {
    let script = r#"
import smtplib, sys, json
from email.message import EmailMessage
host, port, user, pw, sender, subject, mopts, ropts = sys.argv[1:9]
to = sys.argv[9:]
m = EmailMessage()
m["From"] = sender
m["To"] = ", ".join(to)
m["Subject"] = subject
m.set_content("Hello from " + sender + "\n.a dot line\nthe body of " + subject + "\n")
s = smtplib.SMTP(host, int(port))
s.login(user, pw)
try:
    print(json.dumps(s.send_message(m, mail_options=json.loads(mopts), rcpt_options=json.loads(ropts))))
except smtplib.SMTPSenderRefused as e:
    print(e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    print(json.dumps({k: [v[0], v[1].decode()] for k, v in e.recipients.items()}))
s.quit()
"#;
    let addr = s.addr_of(Service::Submission);
    let json = |l: &[&str]| serde_json::to_string(l).unwrap();
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([
            addr.ip().to_string(),
            addr.port().to_string(),
            user.into(),
            password.into(),
            from.into(),
            subject.into(),
            json(mail_options),
            json(rcpt_options),
        ])
        .args(to)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "smtplib: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// alice@a.test sends one message over a.test's submission port.
async fn alice_sends(a: &TestServer, to: &str, subject: &str) {
    submit(a, "alice", "alice-pw", "alice@a.test", &[to], subject).await;
}

/// Says each line and checks the start of the (last line of the) reply.
async fn dialogue(r: &mut Raw, steps: &[(String, &str)]) {
    for (line, want) in steps {
        r.send(format!("{line}\r\n").as_bytes()).await;
        let mut reply = r.line().await;
        while reply.as_bytes().get(3) == Some(&b'-') {
            reply = r.line().await;
        }
        assert!(reply.starts_with(want), "{line}: {reply}");
    }
}

/// Waits until `a`'s queue satisfies `done`, and returns it.
async fn queue_until(
    a: &TestServer,
    done: impl Fn(&[jmail::store::QueueEntry]) -> bool,
) -> Vec<jmail::store::QueueEntry> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let queue = a.store.queue_list().await.unwrap();
        if done(&queue) {
            return queue;
        }
        assert!(tokio::time::Instant::now() < deadline, "{queue:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `user`'s folder holds a message whose text contains `needle`; returns it.
pub async fn arrives(
    s: &TestServer,
    user: &str,
    password: &str,
    folder: &str,
    needle: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = s.client(user, password).await;
        c.select(folder).await.unwrap();
        let listing = c.list(0).await.unwrap();
        for m in listing.messages {
            let text = String::from_utf8_lossy(&c.read(m.id).await.unwrap()).into_owned();
            if text.contains(needle) {
                return text;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle:?} never reached {user}'s {folder}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The header fields named `name` (first lines only).
pub fn header<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    let head = message.split("\r\n\r\n").next().unwrap();
    let prefix = format!("{}:", name.to_ascii_lowercase());
    head.split("\r\n")
        .filter(|line| line.to_ascii_lowercase().starts_with(&prefix))
        .collect()
}

/// Authentication-Results with its folded lines joined.
pub fn auth_results(message: &str) -> String {
    let head = message.split("\r\n\r\n").next().unwrap();
    let at = head
        .find("Authentication-Results:")
        .expect("an Authentication-Results header");
    let rest = &head[at..];
    let mut out = String::new();
    for (i, line) in rest.split("\r\n").enumerate() {
        if i > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        out.push_str(line.trim());
        out.push(' ');
    }
    out
}

/// `a.test` (with alice) and `b.test` (with bob), both published with DMARC `p=reject`.
pub struct TwoHosts {
    pub dns: TestDns,
    pub a: TestServer,
    pub b: TestServer,
    pub ip_b: Ipv4Addr,
    /// A third address, of neither host.
    pub ip_stranger: Ipv4Addr,
    pub port: u16,
}

pub async fn two_hosts() -> TwoHosts {
    let dns = TestDns::start().await;
    let (ip_a, ip_b, ip_stranger, port) = addresses();
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    publish(&dns, "a.test", ip_a, &dir_a, "p=reject");
    publish(&dns, "b.test", ip_b, &dir_b, "p=reject");
    let a = TestServer::start_in(dir_a, |c| tune(c, "a.test", ip_a, port, dns.addr)).await;
    let b = TestServer::start_in(dir_b, |c| tune(c, "b.test", ip_b, port, dns.addr)).await;
    a.add_user("alice", "alice-pw").await;
    b.add_user("bob", "bob-pw").await;
    TwoHosts {
        dns,
        a,
        b,
        ip_b,
        ip_stranger,
        port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_domains_exchange_signed_checked_mail() {
    let TwoHosts {
        dns,
        a,
        b,
        ip_b,
        ip_stranger,
        port,
    } = two_hosts().await;

    // alice@a.test → bob@b.test: signed by a.test, checked and accepted by b.test.
    alice_sends(&a, "bob@b.test", "hello bob").await;
    let got = arrives(&b, "bob", "bob-pw", "INBOX", "hello bob").await;
    let results = auth_results(&got);
    assert!(
        results.starts_with("Authentication-Results: mx.b.test;"),
        "{results}"
    );
    assert!(results.contains("dkim=pass"), "{results}");
    assert!(results.contains("header.d=a.test"), "{results}");
    assert!(results.contains("spf=pass"), "{results}");
    assert!(results.contains("smtp.mailfrom=alice@a.test"), "{results}");
    assert!(results.contains("dmarc=pass"), "{results}");
    assert_eq!(
        header(&got, "DKIM-Signature").len(),
        2,
        "ed25519 and rsa: {got}"
    );
    assert!(
        got.contains("by mx.b.test (Jmail) with ESMTPS"),
        "over TLS: {got}"
    );
    assert!(
        got.contains("\r\n.a dot line\r\n"),
        "dot-stuffing undone: {got}"
    );

    // bob replies.
    submit(
        &b,
        "bob",
        "bob-pw",
        "bob@b.test",
        &["alice@a.test"],
        "re: hello bob",
    )
    .await;
    let reply = arrives(&a, "alice", "alice-pw", "INBOX", "re: hello bob").await;
    assert!(auth_results(&reply).contains("dmarc=pass"), "{reply}");

    // A recipient b.test does not have: alice gets a notification naming it.
    alice_sends(&a, "nobody@b.test", "to nobody").await;
    let dsn = arrives(&a, "alice", "alice-pw", "INBOX", "Undelivered Mail").await;
    assert!(dsn.contains("report-type=delivery-status"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@b.test\r\nAction: failed\r\nStatus: 5.1.1"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Subject: to nobody"),
        "the original header is quoted: {dsn}"
    );
    assert!(
        a.store.queue_list().await.unwrap().is_empty(),
        "nothing left queued"
    );

    // b.test down: the message waits in a.test's queue, then goes once b.test is back.
    let dir_b = b.stop().await;
    alice_sends(&a, "bob@b.test", "while you were away").await;
    let queue = queue_until(&a, |q| q.len() == 1 && q[0].last_error.is_some()).await;
    assert_eq!(queue[0].recipients, vec!["bob@b.test".to_string()]);
    let b = TestServer::start_in(dir_b, |c| tune(c, "b.test", ip_b, port, dns.addr)).await;
    arrives(&b, "bob", "bob-pw", "INBOX", "while you were away").await;
    queue_until(&a, |q| q.is_empty()).await;

    // Forged: "alice@a.test" sent to b.test straight from another address. a.test says p=reject.
    let forged =
        "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: forged\r\n\r\nsend money\r\n.\r\n";
    let smtp_b = b.addr_of(Service::Smtp);
    let mut r = Raw {
        stream: tokio::io::BufReader::new(connect_from(ip_stranger.octets(), smtp_b).await),
    };
    r.expect("220 b.test ESMTP Jmail ready").await;
    let steps = [
        ("EHLO evil.test", "250"),
        ("MAIL FROM:<alice@a.test>", "250 2.1.0"),
        ("RCPT TO:<bob@b.test>", "250 2.1.5"),
        ("DATA", "354"),
    ];
    dialogue(&mut r, &steps.map(|(l, w)| (l.to_string(), w))).await;
    r.send(forged.as_bytes()).await;
    r.expect("550 5.7.1 Message refused: it fails the DMARC policy of a.test")
        .await;
    // Forms that name no one author domain used to get past p=reject while bob was shown
    // "alice@a.test": they are refused before any check.
    for (head, why) in [
        (
            "From: x@evil.test\r\nFrom: alice@a.test\r\n",
            "it has more than one From field (RFC 5322 3.6)",
        ),
        (
            "From: alice@a.test <\r\n",
            "its From field names no readable address",
        ),
        (
            "From: alice@a.test.\r\n",
            "its From field names no readable address",
        ),
        (
            "From: x@evil.test, alice@a.test\r\n",
            "its From field names more than one domain",
        ),
        ("", "it has no From field (RFC 5322 3.6)"),
    ] {
        r.send(b"MAIL FROM:<alice@a.test>\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n")
            .await;
        r.expect("250 2.1.0 Sender OK").await;
        r.expect("250 2.1.5 Recipient OK").await;
        r.expect_prefix("354").await;
        r.send(format!("{head}To: bob@b.test\r\nSubject: forged\r\n\r\nx\r\n.\r\n").as_bytes())
            .await;
        r.expect(&format!("550 5.7.1 Message refused: {why}")).await;
    }
    // With p=quarantine it is kept, in Junk, marked as failing.
    dns.txt("_dmarc.a.test", "v=DMARC1; p=quarantine");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.send(b"MAIL FROM:<alice@a.test>\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n")
        .await;
    r.expect("250 2.1.0 Sender OK").await;
    r.expect("250 2.1.5 Recipient OK").await;
    r.expect_prefix("354").await;
    // A forger's own "pass" claiming to be b.test's is removed.
    r.send(
        format!("Authentication-Results: mx.b.test; dmarc=pass header.from=a.test\r\n{forged}")
            .as_bytes(),
    )
    .await;
    r.expect_prefix("250 2.0.0 OK").await;
    let junk = arrives(&b, "bob", "bob-pw", "Junk", "send money").await;
    let results = auth_results(&junk);
    assert!(results.contains("dmarc=fail"), "{results}");
    assert!(results.contains("spf=fail"), "{results}");
    assert_eq!(header(&junk, "Authentication-Results").len(), 1, "{junk}");
    // `jmail read` tells bob which of his mail is really from whom it says.
    let scratch = TempDir::new().unwrap();
    let native = b.addr.to_string();
    let read = |folder: &str, id: &str| {
        crate::cli::as_user(
            scratch.path(),
            &native,
            "bob",
            "bob-pw",
            &["read", "--folder", folder, id],
        )
    };
    let out = read("INBOX", "2");
    assert!(
        crate::cli::text(&out.stdout)
            .contains("\nVerified: yes, the sender is a.test (DMARC pass)\n"),
        "{}{}",
        crate::cli::text(&out.stdout),
        crate::cli::text(&out.stderr)
    );
    let out = read("Junk", "1");
    assert!(out.status.success(), "{}", crate::cli::text(&out.stderr));
    assert!(
        crate::cli::text(&out.stdout)
            .contains("\nVerified: NO: not really from a.test (DMARC fail; DKIM none, SPF fail)\n"),
        "{}",
        crate::cli::text(&out.stdout)
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn required_tls_is_verified_and_the_hourly_limit_holds() {
    let dns = TestDns::start().await;
    let (ip_a, ip_b, _, port) = addresses();
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    publish(&dns, "a.test", ip_a, &dir_a, "p=none");
    publish(&dns, "b.test", ip_b, &dir_b, "p=none");
    let b = TestServer::start_in(dir_b, |c| tune(c, "b.test", ip_b, port, dns.addr)).await;
    b.add_user("bob", "bob-pw").await;
    let require = |c: &mut Config| {
        tune(c, "a.test", ip_a, port, dns.addr);
        c.outbound_tls_required_domains = vec!["B.test".into()];
        c.limits.outbound_messages_per_hour_max = 2;
    };
    let a = TestServer::start_in(dir_a, require).await;
    a.add_user("alice", "alice-pw").await;

    // b.test's certificate is self-signed: no verified TLS, so the message waits.
    alice_sends(&a, "bob@b.test", "secret").await;
    let queue = queue_until(&a, |q| q.first().is_some_and(|e| e.last_error.is_some())).await;
    let error = queue[0].last_error.clone().unwrap();
    assert!(error.contains("mx.b.test: TLS handshake failed"), "{error}");

    // The hourly limit: a second message is taken, the third refused for now.
    alice_sends(&a, "bob@b.test", "second").await;
    let mut r = Raw::plain(a.addr_of(Service::Submission)).await;
    r.expect_prefix("220 ").await;
    let plain = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "\0alice\0alice-pw",
    );
    let steps = [
        ("EHLO c.test".to_string(), "250 "),
        (format!("AUTH PLAIN {plain}"), "235 "),
        ("MAIL FROM:<alice@a.test>".into(), "250 "),
        ("RCPT TO:<bob@b.test>".into(), "250 "),
        ("DATA".into(), "354 "),
        (
            "From: alice@a.test\r\nSubject: third\r\n\r\nx\r\n.".into(),
            "451 4.7.1 You have sent as much mail",
        ),
    ];
    dialogue(&mut r, &steps).await;
    assert_eq!(
        a.store.queue_list().await.unwrap().len(),
        2,
        "the third was not queued"
    );

    // Trusting b.test's certificate (as a CA would vouch for it), both go, verified.
    let dir_a = a.stop().await;
    let roots = b.dir.path().join("tls/cert.pem");
    let a = TestServer::start_in(dir_a, |c| {
        require(c);
        c.outbound_tls_roots = Some(roots);
    })
    .await;
    arrives(&b, "bob", "bob-pw", "INBOX", "Subject: secret").await;
    arrives(&b, "bob", "bob-pw", "INBOX", "Subject: second").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_host_takes_all_outbound_mail() {
    // No records at all for b.test: only the relay host setting can get the mail there.
    let dns = TestDns::start().await;
    let (ip_a, ip_b, _, port) = addresses();
    let b = TestServer::start_with(|c| tune(c, "b.test", ip_b, port, dns.addr)).await;
    b.add_user("bob", "bob-pw").await;
    let relay = format!("{ip_b}:{port}");
    let a = TestServer::start_with(|c| {
        tune(c, "a.test", ip_a, port, dns.addr);
        c.outbound_port = 1; // nothing listens there: only relay_host's own port works
        c.relay_host = Some(relay);
    })
    .await;
    a.add_user("alice", "alice-pw").await;
    alice_sends(&a, "bob@b.test", "via the relay").await;
    arrives(&b, "bob", "bob-pw", "INBOX", "via the relay").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_out_of_time_comes_back_to_its_sender() {
    let dns = TestDns::start().await;
    let (ip_a, ip_b, _, port) = addresses();
    let dir_a = TempDir::new().unwrap();
    publish(&dns, "a.test", ip_a, &dir_a, "p=none");
    // b.test's MX is published, but nothing listens there.
    dns.mx("b.test", "mx.b.test");
    dns.a("mx.b.test", ip_b);
    let a = TestServer::start_in(dir_a, |c| {
        tune(c, "a.test", ip_a, port, dns.addr);
        c.limits.queue_lifetime_secs = 2;
    })
    .await;
    a.add_user("alice", "alice-pw").await;
    alice_sends(&a, "bob@b.test", "never there").await;
    let dsn = arrives(&a, "alice", "alice-pw", "INBOX", "Undelivered Mail").await;
    assert!(
        dsn.contains("Final-Recipient: rfc822; bob@b.test\r\nAction: failed\r\nStatus: 5.4.7"),
        "{dsn}"
    );
    assert!(dsn.contains("gave up after "), "{dsn}");
    assert!(dsn.contains("Subject: never there"), "{dsn}");
    queue_until(&a, |q| q.is_empty()).await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_from_this_host_itself_is_not_checked() {
    let dns = TestDns::start().await;
    let (_, ip_b, ip_other, port) = addresses();
    let dir_b = TempDir::new().unwrap();
    publish(&dns, "b.test", ip_b, &dir_b, "p=reject");
    let b = TestServer::start_in(dir_b, |c| tune(c, "b.test", ip_b, port, dns.addr)).await;
    b.add_user("bob", "bob-pw").await;
    let message = "From: bob@b.test\r\nSubject: local script\r\n\r\nfrom cron\r\n.";
    // From 127.0.0.1 (a local script): taken as it is, though it claims b.test, which says p=reject.
    let local = tokio::net::TcpStream::connect(b.addr_of(Service::Smtp))
        .await
        .unwrap();
    assert_eq!(
        local.local_addr().unwrap().ip(),
        std::net::Ipv4Addr::LOCALHOST
    );
    let mut r = Raw {
        stream: tokio::io::BufReader::new(local),
    };
    r.expect_prefix("220 ").await;
    let steps = [
        ("EHLO localhost".to_string(), "250 "),
        ("MAIL FROM:<bob@b.test>".into(), "250 "),
        ("RCPT TO:<bob@b.test>".into(), "250 "),
        ("DATA".into(), "354 "),
        (message.into(), "250 2.0.0 OK: stored as "),
    ];
    dialogue(&mut r, &steps).await;
    let got = arrives(&b, "bob", "bob-pw", "INBOX", "local script").await;
    assert!(!got.contains("Authentication-Results"), "{got}");
    // From another address the local envelope sender is refused at once, and the same message under
    // a stranger's envelope sender is checked, and refused by b.test's DMARC policy.
    let smtp_b = b.addr_of(Service::Smtp);
    let mut r = Raw {
        stream: tokio::io::BufReader::new(connect_from(ip_other.octets(), smtp_b).await),
    };
    r.expect_prefix("220 ").await;
    let mut steps = steps;
    steps[1].1 = "550 5.7.1 Sender <bob@b.test> is an address of this server";
    dialogue(&mut r, &steps[..2]).await;
    steps[1] = ("MAIL FROM:<cron@elsewhere.test>".into(), "250 ");
    steps[4].1 = "550 5.7.1 Message refused: it fails the DMARC policy of b.test";
    dialogue(&mut r, &steps[1..]).await;
    b.stop().await;
}

/// A destination that answers without end, and one that never answers: each attempt ends with a
/// temporary error within its limits, and the worker goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_destinations_cannot_hold_the_worker() {
    use tokio::io::AsyncWriteExt;
    let dns = TestDns::start().await;
    let (ip_a, ip_b, ip_c, port) = addresses();
    let dir_a = TempDir::new().unwrap();
    publish(&dns, "a.test", ip_a, &dir_a, "p=none");
    dns.mx("endless.test", "mx.endless.test");
    dns.a("mx.endless.test", ip_b);
    dns.mx("silent.test", "mx.silent.test");
    dns.a("mx.silent.test", ip_c);
    // endless.test: a greeting of ever more lines.
    let endless = tokio::net::TcpListener::bind((ip_b, port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = endless.accept().await {
            tokio::spawn(
                async move { while s.write_all(b"220-more and more\r\n").await.is_ok() {} },
            );
        }
    });
    // silent.test: takes the connection and says nothing.
    let silent = tokio::net::TcpListener::bind((ip_c, port)).await.unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = silent.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    let a = TestServer::start_in(dir_a, |c| {
        tune(c, "a.test", ip_a, port, dns.addr);
        c.limits.outbound_reply_secs_max = 1;
    })
    .await;
    a.add_user("alice", "alice-pw").await;
    submit(
        &a,
        "alice",
        "alice-pw",
        "alice@a.test",
        &["x@endless.test", "y@silent.test"],
        "hostile",
    )
    .await;
    let queue = queue_until(&a, |q| {
        q.len() == 2 && q.iter().all(|e| e.last_error.is_some())
    })
    .await;
    let error_of = |domain: &str| {
        queue
            .iter()
            .find(|e| e.domain == domain)
            .and_then(|e| e.last_error.clone())
            .unwrap()
    };
    assert!(
        error_of("endless.test").contains("reply of more than 128 lines"),
        "{queue:?}"
    );
    assert!(
        error_of("silent.test").contains("did not answer in time"),
        "{queue:?}"
    );
    a.stop().await;
}

/// Messages waiting for one destination go over one connection, one transaction after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_messages_share_a_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let dns = TestDns::start().await;
    let (ip_a, ip_b, _, port) = addresses();
    let dir_a = TempDir::new().unwrap();
    publish(&dns, "a.test", ip_a, &dir_a, "p=none");
    dns.mx("b.test", "mx.b.test");
    dns.a("mx.b.test", ip_b);
    let a = TestServer::start_in(dir_a, |c| tune(c, "a.test", ip_a, port, dns.addr)).await;
    a.add_user("alice", "alice-pw").await;
    // b.test is down while ten messages wait.
    for n in 0..10 {
        alice_sends(&a, "bob@b.test", &format!("batch {n}")).await;
    }
    queue_until(&a, |q| {
        q.len() == 10 && q.iter().all(|e| e.last_error.is_some())
    })
    .await;
    // Then a counting SMTP server comes up there.
    let (connections, messages) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let listener = tokio::net::TcpListener::bind((ip_b, port)).await.unwrap();
    let (conns, msgs) = (connections.clone(), messages.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            conns.fetch_add(1, Ordering::SeqCst);
            let msgs = msgs.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                write.write_all(b"220 mx.b.test\r\n").await.unwrap();
                let mut data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = match (data, line.as_str()) {
                        (true, ".") => {
                            data = false;
                            msgs.fetch_add(1, Ordering::SeqCst);
                            b"250 ok\r\n"
                        }
                        (true, _) => continue,
                        (false, "DATA") => {
                            data = true;
                            b"354 go on\r\n"
                        }
                        (false, "QUIT") => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    queue_until(&a, |q| q.is_empty()).await;
    assert_eq!(messages.load(Ordering::SeqCst), 10);
    let used = connections.load(Ordering::SeqCst);
    let per_domain = jmail::config::Limits::default().outbound_connections_per_domain_max;
    assert!(used <= per_domain, "{used} connections for 10 messages");
    a.stop().await;
}

/// A stranger's message From a local address goes to Junk, even where the domain publishes no DMARC
/// policy, unless that domain's own DKIM signature on it passes (its own mail come back through a
/// forwarder, say).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_from_a_local_domain_without_its_signature_goes_to_junk() {
    let dns = TestDns::start().await;
    let (_, ip_b, ip_other, port) = addresses();
    let dir_b = TempDir::new().unwrap();
    publish(&dns, "b.test", ip_b, &dir_b, "");
    let signer = jmail::outbound::dkim::Dkim::new(dir_b.path());
    let b = TestServer::start_in(dir_b, |c| tune(c, "b.test", ip_b, port, dns.addr)).await;
    b.add_user("bob", "bob-pw").await;
    let smtp_b = b.addr_of(Service::Smtp);
    let send = |message: String| async move {
        let mut r = Raw {
            stream: tokio::io::BufReader::new(connect_from(ip_other.octets(), smtp_b).await),
        };
        r.expect_prefix("220 ").await;
        let steps = [
            ("EHLO lists.example".to_string(), "250 "),
            ("MAIL FROM:<list@lists.example>".into(), "250 "),
            ("RCPT TO:<bob@b.test>".into(), "250 "),
            ("DATA".into(), "354 "),
            (format!("{message}."), "250 2.0.0 OK: stored as "),
        ];
        dialogue(&mut r, &steps).await;
    };
    let forged = "From: Alice <alice@b.test>\r\nTo: bob@b.test\r\nSubject: forged colleague\r\n\r\nwire the money\r\n";
    send(forged.to_string()).await;
    let junk = arrives(&b, "bob", "bob-pw", "Junk", "forged colleague").await;
    let results = auth_results(&junk);
    assert!(
        results.contains("dmarc=none") && !results.contains("dkim=pass"),
        "{junk}"
    );
    let own =
        "From: alice@b.test\r\nTo: bob@b.test\r\nSubject: own mail back\r\n\r\nhello again\r\n";
    let signed = signer.sign("b.test", own.as_bytes()).unwrap() + own;
    send(signed).await;
    let inbox = arrives(&b, "bob", "bob-pw", "INBOX", "own mail back").await;
    assert!(auth_results(&inbox).contains("dkim=pass"), "{inbox}");
    b.stop().await;
}

/// A user cannot make the queue connect into this host or its network: an address literal there is
/// refused at RCPT, a domain whose MX points there comes back, and the listener on loopback never
/// hears from the queue. `outbound_private_addresses` (the other tests' setting) lets both through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_does_not_connect_inside_this_host_or_network() {
    let dns = TestDns::start().await;
    let (ip_a, _, _, port) = addresses();
    let dir_a = TempDir::new().unwrap();
    publish(&dns, "a.test", ip_a, &dir_a, "p=none");
    dns.mx("inside.test", "mx.inside.test");
    dns.a("mx.inside.test", Ipv4Addr::LOCALHOST);
    // Something listening where the MX points, which must never be reached.
    let inside = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    let a = TestServer::start_in(dir_a, |c| {
        tune(c, "a.test", ip_a, port, dns.addr);
        c.outbound_private_addresses = false;
    })
    .await;
    a.add_user("alice", "alice-pw").await;
    for literal in ["x@[127.0.0.1]", "x@[10.0.0.1]", "x@[169.254.169.254]"] {
        let refused = submit_with(
            &a,
            ("alice", "alice-pw", "alice@a.test"),
            &[literal],
            "in",
            (&[], &[]),
        )
        .await;
        assert_eq!(
            refused,
            format!("{{\"{literal}\": [553, \"5.1.3 <{literal}>: not a deliverable address\"]}}")
        );
    }
    alice_sends(&a, "x@inside.test", "to the inside").await;
    let bounce = arrives(&a, "alice", "alice-pw", "INBOX", "to the inside").await;
    assert!(
        bounce.contains("inside.test: its mail servers are at no public address"),
        "{bounce}"
    );
    assert!(a.store.queue_list().await.unwrap().is_empty());
    let reached = tokio::time::timeout(Duration::from_millis(200), inside.accept()).await;
    assert!(reached.is_err(), "the queue connected to loopback");
    a.stop().await;
}
