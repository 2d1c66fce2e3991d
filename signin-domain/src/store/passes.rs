//! Temporary access passes (`temporary_passes`): only SHA-256(pass) is stored.
use super::{Pool, StoreResult};

pub async fn insert(
    pool: &Pool,
    code_hash: &str,
    upn: &str,
    created_at: i64,
    expires_at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO temporary_passes (code_hash, upn, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(code_hash)
    .bind(upn)
    .bind(created_at)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Uses the pass of `upn` with this hash if it is unused and unexpired: one conditional
/// statement, so a pass works once even when presented twice at the same moment.
pub async fn consume(pool: &Pool, code_hash: &str, upn: &str, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE temporary_passes SET used_at = $3 \
         WHERE code_hash = $1 AND upn = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(code_hash)
    .bind(upn)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `upn` holds a pass that is unused and unexpired at `now` (what "Other ways to sign
/// in" offers; the pass itself is never read).
pub async fn has_usable(pool: &Pool, upn: &str, now: i64) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT expires_at FROM temporary_passes \
         WHERE upn = $1 AND used_at IS NULL AND expires_at > $2 LIMIT 1",
    )
    .bind(upn)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// One of a user's temporary access passes as the helpdesk sees it (never the pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassSummary {
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// The user's passes that are still usable or ended in the last day, newest first.
pub async fn of_user(pool: &Pool, upn: &str, now: i64) -> StoreResult<Vec<PassSummary>> {
    let rows: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT created_at, expires_at, used_at FROM temporary_passes \
         WHERE upn = $1 AND COALESCE(used_at, expires_at) > $2 ORDER BY created_at DESC",
    )
    .bind(upn)
    .bind(now - 24 * 3600 * 1000)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(created_at, expires_at, used_at)| PassSummary {
            created_at,
            expires_at,
            used_at,
        })
        .collect())
}
