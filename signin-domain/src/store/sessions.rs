//! Web sessions, keyed by a hash of the session id (the id itself is never stored).
use super::{Pool, StoreResult};

/// The stored state of one web session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRow {
    pub upn: Option<String>,
    pub pending_upn: Option<String>,
    pub pending_request: Option<String>,
    pub pending_kind: Option<String>,
    pub resends: i64,
}

/// The unexpired session with this id hash.
pub async fn find(pool: &Pool, id_hash: &str, now: i64) -> StoreResult<Option<SessionRow>> {
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT upn, pending_upn, pending_request, pending_kind, resends \
         FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(upn, pending_upn, pending_request, pending_kind, resends)| SessionRow {
            upn,
            pending_upn,
            pending_request,
            pending_kind,
            resends,
        },
    ))
}

/// At most this many sessions that are not signed in (sign-ins in progress) are kept: beyond
/// it, storing one drops the oldest. A signed-in session is never dropped for room.
pub const MAX_ANONYMOUS_SESSIONS: i64 = 20_000;

/// Stores a new session (and first deletes expired ones, and for an anonymous session the
/// oldest anonymous ones beyond [`MAX_ANONYMOUS_SESSIONS`], so the table stays bounded).
pub async fn insert(
    pool: &Pool,
    id_hash: &str,
    row: &SessionRow,
    now: i64,
    expires_at: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    if row.upn.is_none() {
        cap_anonymous(pool, MAX_ANONYMOUS_SESSIONS - 1).await?;
    }
    sqlx::query(
        "INSERT INTO web_sessions (id_hash, upn, pending_upn, pending_request, \
         pending_kind, resends, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id_hash)
    .bind(&row.upn)
    .bind(&row.pending_upn)
    .bind(&row.pending_request)
    .bind(&row.pending_kind)
    .bind(row.resends)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Updates the sign-in progress of a stored session (its user never changes: a new user is a
/// new session).
pub async fn update_progress(pool: &Pool, id_hash: &str, row: &SessionRow) -> StoreResult<()> {
    sqlx::query(
        "UPDATE web_sessions SET pending_upn = $2, pending_request = $3, \
         pending_kind = $4, resends = $5 WHERE id_hash = $1",
    )
    .bind(id_hash)
    .bind(&row.pending_upn)
    .bind(&row.pending_request)
    .bind(&row.pending_kind)
    .bind(row.resends)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes the session; with `pending_request`, only if it still holds that request. Returns
/// whether a row was deleted.
pub async fn delete(
    pool: &Pool,
    id_hash: &str,
    pending_request: Option<&str>,
) -> StoreResult<bool> {
    let deleted = match pending_request {
        Some(req) => {
            sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1 AND pending_request = $2")
                .bind(id_hash)
                .bind(req)
                .execute(pool)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(pool)
                .await?
        }
    };
    Ok(deleted.rows_affected() == 1)
}

/// Deletes the oldest anonymous sessions until at most `keep` remain.
pub async fn cap_anonymous(pool: &Pool, keep: i64) -> StoreResult<()> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM web_sessions WHERE upn IS NULL")
        .fetch_one(pool)
        .await?;
    if count > keep {
        sqlx::query(
            "DELETE FROM web_sessions WHERE id_hash IN (SELECT id_hash FROM web_sessions \
             WHERE upn IS NULL ORDER BY created_at LIMIT $1)",
        )
        .bind(count - keep)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// How many sessions are stored (tests and operations).
pub async fn count(pool: &Pool) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM web_sessions")
        .fetch_one(pool)
        .await?)
}
