//! Push payloads (APNs JSON, FCM data map) and long-poll delivery.
use std::collections::HashMap;

use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::wire::ErrorCode;
use authenticator_protocol::UnixMillis;

use super::sign_in::{fetch, pending_requests};
use super::store::{Account, RequestState};
use super::Core;
use crate::error::{Error, Result};
use crate::types::{PendingRequest, PushOutcome};

pub(crate) fn parse_json(payload: &str) -> Result<PushEnvelope> {
    PushEnvelope::from_json(payload).map_err(Error::PushPayload)
}

pub(crate) fn parse_data(data: &HashMap<String, String>) -> Result<PushEnvelope> {
    PushEnvelope::from_data_map(data).map_err(Error::PushPayload)
}

/// A push has no authority: it only says which request to fetch over the signed channel.
pub(crate) async fn handle(core: &Core, envelope: PushEnvelope) -> Result<PushOutcome> {
    let Some(account) = core.store.account(&envelope.account_id)? else {
        return Ok(PushOutcome::UnknownAccount);
    };
    if let Some(stored) = core.store.request(&envelope.request_id)? {
        if stored.account_id == envelope.account_id && stored.state != RequestState::Pending {
            return Ok(PushOutcome::AlreadyAnswered);
        }
    }
    match fetch(core, &account, &envelope.request_id).await {
        Ok(details) if details.expires_at <= UnixMillis::now() => Ok(PushOutcome::Expired),
        Ok(details) => Ok(PushOutcome::ShowRequest {
            request: PendingRequest::from(&details),
        }),
        Err(Error::Server {
            code: ErrorCode::RequestExpired,
            ..
        }) => Ok(PushOutcome::Expired),
        Err(Error::Server {
            code: ErrorCode::RequestNotPending,
            ..
        }) => Ok(PushOutcome::AlreadyAnswered),
        Err(e) => Err(e),
    }
}

/// Long-polls one account and fetches every envelope it delivers.
async fn poll_account(core: &Core, account: &Account, wait_seconds: u32) -> Result<()> {
    let answer = core
        .api
        .poll(
            &account.server_url,
            &account.account_id,
            wait_seconds,
            &core.device_signer(account),
        )
        .await?;
    for envelope in answer.pushes {
        if envelope.account_id != account.account_id {
            tracing::warn!("ignoring a long-poll envelope for another account");
            continue;
        }
        match fetch(core, account, &envelope.request_id).await {
            Ok(_) => {}
            Err(Error::Server {
                code: ErrorCode::RequestExpired | ErrorCode::RequestNotPending,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Polls every account concurrently. One unreachable server does not hide the others'
/// requests; if every account fails, the first error is returned.
pub(crate) async fn poll(core: &Core, wait_seconds: u32) -> Result<Vec<PendingRequest>> {
    let mut cancelled = core.poll_cancel.subscribe();
    cancelled.mark_unchanged();
    let accounts = core.store.accounts()?;
    let all = futures_util::future::join_all(
        accounts
            .iter()
            .map(|account| poll_account(core, account, wait_seconds)),
    );
    let results = tokio::select! {
        results = all => results,
        // Dropping the polls cancels their HTTP requests; what was stored stays stored.
        _ = cancelled.changed() => return pending_requests(core),
    };
    let mut first_error = None;
    let mut successes = 0usize;
    for result in results {
        match result {
            Ok(()) => successes += 1,
            Err(e) => {
                tracing::warn!(error = %e, "polling one account failed");
                first_error.get_or_insert(e);
            }
        }
    }
    if successes == 0 {
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    pending_requests(core)
}
