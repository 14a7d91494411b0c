//! The real `jmail serve` sending to another host, SIGKILLed while it delivers and started again: every
//! queued message arrives at least once, and a message arrives twice only if it was in flight at the
//! kill (at most as many as the connections open to that domain).

use std::net::Ipv4Addr;
use std::time::Duration;

use jmail::server::Service;
use tempfile::TempDir;

use crate::cli::{add_user, jmail, serve_with, text};
use crate::dns::TestDns;
use crate::federation::{addresses, publish, tune};
use crate::harness::TestServer;

const MESSAGES: usize = 100;

/// `jmail queue list --json` as another process: the entries' subjects are not in it, their count is.
fn queued(d: &std::path::Path) -> Vec<serde_json::Value> {
    let out = jmail(&["queue", "list", "--json"], d).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

fn free_port_on(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How many copies of each numbered message bob has.
async fn copies(b: &TestServer) -> Vec<usize> {
    let mut c = b.client("bob", "bob-pw").await;
    let listing = c.list(0).await.unwrap();
    let mut counts = vec![0; MESSAGES];
    for m in listing.messages {
        let raw = String::from_utf8_lossy(&c.read(m.id).await.unwrap()).into_owned();
        if let Some(n) = raw
            .split("Subject: crash-")
            .nth(1)
            .and_then(|r| r.split("\r\n").next())
            .and_then(|n| n.parse::<usize>().ok())
        {
            counts[n] += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_while_delivering_loses_nothing() {
    let dns = TestDns::start().await;
    let (ip_a, ip_b, _, port) = addresses();
    let dir_a = TempDir::new().unwrap();
    let d = dir_a.path();
    add_user(d, "alice", "alice-pw");
    publish(&dns, "a.test", ip_a, &dir_a, "p=none");
    let dir_b = TempDir::new().unwrap();
    publish(&dns, "b.test", ip_b, &dir_b, "p=none");
    let config = d.join("jmail.toml");
    std::fs::write(
        &config,
        format!(
            "domains = [\"a.test\"]\nhostname = \"mx.a.test\"\ndns_servers = [\"{}\"]\n\
             outbound_port = {port}\noutbound_private_addresses = true\n[limits]\nqueue_retry_secs_min = 1\nqueue_retry_secs_max = 1\n",
            dns.addr
        ),
    )
    .unwrap();
    let submission = free_port_on(ip_a).to_string();
    let ip = ip_a.to_string();
    let config_arg = config.display().to_string();
    let args = [
        "--bind",
        &ip,
        "--submission-port",
        &submission,
        "--config",
        &config_arg,
    ];
    let mut a = serve_with(d, &args);

    // b.test is down: everything waits in a.test's queue.
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("{ip}", {submission})
s.login("alice", "alice-pw")
for n in range({MESSAGES}):
    s.sendmail("alice@a.test", ["bob@b.test"], "From: alice@a.test\r\nSubject: crash-%d\r\n\r\nbody %d\r\n" % (n, n))
s.quit()
"#
    );
    let out = tokio::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let q = queued(d);
        if q.len() == MESSAGES && q.iter().all(|e| e["last_error"].is_string()) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{q:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // b.test comes up, bob already there; a.test is killed once a few messages have arrived. (Were bob
    // added after b.test listens, a.test, retrying every second, could reach it first and be told
    // `550 no such user`: those messages would rightly come back to alice and never reach bob.)
    add_user(dir_b.path(), "bob", "bob-pw");
    let b = TestServer::start_in(dir_b, |c| tune(c, "b.test", ip_b, port, dns.addr)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut bob = b.client("bob", "bob-pw").await;
    // The welcome message, then a few of alice's.
    while bob.list(0).await.unwrap().messages.len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries never began"
        );
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let at_kill: usize = copies(&b).await.iter().sum();
    assert!(
        at_kill < MESSAGES,
        "the kill came after every delivery: nothing tested"
    );

    // Started again, it finishes the queue.
    let again = serve_with(d, &args);
    let mut log: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let counts = copies(&b).await;
        if counts.iter().all(|&c| c >= 1) && queued(d).is_empty() {
            let twice: usize = counts.iter().map(|&c| c - 1).sum();
            let per_domain = jmail::config::Limits::default().outbound_connections_per_domain_max;
            eprintln!("{at_kill} of {MESSAGES} delivered at the kill; {twice} sent twice");
            assert!(
                twice <= per_domain,
                "{twice} sent twice; only the {per_domain} in flight at the kill may be: {counts:?}"
            );
            break;
        }
        // What the restarted server said of its deliveries, for a failure to show.
        log.extend(again.log.try_iter().filter(|l| !l.contains(" delivered ")));
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all delivered: {counts:?}, queue {:?}; a.test's log after the restart, but for \
             deliveries: {:#?}",
            queued(d),
            &log[log.len().saturating_sub(60)..]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(b.addr_of(Service::Smtp).port() == port);
    b.stop().await;
}

/// `jmail queue` while the server runs: a native SEND to another domain (whose server is down) waits
/// in the queue with its error; show, retry and drop act on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_commands_list_show_retry_and_drop() {
    // elsewhere.example's MX refuses connections: every attempt fails, for now.
    let dns = TestDns::start().await;
    dns.mx("elsewhere.example", "mx.elsewhere.example");
    dns.a("mx.elsewhere.example", Ipv4Addr::LOCALHOST);
    let closed = free_port_on(Ipv4Addr::LOCALHOST);
    let s = TestServer::start_with(|c| {
        c.dns_servers = vec![dns.addr];
        c.outbound_port = closed;
        c.outbound_private_addresses = true;
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    let mut c = s.client("alice", "alice-pw").await;
    // All or nothing: an unknown local recipient stores nothing and queues nothing.
    let refused = c
        .send(
            &["bob".into(), "carol@elsewhere.example".into()],
            "out",
            b"hi",
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(queued(s.dir.path()).is_empty());
    s.add_user("bob", "bob-pw").await;
    let sent = c
        .send_and_keep(
            &["bob".into(), "carol@elsewhere.example".into()],
            "out",
            b"hi",
        )
        .await
        .unwrap();
    assert!(sent.starts_with("SENT 2 <"), "{sent}");
    let d = s.dir.path();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let q = queued(d);
        if q.len() == 1 && q[0]["last_error"].is_string() {
            break q[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{q:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry["sender"], "alice@localhost");
    assert_eq!(
        entry["recipients"],
        serde_json::json!(["carol@elsewhere.example"])
    );
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .contains("elsewhere.example"),
        "{entry}"
    );
    let id = entry["id"].to_string();
    let out = jmail(&["queue", "list"], d).output().unwrap();
    let listing = text(&out.stdout);
    assert!(
        listing.starts_with(&format!("{id}  "))
            && listing.contains("from <alice@localhost> to carol@elsewhere.example"),
        "{listing}"
    );
    assert!(listing.contains("    last error: "), "{listing}");
    let out = jmail(&["queue", "show", &id], d).output().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["domain"], "elsewhere.example");
    let out = jmail(&["queue", "retry", &id], d).output().unwrap();
    assert!(
        text(&out.stdout).starts_with("1 message(s) due now"),
        "{}",
        text(&out.stderr)
    );
    let out = jmail(&["queue", "drop", &id], d).output().unwrap();
    assert_eq!(text(&out.stdout), format!("dropped queued message {id}\n"));
    let out = jmail(&["queue", "drop", &id], d).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("no queued message {id}")),
        "{}",
        text(&out.stderr)
    );
    assert!(queued(d).is_empty());
    // The local copy and the Sent copy were stored with the queued one, in one transaction.
    let mut sent_folder = s.client("alice", "alice-pw").await;
    sent_folder.select("Sent").await.unwrap();
    assert_eq!(sent_folder.list(0).await.unwrap().messages.len(), 1);
}
