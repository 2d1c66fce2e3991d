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

/// Stores a new session (and first deletes expired ones, so the table stays small).
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
