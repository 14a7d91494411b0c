//! Each account's API requests in flight at once, at most the session's `maxConcurrentRequests`
//! (RFC 8620 §2): a request past it is refused with the `limit` problem instead of run. Each request
//! may hold up to its byte budgets (`email::charge_parsed`); 16 at once from one user held 1.6 GB.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::UserId;

#[derive(Default)]
pub struct RequestGate {
    running: Mutex<HashMap<UserId, usize>>,
}

/// One request in flight; leaving its place when dropped.
pub struct Entered {
    gate: Arc<RequestGate>,
    user: UserId,
}

impl RequestGate {
    /// A place for one more of `user`'s requests, if fewer than `max` run.
    pub fn try_enter(self: &Arc<Self>, user: UserId, max: usize) -> Option<Entered> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let n = running.entry(user).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Entered {
            gate: self.clone(),
            user,
        })
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut running = self.gate.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_per_account_and_given_back() {
        let gate = Arc::new(RequestGate::default());
        let a: Vec<Entered> = (0..4).filter_map(|_| gate.try_enter(1, 4)).collect();
        assert_eq!(a.len(), 4);
        assert!(gate.try_enter(1, 4).is_none());
        let b = gate.try_enter(2, 4);
        assert!(b.is_some(), "another account is not held up");
        drop(a);
        assert!(gate.try_enter(1, 4).is_some());
        drop(b);
        assert!(
            gate.running.lock().unwrap().is_empty(),
            "nothing kept for idle accounts"
        );
    }
}
