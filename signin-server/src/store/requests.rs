//! Sign-in requests: every state change is one conditional statement (PROTOCOL.md §5.6).
use std::fmt;

use authenticator_protocol::encoding::unb64_fixed;
use authenticator_protocol::sign_in::RequestKind;
use authenticator_protocol::{AccountId, RequestId, UnixMillis};

use crate::store::{from_db_ms, lock_user, Pool, StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Reported,
    Expired,
    Failed,
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
            other => anyhow::bail!("unknown stored status {other:?}"),
        })
    }
}

pub fn kind_str(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Passwordless => "passwordless",
        RequestKind::Push => "push",
    }
}

/// A sign-in request as stored. The number and nonce are secrets: `Debug` hides them.
#[derive(Clone)]
pub struct StoredRequest {
    pub id: RequestId,
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
    /// Pending but past its expiry: reported (and stored) as expired.
    pub fn is_expired_at(&self, now: UnixMillis) -> bool {
        now >= self.expires_at
    }
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: String,
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
}

impl TryFrom<RequestRow> for StoredRequest {
    type Error = anyhow::Error;
    fn try_from(r: RequestRow) -> anyhow::Result<Self> {
        Ok(StoredRequest {
            id: RequestId::parse(&r.id)?,
            account_id: AccountId::parse(&r.account_id)?,
            upn: r.upn,
            kind: match r.kind.as_str() {
                "passwordless" => RequestKind::Passwordless,
                "push" => RequestKind::Push,
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
        })
    }
}

const REQUEST_COLUMNS: &str = "id, account_id, upn, kind, details, signature, number, nonce, \
     number_matching, created_at, expires_at, status, wrong_attempts, last_response_ts";

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

/// Marks a pending request expired if its time is up; returns whether it did.
pub async fn expire_if_due(pool: &Pool, id: &RequestId, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE signin_requests SET status = 'expired', decided_at = $2 \
         WHERE id = $1 AND status = 'pending' AND expires_at <= $2",
    )
    .bind(id.as_str())
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A request to store, as signed (the number and nonce are secrets: `Debug` hides them).
pub struct NewRequest<'a> {
    pub id: &'a RequestId,
    pub account_id: &'a AccountId,
    pub upn: &'a str,
    pub kind: RequestKind,
    pub details: &'a str,
    pub signature: &'a str,
    pub number: &'a str,
    pub nonce: &'a str,
    pub number_matching: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Stores `new` as the user's one pending request: in one transaction under the user's
/// lock, every other pending request of the user is superseded (stored as expired). Returns
/// the superseded ids.
pub async fn insert_superseding(pool: &Pool, new: &NewRequest<'_>) -> StoreResult<Vec<String>> {
    let mut tx = pool.begin().await?;
    // Two concurrent sign-ins for one user must not both stay pending (PostgreSQL).
    lock_user(&mut tx, new.upn).await?;
    let superseded: Vec<String> = sqlx::query_scalar(
        "UPDATE signin_requests SET status = 'expired', decided_at = $2 \
         WHERE upn = $1 AND status = 'pending' RETURNING id",
    )
    .bind(new.upn)
    .bind(new.created_at)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO signin_requests (id, account_id, upn, kind, details, signature, number, \
         nonce, number_matching, created_at, expires_at, status, wrong_attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', 0)",
    )
    .bind(new.id.as_str())
    .bind(new.account_id.as_str())
    .bind(new.upn)
    .bind(kind_str(new.kind))
    .bind(new.details)
    .bind(new.signature)
    .bind(new.number)
    .bind(new.nonce)
    .bind(i64::from(new.number_matching))
    .bind(new.created_at)
    .bind(new.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(superseded)
}

/// Ids of the account's pending, unexpired requests, oldest first.
pub async fn pending_ids_for_account(
    pool: &Pool,
    account_id: &AccountId,
    now: i64,
) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM signin_requests WHERE account_id = $1 AND status = 'pending' \
         AND expires_at > $2 ORDER BY created_at",
    )
    .bind(account_id.as_str())
    .bind(now)
    .fetch_all(pool)
    .await?)
}

/// The expiry of a request that is still pending and unexpired at `now`.
pub async fn pending_until(pool: &Pool, id: &RequestId, now: i64) -> StoreResult<Option<i64>> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT status, expires_at FROM signin_requests WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some((status, expires_at)) if status == Status::Pending.as_str() && expires_at > now => {
            Some(expires_at)
        }
        _ => None,
    })
}

/// Counts a wrong number on a pending request (its `max`-th fails the request), if the
/// response timestamp is newer than any earlier one. Returns the attempts so far and the new
/// status; `None` when the request was not pending or the timestamp not newer.
pub async fn record_wrong_number(
    pool: &Pool,
    id: &RequestId,
    response_ts: i64,
    max: u32,
    now: i64,
) -> StoreResult<Option<(u32, Status)>> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "UPDATE signin_requests SET wrong_attempts = wrong_attempts + 1, \
         last_response_ts = $2, \
         status = CASE WHEN wrong_attempts + 1 >= $3 THEN 'failed' ELSE status END, \
         decided_at = CASE WHEN wrong_attempts + 1 >= $3 THEN $4 ELSE decided_at END \
         WHERE id = $1 AND status = 'pending' \
         AND (last_response_ts IS NULL OR last_response_ts < $2) \
         RETURNING wrong_attempts, status",
    )
    .bind(id.as_str())
    .bind(response_ts)
    .bind(i64::from(max))
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.map(|(attempts, status)| {
        Ok((
            u32::try_from(attempts).unwrap_or(u32::MAX),
            Status::parse(&status)
                .map_err(|e| StoreError::Corrupt(format!("signin_requests.status: {e}")))?,
        ))
    })
    .transpose()
}

/// Stores the decision of a pending, unexpired request, if the response timestamp is newer
/// than any earlier one. Returns whether it did.
pub async fn decide(
    pool: &Pool,
    id: &RequestId,
    status: Status,
    response_ts: i64,
    now: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE signin_requests SET status = $2, last_response_ts = $3, decided_at = $4 \
         WHERE id = $1 AND status = 'pending' AND expires_at > $4 \
         AND (last_response_ts IS NULL OR last_response_ts < $3)",
    )
    .bind(id.as_str())
    .bind(status.as_str())
    .bind(response_ts)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
