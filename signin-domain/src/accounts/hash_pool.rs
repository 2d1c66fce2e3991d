//! The threads Argon2 runs on: a fixed set, one per concurrent hash the memory budget allows.
//!
//! Not tokio's blocking pool: it grows to 512 threads, and the allocator keeps a freed 19 MiB
//! Argon2 buffer in the arena of the thread that used it, so hashes spread over many threads
//! leave many such buffers resident even when few run at once. Here the same few threads do all
//! the work, and each keeps one Argon2 working memory that all its hashes reuse ([`hash_into`]):
//! the memory they hold is the budget (`[limits] argon2_memory_mib`), however many hashes run.
//! (Measured: 30 hashes one after another on one thread that allocates anew each time left
//! ~210 MiB resident; glibc keeps the freed 19 MiB blocks in the thread's arena.)
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::error::AppError;

thread_local! {
    /// Set on the pool's threads: only they keep working memory between hashes.
    static ON_POOL: Cell<bool> = const { Cell::new(false) };
    /// A pool thread's Argon2 working memory, reused by every hash it runs.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Argon2 (`hasher`) of `password` under `salt` into `out`. On a pool thread, in that thread's
/// kept memory; elsewhere (creating codes, tests) in memory allocated for this hash only.
pub fn hash_into(
    hasher: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    if !ON_POOL.get() {
        return hasher.hash_password_into(password, salt, out);
    }
    MEMORY.with_borrow_mut(|blocks| {
        let needed = hasher.params().block_count();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        // Argon2 writes every block before it reads it: what a previous hash left is unused.
        hasher.hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
    })
}

/// Whether `password` matches the PHC string `phc` (what `PasswordVerifier::verify_password`
/// does, through [`hash_into`]); the outputs are compared in constant time.
pub fn verify_phc(password: &[u8], phc: &PasswordHash<'_>) -> bool {
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(phc.algorithm) else {
        return false;
    };
    let version = match phc.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(phc) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let hasher = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        hash_into(&hasher, password, salt, out).map_err(Into::into)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok_and(|c| c == *expected)
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// `threads` worker threads, started on first use; they end when the pool is dropped.
#[derive(Debug)]
pub struct HashPool {
    threads: usize,
    jobs: OnceLock<Result<SyncSender<Job>, String>>,
}

impl HashPool {
    pub fn new(threads: usize) -> Self {
        HashPool {
            threads: threads.max(1),
            jobs: OnceLock::new(),
        }
    }

    /// Runs `work` on one of the pool's threads. Callers bound how many run at once (a
    /// semaphore of the same size), so a job never waits long for a thread.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let jobs = self
            .jobs
            .get_or_init(|| start(self.threads))
            .as_ref()
            .map_err(|e| AppError::internal(anyhow::anyhow!("Argon2 threads: {e}")))?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        jobs.send(job)
            .map_err(|_| AppError::internal(anyhow::anyhow!("Argon2 threads ended")))?;
        result
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("an Argon2 computation panicked")))
    }
}

fn start(threads: usize) -> Result<SyncSender<Job>, String> {
    let (tx, rx) = sync_channel::<Job>(threads);
    let rx = Arc::new(Mutex::new(rx));
    for n in 0..threads {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{n}"))
            .spawn(move || work(&rx))
            .map_err(|e| e.to_string())?;
    }
    Ok(tx)
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    ON_POOL.set(true);
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        match job {
            // A panic ends that job (its caller sees an internal error), not the thread.
            Ok(job) => {
                let _ = catch_unwind(AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test]
    async fn jobs_run_on_the_pools_own_threads_only() {
        let pool = HashPool::new(2);
        let mut names = HashSet::new();
        for _ in 0..20 {
            let name = pool
                .run(|| std::thread::current().name().map(str::to_owned))
                .await
                .unwrap();
            names.insert(name.unwrap());
        }
        assert!(
            names.iter().all(|n| n == "argon2-0" || n == "argon2-1"),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn hashes_on_the_pool_reuse_memory_and_match_the_crates_own_results() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let pool = HashPool::new(1);
        let hasher = Argon2::default();
        let mut expected = [0u8; 32];
        hasher
            .hash_password_into(b"code", b"sixteen byte salt", &mut expected)
            .unwrap();
        for _ in 0..3 {
            let got = pool
                .run(|| {
                    let mut out = [0u8; 32];
                    hash_into(&Argon2::default(), b"code", b"sixteen byte salt", &mut out).unwrap();
                    (out, MEMORY.with_borrow(Vec::len))
                })
                .await
                .unwrap();
            assert_eq!(got.0, expected);
            assert_eq!(
                got.1,
                Params::default().block_count(),
                "one working memory kept"
            );
        }
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = hasher
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        let checked = pool
            .run(move || {
                let parsed = PasswordHash::new(&phc).unwrap();
                (
                    verify_phc(b"correct horse", &parsed),
                    verify_phc(b"correct horsf", &parsed),
                )
            })
            .await
            .unwrap();
        assert_eq!(checked, (true, false));
        assert!(
            MEMORY.with_borrow(Vec::is_empty),
            "nothing kept off the pool"
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_and_the_pool_goes_on() {
        let pool = HashPool::new(1);
        let r = pool.run(|| panic!("boom")).await;
        assert!(matches!(r, Err(AppError::Internal(_))), "{r:?}");
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }
}
