//! Move codes (PROTOCOL.md §5.11): enrollment codes a device vouched for, and the encrypted
//! TOTP blob kept with one of them until the new phone takes it.
use super::{Pool, StoreResult};

/// A move code to insert.
#[derive(Clone, Copy)]
pub struct NewMoveCode<'a> {
    pub code_hash: &'a str,
    pub upn: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
    /// The vouching device's account id and the timestamp it signed.
    pub vouched_by: &'a str,
    pub vouched_at: i64,
    pub blob: Option<&'a str>,
}

impl std::fmt::Debug for NewMoveCode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMoveCode")
            .field("vouched_by", &self.vouched_by)
            .finish_non_exhaustive()
    }
}

/// Inserts the move code unless this device already vouched with this timestamp or a later
/// one (a replayed or reordered vouch). Returns whether it was inserted.
pub async fn insert(pool: &Pool, c: NewMoveCode<'_>) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO enrollment_codes (code_hash, upn, created_at, expires_at, vouched_by, \
         vouched_at, move_blob) SELECT $1, $2, $3, $4, $5, $6, $7 \
         WHERE NOT EXISTS (SELECT 1 FROM enrollment_codes WHERE vouched_by = $5 \
         AND vouched_at >= $6)",
    )
    .bind(c.code_hash)
    .bind(c.upn)
    .bind(c.created_at)
    .bind(c.expires_at)
    .bind(c.vouched_by)
    .bind(c.vouched_at)
    .bind(c.blob)
    .execute(pool)
    .await;
    match inserted {
        Ok(done) => Ok(done.rows_affected() == 1),
        // Two copies of one vouch at once: the unique index refuses the second.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What a code is, as far as a move cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveCode {
    pub upn: String,
    pub used: bool,
    pub expires_at: i64,
    /// `None`: an ordinary registration code, not a move.
    pub vouched_by: Option<String>,
}

pub async fn find(pool: &Pool, code_hash: &str) -> StoreResult<Option<MoveCode>> {
    let row: Option<(String, Option<i64>, i64, Option<String>)> = sqlx::query_as(
        "SELECT upn, used_at, expires_at, vouched_by FROM enrollment_codes WHERE code_hash = $1",
    )
    .bind(code_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(upn, used_at, expires_at, vouched_by)| MoveCode {
        upn,
        used: used_at.is_some(),
        expires_at,
        vouched_by,
    }))
}

/// Takes the blob kept with an unused, unexpired code: returns it and clears it, so it is
/// handed out once.
pub async fn take_blob(pool: &Pool, code_hash: &str, now: i64) -> StoreResult<Option<String>> {
    let mut tx = pool.begin().await?;
    let blob: Option<Option<String>> = sqlx::query_scalar(
        "SELECT move_blob FROM enrollment_codes WHERE code_hash = $1 AND used_at IS NULL \
         AND expires_at > $2",
    )
    .bind(code_hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(Some(blob)) = blob else {
        return Ok(None);
    };
    let cleared = sqlx::query(
        "UPDATE enrollment_codes SET move_blob = NULL WHERE code_hash = $1 \
         AND move_blob IS NOT NULL",
    )
    .bind(code_hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((cleared.rows_affected() == 1).then_some(blob))
}
