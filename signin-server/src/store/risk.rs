//! Per-user anti-fatigue state (`user_risk`), updated with an optimistic version check.
use super::{Pool, StoreResult};

/// The stored per-user state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRisk {
    pub bucket_millitokens: i64,
    pub bucket_at: i64,
    pub strikes: i64,
    pub blocked_until: i64,
    pub paused_until: i64,
    pub risk: i64,
    pub reports: i64,
    pub last_report_at: Option<i64>,
}

type Row = (i64, i64, i64, i64, i64, i64, i64, Option<i64>, i64);

/// The user's state and its version, if stored.
pub async fn load(pool: &Pool, upn: &str) -> StoreResult<Option<(UserRisk, i64)>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT bucket_millitokens, bucket_at, strikes, blocked_until, paused_until, risk, \
         reports, last_report_at, version FROM user_risk WHERE upn = $1",
    )
    .bind(upn)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        (
            UserRisk {
                bucket_millitokens: r.0,
                bucket_at: r.1,
                strikes: r.2,
                blocked_until: r.3,
                paused_until: r.4,
                risk: r.5,
                reports: r.6,
                last_report_at: r.7,
            },
            r.8,
        )
    }))
}

/// Stores `next` if the row is still at `version` (or absent when `version` is `None`).
pub async fn save_if_version(
    pool: &Pool,
    upn: &str,
    next: &UserRisk,
    version: Option<i64>,
) -> StoreResult<bool> {
    let query = match version {
        None => sqlx::query(
            "INSERT INTO user_risk (upn, bucket_millitokens, bucket_at, strikes, blocked_until, \
             paused_until, risk, reports, last_report_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1) ON CONFLICT (upn) DO NOTHING",
        ),
        Some(_) => sqlx::query(
            "UPDATE user_risk SET bucket_millitokens = $2, bucket_at = $3, strikes = $4, \
             blocked_until = $5, paused_until = $6, risk = $7, reports = $8, \
             last_report_at = $9, version = version + 1 WHERE upn = $1 AND version = $10",
        ),
    }
    .bind(upn)
    .bind(next.bucket_millitokens)
    .bind(next.bucket_at)
    .bind(next.strikes)
    .bind(next.blocked_until)
    .bind(next.paused_until)
    .bind(next.risk)
    .bind(next.reports)
    .bind(next.last_report_at);
    // PostgreSQL refuses more arguments than placeholders: the version only for the UPDATE.
    let query = match version {
        Some(v) => query.bind(v),
        None => query,
    };
    Ok(query.execute(pool).await?.rows_affected() == 1)
}
