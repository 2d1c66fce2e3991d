//! Moving to a new phone (PROTOCOL.md §5.11). The old phone's device key vouches for a move
//! code of its account (signed after the user's verification, single-use by its timestamp,
//! short-lived); the new phone takes the encrypted TOTP blob left with it once
//! ([`claim`]) and enrolls with the code (§5.1–§5.2), active at once because the vouching
//! device approves it ([`voucher_for_enrollment`]). The server never sees the TOTP secrets:
//! the blob is opaque to it, and its key travels only in the move link.
use authenticator_protocol::encoding::{b64, sha256, unb64};
use authenticator_protocol::moving::{
    MoveClaimRequest, MoveClaimResponse, MoveVouch, MoveVouchRequest, MoveVouchResponse,
    MAX_TOTP_BLOB_CHARS, MOVE_TTL_SECS,
};
use authenticator_protocol::UnixMillis;

use crate::accounts::code_hash;
use crate::audit::{self, Event};
use crate::error::AppError;
use crate::random::random_bytes;
use crate::rules::verify::{check_fresh, verify_move_vouch};
use crate::state::AppState;
use crate::store::moving::{self as store, NewMoveCode};
use crate::store::{devices, now_ms, to_db_ms, Pool};
use crate::trust::{self, Method, Refusal};

/// The vouching device of a move code whose standing still lets it act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voucher {
    pub account_id: String,
}

/// `POST /api/v1/move/vouch`: a fresh move code for the signing device's account.
pub async fn vouch(
    state: &AppState,
    body: &MoveVouchRequest,
) -> Result<MoveVouchResponse, AppError> {
    let blob = match &body.totp_blob {
        Some(blob) if blob.len() > MAX_TOTP_BLOB_CHARS => {
            return Err(AppError::InvalidRequest("totp_blob is too large"))
        }
        Some(blob) => Some(
            unb64("totp_blob", blob)
                .map_err(|_| AppError::InvalidRequest("totp_blob must be base64url"))?,
        ),
        None => None,
    };
    let device = devices::load_device(&state.pool, &body.account_id)
        .await?
        .ok_or(AppError::UnknownAccount)?;
    let signed = MoveVouch {
        account_id: body.account_id.clone(),
        totp_blob_sha256: blob.as_deref().map(sha256),
        timestamp: body.timestamp,
    };
    verify_move_vouch(&signed, &body.signature, &device.keys.device)?;
    check_fresh(body.timestamp, UnixMillis::now())?;
    // A held device has no power yet; a removed one never gets here (unknown account).
    standing(&state.pool, &device.upn, body.account_id.as_str()).await?;

    let code = b64(&random_bytes::<16>()?);
    let now = UnixMillis::now();
    let expires_at = now.plus_secs(MOVE_TTL_SECS);
    let inserted = store::insert(
        &state.pool,
        NewMoveCode {
            code_hash: &code_hash(&code),
            upn: &device.upn,
            created_at: to_db_ms(now),
            expires_at: to_db_ms(expires_at),
            vouched_by: body.account_id.as_str(),
            vouched_at: to_db_ms(body.timestamp),
            blob: body.totp_blob.as_deref(),
        },
    )
    .await?;
    if !inserted {
        return Err(AppError::Replay);
    }
    audit::record(
        &state.pool,
        Event::MoveVouched,
        audit::Entry {
            upn: Some(&device.upn),
            account_id: Some(body.account_id.as_str()),
            outcome: if blob.is_some() {
                "ok totp=left"
            } else {
                "ok totp=none"
            },
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(account_id = %body.account_id, "move code issued");
    Ok(MoveVouchResponse { code, expires_at })
}

/// `POST /api/v1/move/claim`: checks a move code (the typed refusals of a used, expired or
/// orphaned move) and hands out the TOTP blob left with it, once.
pub async fn claim(
    state: &AppState,
    body: &MoveClaimRequest,
) -> Result<MoveClaimResponse, AppError> {
    let hash = code_hash(&body.code);
    let now = now_ms();
    // An ordinary registration code is not a move: nothing to claim.
    if check_move_code(&state.pool, &hash, now).await?.is_none() {
        return Err(AppError::InvalidCode);
    }
    let totp_blob = store::take_blob(&state.pool, &hash, now).await?;
    if totp_blob.is_some() {
        tracing::info!("move TOTP blob handed out");
    }
    Ok(MoveClaimResponse { totp_blob })
}

/// The vouching device of the code an enrollment uses, if it is a move code: `None` for an
/// ordinary registration code. A move whose code is used or expired, or whose vouching device
/// was removed (or is held, or its user paused or disabled), is refused with its own error.
pub async fn voucher_for_enrollment(
    pool: &Pool,
    code_hash: &str,
    now: i64,
) -> Result<Option<Voucher>, AppError> {
    check_move_code(pool, code_hash, now).await
}

async fn check_move_code(pool: &Pool, hash: &str, now: i64) -> Result<Option<Voucher>, AppError> {
    let Some(code) = store::find(pool, hash).await? else {
        return Err(AppError::InvalidCode);
    };
    let Some(voucher) = code.vouched_by else {
        return Ok(None);
    };
    if code.used {
        return Err(AppError::MoveUsed);
    }
    if crate::store::is_expired(code.expires_at, now) {
        return Err(AppError::MoveExpired);
    }
    standing(pool, &code.upn, &voucher).await?;
    Ok(Some(Voucher {
        account_id: voucher,
    }))
}

/// May `device` of `upn` act now (`trust::authenticate`)? A device removed or held is
/// [`AppError::MoveVoucherRemoved`].
async fn standing(pool: &Pool, upn: &str, device: &str) -> Result<(), AppError> {
    match trust::authenticate(pool, upn, Method::PhoneSignIn, Some(device)).await? {
        Ok(_) => Ok(()),
        Err(Refusal::DeviceGone | Refusal::DeviceHeld) => Err(AppError::MoveVoucherRemoved),
        Err(Refusal::Paused { retry_after_secs }) => Err(AppError::Paused { retry_after_secs }),
        Err(Refusal::UnknownUser | Refusal::Disabled) => Err(AppError::Unauthorized),
    }
}

/// Audits an enrollment that used a move code (`moved`, naming the vouching device).
pub async fn record_moved(
    pool: &Pool,
    upn: &str,
    account_id: &str,
    voucher: &Voucher,
) -> Result<(), AppError> {
    let outcome = format!("ok vouched_by={}", voucher.account_id);
    audit::record(
        pool,
        Event::Moved,
        audit::Entry {
            upn: Some(upn),
            account_id: Some(account_id),
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}
