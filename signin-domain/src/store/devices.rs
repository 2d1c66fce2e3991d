//! Enrolled devices (one row per account on a phone): keys, push channel, phone sign-in.
use authenticator_protocol::sign_in::RequestKind;
use authenticator_protocol::{AccountId, PublicKey};

use super::{Pool, StoreError, StoreResult};

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

/// The account's device row, keys parsed.
pub async fn load_device(pool: &Pool, account_id: &AccountId) -> StoreResult<Option<Device>> {
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
        .map_err(|e| StoreError::Corrupt(format!("device key: {e}")))?;
    let passwordless = passwordless
        .map(|k| PublicKey::from_b64("passwordless_public_key", &k))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("passwordless key: {e}")))?;
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

/// Registers the phone sign-in key unless a registration with a later (or equal) timestamp
/// was stored: a replayed older registration must not bring back an earlier key.
pub async fn enable_passwordless(
    pool: &Pool,
    account_id: &AccountId,
    key: &PublicKey,
    timestamp: i64,
    now: i64,
) -> StoreResult<bool> {
    let updated = sqlx::query(
        "UPDATE devices SET passwordless_public_key = $1, passwordless_enabled_at = $2, \
         passwordless_timestamp = $3 WHERE account_id = $4 \
         AND (passwordless_timestamp IS NULL OR passwordless_timestamp < $3)",
    )
    .bind(key.to_b64())
    .bind(now)
    .bind(timestamp)
    .bind(account_id.as_str())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The accounts that get a sign-in of `kind` for `upn`, every one of the user's devices that
/// can answer it: for phone sign-in those with it enabled, for push all of them. Oldest
/// enrollment first.
pub async fn accounts_for_sign_in(
    pool: &Pool,
    upn: &str,
    kind: RequestKind,
) -> StoreResult<Vec<String>> {
    // A device awaiting approval (PROTOCOL.md §5.8) answers nothing yet.
    let query = match kind {
        RequestKind::Passwordless => {
            "SELECT account_id FROM devices WHERE upn = $1 AND passwordless_public_key IS NOT NULL \
             AND awaiting_approval = 0 ORDER BY enrolled_at, account_id"
        }
        RequestKind::Push | RequestKind::NewDevice => {
            "SELECT account_id FROM devices WHERE upn = $1 AND awaiting_approval = 0 \
             ORDER BY enrolled_at, account_id"
        }
    };
    Ok(sqlx::query_scalar(query).bind(upn).fetch_all(pool).await?)
}

/// What a sign-in start reads of the user's devices, in one statement: the accounts that get a
/// sign-in of `kind` (as [`accounts_for_sign_in`]) and whether a held device's waiting period
/// ended by `now` (then `trust::release_due_holds` releases it and the start reads again).
#[derive(Debug, Clone, Default)]
pub struct ForSignIn {
    /// Each account with its push channel.
    pub accounts: Vec<(String, PushChannel)>,
    pub release_due: bool,
}

/// The device columns a sign-in start reads, from `devices d` (joined into the start's one
/// statement, `trust::start_view`; NULL when the user has no device).
pub const FOR_SIGN_IN_COLUMNS: &str = "d.account_id AS d_account_id, \
     CASE WHEN d.passwordless_public_key IS NULL THEN 0 ELSE 1 END AS d_passwordless, \
     d.awaiting_approval AS d_awaiting, d.held_until AS d_held_until, d.push_kind AS d_push_kind, \
     d.push_token AS d_push_token, d.push_stale_at AS d_push_stale_at";

/// One device as a sign-in start reads it ([`FOR_SIGN_IN_COLUMNS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceForSignIn {
    account_id: String,
    passwordless: bool,
    awaiting: bool,
    held_until: Option<i64>,
    push_kind: String,
    push_token: String,
    push_stale_at: Option<i64>,
}

/// The device of a row with [`FOR_SIGN_IN_COLUMNS`]; `None` on the row of a user without one.
pub fn device_for_sign_in(row: &sqlx::any::AnyRow) -> StoreResult<Option<DeviceForSignIn>> {
    use sqlx::Row;
    let Some(account_id) = row.try_get::<Option<String>, _>("d_account_id")? else {
        return Ok(None);
    };
    Ok(Some(DeviceForSignIn {
        account_id,
        passwordless: row.try_get::<i64, _>("d_passwordless")? != 0,
        awaiting: row.try_get::<Option<i64>, _>("d_awaiting")?.unwrap_or(0) != 0,
        held_until: row.try_get("d_held_until")?,
        push_kind: row
            .try_get::<Option<String>, _>("d_push_kind")?
            .unwrap_or_default(),
        push_token: row
            .try_get::<Option<String>, _>("d_push_token")?
            .unwrap_or_default(),
        push_stale_at: row.try_get("d_push_stale_at")?,
    }))
}

/// The user's devices as a sign-in start reads them, on their own (after a held device was
/// released; the start's first statement reads them with everything else).
pub async fn for_sign_in(pool: &Pool, upn: &str) -> StoreResult<Vec<DeviceForSignIn>> {
    let rows = sqlx::query(&format!(
        "SELECT {FOR_SIGN_IN_COLUMNS} FROM devices d WHERE d.upn = $1 \
         ORDER BY d.enrolled_at, d.account_id"
    ))
    .bind(upn)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(device_for_sign_in)
        .filter_map(Result::transpose)
        .collect()
}

/// Who of `devices` gets a sign-in of `kind` (as [`accounts_for_sign_in`]), and whether a held
/// device's waiting period ended by `now` (then `trust::release_due_holds` releases it and the
/// start reads the devices again).
pub fn targets(upn: &str, devices: Vec<DeviceForSignIn>, kind: RequestKind, now: i64) -> ForSignIn {
    let mut out = ForSignIn::default();
    for d in devices {
        if d.awaiting {
            // The rule of `trust::release_due_holds` (`store::trust`).
            out.release_due |= d.held_until.is_some_and(|until| until <= now);
            continue;
        }
        let answers = match kind {
            RequestKind::Passwordless => d.passwordless,
            RequestKind::Push | RequestKind::NewDevice => true,
        };
        if answers {
            let channel = PushChannel {
                upn: upn.to_owned(),
                kind: d.push_kind,
                token: d.push_token,
                stale_at: d.push_stale_at,
            };
            out.accounts.push((d.account_id, channel));
        }
    }
    out
}

/// The user's active devices other than `except` (who are asked about a new device).
pub async fn other_active_devices(
    pool: &Pool,
    upn: &str,
    except: &str,
) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT account_id FROM devices WHERE upn = $1 AND account_id <> $2 \
         AND awaiting_approval = 0 ORDER BY enrolled_at, account_id",
    )
    .bind(upn)
    .bind(except)
    .fetch_all(pool)
    .await?)
}

/// Activates a device that awaits approval; whether it did.
pub async fn approve(pool: &Pool, account_id: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE devices SET awaiting_approval = 0, held_until = NULL \
         WHERE account_id = $1 AND awaiting_approval = 1",
    )
    .bind(account_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The UPN a device belongs to, if it exists.
pub async fn owner_of(pool: &Pool, account_id: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT upn FROM devices WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Removes a device, its sign-in requests and every session and token it made, in one
/// transaction; whether it existed. Its pending requests end with it: the phone is refused at
/// once (no device, no key), and so is every browser or application it signed in.
pub async fn remove(pool: &Pool, account_id: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    super::trust::end_sessions_on(&mut tx, super::trust::Made::ByDevice(account_id)).await?;
    sqlx::query("DELETE FROM signin_requests WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM devices WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Whether any of the user's devices has phone sign-in enabled.
pub async fn has_phone_sign_in(pool: &Pool, upn: &str) -> StoreResult<bool> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT account_id FROM devices WHERE upn = $1 \
         AND passwordless_public_key IS NOT NULL LIMIT 1",
    )
    .bind(upn)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// What the user and the admin see of a device (never keys or push tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    pub account_id: String,
    pub upn: String,
    pub device_name: String,
    pub push_kind: String,
    pub enrolled_at: i64,
    pub push_stale_at: Option<i64>,
    pub push_stale_reason: Option<String>,
    pub passwordless_enabled_at: Option<i64>,
    /// When it last answered a sign-in (proved its key); `None` before its first answer.
    pub last_used_at: Option<i64>,
    /// Enrolled, but waiting for one of the user's other devices to approve it.
    pub awaiting_approval: bool,
    /// When a push service last accepted a push for it (delivery health); `None`: never.
    pub last_push_at: Option<i64>,
    /// When it last proved its key to the server (poll, fetch, answer, push rotation).
    pub last_seen_at: Option<i64>,
}

type SummaryRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
);

const SUMMARY_SELECT: &str = "SELECT account_id, upn, device_name, push_kind, enrolled_at, \
     push_stale_at, push_stale_reason, passwordless_enabled_at, last_used_at, awaiting_approval, \
     last_push_at, last_seen_at FROM devices";

fn summary(
    (
        account_id,
        upn,
        device_name,
        push_kind,
        enrolled_at,
        stale_at,
        stale_reason,
        pwl,
        used,
        awaiting,
        last_push_at,
        last_seen_at,
    ): SummaryRow,
) -> DeviceSummary {
    DeviceSummary {
        account_id,
        upn,
        device_name,
        push_kind,
        enrolled_at,
        push_stale_at: stale_at,
        push_stale_reason: stale_reason,
        passwordless_enabled_at: pwl,
        last_used_at: used,
        awaiting_approval: awaiting != 0,
        last_push_at,
        last_seen_at,
    }
}

/// The user's devices, oldest enrollment first.
pub async fn of_user(pool: &Pool, upn: &str) -> StoreResult<Vec<DeviceSummary>> {
    let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
        "{SUMMARY_SELECT} WHERE upn = $1 ORDER BY enrolled_at"
    ))
    .bind(upn)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(summary).collect())
}

/// Every device, by user and then enrollment (the admin's devices page).
pub async fn all(pool: &Pool) -> StoreResult<Vec<DeviceSummary>> {
    let rows: Vec<SummaryRow> =
        sqlx::query_as(&format!("{SUMMARY_SELECT} ORDER BY upn, enrolled_at"))
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(summary).collect())
}

/// Where to push for an account.
#[derive(Clone)]
pub struct PushChannel {
    pub upn: String,
    pub kind: String,
    /// A secret of the platform's push service: never logged (`Debug` hides it).
    pub token: String,
    pub stale_at: Option<i64>,
}

impl std::fmt::Debug for PushChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushChannel")
            .field("kind", &self.kind)
            .field("stale_at", &self.stale_at)
            .finish_non_exhaustive()
    }
}

pub async fn push_channel(pool: &Pool, account_id: &AccountId) -> StoreResult<Option<PushChannel>> {
    let row: Option<(String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT upn, push_kind, push_token, push_stale_at FROM devices WHERE account_id = $1",
    )
    .bind(account_id.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(upn, kind, token, stale_at)| PushChannel {
        upn,
        kind,
        token,
        stale_at,
    }))
}

/// Marks the account's push channel stale, only if it still has the token that failed (a
/// channel re-registered meanwhile stays fresh).
pub async fn mark_push_stale(
    pool: &Pool,
    account_id: &AccountId,
    token: &str,
    reason: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE devices SET push_stale_at = $1, push_stale_reason = $2 \
         WHERE account_id = $3 AND push_token = $4 AND push_stale_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(account_id.as_str())
    .bind(token)
    .execute(pool)
    .await?;
    Ok(())
}
