//! Large replies stream from the store: a READ or RETR of a 9 MiB message arrives byte for byte, and
//! forty clients that ask for it and never read hold the server to a few MiB, not forty copies.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{add_user, free_port, jmail, run_with_stdin, serve_with, text};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Reads until the POP3 multi-line end (`CRLF.CRLF`) and returns everything read.
async fn until_dot(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    while !got.ends_with(b"\r\n.\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    got
}

async fn pop3_login(addr: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut greeting = [0u8; 512];
    let n = s.read(&mut greeting).await.unwrap();
    assert!(greeting[..n].starts_with(b"+OK"));
    s.write_all(b"USER alice\r\nPASS alice-pw-123\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.iter().filter(|&&b| b == b'\n').count() < 2 {
        let n = s.read(&mut greeting).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&greeting[..n]);
    }
    assert!(
        text(&seen).lines().nth(1).unwrap().starts_with("+OK"),
        "{}",
        text(&seen)
    );
    s
}

#[test]
fn large_messages_stream_whole_and_slow_readers_hold_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "alice", "alice-pw-123");
    // 9 MiB of lines, some starting with a dot, a bare LF here and there, no line end at the very end.
    let mut body = String::new();
    for i in 0..92_000 {
        let end = if i % 7 == 0 { "\n" } else { "\r\n" };
        let dot = if i % 11 == 0 { "." } else { "" };
        body.push_str(&format!("{dot}line {i:06} {}{end}", "x".repeat(86)));
    }
    body.push_str("the end");
    let out = run_with_stdin(
        jmail(
            &["deliver", "--to", "alice", "--from", "big@example.org"],
            d,
        ),
        &body,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let raw: Vec<u8> = rusqlite::Connection::open(d.join("jmail.db"))
        .unwrap()
        .query_row("SELECT raw FROM blobs ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(raw.len() > 9_000_000, "{}", raw.len());
    let pop3_port = free_port().to_string();
    let served = serve_with(d, &["--pop3-port", &pop3_port]);
    let native = served.addr.clone();
    let pop3 = format!("127.0.0.1:{pop3_port}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Whole and exact: native READ is the stored bytes, RETR their dot-stuffed CRLF form.
        let mut c = jmail::client::Client::connect(&native).await.unwrap();
        c.login("alice", "alice-pw-123").await.unwrap();
        assert_eq!(c.read(2).await.unwrap(), raw);
        let mut p = pop3_login(&pop3).await;
        p.write_all(b"RETR 2\r\n").await.unwrap();
        let got = until_dot(&mut p).await;
        let mut want =
            format!("+OK {} octets\r\n", jmail_proto::pop3::crlf_size(&raw)).into_bytes();
        jmail_proto::pop3::dot_stuff(&raw, &mut want);
        assert_eq!(got.len(), want.len());
        assert!(
            got == want,
            "RETR differs from the stored message, dot-stuffed"
        );

        // Forty clients ask for it and never read.
        let before = rss_kib(served.child.id());
        let (mut stalled_native, mut stalled_pop3) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            let mut r = crate::harness::Raw::connect(native.parse().unwrap()).await;
            r.send(b"JMAIL 2.1\r\nLOGIN alice alice-pw-123\r\nREAD 2\r\n")
                .await;
            stalled_native.push(r);
            let mut p = pop3_login(&pop3).await;
            p.write_all(b"RETR 2\r\n").await.unwrap();
            stalled_pop3.push(p);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let after = rss_kib(served.child.id());
        let grown_mib = after.saturating_sub(before) / 1024;
        // Whole replies would be forty copies: 360 MiB and more.
        assert!(
            grown_mib < 80,
            "server RSS grew {grown_mib} MiB for 40 stalled downloads"
        );
        // Everyone else is still served meanwhile.
        let mut other = jmail::client::Client::connect(&native).await.unwrap();
        other.login("alice", "alice-pw-123").await.unwrap();
        assert!(!other.read(1).await.unwrap().is_empty());
        drop((stalled_native, stalled_pop3));
    });
    drop(served);
}
