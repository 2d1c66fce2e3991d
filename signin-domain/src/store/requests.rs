//! Sign-in requests: every state change is one conditional statement (PROTOCOL.md §5.6).
use std::fmt;

use authenticator_protocol::encoding::unb64_fixed;
use authenticator_protocol::sign_in::{BrowserBinding, RequestKind};
use authenticator_protocol::{AccountId, RequestId, UnixMillis};

use crate::store::audit::{self, OwnedAuditRow};
use crate::store::group_commit::{lock_user_for, query_with, Arg, Batch, Unit, UnitFuture, Writer};
use crate::store::risk::LimitWrite;
use crate::store::{from_db_ms, Backend, Conn, Pool, StoreError, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Reported,
    Expired,
    Failed,
    /// Another device of the user answered this sign-in first.
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Reported => "reported",
            Status::Expired => "expired",
            Status::Failed => "failed",
            Status::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "denied" => Status::Denied,
            "reported" => Status::Reported,
            "expired" => Status::Expired,
            "failed" => Status::Failed,
            "closed" => Status::Closed,
            other => anyhow::bail!("unknown stored status {other:?}"),
        })
    }
}

pub fn kind_str(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Passwordless => "passwordless",
        RequestKind::Push => "push",
        RequestKind::NewDevice => "new_device",
    }
}

/// A sign-in request as stored. The number and nonce are secrets: `Debug` hides them.
#[derive(Clone)]
pub struct StoredRequest {
    pub id: RequestId,
    /// The sign-in this device's request belongs to (the id of its first request).
    pub signin_id: String,
    /// The registered application that started it.
    pub client_id: String,
    pub account_id: AccountId,
    pub upn: String,
    pub kind: RequestKind,
    /// The exact details text the server signed and the phone hashes.
    pub details: String,
    pub signature: String,
    pub number: String,
    pub nonce: [u8; 32],
    pub number_matching: bool,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub status: Status,
    pub wrong_attempts: u32,
    pub last_response_ts: Option<u64>,
    /// On a `new_device` request: the device it asks about.
    pub subject_account_id: Option<String>,
}

impl fmt::Debug for StoredRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredRequest")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl StoredRequest {
    /// The browser binding the signed details carry (§5.9), if any: read from the very text
    /// the phone was sent, so what is checked is what the phone was told.
    pub fn browser_binding(&self) -> StoreResult<Option<BrowserBinding>> {
        #[derive(serde::Deserialize)]
        struct Binding {
            browser: Option<BrowserBinding>,
        }
        serde_json::from_str::<Binding>(&self.details)
            .map(|b| b.browser)
            .map_err(|e| StoreError::Corrupt(format!("stored request details: {e}")))
    }

    /// Pending but past its expiry: reported (and stored) as expired.
    pub fn is_expired_at(&self, now: UnixMillis) -> bool {
        self.expires_at.is_expired_at(now)
    }
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: String,
    signin_id: Option<String>,
    client_id: Option<String>,
    account_id: String,
    upn: String,
    kind: String,
    details: String,
    signature: String,
    number: String,
    nonce: String,
    number_matching: i64,
    created_at: i64,
    expires_at: i64,
    status: String,
    wrong_attempts: i64,
    last_response_ts: Option<i64>,
    subject_account_id: Option<String>,
}

impl TryFrom<RequestRow> for StoredRequest {
    type Error = anyhow::Error;
    fn try_from(r: RequestRow) -> anyhow::Result<Self> {
        Ok(StoredRequest {
            signin_id: r.signin_id.unwrap_or_else(|| r.id.clone()),
            client_id: r.client_id.unwrap_or_default(),
            id: RequestId::parse(&r.id)?,
            account_id: AccountId::parse(&r.account_id)?,
            upn: r.upn,
            kind: match r.kind.as_str() {
                "passwordless" => RequestKind::Passwordless,
                "push" => RequestKind::Push,
                "new_device" => RequestKind::NewDevice,
                other => anyhow::bail!("unknown stored kind {other:?}"),
            },
            details: r.details,
            signature: r.signature,
            number: r.number,
            nonce: unb64_fixed::<32>("nonce", &r.nonce)?,
            number_matching: r.number_matching != 0,
            created_at: from_db_ms(r.created_at),
            expires_at: from_db_ms(r.expires_at),
            status: Status::parse(&r.status)?,
            wrong_attempts: u32::try_from(r.wrong_attempts)?,
            last_response_ts: r.last_response_ts.map(|t| u64::try_from(t).unwrap_or(0)),
            subject_account_id: r.subject_account_id,
        })
    }
}

const REQUEST_COLUMNS: &str =
    "id, signin_id, client_id, account_id, upn, kind, details, signature, number, nonce, \
     number_matching, created_at, expires_at, status, wrong_attempts, last_response_ts, \
     subject_account_id";

/// One device's request.
pub async fn load_request(pool: &Pool, id: &str) -> StoreResult<Option<StoredRequest>> {
    let row: Option<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM signin_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(StoredRequest::try_from)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("sign-in request: {e:#}")))
}

/// One device's request with the phone sign-in key its device has now (read in the same
/// statement): what an answer is checked against. A request exists only while its device
/// does (they are removed together).
pub async fn load_request_and_key(
    pool: &Pool,
    id: &str,
) -> StoreResult<Option<(StoredRequest, Option<String>)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        request: RequestRow,
        device_passwordless_key: Option<String>,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS}, (SELECT d.passwordless_public_key FROM devices d \
         WHERE d.account_id = signin_requests.account_id) AS device_passwordless_key \
         FROM signin_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok((
            StoredRequest::try_from(r.request)?,
            r.device_passwordless_key,
        ))
    })
    .transpose()
    .map_err(|e: anyhow::Error| StoreError::Corrupt(format!("sign-in request: {e:#}")))
}

/// Every device's request of one sign-in, first (the lead, whose id is the sign-in's) first.
pub async fn load_sign_in(pool: &Pool, signin_id: &str) -> StoreResult<Vec<StoredRequest>> {
    let rows: Vec<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM signin_requests WHERE signin_id = $1 \
         ORDER BY CASE WHEN id = signin_id THEN 0 ELSE 1 END, id"
    ))
    .bind(signin_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(StoredRequest::try_from)
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| StoreError::Corrupt(format!("sign-in request: {e:#}")))
}

/// Marks the sign-in's pending requests that are due as expired; whether any was.
pub async fn expire_if_due(pool: &Pool, signin_id: &str, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE signin_requests SET status = 'expired', decided_at = $2 \
         WHERE signin_id = $1 AND status = 'pending' AND expires_at <= $2",
    )
    .bind(signin_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// One device's request of a new sign-in.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: RequestId,
    pub account_id: AccountId,
    pub details: String,
    pub signature: String,
    pub nonce: String,
}

/// A new sign-in: one request per device, stored with their `sign_in_started` audit entries and
/// the start-limit rows its admission changed in one transaction (a [`Unit`]: the writes of a
/// start, group-committed). Store it with [`store_sign_in`].
#[derive(Debug, Clone)]
pub struct InsertSignIn {
    /// The id of the first request.
    pub signin_id: String,
    pub client_id: String,
    pub upn: String,
    pub kind: RequestKind,
    pub number: String,
    pub number_matching: bool,
    pub created_at: i64,
    pub expires_at: i64,
    /// The earlier sign-in this one replaces ("resend"): superseded only if it is still
    /// pending and was started for the same user by the same application.
    pub replaces: Option<String>,
    /// On a `new_device` notice: the device it asks about.
    pub subject: Option<String>,
    pub requests: Vec<NewRequest>,
    pub audit: Vec<OwnedAuditRow>,
    /// The rate-limit rows the start was admitted from, with their new state: the start is
    /// stored only if none changed since it read them.
    pub limits: Vec<LimitWrite>,
}

/// What storing a start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartStored {
    /// Stored; the earlier sign-in it superseded, if any.
    Stored { superseded: Option<String> },
    /// A rate-limit row changed since the start read it: nothing was stored, the admission
    /// must be decided again.
    LimitChanged,
}

/// Stores a start: its requests and entries, or nothing ([`StartStored::LimitChanged`]).
pub async fn store_sign_in(writer: &Writer, unit: InsertSignIn) -> StoreResult<StartStored> {
    match writer.run(unit).await {
        // On PostgreSQL the unit's own transaction is rolled back by this error (see `run`).
        Err(StoreError::Changed(_)) => Ok(StartStored::LimitChanged),
        other => other,
    }
}

/// Ends the sign-in `$1` a resend replaces, if it is still pending and of user `$2` and
/// application `$3`, at `$4`, where `only_if` holds; returns its id when it did.
fn supersede(only_if: &str) -> String {
    format!(
        "UPDATE signin_requests SET status = 'expired', decided_at = $4 \
         WHERE signin_id = $1 AND upn = $2 AND client_id = $3 AND status = 'pending' \
         AND {only_if} RETURNING signin_id"
    )
}

/// One device's request, where `only_if` holds.
fn insert_request(only_if: &str) -> String {
    format!(
        "INSERT INTO signin_requests (id, signin_id, client_id, account_id, upn, kind, details, \
         signature, number, nonce, number_matching, created_at, expires_at, subject_account_id, \
         status, wrong_attempts) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'pending', 0 \
         WHERE {only_if}"
    )
}

/// The SQLite batch's guard: a row in this connection's temporary table when the start's
/// rate-limit rows were as it read them. (Within the writer's `BEGIN IMMEDIATE` nothing else
/// writes between the check and the writes it guards.)
const ADMITTED: &str = "EXISTS (SELECT 1 FROM temp.start_admitted)";

impl InsertSignIn {
    fn supersede_args(&self, old: &str) -> Vec<Arg> {
        vec![
            Arg::Text(old.to_owned()),
            Arg::Text(self.upn.clone()),
            Arg::Text(self.client_id.clone()),
            Arg::Int(self.created_at),
        ]
    }

    fn insert_args(&self, new: &NewRequest) -> Vec<Arg> {
        vec![
            Arg::Text(new.id.as_str().to_owned()),
            Arg::Text(self.signin_id.clone()),
            Arg::Text(self.client_id.clone()),
            Arg::Text(new.account_id.as_str().to_owned()),
            Arg::Text(self.upn.clone()),
            Arg::Text(kind_str(self.kind).to_owned()),
            Arg::Text(new.details.clone()),
            Arg::Text(new.signature.clone()),
            Arg::Text(self.number.clone()),
            Arg::Text(new.nonce.clone()),
            Arg::Int(i64::from(self.number_matching)),
            Arg::Int(self.created_at),
            Arg::Int(self.expires_at),
            Arg::OptText(self.subject.clone()),
        ]
    }

    /// The superseded sign-in, from the rows [`supersede`] returned (with others' rows).
    fn superseded(&self, rows: &[AnyRow]) -> Option<String> {
        let returned = rows
            .iter()
            .any(|r| r.try_get::<String, _>("signin_id").is_ok());
        self.replaces.clone().filter(|_| returned)
    }
}

impl Unit for InsertSignIn {
    type Output = StartStored;

    fn run<'c>(&'c self, conn: &'c mut Conn, backend: Backend) -> UnitFuture<'c, StartStored> {
        Box::pin(async move {
            for limit in &self.limits {
                let done = query_with(&limit.statement("true"), &limit.args())
                    .execute(&mut *conn)
                    .await?;
                if done.rows_affected() != 1 {
                    // An error, so that the writer rolls back what this unit wrote so far.
                    return Err(StoreError::Changed("a start-limit row"));
                }
            }
            let mut superseded = None;
            if let Some(old) = &self.replaces {
                // Read-then-write about the user's pending sign-ins: serialized per user. A
                // start that replaces nothing only inserts, and takes no lock.
                lock_user_for(conn, backend, &self.upn).await?;
                let args = self.supersede_args(old);
                let rows = query_with(&supersede("true"), &args)
                    .fetch_all(&mut *conn)
                    .await?;
                superseded = self.superseded(&rows);
            }
            let insert = insert_request("true");
            for new in &self.requests {
                let args = self.insert_args(new);
                query_with(&insert, &args).execute(&mut *conn).await?;
            }
            for row in &self.audit {
                audit::insert_on(conn, row.as_new()).await?;
            }
            Ok(StartStored::Stored { superseded })
        })
    }

    fn batch(&self) -> Option<Batch> {
        let mut b = Batch::default();
        let only_if = if self.limits.is_empty() {
            "true"
        } else {
            // The check and the limit writes first; everything after runs only if it held.
            b.push("CREATE TEMP TABLE IF NOT EXISTS start_admitted (ok INTEGER NOT NULL)");
            b.push("DELETE FROM temp.start_admitted");
            let unchanged: Vec<String> = self.limits.iter().map(|l| l.unchanged(&mut b)).collect();
            b.push(&format!(
                "INSERT INTO temp.start_admitted SELECT 1 WHERE {}",
                unchanged.join(" AND ")
            ));
            for limit in &self.limits {
                b.push_with(&limit.statement(ADMITTED), limit.args());
            }
            ADMITTED
        };
        if let Some(old) = &self.replaces {
            b.push_with(&supersede(only_if), self.supersede_args(old));
        }
        let insert = insert_request(only_if);
        for new in &self.requests {
            b.push_with(&insert, self.insert_args(new));
        }
        for row in &self.audit {
            row.push_insert(&mut b, only_if);
        }
        if !self.limits.is_empty() {
            b.push("SELECT COUNT(*) AS admitted FROM temp.start_admitted");
        }
        Some(b)
    }

    fn output_of(&self, rows: Vec<AnyRow>) -> StoreResult<StartStored> {
        let admitted = rows
            .iter()
            .find_map(|r| r.try_get::<i64, _>("admitted").ok());
        if admitted == Some(0) {
            return Ok(StartStored::LimitChanged);
        }
        Ok(StartStored::Stored {
            superseded: self.superseded(&rows),
        })
    }
}

/// The ids of the account's requests pending and unexpired at `now`, oldest first; `None`
/// when the device does not exist (removed), read in the same statement.
pub async fn pending_ids_for_account(
    pool: &Pool,
    account_id: &AccountId,
    now: i64,
) -> StoreResult<Option<Vec<String>>> {
    let rows: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT r.id FROM devices d LEFT JOIN signin_requests r \
         ON r.account_id = d.account_id AND r.status = 'pending' AND r.expires_at > $2 \
         WHERE d.account_id = $1 ORDER BY r.created_at",
    )
    .bind(account_id.as_str())
    .bind(now)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(rows.into_iter().flatten().collect()))
}

/// The expiry of a request that is still pending and unexpired at `now`.
pub async fn pending_until(pool: &Pool, id: &RequestId, now: i64) -> StoreResult<Option<i64>> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT status, expires_at FROM signin_requests WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some((status, expires_at))
            if status == Status::Pending.as_str() && !super::is_expired(expires_at, now) =>
        {
            Some(expires_at)
        }
        _ => None,
    })
}

/// The device that answered, for its "last used" (written in the answer's transaction).
#[derive(Debug, Clone)]
pub struct Used {
    pub account_id: String,
    pub at: i64,
}

const MARK_USED: &str = "UPDATE devices SET last_used_at = $2 WHERE account_id = $1";

impl Used {
    fn args(&self) -> Vec<Arg> {
        vec![Arg::Text(self.account_id.clone()), Arg::Int(self.at)]
    }
}

async fn mark_used(conn: &mut Conn, used: &Option<Used>) -> StoreResult<()> {
    if let Some(u) = used {
        let args = u.args();
        query_with(MARK_USED, &args).execute(&mut *conn).await?;
    }
    Ok(())
}

/// A wrong number answered on request `id` (whose last response must be older than
/// `response_ts`), counted with its audit entries in one transaction. The count is the
/// sign-in's, across all its devices: at `max` every one of its requests fails. Output: `None`
/// if the request was not pending (someone answered, or a later response came first; nothing
/// is written then but "last used"), else the count and the new status. `wrong` is appended
/// when counted, `failed` too when the count failed the sign-in.
#[derive(Debug, Clone)]
pub struct WrongNumber {
    pub id: String,
    pub signin_id: String,
    pub upn: String,
    pub response_ts: i64,
    pub max: u32,
    pub now: i64,
    pub used: Option<Used>,
    pub wrong: OwnedAuditRow,
    pub failed: OwnedAuditRow,
}

/// The UPDATE that counts a wrong number: the claim on request `$2` (pending, a last response
/// older than `$3`) and the count on every pending request of sign-in `$1`, failed at `$4`
/// (decided at `$5`); returns each counted request's id, count and status.
const COUNT_WRONG_NUMBER: &str = "UPDATE signin_requests SET wrong_attempts = wrong_attempts + 1, \
     status = CASE WHEN wrong_attempts + 1 >= $4 THEN 'failed' ELSE status END, \
     decided_at = CASE WHEN wrong_attempts + 1 >= $4 THEN $5 ELSE decided_at END, \
     last_response_ts = CASE WHEN id = $2 THEN $3 ELSE last_response_ts END \
     WHERE signin_id = $1 AND status = 'pending' AND EXISTS (\
     SELECT 1 FROM signin_requests d WHERE d.id = $2 AND d.signin_id = $1 \
     AND d.status = 'pending' AND (d.last_response_ts IS NULL OR d.last_response_ts < $3)) \
     RETURNING id, wrong_attempts, status";

/// The UPDATE that stores a decision: request `$2` gets status `$3` and last response `$4` if
/// it is pending, unexpired at `$5` and its last response older; every other pending request
/// of sign-in `$1` is closed with it. Returns the ids it changed.
const DECIDE: &str = "UPDATE signin_requests SET \
     status = CASE WHEN id = $2 THEN $3 ELSE 'closed' END, \
     last_response_ts = CASE WHEN id = $2 THEN $4 ELSE last_response_ts END, \
     decided_at = $5 \
     WHERE signin_id = $1 AND status = 'pending' AND EXISTS (\
     SELECT 1 FROM signin_requests d WHERE d.id = $2 AND d.signin_id = $1 \
     AND d.status = 'pending' AND d.expires_at > $5 \
     AND (d.last_response_ts IS NULL OR d.last_response_ts < $4)) \
     RETURNING id";

/// Appends "last used" to a batch.
fn push_used(b: &mut Batch, used: &Option<Used>) {
    if let Some(u) = used {
        b.push_with(MARK_USED, u.args());
    }
}

impl Unit for WrongNumber {
    type Output = Option<(u32, Status)>;

    fn run<'c>(&'c self, conn: &'c mut Conn, backend: Backend) -> UnitFuture<'c, Self::Output> {
        Box::pin(async move {
            lock_user_for(conn, backend, &self.upn).await?;
            let args = self.count_args();
            let rows = query_with(COUNT_WRONG_NUMBER, &args)
                .fetch_all(&mut *conn)
                .await?;
            mark_used(conn, &self.used).await?;
            let Some(out) = self.counted(&rows)? else {
                return Ok(None);
            };
            audit::insert_on(conn, self.wrong.as_new()).await?;
            if out.1 == Status::Failed {
                audit::insert_on(conn, self.failed.as_new()).await?;
            }
            Ok(Some(out))
        })
    }

    fn batch(&self) -> Option<Batch> {
        let mut b = Batch::default();
        b.push_with(COUNT_WRONG_NUMBER, self.count_args());
        let id = b.text(&self.id);
        // `changes()`: the rows the statement before changed (the count claimed this
        // request, then the entry before was written).
        self.wrong.push_insert(&mut b, "changes() > 0");
        self.failed.push_insert(
            &mut b,
            &format!(
                "changes() > 0 AND EXISTS (SELECT 1 FROM signin_requests \
                 WHERE id = {id} AND status = 'failed')"
            ),
        );
        push_used(&mut b, &self.used);
        Some(b)
    }

    fn output_of(&self, rows: Vec<AnyRow>) -> StoreResult<Self::Output> {
        self.counted(&rows)
    }
}

impl WrongNumber {
    fn count_args(&self) -> Vec<Arg> {
        vec![
            Arg::Text(self.signin_id.clone()),
            Arg::Text(self.id.clone()),
            Arg::Int(self.response_ts),
            Arg::Int(i64::from(self.max)),
            Arg::Int(self.now),
        ]
    }

    /// This request's count and status among the rows [`COUNT_WRONG_NUMBER`] returned; `None`
    /// if it was not counted.
    fn counted(&self, rows: &[AnyRow]) -> StoreResult<Option<(u32, Status)>> {
        let Some(row) = row_of(rows, &self.id)? else {
            return Ok(None);
        };
        let attempts: i64 = row.try_get(1)?;
        let status = Status::parse(&row.try_get::<String, _>(2)?)
            .map_err(|e| StoreError::Corrupt(format!("signin_requests.status: {e}")))?;
        Ok(Some((u32::try_from(attempts).unwrap_or(u32::MAX), status)))
    }
}

/// The decision on request `id`, stored if it is still pending, unexpired and its last
/// response is older; the sign-in's other devices' requests are closed by the same statement
/// (the first answer wins), and the audit entries and the device's "last used" are written in
/// the same transaction. Output: whether the decision was stored (nothing is written if not).
#[derive(Debug, Clone)]
pub struct Decide {
    pub id: String,
    pub signin_id: String,
    pub upn: String,
    pub status: Status,
    pub response_ts: i64,
    pub now: i64,
    pub used: Option<Used>,
    pub audit: Vec<OwnedAuditRow>,
}

impl Unit for Decide {
    type Output = bool;

    fn run<'c>(&'c self, conn: &'c mut Conn, backend: Backend) -> UnitFuture<'c, bool> {
        Box::pin(async move {
            lock_user_for(conn, backend, &self.upn).await?;
            let args = self.decide_args();
            let rows = query_with(DECIDE, &args).fetch_all(&mut *conn).await?;
            mark_used(conn, &self.used).await?;
            if !self.decided(&rows)? {
                return Ok(false);
            }
            for row in &self.audit {
                audit::insert_on(conn, row.as_new()).await?;
            }
            Ok(true)
        })
    }

    fn batch(&self) -> Option<Batch> {
        let mut b = Batch::default();
        b.push_with(DECIDE, self.decide_args());
        // Each entry only if the statement before changed rows: the decision, then the entry.
        for row in &self.audit {
            row.push_insert(&mut b, "changes() > 0");
        }
        push_used(&mut b, &self.used);
        Some(b)
    }

    fn output_of(&self, rows: Vec<AnyRow>) -> StoreResult<bool> {
        self.decided(&rows)
    }
}

impl Decide {
    fn decide_args(&self) -> Vec<Arg> {
        vec![
            Arg::Text(self.signin_id.clone()),
            Arg::Text(self.id.clone()),
            Arg::Text(self.status.as_str().to_owned()),
            Arg::Int(self.response_ts),
            Arg::Int(self.now),
        ]
    }

    /// Whether the rows [`DECIDE`] returned name this request (the decision was stored).
    fn decided(&self, rows: &[AnyRow]) -> StoreResult<bool> {
        Ok(row_of(rows, &self.id)?.is_some())
    }
}

/// The row, among those a unit's statement returned (first column: a request id), that names
/// request `id`: the statement changed that request.
fn row_of<'r>(rows: &'r [AnyRow], id: &str) -> StoreResult<Option<&'r AnyRow>> {
    for row in rows {
        if row.try_get::<String, _>(0)? == id {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Ends every pending request of `upn` (after "this wasn't me"); returns the sign-ins ended.
pub async fn expire_pending_of_user(pool: &Pool, upn: &str, now: i64) -> StoreResult<Vec<String>> {
    let mut ended: Vec<String> = sqlx::query_scalar(
        "UPDATE signin_requests SET status = 'expired', decided_at = $2 \
         WHERE upn = $1 AND status = 'pending' RETURNING signin_id",
    )
    .bind(upn)
    .bind(now)
    .fetch_all(pool)
    .await?;
    ended.sort();
    ended.dedup();
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::risk::{self, RiskKey, UserRisk};
    use crate::store::testing::TestDatabase;

    fn limits(version: Option<i64>, bucket: i64) -> LimitWrite {
        LimitWrite {
            subject: "bob@contoso.com\n*".into(),
            next: UserRisk {
                bucket_millitokens: bucket,
                bucket_at: 1,
                ..Default::default()
            },
            version,
        }
    }

    /// A start with no requests (no device rows needed) and one audit entry naming `tag`.
    fn start(tag: &str, limit: LimitWrite) -> InsertSignIn {
        InsertSignIn {
            signin_id: tag.into(),
            client_id: "app".into(),
            upn: "bob@contoso.com".into(),
            kind: RequestKind::Passwordless,
            number: "42".into(),
            number_matching: true,
            created_at: 1,
            expires_at: 2,
            replaces: None,
            subject: None,
            requests: Vec::new(),
            audit: vec![audit::OwnedAuditRow {
                at: 1,
                event: "sign_in_started",
                upn: Some("bob@contoso.com".into()),
                account_id: None,
                request_id: Some(tag.into()),
                outcome: "pending".into(),
                actor: "system".into(),
            }],
            limits: vec![limit],
        }
    }

    async fn audited(pool: &Pool, tag: &str) -> bool {
        audit::all(pool)
            .await
            .unwrap()
            .iter()
            .any(|r| r.request_id.as_deref() == Some(tag))
    }

    /// The start's rate-limit write and its entries commit together, and only if the row is
    /// still at the version the admission was decided from: a stale start stores nothing (not
    /// even its audit entry) and says so; of two starts decided from the same row, queued at
    /// once (one SQLite group, or two PostgreSQL transactions), exactly one is stored.
    #[tokio::test]
    async fn a_start_decided_from_a_rate_limit_row_that_changed_stores_nothing() {
        let db = TestDatabase::create().await.unwrap();
        let pool = crate::store::connect(&db.url).await.unwrap();
        let writer = Writer::start(pool.clone());
        let key = RiskKey::Limit("bob@contoso.com\n*");

        // The row is absent: a start that read it absent is stored and creates it.
        let first = store_sign_in(&writer, start("first", limits(None, 2000)))
            .await
            .unwrap();
        assert_eq!(first, StartStored::Stored { superseded: None });
        assert!(audited(&pool, "first").await);
        let (row, version) = risk::load(&pool, key).await.unwrap().unwrap();
        assert_eq!((row.bucket_millitokens, version), (2000, 1));

        // Read absent, but stored meanwhile: nothing of it is stored.
        let stale = store_sign_in(&writer, start("stale", limits(None, 1000)))
            .await
            .unwrap();
        assert_eq!(stale, StartStored::LimitChanged);
        assert!(!audited(&pool, "stale").await);
        assert_eq!(risk::load(&pool, key).await.unwrap().unwrap().1, 1);

        // Two starts decided from version 1 at once: one stored, the other changed.
        let (a, b) = tokio::join!(
            store_sign_in(&writer, start("a", limits(Some(1), 1000))),
            store_sign_in(&writer, start("b", limits(Some(1), 1000))),
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        let stored = outcomes
            .iter()
            .filter(|o| **o == StartStored::Stored { superseded: None })
            .count();
        assert_eq!(stored, 1, "{outcomes:?}");
        assert!(outcomes.contains(&StartStored::LimitChanged));
        assert_ne!(audited(&pool, "a").await, audited(&pool, "b").await);
        let (row, version) = risk::load(&pool, key).await.unwrap().unwrap();
        assert_eq!((row.bucket_millitokens, version), (1000, 2));
    }
}
