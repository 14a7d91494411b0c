//! Caps on shared resources: a global count and a count per client address, both released when the
//! holder's guard drops. Connections are capped this way, and so are the SMTP DATA slots of
//! unauthenticated clients, so that no one address can take every slot. [`InputBudget`] caps the bytes
//! of input (message bodies as they arrive) that all connections together hold.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One client's address as the caps and the login throttle count it: an IPv4 address as it is (also when
/// IPv4-mapped), an IPv6 address by its /64, the block one subscriber is usually given.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// A global cap and a per-address cap on one resource.
pub struct Caps {
    global: Arc<Semaphore>,
    max: usize,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_ip_max: usize,
}

/// Held while the resource is in use.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ServerFull,
    TooManyFromIp,
}

impl Caps {
    /// `max` in all, `per_ip_max` per address. Both are clamped to what a semaphore can count (the config
    /// allows far less), so no value can panic here.
    pub fn new(max: usize, per_ip_max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Caps {
            global: Arc::new(Semaphore::new(max)),
            max,
            per_ip: Arc::default(),
            per_ip_max,
        }
    }

    /// Whether at least half of the resource is taken: the point from which its holders must not
    /// dawdle (as Postfix's stress-dependent limits).
    pub fn half_taken(&self) -> bool {
        self.global.available_permits() * 2 <= self.max
    }

    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        self.admit_within(ip, self.per_ip_max)
    }

    /// [`Caps::admit`] with this address allowed `per_ip_max` at most (one without a login behind it
    /// gets fewer than the cap: see `connections_per_new_ip_max`).
    pub fn admit_within(&self, ip: IpAddr, per_ip_max: usize) -> Result<Admission, Refusal> {
        let ip = address_key(ip);
        let per_ip_max = per_ip_max.min(self.per_ip_max);
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::ServerFull)?;
        let mut counts = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= per_ip_max {
            if *count == 0 {
                counts.remove(&ip);
            }
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
        let mut counts = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Addresses an [`HourlyVolume`] tracks at most; past it (and after dropping finished hours) a new
/// address is not tracked, so the map cannot grow without bound.
const VOLUME_ENTRIES_MAX: usize = 100_000;

/// Bytes each client address (IPv6 by /64) has had stored in the current hour, against a cap: what
/// strangers may make the server keep from one address (without it, 8 addresses stored 66 MB a
/// second, and a full disk stops mail for everyone).
pub struct HourlyVolume {
    per_ip: Mutex<HashMap<IpAddr, (std::time::Instant, u64)>>,
    bytes_max: u64,
}

impl HourlyVolume {
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    pub fn new(bytes_max: u64) -> HourlyVolume {
        HourlyVolume {
            per_ip: Mutex::default(),
            bytes_max,
        }
    }

    /// Whether `bytes` more from `ip` fit in its hour.
    pub fn has_room(&self, ip: IpAddr, bytes: u64) -> bool {
        let now = std::time::Instant::now();
        let per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        match per_ip.get(&address_key(ip)) {
            Some((since, used)) if now.duration_since(*since) < Self::HOUR => {
                used.saturating_add(bytes) <= self.bytes_max
            }
            _ => bytes <= self.bytes_max,
        }
    }

    /// Counts `bytes` stored from `ip`.
    pub fn add(&self, ip: IpAddr, bytes: u64) {
        let now = std::time::Instant::now();
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let ip = address_key(ip);
        if per_ip.len() >= VOLUME_ENTRIES_MAX && !per_ip.contains_key(&ip) {
            per_ip.retain(|_, (since, _)| now.duration_since(*since) < Self::HOUR);
            if per_ip.len() >= VOLUME_ENTRIES_MAX {
                return;
            }
        }
        let entry = per_ip.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Self::HOUR {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(bytes);
    }
}

/// What a connection may hold of input without drawing on the [`InputBudget`]: its read buffer and a
/// small message body. Only large bodies count, so ordinary traffic never waits on the budget.
pub const INPUT_BYTES_FREE: usize = 256 * 1024;

/// Bytes of input held at once by every connection together, beyond each one's [`INPUT_BYTES_FREE`].
pub struct InputBudget {
    bytes: Arc<Semaphore>,
}

/// One connection's share of the [`InputBudget`], given back when it drops.
pub struct InputShare {
    bytes: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

/// The budget is spent: the connection asking for more must let go of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSpent;

impl InputBudget {
    /// `bytes_max` in all (clamped to what a semaphore can count).
    pub fn new(bytes_max: usize) -> Self {
        InputBudget {
            bytes: Arc::new(Semaphore::new(bytes_max.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// An empty share for a new connection.
    pub fn share(&self) -> InputShare {
        InputShare {
            bytes: self.bytes.clone(),
            permit: None,
        }
    }

    /// Bytes not drawn by any connection now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

impl InputShare {
    /// Makes the share match a connection that now holds `held` bytes: gives back what it no longer
    /// needs, or draws what it needs more of, never waiting. Refused (the share unchanged) when the
    /// budget does not have it.
    pub fn hold(&mut self, held: usize) -> Result<(), BudgetSpent> {
        let want = held.saturating_sub(INPUT_BYTES_FREE);
        let have = self.permit.as_ref().map_or(0, |p| p.num_permits());
        if want > have {
            let more = self
                .bytes
                .clone()
                .try_acquire_many_owned(u32::try_from(want - have).map_err(|_| BudgetSpent)?)
                .map_err(|_| BudgetSpent)?;
            match &mut self.permit {
                Some(permit) => permit.merge(more),
                None => self.permit = Some(more),
            }
        } else if want < have
            && let Some(permit) = &mut self.permit
        {
            drop(permit.split(have - want));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_volume_is_capped_per_hour_and_others_are_apart() {
        let volume = HourlyVolume::new(100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(volume.has_room(a, 100));
        assert!(!volume.has_room(a, 101));
        volume.add(a, 60);
        assert!(volume.has_room(a, 40));
        assert!(!volume.has_room(a, 41));
        assert!(volume.has_room(b, 100));
        // An IPv6 /64 is one address.
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let d: IpAddr = "2001:db8::2".parse().unwrap();
        volume.add(c, 100);
        assert!(!volume.has_room(d, 1));
    }

    #[test]
    fn caps_release_on_drop() {
        let caps = Caps::new(3, 2);
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

    #[test]
    fn input_shares_draw_beyond_the_free_part_and_give_back() {
        let budget = InputBudget::new(1000);
        let mut a = budget.share();
        let mut b = budget.share();
        a.hold(INPUT_BYTES_FREE).unwrap();
        assert_eq!(budget.available(), 1000, "the free part draws nothing");
        a.hold(INPUT_BYTES_FREE + 600).unwrap();
        assert_eq!(budget.available(), 400);
        assert_eq!(b.hold(INPUT_BYTES_FREE + 500), Err(BudgetSpent));
        assert_eq!(budget.available(), 400, "a refusal draws nothing");
        b.hold(INPUT_BYTES_FREE + 400).unwrap();
        a.hold(INPUT_BYTES_FREE + 100).unwrap();
        assert_eq!(budget.available(), 500);
        drop(a);
        drop(b);
        assert_eq!(budget.available(), 1000);
    }

    #[test]
    fn an_ipv6_subscriber_is_one_address() {
        let caps = Caps::new(10, 1);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _held = caps.admit(one).unwrap();
        assert_eq!(caps.admit(same_64).err(), Some(Refusal::TooManyFromIp));
        assert!(caps.admit(other_64).is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }
}
