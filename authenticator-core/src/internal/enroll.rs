//! Enrollment (QR code) and enabling phone sign-in.
use authenticator_protocol::encoding::{ct_eq, unb64_fixed};
use authenticator_protocol::enroll::{
    EnrollChallenge, EnrollProof, EnrollmentUrl, PasswordlessKeyRegistration,
};
use authenticator_protocol::push::PushChannelKind;
use authenticator_protocol::text;
use authenticator_protocol::webpush::WebPushSubscription;
use authenticator_protocol::wire::{self, PushChannel};
use authenticator_protocol::{AccountId, ProtocolError, PublicKey, Signature, UnixMillis};

use super::store::Account;
use super::{new_alias, Core};
use crate::error::{Error, Result};
use crate::types::{AccountSummary, PushKind, PushRegistration};

const MAX_DEVICE_NAME_CHARS: usize = 64;
const MAX_PUSH_TOKEN_BYTES: usize = 4096;

fn check_inputs(name: &str, push: &PushRegistration) -> Result<()> {
    // PROTOCOL.md §5.2: the server refuses a device name over 200 bytes (64 emoji are 256).
    // The name is signed as given (§2): nothing is trimmed, a blank one is refused.
    if name.trim().is_empty() || name.chars().count() > MAX_DEVICE_NAME_CHARS || name.len() > 200 {
        return Err(Error::InvalidInput(format!(
            "the device name must have 1 to {MAX_DEVICE_NAME_CHARS} characters and at most 200 bytes"
        )));
    }
    // The one gate for names, which the server applies too: the user's other phones show the
    // name ("was this you?") and admins read it in `admin device list`.
    if let Err(e) = text::check_plain(name) {
        return Err(Error::InvalidInput(format!("the device name {e}")));
    }
    check_push(push)
}

/// A push registration as enrollment and rotation (`update_push_registration`) accept it.
pub(crate) fn check_push(push: &PushRegistration) -> Result<()> {
    match push.kind {
        PushKind::LongPoll if !push.token.is_empty() => Err(Error::InvalidInput(
            "long-poll registrations have no push token".into(),
        )),
        PushKind::Apns | PushKind::Fcm
            if push.token.is_empty() || push.token.len() > MAX_PUSH_TOKEN_BYTES =>
        {
            Err(Error::InvalidInput(
                "an APNs/FCM registration needs a push token".into(),
            ))
        }
        PushKind::WebPush
            if push.token.len() > MAX_PUSH_TOKEN_BYTES
                || WebPushSubscription::parse(&push.token).is_err() =>
        {
            Err(Error::InvalidInput(
                "a Web Push registration needs the subscription as <p256dh>.<auth>.<https endpoint> (web_push_token)".into(),
            ))
        }
        _ => Ok(()),
    }
}

pub(crate) async fn enroll(
    core: &Core,
    enrollment_url: &str,
    device_name: &str,
    push: PushRegistration,
) -> Result<AccountSummary> {
    let link = EnrollmentUrl::parse(enrollment_url).map_err(Error::EnrollmentUrl)?;
    check_inputs(device_name, &push)?;

    let answer = core
        .api
        .enroll_challenge(
            &link.server,
            &wire::EnrollChallengeRequest {
                code: link.code.clone(),
            },
        )
        .await?;

    // Pin: the key must be the one the QR code names, and it must have signed the challenge.
    let server_key = PublicKey::from_b64("server_public_key", &answer.server_public_key)
        .map_err(|_| Error::ServerKeyMismatch)?;
    if !ct_eq(
        server_key.fingerprint().as_bytes(),
        link.server_fingerprint.as_bytes(),
    ) {
        return Err(Error::ServerKeyMismatch);
    }
    let signature = Signature::from_b64("signature", &answer.signature)
        .map_err(|_| Error::BadServerSignature("enrollment challenge"))?;
    let challenge = EnrollChallenge {
        challenge: unb64_fixed::<32>("challenge", &answer.challenge)
            .map_err(|e| Error::InvalidResponse(e.to_string()))?,
        upn: answer.upn,
        display_name: answer.display_name,
        server_name: answer.server_name,
        expires_at: answer.expires_at,
    };
    server_key
        .verify(&challenge.signed_bytes(&link.code), &signature)
        .map_err(|_| Error::BadServerSignature("enrollment challenge"))?;
    // The names this account is stored and shown under pass the one gate for names: a
    // look-alike is refused before a key is made or anything stored.
    challenge.check_text().map_err(|e| match e {
        ProtocolError::UnsafeText { field, error } => Error::UnsafeServerText { field, error },
        other => Error::InvalidResponse(other.to_string()),
    })?;

    let alias = new_alias("device")?;
    let device_key = core.generate_key(&alias, false).await?;
    let result = complete(
        core,
        &link,
        &challenge,
        server_key,
        &alias,
        device_key,
        device_name,
        &push,
    )
    .await;
    if result.is_err() {
        core.discard_key(&alias).await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn complete(
    core: &Core,
    link: &EnrollmentUrl,
    challenge: &EnrollChallenge,
    server_key: PublicKey,
    alias: &str,
    device_key: PublicKey,
    device_name: &str,
    push: &PushRegistration,
) -> Result<AccountSummary> {
    let push_kind = PushChannelKind::from(push.kind);
    let proof = EnrollProof {
        challenge: challenge.challenge,
        device_public_key: device_key.clone(),
        push_kind: push_kind.as_str().to_owned(),
        push_token: push.token.clone(),
        device_name: device_name.to_owned(),
        timestamp: UnixMillis::now(),
    };
    let signature = core.sign(alias, proof.signed_bytes()).await?;
    let done = core
        .api
        .enroll_complete(
            &link.server,
            &wire::EnrollCompleteRequest {
                code: link.code.clone(),
                challenge: authenticator_protocol::encoding::b64(&challenge.challenge),
                device_public_key: device_key.to_b64(),
                push: PushChannel::new(push_kind, proof.push_token.clone()),
                device_name: proof.device_name.clone(),
                timestamp: proof.timestamp,
                signature: signature.to_b64(),
            },
        )
        .await?;
    let account = Account {
        account_id: done.account_id,
        server_url: link.server.clone(),
        server_public_key: server_key,
        upn: challenge.upn.clone(),
        display_name: challenge.display_name.clone(),
        server_name: challenge.server_name.clone(),
        device_key_alias: alias.to_owned(),
        passwordless_key_alias: None,
        push_kind,
        enrolled_at: UnixMillis::now(),
    };
    core.store.insert_account(&account)?;
    if let Some(uri) = done.totp_uri.as_deref() {
        // The offline-fallback TOTP secret (PROTOCOL.md §5.2), kept with the account.
        super::totp::add_enrollment_secret(core, &account.account_id, uri).await;
    }
    tracing::info!(account = %short(&account.account_id), "enrolled");
    Ok(account.summary())
}

pub(crate) async fn enable_phone_sign_in(
    core: &Core,
    account_id: &AccountId,
) -> Result<AccountSummary> {
    let account = core.store.account(account_id)?.ok_or(Error::NotEnrolled)?;
    let alias = new_alias("passwordless")?;
    let key = core.generate_key(&alias, true).await?;
    let result = register(core, &account, &alias, key).await;
    match result {
        Ok(previous) => {
            if let Some(previous) = previous.filter(|p| *p != alias) {
                core.discard_key(&previous).await;
            }
            let account = core.store.account(account_id)?.ok_or(Error::NotEnrolled)?;
            tracing::info!(account = %short(account_id), "phone sign-in enabled");
            Ok(account.summary())
        }
        Err(e) => {
            core.discard_key(&alias).await;
            Err(e)
        }
    }
}

async fn register(
    core: &Core,
    account: &Account,
    alias: &str,
    key: PublicKey,
) -> Result<Option<String>> {
    let registration = PasswordlessKeyRegistration {
        account_id: account.account_id.clone(),
        passwordless_public_key: key.clone(),
        timestamp: UnixMillis::now(),
    };
    let bytes = registration.signed_bytes();
    // The new key's first signature carries the prompt: the user is asked once, by the key,
    // and before the device key signs anything.
    let prompt = format!("Enable phone sign-in for {}", text::escape(&account.upn));
    let key_signature = core.sign_verified(alias, bytes.clone(), prompt).await?;
    let device_signature = core.sign(&account.device_key_alias, bytes).await?;
    core.api
        .register_passwordless(
            &account.server_url,
            &wire::PasswordlessRequest {
                account_id: account.account_id.clone(),
                passwordless_public_key: key.to_b64(),
                timestamp: registration.timestamp,
                device_signature: device_signature.to_b64(),
                key_signature: key_signature.to_b64(),
            },
        )
        .await?;
    core.store
        .set_passwordless_alias(&account.account_id, alias)
}

pub(crate) async fn remove_account(core: &Core, account_id: &AccountId) -> Result<()> {
    // The account goes first, its keys journaled and the server's notice queued in the same
    // transaction; then the keys. A crash or a key store failure in between leaves only
    // journaled keys, which the next instance deletes: never an account without its keys.
    let removed = core.store.delete_account(account_id)?;
    if let Some(alias) = &removed.passwordless_key_alias {
        core.discard_key(alias).await;
    }
    tracing::info!(account = %short(account_id), "account removed");
    // Best effort now; retried before later polls, enrollments and removals.
    unregister(core, &removed.unregistration).await;
    Ok(())
}

/// How long a removed account's server is retried before its device key is deleted anyway.
pub(crate) const UNREGISTER_GIVE_UP_MS: u64 = 30 * 24 * 3600 * 1000;

/// Tells the server of a removed account that this phone removed it (PROTOCOL.md §5.7), then
/// deletes the device key that signed the notice. A server that cannot be reached (network,
/// 5xx) is asked again later, for 30 days; any other answer (it already forgot the device, or
/// refuses) is final.
pub(crate) async fn unregister(core: &Core, u: &super::store::Unregistration) {
    let signer = core.signer_for(&u.device_key_alias);
    let outcome = core
        .api
        .unregister(&u.server_url, &u.account_id, &signer)
        .await;
    let retry = match &outcome {
        Ok(()) => false,
        Err(Error::Network(_)) => true,
        Err(Error::Server { status, .. }) => *status >= 500,
        Err(_) => false,
    };
    let expired = UnixMillis::now()
        .millis()
        .saturating_sub(u.queued_at.millis())
        > UNREGISTER_GIVE_UP_MS;
    if retry && !expired {
        tracing::info!(account = %short(&u.account_id), "server not told of the removal yet; retried later");
        if let Err(e) = core.store.unregistration_failed(&u.account_id) {
            tracing::warn!(error = %e, "could not record the attempt");
        }
        return;
    }
    match &outcome {
        Ok(()) => tracing::info!(account = %short(&u.account_id), "server told of the removal"),
        Err(e) => {
            tracing::info!(account = %short(&u.account_id), error = %e, "server not told of the removal; giving up")
        }
    }
    match core.store.unregistration_done(&u.account_id) {
        Ok(()) => core.discard_key(&u.device_key_alias).await,
        Err(e) => tracing::warn!(error = %e, "could not record the removal notice"),
    }
}

/// Retries the notices of removed accounts (before polls, enrollments and removals).
pub(crate) async fn retry_unregistrations(core: &Core) {
    match core.store.unregistrations() {
        Ok(pending) => {
            for u in &pending {
                unregister(core, u).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read pending removal notices"),
    }
}

/// A short account tag for logs.
pub(crate) fn short(id: &AccountId) -> String {
    id.as_str().chars().take(6).collect()
}
