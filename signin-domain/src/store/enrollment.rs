//! One-time enrollment codes (keyed by SHA-256 of the code) and their challenges.
use super::{lock_user, Pool, StoreResult};

pub async fn insert_code(
    pool: &Pool,
    code_hash: &str,
    upn: &str,
    created_at: i64,
    expires_at: i64,
    issued_by: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO enrollment_codes (code_hash, upn, created_at, expires_at, issued_by) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(code_hash)
    .bind(upn)
    .bind(created_at)
    .bind(expires_at)
    .bind(issued_by)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives an unused, unexpired code a fresh challenge (voiding the previous one). Returns
/// whether the code was usable.
pub async fn set_challenge(
    pool: &Pool,
    code_hash: &str,
    challenge: &str,
    now: i64,
) -> StoreResult<bool> {
    let updated = sqlx::query(
        "UPDATE enrollment_codes SET challenge = $1 \
         WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(challenge)
    .bind(code_hash)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The user a code was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeOwner {
    pub upn: String,
    pub display_name: String,
    pub expires_at: i64,
}

pub async fn code_owner(pool: &Pool, code_hash: &str) -> StoreResult<Option<CodeOwner>> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT u.upn, u.display_name, c.expires_at FROM enrollment_codes c \
         JOIN users u ON u.upn = c.upn WHERE c.code_hash = $1",
    )
    .bind(code_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(upn, display_name, expires_at)| CodeOwner {
        upn,
        display_name,
        expires_at,
    }))
}

/// An unused, unexpired code's user, current challenge (base64url) if it has one, and the
/// method of the session that asked for it (`None`: an admin).
pub async fn usable_code(
    pool: &Pool,
    code_hash: &str,
    now: i64,
) -> StoreResult<Option<(String, Option<String>, Option<String>)>> {
    Ok(sqlx::query_as(
        "SELECT upn, challenge, issued_by FROM enrollment_codes \
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(code_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?)
}

/// The device an enrollment registers.
#[derive(Debug, Clone, Copy)]
pub struct NewDevice<'a> {
    pub account_id: &'a str,
    pub upn: &'a str,
    pub device_public_key: &'a str,
    pub push_kind: &'a str,
    pub push_token: &'a str,
    pub device_name: &'a str,
    pub enrolled_at: i64,
    /// The device waits for approval by one of the user's other active devices, if there is
    /// one (decided in the enrollment's transaction); `None`: it does not wait.
    pub hold: Option<Hold>,
    /// The device registers a push channel, and the user may have at most this many devices
    /// with one that is not stale (`None`: long-poll, not counted).
    pub push_channel_cap: Option<u32>,
}

/// What [`use_code_and_enroll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrolled {
    /// The code was not usable: nothing is written.
    CodeNotUsable,
    /// The user already has `push_channel_cap` devices with a live push channel: nothing is
    /// written, the code stays usable.
    TooManyPushChannels,
    /// The device is registered; `held`: it waits for approval.
    Device { held: bool },
}

/// How a held device waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Until another device or an admin approves it (the new-device approval policy).
    UntilApproved,
    /// Until approved, or until this time (Unix ms) passes without a denial (a phone added
    /// from a single-factor session, `trust::RECOVERY_WAIT_SECS`).
    UntilApprovedOr(i64),
}

/// Atomically uses the code (only if still unused, unexpired and with this challenge) and
/// registers the device, unless it would exceed the user's push channel cap (counted under
/// the user's lock, so concurrent enrollments cannot pass it together).
pub async fn use_code_and_enroll(
    pool: &Pool,
    code_hash: &str,
    challenge: &str,
    now: i64,
    device: NewDevice<'_>,
) -> StoreResult<Enrolled> {
    let mut tx = pool.begin().await?;
    if device.push_channel_cap.is_some() {
        // Counting, then inserting: serialized per user.
        lock_user(&mut tx, device.upn).await?;
    }
    let used = sqlx::query(
        "UPDATE enrollment_codes SET used_at = $1 \
         WHERE code_hash = $2 AND used_at IS NULL AND challenge = $3 AND expires_at > $1",
    )
    .bind(now)
    .bind(code_hash)
    .bind(challenge)
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() != 1 {
        return Ok(Enrolled::CodeNotUsable);
    }
    if let Some(cap) = device.push_channel_cap {
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM devices WHERE upn = $1 AND push_kind <> 'longpoll' \
             AND push_stale_at IS NULL",
        )
        .bind(device.upn)
        .fetch_one(&mut *tx)
        .await?;
        if live >= i64::from(cap) {
            // Dropping the transaction rolls the code's use back.
            return Ok(Enrolled::TooManyPushChannels);
        }
    }
    sqlx::query(
        "INSERT INTO devices (account_id, upn, device_public_key, push_kind, push_token, \
         device_name, enrolled_at, awaiting_approval, held_until) \
         SELECT $1, $2, $3, $4, $5, $6, $7, h.held, CASE WHEN h.held = 1 THEN $9 END \
         FROM (SELECT CASE WHEN $8 = 1 AND EXISTS (SELECT 1 FROM devices WHERE upn = $2 \
         AND awaiting_approval = 0) THEN 1 ELSE 0 END AS held) h",
    )
    .bind(device.account_id)
    .bind(device.upn)
    .bind(device.device_public_key)
    .bind(device.push_kind)
    .bind(device.push_token)
    .bind(device.device_name)
    .bind(device.enrolled_at)
    .bind(i64::from(device.hold.is_some()))
    .bind(match device.hold {
        Some(Hold::UntilApprovedOr(until)) => Some(until),
        _ => None,
    })
    .execute(&mut *tx)
    .await?;
    let held: i64 =
        sqlx::query_scalar("SELECT awaiting_approval FROM devices WHERE account_id = $1")
            .bind(device.account_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(Enrolled::Device { held: held != 0 })
}
