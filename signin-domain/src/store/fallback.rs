//! The offline fallback's tables (migration 0007): TOTP secrets (encrypted), backup codes
//! (Argon2id hashes), the bound on fallback tries, and the fallback's settings.
use super::{Pool, StoreResult};

/// The AES-256-GCM key the TOTP secrets are sealed with (base64url), in `settings`.
pub const TOTP_KEY_SETTING: &str = "fallback_totp_key";
/// `on` when the policy allows the offline fallback on the sign-in page.
pub const FALLBACK_ENABLED_SETTING: &str = "offline_fallback";

/// Inserts `value` unless the setting exists, then returns the stored value (two processes
/// racing to create it agree).
pub async fn get_or_init_setting(pool: &Pool, name: &str, value: &str) -> StoreResult<String> {
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(pool)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(pool)
            .await?,
    )
}

pub async fn insert_totp_secret(
    pool: &Pool,
    account_id: &str,
    upn: &str,
    secret_enc: &str,
    created_at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO totp_secrets (account_id, upn, secret_enc, last_step, created_at) \
         VALUES ($1, $2, $3, NULL, $4)",
    )
    .bind(account_id)
    .bind(upn)
    .bind(secret_enc)
    .bind(created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// One device's sealed TOTP secret.
#[derive(Clone)]
pub struct StoredTotp {
    pub account_id: String,
    pub secret_enc: String,
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for StoredTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTotp")
            .field("account_id", &self.account_id)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// The TOTP secrets of the user's current devices (a removed device's secret is gone with it).
pub async fn totp_secrets_of(pool: &Pool, upn: &str) -> StoreResult<Vec<StoredTotp>> {
    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT t.account_id, t.secret_enc, t.last_step FROM totp_secrets t \
         JOIN devices d ON d.account_id = t.account_id \
         WHERE t.upn = $1 AND d.upn = $1 ORDER BY t.created_at",
    )
    .bind(upn)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(account_id, secret_enc, last_step)| StoredTotp {
            account_id,
            secret_enc,
            last_step,
        })
        .collect())
}

/// Records that `step` of this device's TOTP signed someone in, only if no code of this step
/// or a later one has: one conditional statement, so a code works once even when presented
/// twice at the same moment.
pub async fn use_totp_step(pool: &Pool, account_id: &str, step: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE totp_secrets SET last_step = $2 \
         WHERE account_id = $1 AND (last_step IS NULL OR last_step < $2)",
    )
    .bind(account_id)
    .bind(step)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces the user's backup codes with a new set (its salt and the codes' hashes), in one
/// transaction: the old codes stop working.
pub async fn replace_backup_codes(
    pool: &Pool,
    upn: &str,
    salt: &str,
    hashes: &[String],
    now: i64,
    created_by_device: Option<&str>,
) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM backup_codes WHERE upn = $1")
        .bind(upn)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM backup_code_sets WHERE upn = $1")
        .bind(upn)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO backup_code_sets (upn, salt, created_at, created_by_device) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(upn)
    .bind(salt)
    .bind(now)
    .bind(created_by_device)
    .execute(&mut *tx)
    .await?;
    for hash in hashes {
        sqlx::query("INSERT INTO backup_codes (upn, code_hash, used_at) VALUES ($1, $2, NULL)")
            .bind(upn)
            .bind(hash)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The salt of the user's backup-code set, if they have one.
pub async fn backup_code_salt(pool: &Pool, upn: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT salt FROM backup_code_sets WHERE upn = $1")
            .bind(upn)
            .fetch_optional(pool)
            .await?,
    )
}

/// (unused, total) backup codes of the user.
pub async fn backup_code_counts(pool: &Pool, upn: &str) -> StoreResult<(i64, i64)> {
    let (unused, total): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*) - COUNT(used_at), COUNT(*) FROM backup_codes WHERE upn = $1",
    )
    .bind(upn)
    .fetch_one(pool)
    .await?;
    Ok((unused, total))
}

/// Uses the user's unused backup code with this hash: one conditional statement, so a code
/// works once even when presented twice at the same moment.
pub async fn use_backup_code(
    pool: &Pool,
    upn: &str,
    code_hash: &str,
    now: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE backup_codes SET used_at = $3 \
         WHERE upn = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(upn)
    .bind(code_hash)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Why a fallback try was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRefused {
    /// The window's tries are used up; the next window starts at this time (Unix ms).
    WindowFull { until: i64 },
    /// Too many failures in a row: locked until an admin unlocks it.
    Locked,
}

/// Takes one fallback try for `upn` (counted as a failure until [`give_back_try`]): at most
/// `per_window` per `window_ms`, and at most `max_consecutive` failures in a row. Each step is
/// one conditional statement, so concurrent tries never exceed the bounds.
pub async fn take_try(
    pool: &Pool,
    upn: &str,
    now: i64,
    window_ms: i64,
    per_window: i64,
    max_consecutive: i64,
) -> StoreResult<Result<(), TryRefused>> {
    // Counters of UPNs that are no user, idle for a day, are dropped (typed UPNs are counted
    // whether they exist or not, so that the pages answer both alike).
    sqlx::query(
        "DELETE FROM fallback_tries WHERE window_start < $1 \
         AND upn NOT IN (SELECT upn FROM users)",
    )
    .bind(now - 86_400_000)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO fallback_tries (upn, window_start, window_tries, consecutive) \
         VALUES ($1, $2, 0, 0) ON CONFLICT (upn) DO NOTHING",
    )
    .bind(upn)
    .bind(now)
    .execute(pool)
    .await?;
    sqlx::query(
        "UPDATE fallback_tries SET window_start = $2, window_tries = 0 \
         WHERE upn = $1 AND window_start <= $3",
    )
    .bind(upn)
    .bind(now)
    .bind(now - window_ms)
    .execute(pool)
    .await?;
    let taken = sqlx::query(
        "UPDATE fallback_tries SET window_tries = window_tries + 1, consecutive = consecutive + 1 \
         WHERE upn = $1 AND window_tries < $2 AND consecutive < $3",
    )
    .bind(upn)
    .bind(per_window)
    .bind(max_consecutive)
    .execute(pool)
    .await?;
    if taken.rows_affected() == 1 {
        return Ok(Ok(()));
    }
    let (window_start, consecutive): (i64, i64) =
        sqlx::query_as("SELECT window_start, consecutive FROM fallback_tries WHERE upn = $1")
            .bind(upn)
            .fetch_one(pool)
            .await?;
    if consecutive >= max_consecutive {
        Ok(Err(TryRefused::Locked))
    } else {
        Ok(Err(TryRefused::WindowFull {
            until: window_start + window_ms,
        }))
    }
}

/// Failures in a row of `upn`'s fallback tries (0 without any).
pub async fn consecutive_failures(pool: &Pool, upn: &str) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT consecutive FROM fallback_tries WHERE upn = $1")
            .bind(upn)
            .fetch_optional(pool)
            .await?
            .unwrap_or(0),
    )
}

/// A try that succeeded: the failure counts start again.
pub async fn give_back_try(pool: &Pool, upn: &str) -> StoreResult<()> {
    sqlx::query("UPDATE fallback_tries SET window_tries = 0, consecutive = 0 WHERE upn = $1")
        .bind(upn)
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends a lock (admin): whether there was anything to reset.
pub async fn reset_tries(pool: &Pool, upn: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM fallback_tries WHERE upn = $1")
        .bind(upn)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
