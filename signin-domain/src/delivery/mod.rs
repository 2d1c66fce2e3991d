//! Waking devices and sign-in pages. A sign-in wakes the account's waiting
//! `GET /api/v1/device/poll` (always) and pushes through APNs/FCM/Web Push when the device registered
//! such a channel (`crate::delivery::push::Dispatcher`, the `Delivery` in `AppState`); a decision wakes
//! `GET /api/v1/signin/{id}?wait`.
pub mod apns;
pub mod fcm;
pub mod jwt;
pub mod parking;
pub mod push;
pub mod webpush;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use authenticator_protocol::push::PushEnvelope;
use tokio::sync::{watch, Notify};

/// Tells a device that a request is waiting. A push has no authority: the device fetches the
/// signed details itself. Implementations return at once (network pushes run on spawned tasks).
pub trait Delivery: Send + Sync + 'static {
    fn deliver(&self, envelope: &PushEnvelope);
}

/// In-memory wake-ups keyed by an id (an account id or a request id). With PostgreSQL, wake-ups
/// are also relayed to the other server instances (`crate::cluster`).
#[derive(Debug, Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
    relay: OnceLock<Relay>,
}

/// Where `Waiters::wake` also sends its keys (set once, by `crate::cluster`).
pub struct Relay(pub Box<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relay")
    }
}

impl Waiters {
    fn entry(&self, key: &str) -> Arc<Notify> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_owned()).or_default().clone()
    }

    /// Wakes everyone waiting on `key`, in this instance and (through the relay) in the others.
    /// Call it after the change is committed: waiters re-read the database.
    pub fn wake(&self, key: &str) {
        self.wake_local(key);
        if let Some(relay) = self.relay.get() {
            (relay.0)(key);
        }
    }

    /// Wakes everyone waiting on `key` in this instance only.
    pub fn wake_local(&self, key: &str) {
        let notify = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.remove(key)
        };
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// Wakes every waiter of this instance (they re-check and wait again if nothing changed):
    /// after relayed wake-ups may have been missed.
    pub fn wake_all_local(&self) {
        let all: Vec<Arc<Notify>> = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.drain().map(|(_, n)| n).collect()
        };
        for n in all {
            n.notify_waiters();
        }
    }

    /// Whether someone in this instance waits on `key` now (tests use it to order events).
    pub fn is_waiting(&self, key: &str) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // A waiter holds a clone while it waits.
        map.get(key).is_some_and(|n| Arc::strong_count(n) > 1)
    }

    /// Sends every later `wake` also to `relay`. Returns false if a relay was already set.
    pub fn set_relay(&self, relay: Relay) -> bool {
        self.relay.set(relay).is_ok()
    }

    /// Waits until `key` is woken, `timeout` passes or the server shuts down. `check` runs after
    /// the waiter is registered, so a wake-up between the check and the wait is not lost; if it
    /// returns `Some`, that is returned at once.
    pub async fn wait_for<T, F, Fut>(
        &self,
        key: &str,
        timeout: Duration,
        shutdown: &watch::Receiver<bool>,
        mut check: F,
    ) -> Result<T, crate::error::AppError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, crate::error::AppError>>,
        T: Default,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut shutdown = shutdown.clone();
        loop {
            let notify = self.entry(key);
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = check().await? {
                return Ok(v);
            }
            if *shutdown.borrow() {
                return Ok(T::default());
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {
                    self.forget_if_idle(key, &notify);
                    return Ok(check().await?.unwrap_or_default());
                }
                _ = shutdown.changed() => {
                    return Ok(check().await?.unwrap_or_default());
                }
            }
        }
    }

    fn forget_if_idle(&self, key: &str, notify: &Arc<Notify>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map and our clone hold it: nobody else waits.
        if map.get(key).is_some_and(|n| Arc::ptr_eq(n, notify)) && Arc::strong_count(notify) == 2 {
            map.remove(key);
        }
    }
}

/// Long-poll delivery: wakes the account's pending `device/poll`.
#[derive(Debug, Default)]
pub struct LongPoll {
    pub accounts: Waiters,
}

impl Delivery for LongPoll {
    fn deliver(&self, envelope: &PushEnvelope) {
        self.accounts.wake(envelope.account_id.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_wake_after_the_check_is_not_lost() {
        let w = Arc::new(Waiters::default());
        let (_tx, rx) = watch::channel(false);
        let flag = Arc::new(AtomicBool::new(false));
        let (w2, f2) = (w.clone(), flag.clone());
        let task = tokio::spawn(async move {
            w2.wait_for("k", Duration::from_secs(10), &rx, || {
                let f = f2.clone();
                async move { Ok(f.load(Ordering::SeqCst).then_some(1u32)) }
            })
            .await
            .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        flag.store(true, Ordering::SeqCst);
        w.wake("k");
        let got = tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("woken before the timeout")
            .unwrap();
        assert_eq!(got, 1);
    }

    #[tokio::test]
    async fn times_out_with_the_default() {
        let w = Waiters::default();
        let (_tx, rx) = watch::channel(false);
        let got: u32 = w
            .wait_for("k", Duration::from_millis(20), &rx, || async { Ok(None) })
            .await
            .unwrap();
        assert_eq!(got, 0);
        assert!(w.map.lock().unwrap().is_empty());
    }
}
