//! Push payloads (APNs JSON, FCM data map) and long-poll delivery.
use std::collections::HashMap;

use futures_util::future::{join_all, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};

use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::wire::{ErrorCode, PollResponse};
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
    if let Some(stored) = core
        .store
        .request(&envelope.account_id, &envelope.request_id)?
    {
        if stored.state != RequestState::Pending {
            return Ok(PushOutcome::AlreadyAnswered);
        }
    }
    match fetch(core, &account, &envelope.request_id).await {
        Ok(details) if details.expires_at.is_expired_at(UnixMillis::now()) => {
            Ok(PushOutcome::Expired)
        }
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
        })
        | Err(Error::AlreadyAnswered) => Ok(PushOutcome::AlreadyAnswered),
        Err(e) => Err(e),
    }
}

/// One account's long-poll: the server answers at once when something is pending, else after
/// up to `wait_seconds`.
async fn long_poll(core: &Core, account: &Account, wait_seconds: u32) -> Result<PollResponse> {
    core.api
        .poll(
            &account.server_url,
            &account.account_id,
            wait_seconds,
            &core.device_signer(account),
        )
        .await
}

/// Fetches and stores every envelope one account's long-poll delivered.
async fn fetch_delivered(core: &Core, account: &Account, answer: &PollResponse) -> Result<()> {
    for envelope in &answer.pushes {
        if envelope.account_id != account.account_id {
            tracing::warn!("ignoring a long-poll envelope for another account");
            continue;
        }
        match fetch(core, account, &envelope.request_id).await {
            Ok(_) => {}
            Err(Error::Server {
                code: ErrorCode::RequestExpired | ErrorCode::RequestNotPending,
                ..
            })
            | Err(Error::AlreadyAnswered) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Long-polls every account at once and returns as soon as **any** account delivers something
/// (or every wait has ended). The other accounts' waits are then cancelled (dropping them
/// cancels their HTTP requests) and those accounts are asked again without waiting, so every
/// request already pending is returned by this call. One unreachable server does not hide the others' requests; if every
/// account fails, the first error is returned. `cancel_poll` ends the whole call.
pub(crate) async fn poll(core: &Core, wait_seconds: u32) -> Result<Vec<PendingRequest>> {
    let mut cancelled = core.poll_cancel.subscribe();
    cancelled.mark_unchanged();
    let accounts = core.store.accounts()?;
    tokio::select! {
        outcome = poll_accounts(core, &accounts, wait_seconds) => outcome?,
        // Dropping the polls cancels their HTTP requests; what was stored stays stored.
        _ = cancelled.changed() => {}
    }
    pending_requests(core)
}

async fn poll_accounts<'a>(core: &Core, accounts: &'a [Account], wait_seconds: u32) -> Result<()> {
    let mut waits: FuturesUnordered<_> = accounts
        .iter()
        .map(|account| async move { (account, long_poll(core, account, wait_seconds).await) })
        .collect();
    let mut answers: Vec<(&'a Account, PollResponse)> = Vec::new();
    let mut first_error = None;
    // Keeps one account's answer (or its error); true when it delivered something.
    fn take<'a>(
        answers: &mut Vec<(&'a Account, PollResponse)>,
        first_error: &mut Option<Error>,
        (account, result): (&'a Account, Result<PollResponse>),
    ) -> bool {
        match result {
            Ok(answer) => {
                let delivered = !answer.pushes.is_empty();
                answers.push((account, answer));
                delivered
            }
            Err(e) => {
                tracing::warn!(error = %e, "polling one account failed");
                first_error.get_or_insert(e);
                false
            }
        }
    }
    // Wait until one account delivers something, or every wait has ended.
    while let Some(done) = waits.next().await {
        if take(&mut answers, &mut first_error, done) {
            break;
        }
    }
    // Take what the other accounts have already answered, without waiting for them.
    while let Some(Some(done)) = waits.next().now_or_never() {
        take(&mut answers, &mut first_error, done);
    }
    drop(waits);
    // The accounts whose wait was cut short are asked again without waiting (the server
    // answers at once with what is pending), so a request already pending on them is not left
    // to the next poll.
    let cut_short: Vec<&'a Account> = accounts
        .iter()
        .filter(|a| {
            !answers
                .iter()
                .any(|(done, _)| done.account_id == a.account_id)
        })
        .collect();
    if !cut_short.is_empty() && answers.iter().any(|(_, a)| !a.pushes.is_empty()) {
        tracing::debug!(
            cut_short = cut_short.len(),
            "a request arrived: asking the other accounts without waiting"
        );
        let now = join_all(
            cut_short
                .iter()
                .map(|account| async move { (*account, long_poll(core, account, 0).await) }),
        )
        .await;
        for done in now {
            take(&mut answers, &mut first_error, done);
        }
    }

    let fetched = join_all(
        answers
            .iter()
            .map(|(account, answer)| fetch_delivered(core, account, answer)),
    )
    .await;
    let mut successes = 0usize;
    for result in fetched {
        match result {
            Ok(()) => successes += 1,
            Err(e) => {
                tracing::warn!(error = %e, "fetching one account's requests failed");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if successes == 0 => Err(e),
        _ => Ok(()),
    }
}
