//! Bounds on parked long-polls (issue 20, finding 1): each waiting `GET …?wait=N` holds a
//! connection, a task and its buffers for up to a minute, so this instance admits at most
//! `per_device` for one device, `per_sign_in` for one sign-in and `total` in all. Beyond a bound the
//! request is refused at once with a typed error (429 for one party's share, 503 for the whole),
//! rather than parked until descriptors or memory run out.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{AppError, Capacity};

/// How many long-polls may wait at once in one server instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkingLimits {
    /// `GET /api/v1/device/poll?wait` of one device (a phone needs one).
    pub per_device: usize,
    /// `GET /api/v1/signin/{id}?wait` of one sign-in (its page and application need a few).
    pub per_sign_in: usize,
    /// All of them together.
    pub total: usize,
}

impl Default for ParkingLimits {
    fn default() -> Self {
        ParkingLimits {
            per_device: 4,
            per_sign_in: 8,
            total: 2048,
        }
    }
}

/// When a refused long-poll should try again.
const RETRY_AFTER_SECS: u64 = 5;

/// The parked long-polls of this instance, counted per key and in total.
#[derive(Debug, Default)]
pub struct Parking {
    limits: ParkingLimits,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_key: HashMap<(Capacity, String), usize>,
}

/// One parked long-poll's place; given back when dropped.
#[derive(Debug)]
pub struct Parked {
    parking: Arc<Parking>,
    key: (Capacity, String),
}

impl Parking {
    pub fn new(limits: ParkingLimits) -> Self {
        Parking {
            limits,
            counts: Mutex::default(),
        }
    }

    pub fn limits(&self) -> ParkingLimits {
        self.limits
    }

    /// Takes a place for a long-poll waiting on `device`'s requests.
    pub fn device(self: &Arc<Self>, device: &str) -> Result<Parked, AppError> {
        self.park(Capacity::DeviceLongPolls, device, self.limits.per_device)
    }

    /// Takes a place for a long-poll waiting on the outcome of sign-in `id`.
    pub fn sign_in(self: &Arc<Self>, id: &str) -> Result<Parked, AppError> {
        self.park(Capacity::SignInLongPolls, id, self.limits.per_sign_in)
    }

    /// Long-polls parked now (tests, diagnostics).
    pub fn parked(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn park(self: &Arc<Self>, kind: Capacity, key: &str, cap: usize) -> Result<Parked, AppError> {
        let refused = |limit| AppError::AtCapacity {
            limit,
            retry_after_secs: RETRY_AFTER_SECS,
        };
        let mut counts = self.lock();
        if counts.total >= self.limits.total {
            return Err(refused(Capacity::LongPolls));
        }
        let key = (kind, key.to_owned());
        let here = counts.per_key.entry(key.clone()).or_default();
        if *here >= cap {
            return Err(refused(kind));
        }
        *here += 1;
        counts.total += 1;
        Ok(Parked {
            parking: self.clone(),
            key,
        })
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        let mut counts = self.parking.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.per_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_limit(r: Result<Parked, AppError>) -> Capacity {
        match r {
            Err(AppError::AtCapacity { limit, .. }) => limit,
            other => panic!("expected a capacity refusal, got {other:?}"),
        }
    }

    #[test]
    fn each_device_and_sign_in_has_its_own_bound_and_places_come_back() {
        let p = Arc::new(Parking::new(ParkingLimits {
            per_device: 2,
            per_sign_in: 1,
            total: 100,
        }));
        let a1 = p.device("a").unwrap();
        let _a2 = p.device("a").unwrap();
        assert_eq!(refused_limit(p.device("a")), Capacity::DeviceLongPolls);
        let _b = p.device("b").expect("another device has its own places");
        let _s = p
            .sign_in("a")
            .expect("a sign-in id is another key than a device id");
        assert_eq!(refused_limit(p.sign_in("a")), Capacity::SignInLongPolls);
        drop(a1);
        let _a3 = p.device("a").expect("a finished long-poll frees its place");
        assert_eq!(p.parked(), 4);
    }

    #[test]
    fn the_total_bound_covers_every_key() {
        let p = Arc::new(Parking::new(ParkingLimits {
            per_device: 10,
            per_sign_in: 10,
            total: 3,
        }));
        let held: Vec<Parked> = ["a", "b", "c"]
            .iter()
            .map(|k| p.device(k).unwrap())
            .collect();
        assert_eq!(refused_limit(p.sign_in("d")), Capacity::LongPolls);
        drop(held);
        assert_eq!(p.parked(), 0);
        assert!(p.lock().per_key.is_empty());
    }
}
