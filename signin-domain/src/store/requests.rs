//! Sign-in requests: every state change is one conditional statement (PROTOCOL.md §5.6).
use std::fmt;

use authenticator_protocol::encoding::unb64_fixed;
use authenticator_protocol::sign_in::{BrowserBinding, RequestKind};
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
pub struct NewRequest<'a> {
    pub id: &'a RequestId,
    pub account_id: &'a AccountId,
    pub details: &'a str,
    pub signature: &'a str,
    pub nonce: &'a str,
}

/// What the requests of one new sign-in share.
pub struct NewSignIn<'a> {
    /// The id of the first request.
    pub signin_id: &'a str,
    pub client_id: &'a str,
    pub upn: &'a str,
    pub kind: RequestKind,
    pub number: &'a str,
    pub number_matching: bool,
    pub created_at: i64,
    pub expires_at: i64,
    /// The earlier sign-in this one replaces ("resend"): superseded only if it is still
    /// pending and was started for the same user by the same application.
    pub replaces: Option<&'a str>,
    /// On a `new_device` notice: the device it asks about.
    pub subject: Option<&'a str>,
}

/// Stores a sign-in as one request per device, in one transaction; returns the id of the
/// sign-in it superseded, if any.
pub async fn insert_sign_in(
    pool: &Pool,
    sign_in: &NewSignIn<'_>,
    per_device: &[NewRequest<'_>],
) -> StoreResult<Option<String>> {
    let mut tx = pool.begin().await?;
    let mut superseded = None;
    if let Some(old) = sign_in.replaces {
        // Read-then-write about the user's pending sign-ins: serialized per user. A start
        // that replaces nothing only inserts, and takes no lock.
        lock_user(&mut tx, sign_in.upn).await?;
        let done = sqlx::query(
            "UPDATE signin_requests SET status = 'expired', decided_at = $4 \
             WHERE signin_id = $1 AND upn = $2 AND client_id = $3 AND status = 'pending'",
        )
        .bind(old)
        .bind(sign_in.upn)
        .bind(sign_in.client_id)
        .bind(sign_in.created_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            superseded = Some(old.to_owned());
        }
    }
    for new in per_device {
        sqlx::query(
            "INSERT INTO signin_requests (id, signin_id, client_id, account_id, upn, kind, \
             details, signature, number, nonce, number_matching, created_at, expires_at, \
             status, wrong_attempts, subject_account_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'pending', 0, $14)",
        )
        .bind(new.id.as_str())
        .bind(sign_in.signin_id)
        .bind(sign_in.client_id)
        .bind(new.account_id.as_str())
        .bind(sign_in.upn)
        .bind(kind_str(sign_in.kind))
        .bind(new.details)
        .bind(new.signature)
        .bind(sign_in.number)
        .bind(new.nonce)
        .bind(i64::from(sign_in.number_matching))
        .bind(sign_in.created_at)
        .bind(sign_in.expires_at)
        .bind(sign_in.subject)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(superseded)
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

/// Counts a wrong number answered on request `req` (whose last response must be older than
/// `response_ts`). The count is the sign-in's, across all its devices: at `max` every one of
/// its requests fails. `None` if `req` was not pending (someone answered, or a later
/// response came first). Otherwise the count and the new status.
pub async fn record_wrong_number(
    pool: &Pool,
    req: &StoredRequest,
    response_ts: i64,
    max: u32,
    now: i64,
) -> StoreResult<Option<(u32, Status)>> {
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, &req.upn).await?;
    let claimed = sqlx::query(
        "UPDATE signin_requests SET last_response_ts = $2 \
         WHERE id = $1 AND status = 'pending' \
         AND (last_response_ts IS NULL OR last_response_ts < $2)",
    )
    .bind(req.id.as_str())
    .bind(response_ts)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE signin_requests SET wrong_attempts = wrong_attempts + 1, \
         status = CASE WHEN wrong_attempts + 1 >= $2 THEN 'failed' ELSE status END, \
         decided_at = CASE WHEN wrong_attempts + 1 >= $2 THEN $3 ELSE decided_at END \
         WHERE signin_id = $1 AND status = 'pending'",
    )
    .bind(&req.signin_id)
    .bind(i64::from(max))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let (attempts, status): (i64, String) =
        sqlx::query_as("SELECT wrong_attempts, status FROM signin_requests WHERE id = $1")
            .bind(req.id.as_str())
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(Some((
        u32::try_from(attempts).unwrap_or(u32::MAX),
        Status::parse(&status)
            .map_err(|e| StoreError::Corrupt(format!("signin_requests.status: {e}")))?,
    )))
}

/// Stores the decision on request `req` if it is still pending, unexpired and its last
/// response is older; the sign-in's other devices' requests are closed in the same
/// transaction (the first answer wins). Whether the decision was stored.
pub async fn decide(
    pool: &Pool,
    req: &StoredRequest,
    status: Status,
    response_ts: i64,
    now: i64,
) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, &req.upn).await?;
    let done = sqlx::query(
        "UPDATE signin_requests SET status = $2, last_response_ts = $3, decided_at = $4 \
         WHERE id = $1 AND status = 'pending' AND expires_at > $4 \
         AND (last_response_ts IS NULL OR last_response_ts < $3)",
    )
    .bind(req.id.as_str())
    .bind(status.as_str())
    .bind(response_ts)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE signin_requests SET status = 'closed', decided_at = $3 \
         WHERE signin_id = $1 AND id <> $2 AND status = 'pending'",
    )
    .bind(&req.signin_id)
    .bind(req.id.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
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
