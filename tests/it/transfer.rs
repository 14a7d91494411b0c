//! mbox and Maildir, in and out: exact bytes, idempotent, limits respected.

use jmail::store::{AccountStore, MailStore, flags};
use jmail::transfer::{ImportSummary, maildir, mbox};

use crate::harness::TestServer;

const LIMIT: usize = 65536;

/// Every message's bytes in a mailbox, by UID.
async fn raws(s: &TestServer, user: &str) -> Vec<Vec<u8>> {
    let inbox = s.store.inbox_of(user).await.unwrap().unwrap();
    let changes = s.store.changes(inbox, 0, 1000).await.unwrap();
    let mut uids: Vec<u32> = changes.messages.iter().map(|m| m.uid).collect();
    uids.sort();
    let mut out = Vec::new();
    for uid in uids {
        out.push(s.store.fetch(inbox, uid, false).await.unwrap().unwrap());
    }
    out
}

fn summary(imported: u64, present: u64, too_large: u64) -> ImportSummary {
    ImportSummary {
        imported,
        present,
        too_large,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbox_import_export_round_trip() {
    let s = TestServer::start().await;
    s.add_user("alice", "pa").await;
    s.add_user("bob", "pb").await;
    let messages: Vec<Vec<u8>> = vec![
        b"Message-ID: <1@x>\r\nFrom: Carol <carol@example.org>\r\nSubject: one\r\n\r\nFrom the start\r\n>From quoted\r\n".to_vec(),
        b"From: dave@example.org\nSubject: no id, LF endings\n\nbody\n".to_vec(),
        b"Message-ID: <3@x>\r\nSubject: no final newline\r\n\r\nend".to_vec(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.mbox");
    let mut mbox_bytes = Vec::new();
    for m in &messages {
        mbox_bytes.extend(jmail_proto::mbox::entry(
            "someone@x",
            "Mon Nov 30 12:00:00 2026",
            m,
        ));
    }
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.extend(vec![b'x'; LIMIT]);
    mbox_bytes.extend(jmail_proto::mbox::entry(
        "someone@x",
        "Mon Nov 30 12:00:00 2026",
        &big,
    ));
    std::fs::write(&file, &mbox_bytes).unwrap();

    let got = mbox::import(s.store.as_ref(), "alice", &file, LIMIT, &|_| {})
        .await
        .unwrap();
    assert_eq!(got, summary(3, 0, 1));
    let again = mbox::import(s.store.as_ref(), "alice", &file, LIMIT, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        again,
        summary(0, 3, 1),
        "importing twice stores nothing twice"
    );
    let stored = raws(&s, "alice").await;
    assert_eq!(
        stored[1..],
        messages[..],
        "byte for byte, after the welcome message"
    );
    let inbox = s.store.inbox_of("alice").await.unwrap().unwrap();
    let listed = s.store.changes(inbox, 0, 10).await.unwrap().messages;
    let one = listed.iter().find(|m| m.subject == "one").unwrap();
    assert_eq!(one.from, "carol@example.org");

    // Export, then import the export elsewhere: the same bytes again.
    let out = dir.path().join("out.mbox");
    assert_eq!(
        mbox::export(s.store.as_ref(), inbox, &out).await.unwrap(),
        4
    );
    assert_eq!(
        mbox::import(s.store.as_ref(), "bob", &out, LIMIT, &|_| {})
            .await
            .unwrap(),
        summary(4, 0, 0)
    );
    assert_eq!(raws(&s, "bob").await[1..], stored[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maildir_export_import_keeps_bytes_and_seen_flags() {
    let s = TestServer::start().await;
    s.add_user("alice", "pa").await;
    s.add_user("bob", "pb").await;
    let mut c = s.client("alice", "pa").await;
    c.send(&["alice".into()], "second", b"two\nlines")
        .await
        .unwrap();
    c.mark(2, true).await.unwrap();
    let inbox = s.store.inbox_of("alice").await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("Maildir");
    assert_eq!(
        maildir::export(s.store.as_ref(), inbox, &md).await.unwrap(),
        2
    );
    let mut names: Vec<String> = std::fs::read_dir(md.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(":2,S")).count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        maildir::export(s.store.as_ref(), inbox, &md).await.unwrap(),
        2
    );
    assert_eq!(
        std::fs::read_dir(md.join("cur")).unwrap().count(),
        2,
        "exporting again rewrites, not adds"
    );
    // A file in new/ (a message not yet seen by any client) comes in too; one over the limit does not.
    std::fs::write(
        md.join("new").join("9.x.host"),
        b"Subject: fresh\r\n\r\nhi\r\n",
    )
    .unwrap();
    std::fs::write(md.join("new").join("10.x.host"), vec![b'y'; LIMIT + 1]).unwrap();

    let got = maildir::import(s.store.as_ref(), "bob", &md, LIMIT, &|_| {})
        .await
        .unwrap();
    assert_eq!(got, summary(3, 0, 1));
    let bob = s.store.inbox_of("bob").await.unwrap().unwrap();
    let listed = s.store.changes(bob, 0, 10).await.unwrap().messages;
    let second = listed.iter().find(|m| m.subject == "second").unwrap();
    assert_eq!(second.flags & flags::SEEN, flags::SEEN);
    assert_eq!(
        listed.iter().find(|m| m.subject == "fresh").unwrap().flags,
        0
    );
    let alice_raws = raws(&s, "alice").await;
    let bob_raws = raws(&s, "bob").await;
    for raw in &alice_raws {
        assert!(bob_raws.contains(raw), "a message changed on the way");
    }
}

/// Peak memory of `jmail import` on a large generated mbox (default 1 GiB; JMAIL_BIG_MBOX_MIB sets it).
/// Run it with `cargo test --release --test it -- --ignored large_mbox --nocapture`; it prints the figures.
#[test]
#[ignore = "writes and imports a 1 GiB mbox; run by hand"]
fn large_mbox_imports_in_constant_memory() {
    use std::io::Write;
    let mib: u64 = std::env::var("JMAIL_BIG_MBOX_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mbox");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let body = "All work and no play makes Jack a dull boy.\r\n".repeat(90);
    let mut written = 0u64;
    let mut n = 0u64;
    while written < mib * 1024 * 1024 {
        let raw = format!("Message-ID: <{n}@big>\r\nSubject: message {n}\r\n\r\n{body}");
        let entry = jmail_proto::mbox::entry("gen@x", "Mon Nov 30 12:00:00 2026", raw.as_bytes());
        out.write_all(&entry).unwrap();
        written += entry.len() as u64;
        n += 1;
    }
    out.flush().unwrap();
    drop(out);
    let bin = env!("CARGO_BIN_EXE_jmail");
    let data = dir.path().join("data");
    let mut add = std::process::Command::new(bin)
        .args(["user", "add", "big", "--password-stdin", "--data-dir"])
        .arg(&data)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    assert!(add.wait().unwrap().success());
    let started = std::time::Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(["import", "--user", "big", "--format", "mbox", "--data-dir"])
        .arg(&data)
        .arg(&path)
        .spawn()
        .unwrap();
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            let hwm = status.lines().find(|l| l.starts_with("VmHWM:"));
            if let Some(kib) = hwm
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    eprintln!(
        "imported {n} messages, {} MiB of mbox, in {:.1} s; peak RSS {} MiB",
        written / (1024 * 1024),
        started.elapsed().as_secs_f64(),
        peak_kib / 1024
    );
    assert!(
        peak_kib < 256 * 1024,
        "peak RSS {peak_kib} KiB grows with the file"
    );
}
