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
    /// How a signed-in session was made (`trust::Method`'s name) and by which device, if a
    /// device made it: removing that device ends the session.
    pub method: Option<String>,
    pub device: Option<String>,
}

/// The unexpired session with this id hash. A signed-in session also needs its user not
/// disabled and the device that made it (if one did) still enrolled and not held: ending a
/// credential deletes its sessions (`trust::end_sessions`), and this holds even for a session
/// written in the same instant.
pub async fn find(pool: &Pool, id_hash: &str, now: i64) -> StoreResult<Option<SessionRow>> {
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT s.upn, s.pending_upn, s.pending_request, s.pending_kind, s.resends, s.method, \
         s.device FROM web_sessions s WHERE s.id_hash = $1 AND s.expires_at > $2 \
         AND NOT EXISTS (SELECT 1 FROM users u WHERE u.upn = s.upn AND u.disabled = 1) \
         AND (s.device IS NULL OR EXISTS (SELECT 1 FROM devices d \
         WHERE d.account_id = s.device AND d.upn = s.upn AND d.awaiting_approval = 0))",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(upn, pending_upn, pending_request, pending_kind, resends, method, device)| SessionRow {
            upn,
            pending_upn,
            pending_request,
            pending_kind,
            resends,
            method,
            device,
        },
    ))
}

/// One signed-in web session of a user as the helpdesk sees it (never its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInSession {
    /// How it was made (`trust::Method`'s name).
    pub method: Option<String>,
    /// The device that made it, if one did.
    pub device: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The user's unexpired signed-in web sessions, newest first.
pub async fn signed_in_of(pool: &Pool, upn: &str, now: i64) -> StoreResult<Vec<SignedInSession>> {
    let rows: Vec<(Option<String>, Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT method, device, created_at, expires_at FROM web_sessions \
         WHERE upn = $1 AND expires_at > $2 ORDER BY created_at DESC",
    )
    .bind(upn)
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(method, device, created_at, expires_at)| SignedInSession {
            method,
            device,
            created_at,
            expires_at,
        })
        .collect())
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
         pending_kind, resends, created_at, expires_at, method, device) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id_hash)
    .bind(&row.upn)
    .bind(&row.pending_upn)
    .bind(&row.pending_request)
    .bind(&row.pending_kind)
    .bind(row.resends)
    .bind(now)
    .bind(expires_at)
    .bind(&row.method)
    .bind(&row.device)
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
