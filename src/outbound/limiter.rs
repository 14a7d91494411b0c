//! How much mail to other domains each account has sent in the last hour, so a stolen password cannot
//! send without end (`outbound_messages_per_hour_max`, `outbound_recipients_per_hour_max`). Counted
//! in this process; each message's entry is a time and a recipient count, dropped after an hour.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::UserId;

const WINDOW: Duration = Duration::from_secs(3600);

pub struct SendLimiter {
    messages_max: u64,
    recipients_max: u64,
    sent: Mutex<HashMap<UserId, VecDeque<(Instant, u64)>>>,
}

impl SendLimiter {
    /// `0` for either: no limit on it.
    pub fn new(messages_max: u64, recipients_max: u64) -> SendLimiter {
        SendLimiter {
            messages_max,
            recipients_max,
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one message to `recipients` remote recipients if the account has room for it in the
    /// last hour; `false` (and nothing counted) when it would go over.
    pub fn admit(&self, user: UserId, recipients: u64) -> bool {
        self.admit_at(user, recipients, Instant::now())
    }

    fn admit_at(&self, user: UserId, recipients: u64, now: Instant) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        // Forget accounts whose hour is over, so the map holds only recent senders.
        if sent.len() > 10_000 {
            sent.retain(|_, q| {
                q.back()
                    .is_some_and(|(t, _)| now.duration_since(*t) < WINDOW)
            });
        }
        let log = sent.entry(user).or_default();
        while log
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            log.pop_front();
        }
        let messages = log.len() as u64;
        let rcpts: u64 = log.iter().map(|(_, n)| n).sum();
        let over = (self.messages_max > 0 && messages + 1 > self.messages_max)
            || (self.recipients_max > 0 && rcpts + recipients > self.recipients_max);
        if over {
            return false;
        }
        log.push_back((now, recipients));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_hour_and_forgets() {
        let limiter = SendLimiter::new(3, 5);
        let t = Instant::now();
        assert!(limiter.admit_at(1, 2, t));
        assert!(limiter.admit_at(1, 2, t));
        assert!(!limiter.admit_at(1, 2, t), "5 recipients at most");
        assert!(limiter.admit_at(1, 1, t));
        assert!(!limiter.admit_at(1, 0, t), "3 messages at most");
        assert!(limiter.admit_at(2, 5, t), "another account has its own");
        assert!(limiter.admit_at(1, 5, t + WINDOW), "an hour later");
        let unlimited = SendLimiter::new(0, 0);
        assert!((0..1000).all(|_| unlimited.admit_at(1, 100, t)));
    }
}
