//! The append-only audit log table.
use super::group_commit::Batch;
use super::{Conn, Pool, StoreError, StoreResult};

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
    /// How many identical entries followed within [`COLLAPSE_WINDOW_MS`] of each other.
    pub repeats: i64,
    /// When the last of them happened.
    pub last_at: Option<i64>,
    /// Who acted (`audit::Actor`'s text); `None` on entries from before actors were recorded.
    pub actor: Option<String>,
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
    /// Who acted (`audit::Actor`'s text).
    pub actor: &'a str,
}

/// How often an insert tries again after another writer took the same `seq` (PostgreSQL only).
const SEQ_RETRIES: usize = 100;

/// An entry identical to the newest one with the same event and user (same account,
/// request and outcome) within this long after that one's last repeat is counted on it
/// instead of written: a burst of refused starts is one line, and cannot push everything
/// else out of view.
pub const COLLAPSE_WINDOW_MS: i64 = 60_000;

/// Appends one entry with the next `seq`, or counts it as a repeat (see
/// [`COLLAPSE_WINDOW_MS`]). An entry that names a request records one step of that request,
/// which never repeats: it is inserted without looking for one.
pub async fn append(pool: &Pool, e: NewAuditRow<'_>) -> StoreResult<()> {
    if e.request_id.is_none() && count_repeat(pool, &e).await? {
        return Ok(());
    }
    insert(pool, e).await
}

/// Counts `e` on the newest entry of its event and user when that one is identical and
/// recent; whether it did. Two forms of the lookup (with and without a user), so that both
/// databases find the newest entry through the `(event, upn, seq)` index.
async fn count_repeat(pool: &Pool, e: &NewAuditRow<'_>) -> StoreResult<bool> {
    const SET: &str = "UPDATE audit_log SET repeats = repeats + 1, last_at = $1 WHERE seq = ";
    const SAME: &str = "AND COALESCE(account_id, '') = $3 AND request_id IS NULL \
         AND outcome = $4 AND COALESCE(last_at, at) >= $5 AND actor = $6";
    let query = match e.upn {
        Some(_) => {
            format!("{SET}(SELECT MAX(seq) FROM audit_log WHERE event = $2 AND upn = $7) {SAME}")
        }
        None => {
            format!("{SET}(SELECT MAX(seq) FROM audit_log WHERE event = $2 AND upn IS NULL) {SAME}")
        }
    };
    let mut update = sqlx::query(&query)
        .bind(e.at)
        .bind(e.event)
        .bind(e.account_id.unwrap_or(""))
        .bind(e.outcome)
        .bind(e.at - COLLAPSE_WINDOW_MS)
        .bind(e.actor);
    if let Some(upn) = e.upn {
        update = update.bind(upn);
    }
    Ok(update.execute(pool).await?.rows_affected() > 0)
}

async fn insert(pool: &Pool, e: NewAuditRow<'_>) -> StoreResult<()> {
    let mut conn = pool.acquire().await?;
    insert_on(&mut conn, e).await
}

/// Appends `e` on `conn`, inside or outside a transaction (a [`group_commit::Unit`]'s
/// entries are written in its transaction, so that a decision and its audit entry commit
/// together). Entries that name a request never collapse: no repeat lookup.
///
/// [`group_commit::Unit`]: super::group_commit::Unit
pub async fn insert_on(conn: &mut Conn, e: NewAuditRow<'_>) -> StoreResult<()> {
    // `seq` is computed inside the INSERT, one statement. SQLite serializes writers, so it never
    // collides there; on PostgreSQL two concurrent writers can compute the same `seq`: the
    // second waits for the first to commit, inserts nothing (`DO NOTHING`, which leaves its
    // transaction usable), and tries again with a statement that sees the first's row (the
    // audit order is the commit order, without gaps). `WHERE true` keeps SQLite from reading
    // `ON` as a join's.
    for _ in 0..SEQ_RETRIES {
        let inserted = sqlx::query(
            "INSERT INTO audit_log (seq, at, event, upn, account_id, request_id, outcome, actor) \
             SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7 FROM audit_log \
             WHERE true ON CONFLICT (seq) DO NOTHING",
        )
        .bind(e.at)
        .bind(e.event)
        .bind(e.upn)
        .bind(e.account_id)
        .bind(e.request_id)
        .bind(e.outcome)
        .bind(e.actor)
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
    Err(StoreError::Corrupt(format!(
        "audit entry not appended after {SEQ_RETRIES} tries: other writers took every seq"
    )))
}

/// An audit entry a [`group_commit::Unit`] appends, owned (a unit outlives the request's
/// borrows).
///
/// [`group_commit::Unit`]: super::group_commit::Unit
#[derive(Debug, Clone)]
pub struct OwnedAuditRow {
    pub at: i64,
    pub event: &'static str,
    pub upn: Option<String>,
    pub account_id: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
    pub actor: String,
}

impl OwnedAuditRow {
    /// Appends the insert of this entry to a SQLite batch, which inserts it only if `only_if`
    /// (an SQL condition, e.g. `changes() > 0`) holds. In a group-commit transaction on
    /// SQLite no other writer runs, so `MAX(seq) + 1` is free.
    pub fn push_insert(&self, batch: &mut Batch, only_if: &str) {
        let values = [
            batch.int(self.at),
            batch.text(self.event),
            batch.opt_text(self.upn.as_deref()),
            batch.opt_text(self.account_id.as_deref()),
            batch.opt_text(self.request_id.as_deref()),
            batch.text(&self.outcome),
            batch.text(&self.actor),
        ]
        .join(", ");
        batch.push(&format!(
            "INSERT INTO audit_log (seq, at, event, upn, account_id, request_id, outcome, actor) \
             SELECT (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log), {values} WHERE {only_if}"
        ));
    }

    pub fn as_new(&self) -> NewAuditRow<'_> {
        NewAuditRow {
            at: self.at,
            event: self.event,
            upn: self.upn.as_deref(),
            account_id: self.account_id.as_deref(),
            request_id: self.request_id.as_deref(),
            outcome: &self.outcome,
            actor: &self.actor,
        }
    }
}

const COLUMNS: &str =
    "seq, at, event, upn, account_id, request_id, outcome, repeats, last_at, actor";

/// Every entry, oldest first.
pub async fn all(pool: &Pool) -> StoreResult<Vec<AuditRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"))
            .fetch_all(pool)
            .await?,
    )
}

/// Which entries to list: every field optional; newest first, `limit` at a time, older
/// than `before_seq` (the next page) or newer than `after_seq` (the previous page, still
/// returned newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// A part of the user's name (case-insensitive).
    pub upn: Option<String>,
    /// The event's name, exactly.
    pub event: Option<String>,
    /// A part of the actor (case-insensitive), e.g. `admin:ada` or `device:`.
    pub actor: Option<String>,
    /// A part of the outcome, the account or the request (case-insensitive).
    pub text: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    pub before_seq: Option<i64>,
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// The entries `f` selects, newest first.
pub async fn query(pool: &Pool, f: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
    // Unset filters compare against themselves (`$n IS NULL`), so one statement serves all.
    // The previous page is the `limit` oldest entries newer than `after_seq`, read in
    // ascending order and turned around here.
    let order = if f.after_seq.is_some() && f.before_seq.is_none() {
        "ASC"
    } else {
        "DESC"
    };
    let mut rows: Vec<AuditRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit_log \
         WHERE ($1 IS NULL OR LOWER(upn) LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR event = $2) \
         AND ($3 IS NULL OR COALESCE(last_at, at) >= $3) AND ($4 IS NULL OR at < $4) \
         AND ($5 IS NULL OR seq < $5) AND ($6 IS NULL OR seq > $6) \
         AND ($7 IS NULL OR LOWER(actor) LIKE $7 ESCAPE '\\') \
         AND ($8 IS NULL OR LOWER(outcome) LIKE $8 ESCAPE '\\' \
              OR LOWER(account_id) LIKE $8 ESCAPE '\\' OR LOWER(request_id) LIKE $8 ESCAPE '\\') \
         ORDER BY seq {order} LIMIT $9"
    ))
    .bind(f.upn.as_deref().map(super::contains_pattern))
    .bind(f.event.as_deref())
    .bind(f.since)
    .bind(f.until)
    .bind(f.before_seq)
    .bind(f.after_seq)
    .bind(f.actor.as_deref().map(super::contains_pattern))
    .bind(f.text.as_deref().map(super::contains_pattern))
    .bind(f.limit.clamp(1, 10_000))
    .fetch_all(pool)
    .await?;
    if order == "ASC" {
        rows.reverse();
    }
    Ok(rows)
}
