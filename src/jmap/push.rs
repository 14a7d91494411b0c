//! JMAP push by EventSource (RFC 8620 §7.3): the account's push feed (the same one IMAP IDLE waits on,
//! across processes and nodes) turned into `state` events naming the new Mailbox, Email and Thread
//! states, with `ping` events at the interval the client asked for. Events that arrive together are told
//! as one. The stream ends when the server shuts down, or the login stops standing (account deleted,
//! password changed).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::json;

use crate::conn::Shared;
use crate::store::{Account, AccountFeed};

/// The ping interval's bounds (seconds): a client asking for less gets the least.
const PING_SECS_MIN: u64 = 5;
const PING_SECS_MAX: u64 = 300;

/// Which data types the client wants to hear about.
#[derive(Debug, Clone, Copy)]
pub struct Types {
    pub mailbox: bool,
    pub email: bool,
    pub thread: bool,
}

impl Types {
    pub fn parse(text: &str) -> Types {
        let all = text.split(',').any(|t| t == "*");
        let has = |name: &str| all || text.split(',').any(|t| t == name);
        Types {
            mailbox: has("Mailbox"),
            email: has("Email"),
            thread: has("Thread"),
        }
    }
}

struct Pusher {
    shared: Shared,
    account: Account,
    feed: AccountFeed,
    types: Types,
    close_after_state: bool,
    ping: Option<tokio::time::Interval>,
    last: Option<(String, String)>,
    done: bool,
}

impl Pusher {
    /// The Mailbox and Email states now.
    async fn states(&self) -> Option<(String, String)> {
        let store = &*self.shared.store;
        let modseq = store.account_modseq(self.account.id).await.ok()??;
        let mailboxes = store.mailboxes(self.account.id).await.ok()?;
        Some((
            super::mailbox::state_of(modseq, &mailboxes),
            super::state::email_state_of(&mailboxes),
        ))
    }

    fn state_event(&self, mailbox: &str, email: &str) -> Bytes {
        let mut changed = serde_json::Map::new();
        if self.types.mailbox {
            changed.insert("Mailbox".into(), json!(mailbox));
        }
        if self.types.email {
            changed.insert("Email".into(), json!(email));
        }
        if self.types.thread {
            changed.insert("Thread".into(), json!(email));
        }
        let data = json!({
            "@type": "StateChange",
            "changed": { super::ids::account(self.account.id): changed },
        });
        Bytes::from(format!("event: state\ndata: {data}\n\n"))
    }

    /// The next thing to send, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        loop {
            let ping = async {
                match &mut self.ping {
                    Some(p) => {
                        p.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => return None,
                _ = ping => {
                    let secs = self.ping.as_ref().map_or(0, |p| p.period().as_secs());
                    return Some(Bytes::from(format!("event: ping\ndata: {{\"interval\":{secs}}}\n\n")));
                }
                _ = self.feed.next() => {}
            }
            // Changes that came in meanwhile are told in the same event.
            self.feed.drain_for(-1);
            match crate::accounts::still_valid(&*self.shared.store, &self.account).await {
                Ok(true) => {}
                _ => return None,
            }
            let Some(now) = self.states().await else {
                continue;
            };
            if self.last.as_ref() == Some(&now) {
                continue;
            }
            let event = self.state_event(&now.0, &now.1);
            self.last = Some(now);
            if self.close_after_state {
                self.done = true;
            }
            return Some(event);
        }
    }
}

/// The event stream for an account (`ping` 0: no pings).
pub async fn events(
    shared: Shared,
    account: Account,
    types: Types,
    close_after_state: bool,
    ping_secs: u64,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    // Subscribed before the states are read, so no change falls between the two.
    let feed = shared.store.feed(account.id);
    let ping = (ping_secs > 0).then(|| {
        let period = Duration::from_secs(ping_secs.clamp(PING_SECS_MIN, PING_SECS_MAX));
        tokio::time::interval_at(tokio::time::Instant::now() + period, period)
    });
    let mut pusher = Pusher {
        shared,
        account,
        feed,
        types,
        close_after_state,
        ping,
        last: None,
        done: false,
    };
    pusher.last = pusher.states().await;
    futures_util::stream::unfold(pusher, |mut p| async move {
        p.next().await.map(|bytes| (Ok(bytes), p))
    })
}
