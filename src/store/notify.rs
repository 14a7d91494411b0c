//! In-process change notification: one watch channel per mailbox that someone is watching.
//!
//! Carries only "the mailbox's highest modseq is now N"; watchers then ask the store for the changes, so a
//! slow watcher coalesces many changes into one wake-up and nothing queues without bound.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use super::MailboxId;

/// Wakes when a mailbox's modseq moves.
pub struct MailboxWatch {
    rx: watch::Receiver<u64>,
}

impl MailboxWatch {
    /// Waits until the mailbox changes after this watch was made or last woke. Never returns if the notifier
    /// is gone (the store is closing; the session's own shutdown signal ends it).
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Fans out mailbox changes to watchers.
#[derive(Default)]
pub struct Notifier {
    senders: Mutex<HashMap<MailboxId, watch::Sender<u64>>>,
}

impl Notifier {
    pub fn watch(&self, mailbox: MailboxId) -> MailboxWatch {
        let mut senders = self.senders.lock().expect("notifier lock");
        senders.retain(|_, tx| tx.receiver_count() > 0);
        let tx = senders
            .entry(mailbox)
            .or_insert_with(|| watch::channel(0).0);
        MailboxWatch { rx: tx.subscribe() }
    }

    /// Called after a commit that changed `mailbox` up to `modseq`. Wakes its watchers only when that is
    /// beyond what they were last told (a change seen twice, by this process's commit and by the look for
    /// other processes' commits, wakes them once).
    pub fn notify(&self, mailbox: MailboxId, modseq: u64) {
        let senders = self.senders.lock().expect("notifier lock");
        if let Some(tx) = senders.get(&mailbox) {
            tx.send_if_modified(|told| {
                let newer = modseq > *told;
                if newer {
                    *told = modseq;
                }
                newer
            });
        }
    }

    /// The mailboxes someone is watching now.
    pub fn watched(&self) -> Vec<MailboxId> {
        let senders = self.senders.lock().expect("notifier lock");
        senders
            .iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(mailbox, _)| *mailbox)
            .collect()
    }
}
