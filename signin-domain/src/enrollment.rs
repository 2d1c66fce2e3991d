//! Registering a phone: the one-time code's challenge and completion (PROTOCOL.md §5.1–§5.2),
//! and enabling phone sign-in on an enrolled account (§5.3).
use authenticator_protocol::encoding::{b64, ct_eq, unb64_fixed};
use authenticator_protocol::enroll::{EnrollChallenge, EnrollProof, PasswordlessKeyRegistration};
use authenticator_protocol::push::PushChannelKind;
use authenticator_protocol::wire::{
    EnrollChallengeRequest, EnrollChallengeResponse, EnrollCompleteRequest, EnrollCompleteResponse,
    PasswordlessRequest,
};
use authenticator_protocol::{text, AccountId, PublicKey, UnixMillis};

use crate::accounts::code_hash;
use crate::audit::{self, Event};
use crate::error::AppError;
use crate::random::random_bytes;
use crate::rules::verify::{check_fresh, verify_enroll_proof, verify_passwordless_registration};
use crate::state::AppState;
use crate::store::enrollment::{self as codes, Enrolled, Hold, NewDevice};
use crate::store::{devices, from_db_ms, now_ms, to_db_ms};
use crate::trust::{self, AccountChange, Method, Permission};

/// §5.1: a fresh challenge for a usable code (voiding the previous one), signed by the server.
pub async fn challenge(
    state: &AppState,
    body: &EnrollChallengeRequest,
) -> Result<EnrollChallengeResponse, AppError> {
    let hash = code_hash(&body.code);
    let challenge = random_bytes::<32>()?;
    if !codes::set_challenge(&state.pool, &hash, &b64(&challenge), now_ms()).await? {
        // A move code (§5.11) says why: used, expired, or its vouching device removed.
        crate::moving::voucher_for_enrollment(&state.pool, &hash, now_ms()).await?;
        return Err(AppError::InvalidCode);
    }
    let owner = codes::code_owner(&state.pool, &hash)
        .await?
        .ok_or(AppError::InvalidCode)?;
    let signed = EnrollChallenge {
        challenge,
        upn: owner.upn,
        display_name: owner.display_name,
        server_name: state.settings.server_name.clone(),
        expires_at: from_db_ms(owner.expires_at),
    };
    let signature = state
        .signer
        .try_sign(&signed.signed_bytes(&body.code))
        .map_err(AppError::internal)?;
    tracing::info!("enrollment challenge issued");
    Ok(EnrollChallengeResponse {
        challenge: b64(&signed.challenge),
        upn: signed.upn,
        display_name: signed.display_name,
        server_name: signed.server_name,
        expires_at: signed.expires_at,
        server_public_key: state.signer.public_key().to_b64(),
        signature: signature.to_b64(),
    })
}

/// §5.2: proof of possession of the new device key over the current challenge; uses the code
/// and registers the device atomically.
pub async fn complete(
    state: &AppState,
    body: &EnrollCompleteRequest,
) -> Result<EnrollCompleteResponse, AppError> {
    let challenge = unb64_fixed::<32>("challenge", &body.challenge)
        .map_err(|_| AppError::InvalidRequest("challenge must be 32 bytes of base64url"))?;
    let device_public_key = PublicKey::from_b64("device_public_key", &body.device_public_key)
        .map_err(|_| AppError::InvalidRequest("device_public_key is not a P-256 SEC1 key"))?;
    // The one check of a push channel, which rotation (§5.10) applies too.
    let kind = crate::rules::push_channel::check(&state.outbound, &body.push)?;
    if body.device_name.len() > 200 || body.push.token.len() > 4096 {
        return Err(AppError::InvalidRequest(
            "device_name or push token too long",
        ));
    }
    // The user's other phones show the name ("was this you?", §5.8) and admins read it
    // (`admin device list`): the one gate for names, as the phone applies it. Checked as sent,
    // which is what the proof signs (§2): nothing is trimmed.
    text::check_plain(&body.device_name).map_err(|error| AppError::UnsafeText {
        field: "device_name",
        error,
    })?;

    // The code and its current challenge.
    let hash = code_hash(&body.code);
    let now = now_ms();
    // A move code (§5.11): its vouching device, which must still be able to act, approves.
    let voucher = crate::moving::voucher_for_enrollment(&state.pool, &hash, now).await?;
    let Some((upn, Some(stored_challenge), issued_by)) =
        codes::usable_code(&state.pool, &hash, now).await?
    else {
        return Err(AppError::InvalidCode);
    };
    let stored_challenge = unb64_fixed::<32>("challenge", &stored_challenge)
        .map_err(|e| AppError::internal(anyhow::anyhow!("stored challenge: {e}")))?;
    if !ct_eq(&stored_challenge, &challenge) {
        return Err(AppError::InvalidCode);
    }

    // Proof of possession, then freshness.
    let proof = EnrollProof {
        challenge,
        device_public_key,
        push_kind: body.push.kind.clone(),
        push_token: body.push.token.clone(),
        device_name: body.device_name.clone(),
        timestamp: body.timestamp,
    };
    verify_enroll_proof(&proof, &body.signature)?;
    check_fresh(body.timestamp, UnixMillis::now())?;

    // Atomically: use the code (only if still unused with this challenge) and register.
    let account_id = AccountId::try_random().map_err(AppError::internal)?;
    let policy = crate::rules::policy::load(&state.pool)
        .await
        .map_err(AppError::Internal)?;
    // The code remembers how the session that asked for it was made (`None`: an admin);
    // `trust::may` decides what that session may add.
    let permission = match issued_by.as_deref() {
        None => Permission::Allowed,
        Some(m) => trust::may(
            Method::parse(m).ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("stored issued_by is not a method"))
            })?,
            AccountChange::AddPhone,
            policy.phishing_resistant,
        ),
    };
    let hold = match permission {
        // The vouching device satisfies new-device approval: active at once.
        _ if voucher.is_some() => None,
        Permission::Refused => return Err(AppError::PolicyDisabled),
        // Held even when the policy does not hold new devices: until another device or an
        // admin approves, or (unless the policy requires approval) the waiting period ends.
        Permission::AllowedHeld if policy.new_device_approval => Some(Hold::UntilApproved),
        Permission::AllowedHeld => Some(Hold::UntilApprovedOr(
            now.saturating_add(trust::RECOVERY_WAIT_SECS * 1000),
        )),
        Permission::Allowed if policy.new_device_approval => Some(Hold::UntilApproved),
        Permission::Allowed => None,
    };
    // Each push channel is one more request per sign-in: at most so many per user.
    let push_channel_cap =
        (kind != PushChannelKind::LongPoll).then_some(state.outbound.max_push_channels_per_user);
    let enrolled = codes::use_code_and_enroll(
        &state.pool,
        &hash,
        &b64(&challenge),
        now,
        NewDevice {
            account_id: account_id.as_str(),
            upn: &upn,
            device_public_key: &proof.device_public_key.to_b64(),
            push_kind: &proof.push_kind,
            push_token: &proof.push_token,
            device_name: &proof.device_name,
            enrolled_at: to_db_ms(UnixMillis::now()),
            hold,
            push_channel_cap,
        },
    )
    .await?;
    let held = match enrolled {
        Enrolled::Device { held } => held,
        Enrolled::CodeNotUsable => return Err(AppError::InvalidCode),
        Enrolled::TooManyPushChannels => {
            return Err(AppError::TooManyPushChannels {
                max: state.outbound.max_push_channels_per_user,
            })
        }
    };
    audit::record(
        &state.pool,
        Event::Enrolled,
        audit::Entry {
            upn: Some(&upn),
            account_id: Some(account_id.as_str()),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    if let Some(voucher) = &voucher {
        crate::moving::record_moved(&state.pool, &upn, account_id.as_str(), voucher).await?;
    }
    if held {
        let outcome = match hold {
            Some(Hold::UntilApprovedOr(until)) => format!(
                "until_approved_or={} issued_by={}",
                crate::format::rfc3339(until),
                issued_by.as_deref().unwrap_or("admin")
            ),
            _ => format!(
                "until_approved issued_by={}",
                issued_by.as_deref().unwrap_or("admin")
            ),
        };
        audit::record(
            &state.pool,
            Event::DeviceHeld,
            audit::Entry {
                upn: Some(&upn),
                account_id: Some(account_id.as_str()),
                outcome: &outcome,
                ..Default::default()
            },
        )
        .await?;
    }
    // The device's offline-fallback TOTP secret, given to the phone once, in this answer.
    let totp_uri = crate::accounts::totp::provision(
        &state.pool,
        &state.settings.server_name,
        account_id.as_str(),
        &upn,
        now_ms(),
    )
    .await?;
    tracing::info!(account_id = %account_id, "device enrolled");
    // The user's other devices are asked "was this you?" (PROTOCOL.md §5.8). The enrollment
    // is committed: a failure here must not tell the phone it failed (it would drop a key the
    // server keeps). A device held for approval then waits until someone removes it.
    if let Err(e) =
        crate::sign_in::notify_new_device(state, &upn, &account_id, &proof.device_name).await
    {
        tracing::warn!(error = %e, "could not ask the user's other devices about the new one");
    }
    Ok(EnrollCompleteResponse {
        account_id,
        totp_uri: Some(totp_uri.to_string()),
    })
}

/// §5.3: registers the account's phone sign-in key, signed by both the device key and the
/// new key; a replayed older registration is refused.
pub async fn enable_phone_sign_in(
    state: &AppState,
    body: &PasswordlessRequest,
) -> Result<(), AppError> {
    let key = PublicKey::from_b64("passwordless_public_key", &body.passwordless_public_key)
        .map_err(|_| AppError::InvalidRequest("passwordless_public_key is not a P-256 SEC1 key"))?;
    let device = devices::load_device(&state.pool, &body.account_id)
        .await?
        .ok_or(AppError::UnknownAccount)?;
    let reg = PasswordlessKeyRegistration {
        account_id: body.account_id.clone(),
        passwordless_public_key: key,
        timestamp: body.timestamp,
    };
    verify_passwordless_registration(
        &reg,
        &device.keys.device,
        &body.device_signature,
        &body.key_signature,
    )?;
    check_fresh(body.timestamp, UnixMillis::now())?;
    let enabled = devices::enable_passwordless(
        &state.pool,
        &body.account_id,
        &reg.passwordless_public_key,
        to_db_ms(body.timestamp),
        now_ms(),
    )
    .await?;
    if !enabled {
        return Err(AppError::Replay);
    }
    audit::record(
        &state.pool,
        Event::PasswordlessEnabled,
        audit::Entry {
            upn: Some(&device.upn),
            account_id: Some(body.account_id.as_str()),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(account_id = %body.account_id, "phone sign-in enabled");
    Ok(())
}
