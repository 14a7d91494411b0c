//! Push as a feed: one per account that someone watches.
//!
//! After each commit the writer publishes, per touched mailbox, "this mailbox of this account is now at
//! modseq N". A subscriber reads the feed in order; when it fell too far behind (the feed holds
//! [`FEED_EVENTS_MAX`] events), or the backend cannot say what changed (another process committed, later a
//! lost database connection), it is told [`FeedEvent::Resync`]: ask the store what changed since what you
//! know. Events carry no mail, only where to look, so nothing queues without bound.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use super::{MailboxId, UserId};

/// Events one account's feed holds for its slowest subscriber. Past it, that subscriber is told to
/// resync. Each held event costs a few dozen bytes per watched account.
pub const FEED_EVENTS_MAX: usize = 256;

/// What a feed says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEvent {
    /// A commit changed this mailbox of the account (its messages, or the mailbox itself: made, renamed,
    /// subscribed); `modseq` is its highest modseq after the commit, `u64::MAX` once it is gone.
    Changed { mailbox: MailboxId, modseq: u64 },
    /// Some changes were not told: re-read whatever you show.
    Resync,
}

/// One subscriber's view of an account's feed.
pub struct AccountFeed {
    rx: broadcast::Receiver<FeedEvent>,
}

impl AccountFeed {
    /// The next event. Never returns once the store is closing (the session's own shutdown signal ends
    /// it then).
    pub async fn next(&mut self) -> FeedEvent {
        match self.rx.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => FeedEvent::Resync,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl AccountFeed {
    /// Whether an event that concerns `mailbox` (or a resync) has arrived, without waiting; takes every
    /// event that has.
    pub fn drain_for(&mut self, mailbox: MailboxId) -> bool {
        let mut any = false;
        loop {
            match self.rx.try_recv() {
                Ok(FeedEvent::Changed { mailbox: m, .. }) => any |= m == mailbox,
                Ok(FeedEvent::Resync) | Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    any = true
                }
                Err(_) => return any,
            }
        }
    }
}

/// A feed narrowed to one mailbox: wakes when it changes, or on a resync.
pub struct MailboxWatch {
    feed: AccountFeed,
    mailbox: MailboxId,
}

impl MailboxWatch {
    pub fn new(feed: AccountFeed, mailbox: MailboxId) -> MailboxWatch {
        MailboxWatch { feed, mailbox }
    }

    /// Whether the mailbox may have changed since the last call (or wake-up), without waiting.
    pub fn take_changed(&mut self) -> bool {
        self.feed.drain_for(self.mailbox)
    }

    /// Waits until the mailbox may have changed since the last wake-up.
    pub async fn changed(&mut self) {
        loop {
            match self.feed.next().await {
                FeedEvent::Changed { mailbox, .. } if mailbox != self.mailbox => continue,
                _ => return,
            }
        }
    }
}

/// Fans commits out to the feeds of the accounts someone watches.
#[derive(Default)]
pub struct Notifier {
    feeds: Mutex<HashMap<UserId, broadcast::Sender<FeedEvent>>>,
}

impl Notifier {
    pub fn subscribe(&self, user: UserId) -> AccountFeed {
        let mut feeds = self.feeds.lock().expect("notifier lock");
        feeds.retain(|_, tx| tx.receiver_count() > 0);
        let tx = feeds
            .entry(user)
            .or_insert_with(|| broadcast::channel(FEED_EVENTS_MAX).0);
        AccountFeed { rx: tx.subscribe() }
    }

    /// Called after a commit that moved `mailbox` of `user` to `modseq`.
    pub fn notify(&self, user: UserId, mailbox: MailboxId, modseq: u64) {
        self.publish(user, FeedEvent::Changed { mailbox, modseq });
    }

    /// Tells the account's subscribers to re-read: what changed is not known.
    pub fn resync(&self, user: UserId) {
        self.publish(user, FeedEvent::Resync);
    }

    fn publish(&self, user: UserId, event: FeedEvent) {
        let feeds = self.feeds.lock().expect("notifier lock");
        if let Some(tx) = feeds.get(&user) {
            // No receiver left: nothing to tell.
            if tx.send(event).is_ok() {
                crate::metrics::METRICS.pushed();
            }
        }
    }

    /// The accounts someone is watching now.
    pub fn watched(&self) -> Vec<UserId> {
        let feeds = self.feeds.lock().expect("notifier lock");
        feeds
            .iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(user, _)| *user)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_to_resync() {
        let n = Notifier::default();
        let mut feed = n.subscribe(7);
        n.notify(8, 1, 1); // another account: not on this feed
        n.notify(7, 3, 1);
        assert_eq!(
            feed.next().await,
            FeedEvent::Changed {
                mailbox: 3,
                modseq: 1
            }
        );
        for modseq in 0..(FEED_EVENTS_MAX as u64 + 10) {
            n.notify(7, 3, modseq);
        }
        assert_eq!(feed.next().await, FeedEvent::Resync);
        n.resync(7);
        let mut last = feed.next().await;
        while last != FeedEvent::Resync {
            last = feed.next().await;
        }
        assert_eq!(n.watched(), vec![7]);
        drop(feed);
        assert!(n.watched().is_empty());
    }

    #[tokio::test]
    async fn a_mailbox_watch_ignores_other_mailboxes() {
        let n = Notifier::default();
        let mut watch = MailboxWatch::new(n.subscribe(1), 5);
        n.notify(1, 4, 1);
        n.notify(1, 5, 1);
        tokio::time::timeout(std::time::Duration::from_secs(1), watch.changed())
            .await
            .unwrap();
        n.notify(1, 4, 2);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), watch.changed()).await;
        assert!(waited.is_err(), "a change elsewhere does not wake it");
    }
}
