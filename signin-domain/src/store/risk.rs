//! Anti-fatigue state, updated with an optimistic version check: per user (`user_risk`:
//! pauses, risk) and per user and requesting client (`start_limits`: the start rate limit).
use super::group_commit::{query_with, Arg, Batch};
use super::{Pool, StoreResult};

/// Which row: a user's, or a rate-limit subject's (user + client).
#[derive(Debug, Clone, Copy)]
pub enum RiskKey<'a> {
    User(&'a str),
    Limit(&'a str),
}

impl RiskKey<'_> {
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            RiskKey::User(_) => ("user_risk", "upn"),
            RiskKey::Limit(_) => ("start_limits", "subject"),
        }
    }
    fn key(&self) -> &str {
        match self {
            RiskKey::User(k) | RiskKey::Limit(k) => k,
        }
    }
}

/// The stored per-user state (`Default`: all zero, no report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// The state and its version, if stored.
pub async fn load(pool: &Pool, key: RiskKey<'_>) -> StoreResult<Option<(UserRisk, i64)>> {
    let (table, column) = key.table_and_column();
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT bucket_millitokens, bucket_at, strikes, blocked_until, paused_until, risk, \
         reports, last_report_at, version FROM {table} WHERE {column} = $1"
    ))
    .bind(key.key())
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
    key: RiskKey<'_>,
    next: &UserRisk,
    version: Option<i64>,
) -> StoreResult<bool> {
    let sql = save_statement(key, version.is_some(), "true");
    let args = save_args(key, next, version);
    Ok(query_with(&sql, &args).execute(pool).await?.rows_affected() == 1)
}

/// The versioned write of [`save_if_version`], run only where `only_if` holds: an `UPDATE` of
/// the row at version `$10` when `versioned`, else an insert that a row stored meanwhile
/// turns into nothing. Its arguments are [`save_args`].
fn save_statement(key: RiskKey<'_>, versioned: bool, only_if: &str) -> String {
    let (table, column) = key.table_and_column();
    if versioned {
        format!(
            "UPDATE {table} SET bucket_millitokens = $2, bucket_at = $3, strikes = $4, \
             blocked_until = $5, paused_until = $6, risk = $7, reports = $8, \
             last_report_at = $9, version = version + 1 \
             WHERE {column} = $1 AND version = $10 AND {only_if}"
        )
    } else {
        format!(
            "INSERT INTO {table} ({column}, bucket_millitokens, bucket_at, strikes, \
             blocked_until, paused_until, risk, reports, last_report_at, version) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 1 WHERE {only_if} \
             ON CONFLICT ({column}) DO NOTHING"
        )
    }
}

/// `$1` … `$9` of [`save_statement`], and `$10` (the version) for the `UPDATE`: PostgreSQL
/// refuses more arguments than placeholders.
fn save_args(key: RiskKey<'_>, next: &UserRisk, version: Option<i64>) -> Vec<Arg> {
    let mut args = vec![
        Arg::Text(key.key().to_owned()),
        Arg::Int(next.bucket_millitokens),
        Arg::Int(next.bucket_at),
        Arg::Int(next.strikes),
        Arg::Int(next.blocked_until),
        Arg::Int(next.paused_until),
        Arg::Int(next.risk),
        Arg::Int(next.reports),
        Arg::OptInt(next.last_report_at),
    ];
    args.extend(version.map(Arg::Int));
    args
}

/// A start-limit row a sign-in start admitted from, to store with the start's requests in
/// its write unit (`requests::InsertSignIn`): written only if the row is still at `version`
/// (absent when `None`); if it is not, the admission was decided from a stale row and the
/// unit stores nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitWrite {
    pub subject: String,
    pub next: UserRisk,
    pub version: Option<i64>,
}

impl LimitWrite {
    fn key(&self) -> RiskKey<'_> {
        RiskKey::Limit(&self.subject)
    }

    /// The write, where `only_if` holds.
    pub fn statement(&self, only_if: &str) -> String {
        save_statement(self.key(), self.version.is_some(), only_if)
    }

    pub fn args(&self) -> Vec<Arg> {
        save_args(self.key(), &self.next, self.version)
    }

    /// An SQL condition, its values bound in `batch`: the row is still as the start read it.
    pub fn unchanged(&self, batch: &mut Batch) -> String {
        let (table, column) = self.key().table_and_column();
        let subject = batch.text(&self.subject);
        match self.version {
            Some(v) => {
                let version = batch.int(v);
                format!("(SELECT version FROM {table} WHERE {column} = {subject}) = {version}")
            }
            None => format!("NOT EXISTS (SELECT 1 FROM {table} WHERE {column} = {subject})"),
        }
    }
}

/// The user's rate-limit subjects blocked at `now`: the client part of the subject (after
/// `upn` and a newline) and its state.
pub async fn blocked_limits(
    pool: &Pool,
    upn: &str,
    now: i64,
) -> StoreResult<Vec<(String, UserRisk)>> {
    let prefix = format!("{upn}\n");
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT subject, blocked_until, strikes FROM start_limits \
         WHERE SUBSTR(subject, 1, LENGTH($1)) = $1 AND blocked_until > $2 ORDER BY subject",
    )
    .bind(&prefix)
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(subject, blocked_until, strikes)| {
            let client = subject[prefix.len().min(subject.len())..].replace('\n', " ");
            (
                client,
                UserRisk {
                    strikes,
                    blocked_until,
                    ..Default::default()
                },
            )
        })
        .collect())
}
