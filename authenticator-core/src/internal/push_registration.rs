//! Push-token rotation (PROTOCOL.md §5.10): the app's push registration changed (FCM
//! `onNewToken`, a new APNs device token, a UnifiedPush endpoint), so every account tells its
//! server, signed by the account's device key.
use futures_util::future::join_all;

use authenticator_protocol::push::PushChannelKind;
use authenticator_protocol::push_registration::PushRegistrationUpdate;
use authenticator_protocol::UnixMillis;

use super::enroll::{check_push, short};
use super::store::Account;
use super::Core;
use crate::error::{Error, Result};
use crate::types::{PushRegistration, PushUpdateOutcome, PushUpdateResult};

/// Sends the new registration for every account at once (each to its own server) and
/// returns one result per account; one unreachable server does not hold up the others.
/// Invalid input fails the whole call before anything is signed.
pub(crate) async fn update_all(
    core: &Core,
    push: &PushRegistration,
) -> Result<Vec<PushUpdateResult>> {
    check_push(push)?;
    let mut last = core.push_rotation.lock().await;
    // Strictly later than the previous rotation of this instance, even within one millisecond.
    let timestamp = UnixMillis(UnixMillis::now().millis().max(last.millis() + 1));
    *last = timestamp;
    let accounts = core.store.accounts()?;
    Ok(join_all(
        accounts
            .iter()
            .map(|a| update_one(core, a, push, timestamp)),
    )
    .await)
}

async fn update_one(
    core: &Core,
    account: &Account,
    push: &PushRegistration,
    timestamp: UnixMillis,
) -> PushUpdateResult {
    let outcome = match send(core, account, push, timestamp).await {
        Ok(()) => {
            tracing::info!(account = %short(&account.account_id), "push registration updated");
            PushUpdateOutcome::Updated
        }
        Err(e) => {
            tracing::warn!(account = %short(&account.account_id), error = %e, "push registration not updated");
            outcome_of(e)
        }
    };
    PushUpdateResult {
        account_id: account.account_id.to_string(),
        upn: account.upn.clone(),
        server_name: account.server_name.clone(),
        outcome,
    }
}

async fn send(
    core: &Core,
    account: &Account,
    push: &PushRegistration,
    timestamp: UnixMillis,
) -> Result<()> {
    let kind = PushChannelKind::from(push.kind);
    let update = PushRegistrationUpdate {
        account_id: account.account_id.clone(),
        push_kind: kind.as_str().to_owned(),
        push_token: push.token.clone(),
        timestamp,
    };
    // No prompt: like device authentication, this signature shows nothing to the user.
    let signature = core
        .sign(&account.device_key_alias, update.signed_bytes())
        .await?;
    core.api
        .update_push(&account.server_url, &update.to_wire(&signature))
        .await?;
    core.store.set_push_kind(&account.account_id, kind)
}

/// Whether trying again later can help: network failures, server faults and a key store that
/// failed can; a refusal the server gave for this registration cannot.
fn outcome_of(e: Error) -> PushUpdateOutcome {
    match e {
        Error::Server {
            status,
            code,
            message,
            ..
        } if status < 500 => PushUpdateOutcome::Refused {
            status,
            code: code.as_str().to_owned(),
            detail: message,
        },
        other => PushUpdateOutcome::RetryLater {
            reason: crate::error::AuthenticatorError::from(other).to_string(),
        },
    }
}
