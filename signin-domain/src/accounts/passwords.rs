//! Optional user passwords: Argon2id (argon2 crate defaults, OWASP's minimum: m=19 MiB, t=2,
//! p=1), stored as PHC strings. Only the hash is stored; passwords are never logged.
use anyhow::{bail, Context};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::error::{AppError, Capacity};

use crate::audit::{self, Event};
use crate::rules::risk::address_key;
use crate::store::{users, Pool, StoreResult};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        bail!("the password must be at most {MAX_PASSWORD_BYTES} bytes");
    }
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// A fixed hash to verify against when the user has no password, so that the answer takes
/// about as long whether or not the account (or its password) exists.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no such password: dummy").unwrap_or_else(|_| String::new()))
}

/// Sets (or replaces) the password of an existing user. Audited without the password.
pub async fn set_password(pool: &Pool, upn: &str, password: &str) -> anyhow::Result<()> {
    let upn = crate::upn::cli_arg("--upn", upn)?;
    let upn = upn.as_str();
    let phc = hash_password(password)?;
    if !users::exists(pool, upn).await? {
        bail!("no user {upn}");
    }
    users::set_password_hash(pool, upn, &phc)
        .await
        .context("storing the password hash")?;
    audit::record(
        pool,
        Event::PasswordSet,
        audit::Entry {
            upn: Some(upn),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

pub async fn has_password(pool: &Pool, upn: &str) -> StoreResult<bool> {
    Ok(users::password_hash(pool, upn).await?.is_some())
}

/// Password checks run at most this many Argon2 hashes at once: each holds 19 MiB, so an
/// unbounded flood of `POST /signin/password` exhausted memory. One per core: more would not
/// finish sooner, only hold more memory.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Password attempts a user may make in a burst (policy choice: a few typos).
pub const USER_ATTEMPT_BURST: u32 = 5;
/// Then one more attempt per user every minute (policy choice: 60 guesses an hour at most).
pub const USER_ATTEMPT_REFILL: Duration = Duration::from_secs(60);
/// Password attempts one client address (IPv4 address, IPv6 /64) may make in a burst, over all
/// users (policy choice: an office behind one NAT address signing in at 9:00).
pub const IP_ATTEMPT_BURST: u32 = 20;
/// Then one more attempt per address every 6 seconds (policy choice: 10 a minute).
pub const IP_ATTEMPT_REFILL: Duration = Duration::from_secs(6);
/// Buckets kept per kind (users, addresses): memory stays bounded under a spray of made-up names
/// or addresses. When full, refilled buckets are dropped first, then the least recently used.
pub const MAX_TRACKED_BUCKETS: usize = 10_000;

/// Memory one Argon2id hash holds while it runs (the crate's default m = 19 MiB, plus its
/// working set), what [`PasswordLimits::for_memory`] divides the configured budget by.
pub const ARGON2_MIB: usize = 19;
/// Checks that may wait for a running one to finish before new ones are refused (default).
pub const ARGON2_QUEUE: usize = 64;
/// How long a queued check waits at most before it is refused.
pub const ARGON2_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Limits of [`PasswordGuard`]; the defaults are the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordLimits {
    /// Argon2 hashes at once (default: the number of cores): the memory bound is this times
    /// [`ARGON2_MIB`].
    pub concurrency: usize,
    /// Checks that may queue for a place; beyond, and after [`ARGON2_QUEUE_WAIT`], a check is
    /// refused with [`AppError::AtCapacity`].
    pub queue: usize,
    pub user_burst: u32,
    pub user_refill: Duration,
    pub ip_burst: u32,
    pub ip_refill: Duration,
}

impl Default for PasswordLimits {
    fn default() -> Self {
        PasswordLimits {
            concurrency: default_concurrency(),
            queue: ARGON2_QUEUE,
            user_burst: USER_ATTEMPT_BURST,
            user_refill: USER_ATTEMPT_REFILL,
            ip_burst: IP_ATTEMPT_BURST,
            ip_refill: IP_ATTEMPT_REFILL,
        }
    }
}

impl PasswordLimits {
    /// As many concurrent hashes as `memory_mib` holds (at least one).
    pub fn concurrency_for_memory(memory_mib: usize) -> usize {
        (memory_mib / ARGON2_MIB).max(1)
    }
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    User,
    ClientAddress,
}

impl Throttle {
    pub fn as_str(self) -> &'static str {
        match self {
            Throttle::User => "user",
            Throttle::ClientAddress => "client_address",
        }
    }
}

/// The answer of [`verify_password`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Correct,
    Wrong,
    /// Refused before hashing: too many attempts for this user or from this address.
    Throttled {
        by: Throttle,
        retry_after_secs: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by key (a user or an address), bounded in number.
#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Bucket>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Buckets {
            map: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    /// The bucket of `key` refilled to `now`, or, when it has no token, how long until it has one.
    fn refill(
        &mut self,
        key: &K,
        burst: u32,
        refill: Duration,
        now: Instant,
    ) -> Result<(), Duration> {
        let burst = f64::from(burst.max(1));
        let per_sec = 1.0 / refill.as_secs_f64().max(0.001);
        if !self.map.contains_key(key) && self.map.len() >= MAX_TRACKED_BUCKETS {
            self.map.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_sec < burst
            });
            if self.map.len() >= MAX_TRACKED_BUCKETS {
                if let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, b)| b.updated)
                    .map(|(k, _)| k.clone())
                {
                    self.map.remove(&oldest);
                }
            }
        }
        let b = self.map.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.updated).as_secs_f64() * per_sec).min(burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }

    fn take(&mut self, key: &K) {
        if let Some(b) = self.map.get_mut(key) {
            b.tokens -= 1.0;
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    hashes: AtomicU64,
}

/// What password checks may cost: a bound on concurrent Argon2 hashes (a semaphore) and
/// per-user and per-address attempt limits (in memory, per server instance). One per server.
#[derive(Debug)]
pub struct PasswordGuard {
    limits: PasswordLimits,
    permits: Arc<Semaphore>,
    threads: super::hash_pool::HashPool,
    users: Mutex<Buckets<String>>,
    addresses: Mutex<Buckets<IpAddr>>,
    counters: Arc<Counters>,
}

/// What [`PasswordGuard::stats`] reports (for tests and diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordStats {
    /// Argon2 verifications run so far.
    pub hashes: u64,
    /// The most that ever ran at once.
    pub max_in_flight: usize,
}

impl Default for PasswordGuard {
    fn default() -> Self {
        PasswordGuard::new(PasswordLimits::default())
    }
}

impl PasswordGuard {
    pub fn new(limits: PasswordLimits) -> Self {
        let limits = PasswordLimits {
            concurrency: limits.concurrency.max(1),
            ..limits
        };
        PasswordGuard {
            permits: Arc::new(Semaphore::new(limits.concurrency)),
            threads: super::hash_pool::HashPool::new(limits.concurrency),
            limits,
            users: Mutex::default(),
            addresses: Mutex::default(),
            counters: Arc::default(),
        }
    }

    pub fn limits(&self) -> PasswordLimits {
        self.limits
    }

    pub fn stats(&self) -> PasswordStats {
        PasswordStats {
            hashes: self.counters.hashes.load(Ordering::SeqCst),
            max_in_flight: self.counters.max_in_flight.load(Ordering::SeqCst),
        }
    }

    /// Runs one Argon2 computation (a password check, a backup-code try) on a blocking thread,
    /// at most `concurrency` at once across all of them: each holds 19 MiB while it runs, so the
    /// bound is the memory bound. Beyond it, up to `queue` callers wait (at most
    /// [`ARGON2_QUEUE_WAIT`]); the others are refused at once with [`AppError::AtCapacity`].
    /// The permit is held until the computation ends, even if the request that asked for it is
    /// dropped.
    pub async fn run_argon2<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let busy = || AppError::AtCapacity {
            limit: Capacity::PasswordChecks,
            retry_after_secs: 1,
        };
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => {
                return Err(AppError::internal(anyhow::anyhow!(
                    "Argon2 semaphore closed"
                )))
            }
            Err(TryAcquireError::NoPermits) => {
                let queued = Queued::enter(&self.counters);
                if queued.position > self.limits.queue {
                    return Err(busy());
                }
                match tokio::time::timeout(ARGON2_QUEUE_WAIT, self.permits.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(e)) => return Err(AppError::internal(e)),
                    Err(_) => return Err(busy()),
                }
            }
        };
        let counters = self.counters.clone();
        self.threads
            .run(move || {
                let _permit = permit;
                let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
                let out = work();
                counters.hashes.fetch_add(1, Ordering::SeqCst);
                counters.in_flight.fetch_sub(1, Ordering::SeqCst);
                out
            })
            .await
    }

    /// Takes one attempt from the address's bucket only (a way in with its own per-user
    /// bound, like the fallback codes); how long to wait when it is empty.
    pub fn admit_address(&self, ip: IpAddr) -> Result<(), Duration> {
        let l = &self.limits;
        let mut addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        let key = address_key(ip);
        addresses.refill(&key, l.ip_burst, l.ip_refill, Instant::now())?;
        addresses.take(&key);
        Ok(())
    }

    /// Takes one attempt from the user's and the address's buckets, or neither when either is
    /// empty. No address (unknown client): only the user's bucket.
    fn admit(&self, upn: &str, ip: Option<IpAddr>) -> Result<(), (Throttle, Duration)> {
        let now = Instant::now();
        let l = &self.limits;
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mut addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        let upn = upn.to_owned();
        users
            .refill(&upn, l.user_burst, l.user_refill, now)
            .map_err(|d| (Throttle::User, d))?;
        let ip = ip.map(address_key);
        if let Some(ip) = &ip {
            addresses
                .refill(ip, l.ip_burst, l.ip_refill, now)
                .map_err(|d| (Throttle::ClientAddress, d))?;
            addresses.take(ip);
        }
        users.take(&upn);
        Ok(())
    }
}

/// A place in the queue for an Argon2 permit, left when dropped.
struct Queued<'a> {
    counters: &'a Counters,
    /// 1 for the first in the queue.
    position: usize,
}

impl<'a> Queued<'a> {
    fn enter(counters: &'a Counters) -> Self {
        let position = counters.queued.fetch_add(1, Ordering::SeqCst) + 1;
        Queued { counters, position }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.counters.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether `password` is the password of `upn`, attempted from `ip`. Throttled attempts
/// (per user, per address) are refused without hashing. Unknown users and users without a
/// password are checked against a dummy hash and fail. Argon2 runs on a blocking thread, at
/// most `concurrency` at once (the permit is held until the hash ends, even if the request is
/// dropped).
pub async fn verify_password(
    pool: &Pool,
    guard: &PasswordGuard,
    upn: &str,
    ip: Option<IpAddr>,
    password: &str,
) -> Result<PasswordCheck, AppError> {
    if let Err((by, wait)) = guard.admit(upn, ip) {
        return Ok(PasswordCheck::Throttled {
            by,
            retry_after_secs: wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0),
        });
    }
    let phc = users::password_hash(pool, upn).await?;
    let known = phc.is_some();
    let password = password.to_owned();
    let ok = guard
        .run_argon2(move || {
            if password.len() > MAX_PASSWORD_BYTES {
                return false;
            }
            let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
            match PasswordHash::new(&phc) {
                Ok(parsed) => super::hash_pool::verify_phc(password.as_bytes(), &parsed),
                Err(_) => false,
            }
        })
        .await?;
    Ok(if known && ok {
        PasswordCheck::Correct
    } else {
        PasswordCheck::Wrong
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_beyond_the_running_and_queued_bound_are_refused_as_busy() {
        let guard = Arc::new(PasswordGuard::new(PasswordLimits {
            concurrency: 1,
            queue: 1,
            ..PasswordLimits::default()
        }));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let running = {
            let (guard, hold) = (guard.clone(), hold.clone());
            tokio::spawn(async move {
                guard
                    .run_argon2(move || {
                        let _ = hold.lock().unwrap().recv();
                    })
                    .await
            })
        };
        while guard.counters.in_flight.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let queued = {
            let guard = guard.clone();
            tokio::spawn(async move { guard.run_argon2(|| 2).await })
        };
        while guard.counters.queued.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = guard.run_argon2(|| 3).await;
        assert!(
            matches!(
                refused,
                Err(AppError::AtCapacity {
                    limit: Capacity::PasswordChecks,
                    ..
                })
            ),
            "{refused:?}"
        );
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap().unwrap(), 2, "the queued check ran");
        assert_eq!(guard.counters.queued.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_memory_budget_sets_how_many_hashes_run_at_once() {
        assert_eq!(PasswordLimits::concurrency_for_memory(1), 1);
        assert_eq!(PasswordLimits::concurrency_for_memory(38), 2);
        assert_eq!(PasswordLimits::concurrency_for_memory(56), 2);
        assert_eq!(PasswordLimits::concurrency_for_memory(1024), 53);
    }

    #[test]
    fn buckets_refill_and_stay_bounded() {
        let mut b = Buckets::<String>::default();
        let t0 = Instant::now();
        let key = "bob".to_owned();
        for _ in 0..2 {
            b.refill(&key, 2, Duration::from_secs(60), t0).unwrap();
            b.take(&key);
        }
        let wait = b.refill(&key, 2, Duration::from_secs(60), t0).unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(59));
        assert!(b
            .refill(
                &key,
                2,
                Duration::from_secs(60),
                t0 + Duration::from_secs(60)
            )
            .is_ok());
        for i in 0..MAX_TRACKED_BUCKETS + 50 {
            let k = format!("user{i}");
            b.refill(&k, 2, Duration::from_secs(60), t0).unwrap();
            b.take(&k);
        }
        assert!(b.map.len() <= MAX_TRACKED_BUCKETS);
        let v6 = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(v6("2001:db8::1"), v6("2001:db8::ffff:2"));
        assert_ne!(v6("2001:db8::1"), v6("2001:db8:0:1::1"));
        assert_eq!(v6("::ffff:192.0.2.1"), v6("192.0.2.1"));
    }

    #[test]
    fn argon2id_phc_and_minimum_length() {
        use argon2::password_hash::PasswordVerifier;
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("correct horse"));
        assert!(hash_password("short").is_err());
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"correct horsf", &parsed)
            .is_err());
    }
}
