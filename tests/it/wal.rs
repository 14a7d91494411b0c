//! The SQLite store's write-ahead log: checkpoints run beside the writer, yet the log stays bounded while
//! writes never pause (a checkpoint beside a busy writer never finds the log fully copied; the writer's
//! own backstop checkpoint must then start it over).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use jmail::store::sqlite::{DB_FILE, SqliteStore};
use jmail::store::{MailStore, NewMessage};

use crate::store::user;

/// 48 MiB of mail in all, three times the log's bound.
const MESSAGES: usize = 768;
const MESSAGE_BYTES: usize = 64 << 10;
const WRITERS: usize = 32;
/// The backstop checkpoints at 4,000 pages (16 MiB); one batch of 32 writes of 64 KiB may come on top.
const WAL_BYTES_BOUND: u64 = 24 << 20;

fn big_message(i: usize) -> NewMessage {
    let mut raw = format!("From: a@x\r\nSubject: {i}\r\n\r\n").into_bytes();
    while raw.len() < MESSAGE_BYTES {
        raw.extend_from_slice(format!("line {i} of a long message {}\r\n", raw.len()).as_bytes());
    }
    NewMessage::new(
        raw,
        "a@x".into(),
        format!("{i}"),
        None,
        1_700_000_000_000_000,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_writes_that_never_pause() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let account = user(store.as_ref(), "a").await;
    let wal = dir.path().join(format!("{DB_FILE}-wal"));
    let (done, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let watcher = {
        let (done, peak, wal) = (done.clone(), peak.clone(), wal.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                peak.fetch_max(len, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in (w..MESSAGES).step_by(WRITERS) {
                store
                    .deliver(&["a".into()], big_message(i), None)
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let inbox = store.mailbox(account.id, "INBOX").await.unwrap().unwrap();
    assert_eq!(inbox.messages, MESSAGES as u64, "every write stored");
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak < WAL_BYTES_BOUND,
        "the WAL reached {peak} bytes for {} MiB written",
        (MESSAGES * MESSAGE_BYTES) >> 20
    );
    store.close().await;
}
