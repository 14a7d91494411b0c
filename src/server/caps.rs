//! Connection caps: a global semaphore and a per-IP count, both released when the connection's guard drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Admission control for all listeners together.
pub struct ConnectionCaps {
    global: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_ip_max: usize,
}

/// Held for a connection's lifetime.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ServerFull,
    TooManyFromIp,
}

impl ConnectionCaps {
    pub fn new(max: usize, per_ip_max: usize) -> Self {
        ConnectionCaps {
            global: Arc::new(Semaphore::new(max)),
            per_ip: Arc::default(),
            per_ip_max,
        }
    }

    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::ServerFull)?;
        let mut counts = self.per_ip.lock().expect("per-ip lock");
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.per_ip_max {
            return Err(Refusal::TooManyFromIp);
        }
        *count += 1;
        Ok(Admission {
            _permit: permit,
            per_ip: self.per_ip.clone(),
            ip,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.per_ip.lock().expect("per-ip lock");
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_release_on_drop() {
        let caps = ConnectionCaps::new(3, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let a1 = caps.admit(a).unwrap();
        let a2 = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).err(), Some(Refusal::TooManyFromIp));
        let _b1 = caps.admit(b).unwrap();
        assert_eq!(caps.admit(b).err(), Some(Refusal::ServerFull));
        drop(a1);
        assert!(caps.admit(a).is_ok());
        drop(a2);
        assert!(caps.per_ip.lock().unwrap().get(&a).is_none());
    }
}
