//! Signature and binding checks as plain functions: the handlers and the protocol-vector
//! tests call exactly these.
use authenticator_protocol::encoding::{ct_eq, sha256, unb64_fixed};
use authenticator_protocol::enroll::{EnrollProof, PasswordlessKeyRegistration};
use authenticator_protocol::moving::MoveVouch;
use authenticator_protocol::push_registration::PushRegistrationRequest;
use authenticator_protocol::sign_in::{
    select_response_key, Decision, DeviceAuth, RequestKind, SignInResponse,
};
use authenticator_protocol::wire::{ResponseBody, MAX_CLOCK_SKEW_MS};
use authenticator_protocol::{PublicKey, Signature, TypedNumber, UnixMillis};

use crate::error::AppError;
use crate::store::devices::DeviceKeys;
use crate::store::requests::StoredRequest;

fn signature(text: &str) -> Result<Signature, AppError> {
    Signature::from_b64("signature", text).map_err(|_| AppError::BadSignature)
}

fn verify(key: &PublicKey, message: &[u8], sig: &str) -> Result<(), AppError> {
    key.verify(message, &signature(sig)?)
        .map_err(|_| AppError::BadSignature)
}

/// A signed time must be within `MAX_CLOCK_SKEW_MS` of the server clock.
pub fn check_fresh(timestamp: UnixMillis, now: UnixMillis) -> Result<(), AppError> {
    if timestamp.distance(now) > MAX_CLOCK_SKEW_MS {
        return Err(AppError::StaleTimestamp);
    }
    Ok(())
}

/// §4: how old a device-auth header may be. Device auth signs only method, path and time, so
/// a captured header can be replayed for its whole window: the phone signs every request
/// afresh, so the window only has to cover transit and a phone clock slightly behind.
/// Policy choice: one minute.
pub const DEVICE_AUTH_MAX_AGE_MS: u64 = 60 * 1000;

/// §4: how far ahead of the server clock a device-auth header may be dated (clock skew only;
/// a header dated later would stay replayable longer than `DEVICE_AUTH_MAX_AGE_MS`).
/// Policy choice: five seconds.
pub const DEVICE_AUTH_MAX_FUTURE_MS: u64 = 5 * 1000;

/// §4: a device-auth timestamp must be at most `DEVICE_AUTH_MAX_AGE_MS` old and at most
/// `DEVICE_AUTH_MAX_FUTURE_MS` ahead. (Signed bodies keep the ±`MAX_CLOCK_SKEW_MS` window.)
pub fn check_device_auth_fresh(timestamp: UnixMillis, now: UnixMillis) -> Result<(), AppError> {
    let (t, n) = (timestamp.millis(), now.millis());
    let too_old = n.saturating_sub(t) > DEVICE_AUTH_MAX_AGE_MS;
    let too_new = t.saturating_sub(n) > DEVICE_AUTH_MAX_FUTURE_MS;
    if too_old || too_new {
        return Err(AppError::StaleTimestamp);
    }
    Ok(())
}

/// §4: the device key's signature over `METHOD path?query account_id timestamp`.
/// The caller has already checked the timestamp (`check_device_auth_fresh`).
pub fn verify_device_auth(
    method: &str,
    path_and_query: &str,
    auth: &DeviceAuth,
    device_key: &PublicKey,
) -> Result<(), AppError> {
    let bytes = DeviceAuth::signed_bytes(method, path_and_query, &auth.account_id, auth.timestamp);
    device_key
        .verify(&bytes, &auth.signature)
        .map_err(|_| AppError::BadSignature)
}

/// §5.2: proof of possession of the new device key.
pub fn verify_enroll_proof(proof: &EnrollProof, signature_b64: &str) -> Result<(), AppError> {
    verify(
        &proof.device_public_key,
        &proof.signed_bytes(),
        signature_b64,
    )
}

/// §5.3: signed by the account's device key *and* the new passwordless key.
pub fn verify_passwordless_registration(
    reg: &PasswordlessKeyRegistration,
    device_key: &PublicKey,
    device_signature: &str,
    key_signature: &str,
) -> Result<(), AppError> {
    let bytes = reg.signed_bytes();
    verify(device_key, &bytes, device_signature)?;
    verify(&reg.passwordless_public_key, &bytes, key_signature)
}

/// §5.10: the account's device key over exactly the rotation's fields (another device's key,
/// or a changed field: `bad_signature`).
pub fn verify_push_registration(
    body: &PushRegistrationRequest,
    device_key: &PublicKey,
) -> Result<(), AppError> {
    let signature =
        Signature::from_b64("signature", &body.signature).map_err(|_| AppError::BadSignature)?;
    device_key
        .verify(&body.update().signed_bytes(), &signature)
        .map_err(|_| AppError::BadSignature)
}

/// §5.11: the account's device key over the vouch (its account, the TOTP blob's SHA-256, its
/// time).
pub fn verify_move_vouch(
    vouch: &MoveVouch,
    signature_b64: &str,
    device_key: &PublicKey,
) -> Result<(), AppError> {
    let signature =
        Signature::from_b64("signature", signature_b64).map_err(|_| AppError::BadSignature)?;
    device_key
        .verify(&vouch.signed_bytes(), &signature)
        .map_err(|_| AppError::BadSignature)
}

/// §6.3: the key that must sign `decision` on a request of `kind` (the rule is
/// `authenticator_protocol::sign_in::response_key_role`, shared with the phone).
pub fn response_key(
    kind: RequestKind,
    decision: Decision,
    keys: &DeviceKeys,
) -> Result<&PublicKey, AppError> {
    select_response_key(kind, decision, &keys.device, keys.passwordless.as_ref())
        .map_err(|_| AppError::KeyNotAllowed)
}

/// §5.6 steps 3 and 4 (binding part): the signature under the §6.3 key, then the nonce and the
/// context hash against the stored request. Returns the verified response.
pub fn verify_response(
    stored: &StoredRequest,
    keys: &DeviceKeys,
    body: &ResponseBody,
) -> Result<SignInResponse, AppError> {
    let key = response_key(stored.kind, body.decision, keys)?;
    let nonce = unb64_fixed::<32>("nonce", &body.nonce)
        .map_err(|_| AppError::InvalidRequest("nonce must be 32 bytes of base64url"))?;
    let context_sha256 = unb64_fixed::<32>("context_sha256", &body.context_sha256)
        .map_err(|_| AppError::InvalidRequest("context_sha256 must be 32 bytes of base64url"))?;
    let typed_number = body
        .typed_number
        .as_deref()
        .map(TypedNumber::parse)
        .transpose()
        .map_err(|_| AppError::InvalidRequest("typed_number must be 2 to 6 digits"))?;
    let response = SignInResponse {
        request_id: stored.id.clone(),
        account_id: body.account_id.clone(),
        nonce,
        decision: body.decision,
        typed_number,
        context_sha256,
        timestamp: body.timestamp,
        browser_origin: body.browser_origin.clone(),
    };
    verify(key, &response.signed_bytes(), &body.signature)?;
    let nonce_ok = ct_eq(&response.nonce, &stored.nonce);
    let context_ok = ct_eq(&response.context_sha256, &sha256(stored.details.as_bytes()));
    if !(nonce_ok & context_ok) {
        return Err(AppError::BadSignature);
    }
    Ok(response)
}

/// §5.6 step 4 (time part): fresh, and later than any earlier response to this request.
pub fn check_response_time(
    timestamp: UnixMillis,
    now: UnixMillis,
    last_response: Option<u64>,
) -> Result<(), AppError> {
    check_fresh(timestamp, now)?;
    if last_response.is_some_and(|last| timestamp.millis() <= last) {
        return Err(AppError::Replay);
    }
    Ok(())
}

/// What a verified response says about the browser (§5.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserCheck {
    /// The request is not browser-bound, or the approval carries the page's own origin, or
    /// it is a deny/report (which needs no browser).
    Ok,
    /// An approval of a browser-bound request that carries no origin: the Authenticator did
    /// not see the sign-in page (the user answered on a device without the page).
    NotSeen,
    /// An approval signed for another origin: the page the user saw was served elsewhere — a
    /// relaying proxy. The sign-in is ended.
    OtherOrigin,
}

/// §5.6 step 4a: the browser origin of a response against the signed details' binding. A
/// `browser_origin` on anything but an approval of a browser-bound request is malformed.
pub fn check_browser_binding(
    stored: &StoredRequest,
    response: &SignInResponse,
) -> Result<BrowserCheck, AppError> {
    let binding = stored.browser_binding()?;
    match (binding, response.decision, &response.browser_origin) {
        (None, _, None) | (Some(_), Decision::Deny | Decision::Report, None) => {
            Ok(BrowserCheck::Ok)
        }
        (Some(binding), Decision::Approve, Some(seen)) => Ok(
            // Not secret (the page shows it), so a plain comparison.
            if *seen == binding.origin {
                BrowserCheck::Ok
            } else {
                BrowserCheck::OtherOrigin
            },
        ),
        (Some(_), Decision::Approve, None) => Ok(BrowserCheck::NotSeen),
        (_, _, Some(_)) => Err(AppError::InvalidRequest(
            "browser_origin belongs only to an approval of a browser-bound request",
        )),
    }
}

/// §5.6 step 5: whether the typed number is right (constant-time). Always true when the
/// request does not use number matching or the decision is not an approval.
pub fn number_matches(stored: &StoredRequest, response: &SignInResponse) -> bool {
    if response.decision != Decision::Approve || !stored.number_matching {
        return true;
    }
    match &response.typed_number {
        Some(typed) => ct_eq(typed.as_str().as_bytes(), stored.number.as_bytes()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_auth_is_fresh_for_a_minute_and_five_seconds_ahead_only() {
        let now = UnixMillis(10_000_000);
        let at = |offset: i64| UnixMillis((now.0 as i64 + offset) as u64);
        for ok in [0, -60_000, 5_000, -1] {
            assert!(check_device_auth_fresh(at(ok), now).is_ok(), "{ok}");
        }
        // 4 min old, 30 s ahead, 4 min 59 s ahead (accepted by the old ±5 min window).
        for stale in [-240_000, -60_001, 30_000, 5_001, 299_000] {
            assert!(
                matches!(
                    check_device_auth_fresh(at(stale), now),
                    Err(AppError::StaleTimestamp)
                ),
                "{stale}"
            );
        }
    }

    #[test]
    fn freshness_and_replay() {
        let now = UnixMillis(10_000_000);
        assert!(check_response_time(now, now, None).is_ok());
        assert!(matches!(
            check_response_time(UnixMillis(now.0 - MAX_CLOCK_SKEW_MS - 1), now, None),
            Err(AppError::StaleTimestamp)
        ));
        assert!(matches!(
            check_response_time(now, now, Some(now.0)),
            Err(AppError::Replay)
        ));
        assert!(check_response_time(now, now, Some(now.0 - 1)).is_ok());
    }
}
