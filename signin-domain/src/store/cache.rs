//! In-memory copies of what rarely changes, so that a sign-in reads only the rows it touches
//! (issue 24): the policy, registered applications, a user's groups, device public keys, and
//! when a device was last recorded as seen.
//!
//! Two kinds, by what may make them wrong:
//! - **Policy, applications, groups** change by admin action, possibly in another process
//!   (the admin CLI beside a SQLite server, another instance on PostgreSQL). Every write to
//!   them stores a new random *cache generation* in `settings` ([`changed`], in the writing
//!   transaction where there is one). A sign-in start reads the generation in the statement
//!   it runs anyway (the user's standing, `trust::start_view`) and hands it to
//!   [`Cache::confirm`]: a generation other than the one the copies were made under drops
//!   them all. So a change is seen by the next start in every process, at once and with no
//!   message that could be lost or late; only starts read these copies (pages and the CLI
//!   read the database).
//! - **Device public keys** never change for an account (account ids are the server's random
//!   choice, never reused; only the phone sign-in key is ever replaced, and that one is not
//!   cached). A copy is dropped only for memory: a removed device's requests go with it in
//!   one transaction, and every handler that takes a key-proven device reads a row of it
//!   (its pending requests, its request, its removal), so a removed device is refused at once.
//!
//! Never cached: a user's standing (disabled, paused), a device's existence or hold, anything
//! of a sign-in. `crate::trust` reads those fresh.
use std::num::NonZeroUsize;
use std::sync::Mutex;

use authenticator_protocol::encoding::b64;
use authenticator_protocol::{AccountId, PublicKey};
use lru::LruCache;
use rand::RngCore;

use super::applications::ApplicationRow;
use super::policy::PolicyRow;
use super::{Conn, Pool, StoreResult};

/// The `settings` row holding the cache generation.
pub const GENERATION_SETTING: &str = "cache_generation";

/// Most entries of one kind kept; beyond it the least recently used go.
const MAX_ENTRIES: NonZeroUsize = match NonZeroUsize::new(100_000) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

fn bounded<V>() -> LruCache<String, V> {
    LruCache::new(MAX_ENTRIES)
}

/// Records a change to policy, applications or groups: a new cache generation, which drops
/// every process's copies at its next sign-in start. Call it on the writing transaction (or
/// after the write committed, never before).
pub async fn changed(conn: &mut Conn) -> StoreResult<()> {
    let mut token = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut token);
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(GENERATION_SETTING)
    .bind(b64(&token))
    .execute(conn)
    .await?;
    Ok(())
}

/// [`changed`] on a connection of its own, after a write on the pool committed.
pub async fn changed_on_pool(pool: &Pool) -> StoreResult<()> {
    let mut conn = pool.acquire().await?;
    changed(&mut conn).await
}

/// A cache generation read from the database during this request, by [`Cache::confirm`]:
/// the copies it serves are those of that generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed(String);

struct Generational {
    /// The generation the copies were made under; `None` before the first confirmation.
    generation: Option<String>,
    policy: Option<PolicyRow>,
    applications: LruCache<String, ApplicationRow>,
    groups: LruCache<String, Vec<String>>,
}

impl Generational {
    fn of(generation: Option<String>) -> Self {
        Generational {
            generation,
            policy: None,
            applications: bounded(),
            groups: bounded(),
        }
    }
}

/// The copies of one database (one per `AppState`).
pub struct Cache {
    generational: Mutex<Generational>,
    device_keys: Mutex<LruCache<String, PublicKey>>,
    /// When "last seen" was last written for a device by this process (Unix ms).
    seen: Mutex<LruCache<String, i64>>,
    /// When "last used" was last written for a device by this process (Unix ms).
    used: Mutex<LruCache<String, i64>>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            generational: Mutex::new(Generational::of(None)),
            device_keys: Mutex::new(bounded()),
            seen: Mutex::new(bounded()),
            used: Mutex::new(bounded()),
        }
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain maps behind: still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cache {
    /// The generation `read` (the `settings` row as a statement of this request read it; `None`
    /// when none was ever written) is the current one: copies of any other are dropped.
    pub fn confirm(&self, read: Option<String>) -> Confirmed {
        let read = read.unwrap_or_default();
        let mut g = lock(&self.generational);
        if g.generation.as_deref() != Some(read.as_str()) {
            *g = Generational::of(Some(read.clone()));
        }
        Confirmed(read)
    }

    /// Runs `f` on the copies if they are of generation `at`.
    fn with_current<R>(&self, at: &Confirmed, f: impl FnOnce(&mut Generational) -> R) -> Option<R> {
        let mut g = lock(&self.generational);
        (g.generation.as_deref() == Some(at.0.as_str())).then(|| f(&mut g))
    }

    /// The policy row, as of generation `at`.
    pub async fn policy(&self, pool: &Pool, at: &Confirmed) -> StoreResult<PolicyRow> {
        if let Some(Some(p)) = self.with_current(at, |g| g.policy.clone()) {
            return Ok(p);
        }
        let row = super::policy::load(pool).await?;
        self.with_current(at, |g| g.policy = Some(row.clone()));
        Ok(row)
    }

    /// The user's groups, as of generation `at`.
    pub async fn groups(&self, pool: &Pool, at: &Confirmed, upn: &str) -> StoreResult<Vec<String>> {
        if let Some(Some(groups)) = self.with_current(at, |g| g.groups.get(upn).cloned()) {
            return Ok(groups);
        }
        let groups = super::users::groups_of(pool, upn).await?;
        self.with_current(at, |g| g.groups.put(upn.to_owned(), groups.clone()));
        Ok(groups)
    }

    /// A registered application, for checking its credential before the request has read the
    /// generation: a copy may be of an older one, so whoever acts on it confirms the
    /// application still exists in a statement of its own (`trust::start_view`).
    pub async fn application(
        &self,
        pool: &Pool,
        client_id: &str,
    ) -> StoreResult<Option<ApplicationRow>> {
        let known = lock(&self.generational)
            .applications
            .get(client_id)
            .cloned();
        if let Some(row) = known {
            return Ok(Some(row));
        }
        let generation = lock(&self.generational).generation.clone();
        let row = super::applications::find(pool, client_id).await?;
        if let (Some(row), Some(generation)) = (&row, generation) {
            // Only into the generation it was read under (a confirmation meanwhile drops it).
            self.with_current(&Confirmed(generation), |g| {
                g.applications.put(client_id.to_owned(), row.clone())
            });
        }
        Ok(row)
    }

    /// The account's device public key; `None` if there is no such device. A copy does not
    /// say the device still exists (see the module's documentation).
    pub async fn device_key(
        &self,
        pool: &Pool,
        account_id: &AccountId,
    ) -> StoreResult<Option<PublicKey>> {
        if let Some(key) = lock(&self.device_keys).get(account_id.as_str()) {
            return Ok(Some(key.clone()));
        }
        let Some(device) = super::devices::load_device(pool, account_id).await? else {
            return Ok(None);
        };
        lock(&self.device_keys).put(account_id.as_str().to_owned(), device.keys.device.clone());
        Ok(Some(device.keys.device))
    }

    /// Whether "last seen" should be written for the device at `now`: not if this process
    /// wrote it less than `resolution_ms` ago (the statement itself keeps the same rule across
    /// processes). Counts `now` as written when it says yes.
    pub fn seen_due(&self, account_id: &str, now: i64, resolution_ms: i64) -> bool {
        due(&self.seen, account_id, now, resolution_ms)
    }

    /// [`Cache::seen_due`] for "last used" (a device answered a sign-in).
    pub fn used_due(&self, account_id: &str, now: i64, resolution_ms: i64) -> bool {
        due(&self.used, account_id, now, resolution_ms)
    }
}

fn due(
    written: &Mutex<LruCache<String, i64>>,
    account_id: &str,
    now: i64,
    resolution_ms: i64,
) -> bool {
    let mut written = lock(written);
    match written.get(account_id) {
        Some(&at) if now.saturating_sub(at) < resolution_ms && now >= at => false,
        _ => {
            written.put(account_id.to_owned(), now);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_seen_is_due_once_per_resolution_per_device() {
        let cache = Cache::default();
        assert!(cache.seen_due("a", 1_000, 60_000));
        assert!(!cache.seen_due("a", 30_000, 60_000));
        assert!(cache.seen_due("b", 30_000, 60_000));
        assert!(cache.seen_due("a", 61_000, 60_000));
        // A clock that went back does not silence it.
        assert!(cache.seen_due("a", 500, 60_000));
    }

    #[test]
    fn another_generation_drops_the_copies() {
        let cache = Cache::default();
        let first = cache.confirm(Some("g1".into()));
        assert_eq!(
            cache.with_current(&first, |g| {
                g.groups.put("ann".into(), vec!["sales".into()]);
            }),
            Some(())
        );
        // The same generation again keeps them.
        let again = cache.confirm(Some("g1".into()));
        assert_eq!(
            cache.with_current(&again, |g| g.groups.get("ann").cloned()),
            Some(Some(vec!["sales".into()]))
        );
        // Another drops them, and a copy made under the old one is not stored.
        let second = cache.confirm(Some("g2".into()));
        assert_eq!(
            cache.with_current(&second, |g| g.groups.get("ann").cloned()),
            Some(None)
        );
        assert_eq!(cache.with_current(&first, |g| g.groups.len()), None);
        // No generation written yet is a generation too.
        let none = cache.confirm(None);
        assert_eq!(cache.with_current(&none, |g| g.groups.len()), Some(0));
    }
}
