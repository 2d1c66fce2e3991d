//! Rows the handlers work with: devices (accounts) and sign-in requests.
use std::fmt;

use anyhow::Context;
use authenticator_protocol::encoding::unb64_fixed;
use authenticator_protocol::sign_in::RequestKind;
use authenticator_protocol::{AccountId, PublicKey, RequestId, UnixMillis};

use crate::error::AppError;
use crate::store::{from_db_ms, Pool};

/// The public keys registered for one account (one enrolled phone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeys {
    pub device: PublicKey,
    /// The user-verification-bound key for phone sign-in, once enabled.
    pub passwordless: Option<PublicKey>,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub account_id: AccountId,
    pub upn: String,
    pub keys: DeviceKeys,
    pub passwordless_timestamp: Option<i64>,
}

pub async fn load_device(pool: &Pool, account_id: &AccountId) -> Result<Option<Device>, AppError> {
    let row: Option<(String, String, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT upn, device_public_key, passwordless_public_key, passwordless_timestamp \
         FROM devices WHERE account_id = $1",
    )
    .bind(account_id.as_str())
    .fetch_optional(pool)
    .await?;
    let Some((upn, device, passwordless, pts)) = row else {
        return Ok(None);
    };
    let device = PublicKey::from_b64("device_public_key", &device)
        .context("stored device key")
        .map_err(AppError::Internal)?;
    let passwordless = passwordless
        .map(|k| PublicKey::from_b64("passwordless_public_key", &k))
        .transpose()
        .context("stored passwordless key")
        .map_err(AppError::Internal)?;
    Ok(Some(Device {
        account_id: account_id.clone(),
        upn,
        keys: DeviceKeys {
            device,
            passwordless,
        },
        passwordless_timestamp: pts,
    }))
}

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

pub async fn load_request(pool: &Pool, id: &str) -> Result<Option<StoredRequest>, AppError> {
    let row: Option<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM signin_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(StoredRequest::try_from)
        .transpose()
        .context("stored sign-in request")
        .map_err(AppError::Internal)
}

/// Marks a pending request expired if its time is up; returns whether it did.
pub async fn expire_if_due(pool: &Pool, id: &RequestId, now: i64) -> Result<bool, AppError> {
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
