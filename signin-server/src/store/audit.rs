//! The append-only audit log table.
use super::{Pool, StoreResult};

/// One stored audit entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub event: String,
    pub upn: Option<String>,
    pub account_id: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
}

/// The fields of an entry to append (`seq` is assigned here).
#[derive(Debug, Clone, Copy)]
pub struct NewAuditRow<'a> {
    pub at: i64,
    pub event: &'a str,
    pub upn: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub outcome: &'a str,
}

/// How often `append` retries after another writer took the same `seq` (PostgreSQL only).
const SEQ_RETRIES: usize = 100;

/// Appends one entry with the next `seq`.
pub async fn append(pool: &Pool, e: NewAuditRow<'_>) -> StoreResult<()> {
    // `seq` is computed inside the INSERT, one statement. SQLite serializes writers, so it never
    // collides there; on PostgreSQL two concurrent writers can compute the same `seq`: the
    // second waits for the first to commit, then fails on the primary key, and is retried
    // (the audit order is the commit order, without gaps).
    let mut attempt = 0;
    loop {
        let inserted = sqlx::query(
            "INSERT INTO audit_log (seq, at, event, upn, account_id, request_id, outcome) \
             SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5, $6 FROM audit_log",
        )
        .bind(e.at)
        .bind(e.event)
        .bind(e.upn)
        .bind(e.account_id)
        .bind(e.request_id)
        .bind(e.outcome)
        .execute(pool)
        .await;
        match inserted {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempt < SEQ_RETRIES => {
                attempt += 1;
                tokio::task::yield_now().await;
            }
            Err(other) => return Err(other.into()),
        }
    }
}

const COLUMNS: &str = "seq, at, event, upn, account_id, request_id, outcome";

/// Every entry, oldest first.
pub async fn all(pool: &Pool) -> StoreResult<Vec<AuditRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"))
            .fetch_all(pool)
            .await?,
    )
}

/// The newest `limit` entries, newest first.
pub async fn newest(pool: &Pool, limit: i64) -> StoreResult<Vec<AuditRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
