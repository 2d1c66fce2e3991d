//! §5.1 and §5.2: enrollment with a one-time code.
use anyhow::Context;
use authenticator_protocol::encoding::{b64, ct_eq, sha256, unb64_fixed};
use authenticator_protocol::enroll::{EnrollChallenge, EnrollProof};
use authenticator_protocol::wire::{
    EnrollChallengeRequest, EnrollChallengeResponse, EnrollCompleteRequest, EnrollCompleteResponse,
};
use authenticator_protocol::{AccountId, PublicKey, UnixMillis};
use axum::extract::State;

use crate::audit::{self, Event};
use crate::error::{AppError, AppJson};
use crate::sign_in::verify::{check_fresh, verify_enroll_proof};
use crate::state::AppState;
use crate::store::{from_db_ms, now_ms, to_db_ms};

/// What the database keys an enrollment code by: SHA-256 of the code, base64url.
pub fn code_hash(code: &str) -> String {
    b64(&sha256(code.as_bytes()))
}

fn random_32() -> Result<[u8; 32], AppError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| AppError::internal(anyhow::anyhow!("random source failed")))?;
    Ok(bytes)
}

pub async fn challenge(
    State(state): State<AppState>,
    AppJson(body): AppJson<EnrollChallengeRequest>,
) -> Result<AppJson<EnrollChallengeResponse>, AppError> {
    let hash = code_hash(&body.code);
    let challenge = random_32()?;
    // A fresh challenge voids the previous one; only a usable code gets one.
    let updated = sqlx::query(
        "UPDATE enrollment_codes SET challenge = $1 \
         WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(b64(&challenge))
    .bind(&hash)
    .bind(now_ms())
    .execute(&state.pool)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(AppError::InvalidCode);
    }
    let (upn, display_name, expires_at): (String, String, i64) = sqlx::query_as(
        "SELECT u.upn, u.display_name, c.expires_at FROM enrollment_codes c \
         JOIN users u ON u.upn = c.upn WHERE c.code_hash = $1",
    )
    .bind(&hash)
    .fetch_one(&state.pool)
    .await?;
    let signed = EnrollChallenge {
        challenge,
        upn,
        display_name,
        server_name: state.settings.server_name.clone(),
        expires_at: from_db_ms(expires_at),
    };
    let signature = state.signer.sign(&signed.signed_bytes(&body.code));
    tracing::info!("enrollment challenge issued");
    Ok(AppJson(EnrollChallengeResponse {
        challenge: b64(&signed.challenge),
        upn: signed.upn,
        display_name: signed.display_name,
        server_name: signed.server_name,
        expires_at: signed.expires_at,
        server_public_key: state.signer.public_key().to_b64(),
        signature: signature.to_b64(),
    }))
}

const PUSH_KINDS: [&str; 3] = ["longpoll", "apns", "fcm"];

pub async fn complete(
    State(state): State<AppState>,
    AppJson(body): AppJson<EnrollCompleteRequest>,
) -> Result<AppJson<EnrollCompleteResponse>, AppError> {
    let challenge = unb64_fixed::<32>("challenge", &body.challenge)
        .map_err(|_| AppError::InvalidRequest("challenge must be 32 bytes of base64url"))?;
    let device_public_key = PublicKey::from_b64("device_public_key", &body.device_public_key)
        .map_err(|_| AppError::InvalidRequest("device_public_key is not a P-256 SEC1 key"))?;
    if !PUSH_KINDS.contains(&body.push.kind.as_str()) {
        return Err(AppError::InvalidRequest(
            "push.kind must be longpoll, apns or fcm",
        ));
    }
    if body.device_name.len() > 200 || body.push.token.len() > 4096 {
        return Err(AppError::InvalidRequest(
            "device_name or push token too long",
        ));
    }

    // The code and its current challenge.
    let hash = code_hash(&body.code);
    let now = now_ms();
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT upn, challenge FROM enrollment_codes \
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(&hash)
    .bind(now)
    .fetch_optional(&state.pool)
    .await?;
    let Some((upn, Some(stored_challenge))) = row else {
        return Err(AppError::InvalidCode);
    };
    let stored_challenge = unb64_fixed::<32>("challenge", &stored_challenge)
        .context("stored challenge")
        .map_err(AppError::Internal)?;
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
    let account_id = AccountId::random();
    let mut tx = state.pool.begin().await?;
    let used = sqlx::query(
        "UPDATE enrollment_codes SET used_at = $1 \
         WHERE code_hash = $2 AND used_at IS NULL AND challenge = $3 AND expires_at > $1",
    )
    .bind(now)
    .bind(&hash)
    .bind(b64(&challenge))
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() != 1 {
        return Err(AppError::InvalidCode);
    }
    sqlx::query(
        "INSERT INTO devices (account_id, upn, device_public_key, push_kind, push_token, \
         device_name, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(account_id.as_str())
    .bind(&upn)
    .bind(proof.device_public_key.to_b64())
    .bind(&proof.push_kind)
    .bind(&proof.push_token)
    .bind(&proof.device_name)
    .bind(to_db_ms(UnixMillis::now()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

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
    tracing::info!(account_id = %account_id, "device enrolled");
    Ok(AppJson(EnrollCompleteResponse { account_id }))
}
