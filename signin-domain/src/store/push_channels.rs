//! A device's push channel after enrollment: rotation (PROTOCOL.md §5.10) and delivery health
//! ("last push delivered", "last seen").
use super::{lock_user, Pool, StoreResult};

/// What [`replace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The device now has the new channel, not stale.
    Done,
    /// A registration with this or a later signed timestamp is in force: nothing changed.
    NotNewer,
    /// The user already has `cap` other devices with a live push channel: nothing changed.
    TooManyPushChannels,
    /// No such device (removed meanwhile).
    Gone,
}

/// The new channel of one device.
pub struct NewChannel<'a> {
    pub account_id: &'a str,
    pub upn: &'a str,
    pub kind: &'a str,
    /// A push service credential: never logged.
    pub token: &'a str,
    /// The registration's signed timestamp (Unix ms).
    pub signed_at: i64,
    pub now: i64,
    /// The channel is a push service's (not long-poll): the user may have at most this many
    /// devices with a live one, this device not counted.
    pub push_channel_cap: Option<u32>,
}

/// Replaces the device's push channel and clears its stale mark, only if `signed_at` is later
/// than the registration in force; counted and written under the user's lock, as enrollment.
pub async fn replace(pool: &Pool, c: NewChannel<'_>) -> StoreResult<Replaced> {
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, c.upn).await?;
    let current: Option<Option<i64>> =
        sqlx::query_scalar("SELECT push_registered_at FROM devices WHERE account_id = $1")
            .bind(c.account_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(current) = current else {
        return Ok(Replaced::Gone);
    };
    if current.is_some_and(|t| t >= c.signed_at) {
        return Ok(Replaced::NotNewer);
    }
    if let Some(cap) = c.push_channel_cap {
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM devices WHERE upn = $1 AND account_id <> $2 \
             AND push_kind <> 'longpoll' AND push_stale_at IS NULL",
        )
        .bind(c.upn)
        .bind(c.account_id)
        .fetch_one(&mut *tx)
        .await?;
        if live >= i64::from(cap) {
            return Ok(Replaced::TooManyPushChannels);
        }
    }
    sqlx::query(
        "UPDATE devices SET push_kind = $2, push_token = $3, push_registered_at = $4, \
         push_stale_at = NULL, push_stale_reason = NULL, last_seen_at = $5 \
         WHERE account_id = $1",
    )
    .bind(c.account_id)
    .bind(c.kind)
    .bind(c.token)
    .bind(c.signed_at)
    .bind(c.now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Replaced::Done)
}

/// A push service accepted a push for the device at `now`.
pub async fn push_delivered(pool: &Pool, account_id: &str, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE devices SET last_push_at = $2 WHERE account_id = $1")
        .bind(account_id)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

/// How often "last seen" is written: a phone that long-polls proves its key every minute or
/// so, and a minute is as precise as the pages show it.
pub const SEEN_RESOLUTION_MS: i64 = 60 * 1000;

/// The device proved its key at `now`; written at most once per [`SEEN_RESOLUTION_MS`].
pub async fn seen(pool: &Pool, account_id: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE devices SET last_seen_at = $2 WHERE account_id = $1 \
         AND (last_seen_at IS NULL OR last_seen_at <= $3)",
    )
    .bind(account_id)
    .bind(now)
    .bind(now.saturating_sub(SEEN_RESOLUTION_MS))
    .execute(pool)
    .await?;
    Ok(())
}
