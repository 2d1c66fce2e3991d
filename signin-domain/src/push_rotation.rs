//! Push-token rotation (PROTOCOL.md §5.10): a device replaces its push channel (a new FCM
//! token, APNs device token or Web Push subscription) with a registration its device key
//! signed; and the device's delivery health ("last push delivered", "last seen").
use authenticator_protocol::push::PushChannelKind;
use authenticator_protocol::push_registration::PushRegistrationRequest;
use authenticator_protocol::{AccountId, UnixMillis};

use crate::audit::{self, Event};
use crate::error::AppError;
use crate::rules::verify::{check_fresh, verify_push_registration};
use crate::state::AppState;
use crate::store::push_channels::{self, NewChannel, Replaced};
use crate::store::{devices, now_ms, to_db_ms};

/// §5.10, in its order: the channel as at enrollment (`invalid_request`), the account
/// (`unknown_account`), the device key's signature over exactly the body's fields
/// (`bad_signature`: another device's key, or a changed field), the time (`stale_timestamp`),
/// newer than the registration in force (`replay`), the user's push channel cap. Then the new
/// channel replaces the old one, the stale mark goes, and the change is audited
/// (`push_registration_updated`, outcome the new kind).
pub async fn update_push_registration(
    state: &AppState,
    body: &PushRegistrationRequest,
) -> Result<PushChannelKind, AppError> {
    let kind = crate::rules::push_channel::check(&state.outbound, &body.push)?;
    let device = devices::load_device(&state.pool, &body.account_id)
        .await?
        .ok_or(AppError::UnknownAccount)?;
    verify_push_registration(body, &device.keys.device)?;
    check_fresh(body.timestamp, UnixMillis::now())?;
    let replaced = push_channels::replace(
        &state.pool,
        NewChannel {
            account_id: body.account_id.as_str(),
            upn: &device.upn,
            kind: kind.as_str(),
            token: &body.push.token,
            signed_at: to_db_ms(body.timestamp),
            now: now_ms(),
            push_channel_cap: (kind != PushChannelKind::LongPoll)
                .then_some(state.outbound.max_push_channels_per_user),
        },
    )
    .await?;
    match replaced {
        Replaced::Done => {}
        Replaced::NotNewer => return Err(AppError::Replay),
        Replaced::Gone => return Err(AppError::UnknownAccount),
        Replaced::TooManyPushChannels => {
            return Err(AppError::TooManyPushChannels {
                max: state.outbound.max_push_channels_per_user,
            })
        }
    }
    audit::record(
        &state.pool,
        Event::PushRegistrationUpdated,
        audit::Entry {
            upn: Some(&device.upn),
            account_id: Some(body.account_id.as_str()),
            outcome: kind.as_str(),
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(account_id = %body.account_id, kind = kind.as_str(), "push channel replaced");
    Ok(kind)
}

/// The device proved its key (device authentication, an answer): its "last seen".
/// Best effort: a failure to record it is logged, never the caller's failure.
/// Written at most once per `push_channels::SEEN_RESOLUTION_MS` per device by this process
/// (the statement keeps the same rule across processes): the pages show it to the minute.
pub async fn seen(state: &AppState, account_id: &AccountId) {
    let now = now_ms();
    if !state
        .cache
        .seen_due(account_id.as_str(), now, push_channels::SEEN_RESOLUTION_MS)
    {
        return;
    }
    if let Err(e) = push_channels::seen(&state.pool, account_id.as_str(), now).await {
        tracing::warn!(error = %e, "could not record when the device was last seen");
    }
}
