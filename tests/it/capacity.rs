//! Ten thousand simultaneous connections on this 2-core machine, with a normal client still served.
//! The server runs as its own process so each side has its own open-file limit.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::connect_from;

const CONNECTIONS: usize = 10_000;
/// Source addresses used: the default cap for an address nobody has logged in from (50) times these
/// must cover CONNECTIONS.
const SOURCES: usize = 200;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_and_a_normal_client_is_still_served() {
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_jmail"))
        .args(["user", "add", "alice", "--password-stdin", "--data-dir"])
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"pw\n").unwrap();
    assert!(add.wait_with_output().unwrap().status.success());
    let mut server = crate::cli::serve_with(dir.path(), &[]);
    let addr: SocketAddr = server.addr.parse().unwrap();
    let rss_before = rss_kib(server.child.id());

    let mut tasks = Vec::with_capacity(CONNECTIONS);
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(256)); // connects in flight at once
    for i in 0..CONNECTIONS {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let source = [127, 0, 1, 1 + (i % SOURCES) as u8];
            let permit = gate.acquire_owned().await.unwrap();
            let mut s = connect_from(source, addr).await;
            let mut greeting = [0u8; 28];
            s.read_exact(&mut greeting).await.unwrap();
            assert_eq!(&greeting, b"You have connected to Jmail.");
            s.write_all(b"JMAIL 2.0\r\n").await.unwrap();
            let mut ok = [0u8; 13];
            s.read_exact(&mut ok).await.unwrap();
            assert_eq!(&ok, b"OK JMAIL 2.0 ");
            drop(permit);
            s
        }));
    }
    let mut open = Vec::with_capacity(CONNECTIONS);
    for t in tasks {
        open.push(t.await.unwrap());
    }
    let rss_after = rss_kib(server.child.id());
    eprintln!(
        "{CONNECTIONS} connections: server RSS {rss_before} KiB -> {rss_after} KiB ({:.1} KiB per connection)",
        (rss_after - rss_before) as f64 / CONNECTIONS as f64
    );

    let mut c = jmail::client::Client::connect(&server.addr).await.unwrap();
    c.login("alice", "pw").await.unwrap();
    c.send(&["alice".into()], "under load", b"still served")
        .await
        .unwrap();
    assert_eq!(c.list(0).await.unwrap().messages.len(), 2);
    drop(open);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
