//! Fetching, storing and answering sign-in requests.
use authenticator_protocol::sign_in::{
    select_response_key, Decision as WireDecision, KeyNotAllowed, RequestDetails, SignInResponse,
    SignedRequestDetails,
};
use authenticator_protocol::text;
use authenticator_protocol::wire::ErrorCode;
use authenticator_protocol::{
    AccountId, ProtocolError, PublicKey, RequestId, TypedNumber, UnixMillis,
};

use super::store::{Account, RequestState};
use super::Core;
use crate::error::{Error, Result};
use crate::types::{Decision, PendingRequest};

/// Ids are taken exactly as given (PROTOCOL.md §1, §2: they are signed as their text): an id
/// with white space around it is malformed, never trimmed into another.
pub(crate) fn parse_request_id(text: &str) -> Result<RequestId> {
    RequestId::parse(text).map_err(|_| Error::InvalidInput("the request id is malformed".into()))
}

pub(crate) fn parse_account_id(text: &str) -> Result<AccountId> {
    AccountId::parse(text).map_err(|_| Error::InvalidInput("the account id is malformed".into()))
}

/// Checks the server signature with the pinned key, then the shape of the details.
pub(crate) fn verify_details(
    signed: &SignedRequestDetails,
    server_key: &PublicKey,
) -> Result<RequestDetails> {
    signed.verify(server_key).map_err(|e| match e {
        ProtocolError::BadSignature
        | ProtocolError::InvalidBase64(_)
        | ProtocolError::InvalidLength { .. }
        | ProtocolError::InvalidSignatureEncoding => Error::BadServerSignature("request details"),
        ProtocolError::UnsafeText { field, error } => Error::UnsafeServerText { field, error },
        other => Error::InvalidResponse(other.to_string()),
    })
}

/// GET the details, verify them, check they are the ones asked for, store them.
pub(crate) async fn fetch(
    core: &Core,
    account: &Account,
    request_id: &RequestId,
) -> Result<RequestDetails> {
    let signed = core
        .api
        .request_details(
            &account.server_url,
            &account.account_id,
            request_id,
            &core.device_signer(account),
        )
        .await;
    let signed = match signed {
        Err(
            e @ Error::Server {
                code: ErrorCode::RequestExpired | ErrorCode::RequestNotPending,
                ..
            },
        ) => {
            core.store
                .finish_request(&account.account_id, request_id, RequestState::Closed)?;
            return Err(e);
        }
        other => other?,
    };
    let details = verify_details(&signed, &account.server_public_key)?;
    if details.request_id != *request_id || details.account_id != account.account_id {
        // Validly signed, but for another request: a replay, not an answer to our question.
        return Err(Error::BadServerSignature("details of another request"));
    }
    // Only what is stored is shown: details of a request this account already answered are
    // not handed out again, whatever the server sends.
    if !core.store.upsert_request(&signed, &details)? {
        return Err(Error::AlreadyAnswered);
    }
    tracing::debug!(request_id = %request_id, "request details verified and stored");
    Ok(details)
}

pub(crate) async fn fetch_request(
    core: &Core,
    account_id: &str,
    request_id: &str,
) -> Result<PendingRequest> {
    let account_id = parse_account_id(account_id)?;
    let request_id = parse_request_id(request_id)?;
    let account = core.store.account(&account_id)?.ok_or(Error::NotEnrolled)?;
    let details = fetch(core, &account, &request_id).await?;
    Ok(PendingRequest::from(&details))
}

/// Stored, unanswered, unexpired requests (re-verified against the pinned keys).
pub(crate) fn pending_requests(core: &Core) -> Result<Vec<PendingRequest>> {
    let now = UnixMillis::now();
    core.store.prune(now)?;
    let mut out = Vec::new();
    for stored in core.store.pending_requests(now)? {
        let Some(account) = core.store.account(&stored.account_id)? else {
            continue;
        };
        match verify_details(&stored.signed, &account.server_public_key) {
            Ok(details) => out.push(PendingRequest::from(&details)),
            Err(e) => {
                tracing::warn!(error = %e, "skipping a stored request that no longer verifies")
            }
        }
    }
    Ok(out)
}

/// Answers the request `request_id` of account `account_id`: both name it, so a request of
/// one account can never be answered with another account's key, nor sent to its server.
pub(crate) async fn answer(
    core: &Core,
    account_id: &str,
    request_id: &str,
    decision: WireDecision,
    typed_number: Option<&str>,
) -> Result<Decision> {
    let account_id = parse_account_id(account_id)?;
    let request_id = parse_request_id(request_id)?;
    let account = core
        .store
        .account(&account_id)?
        .ok_or(Error::UnknownRequest)?;
    let stored = core
        .store
        .request(&account_id, &request_id)?
        .ok_or(Error::UnknownRequest)?;
    let details = verify_details(&stored.signed, &account.server_public_key)?;
    if details.account_id != account_id || details.request_id != request_id {
        return Err(Error::BadServerSignature("details of another request"));
    }
    let now = UnixMillis::now();
    if stored.state != RequestState::Pending {
        // Closed is how an expired request ends (here, or when the server says so): asked
        // again, it is still "expired", not "answered".
        if stored.state == RequestState::Closed && details.expires_at.is_expired_at(now) {
            return Err(Error::RequestExpired);
        }
        return Err(Error::AlreadyAnswered);
    }
    if details.expires_at.is_expired_at(now) {
        core.store
            .finish_request(&account_id, &request_id, RequestState::Closed)?;
        return Err(Error::RequestExpired);
    }

    // PROTOCOL.md §6.3: which key signs.
    let alias = select_response_key(
        details.kind,
        decision,
        account.device_key_alias.as_str(),
        account.passwordless_key_alias.as_deref(),
    )
    .map_err(|KeyNotAllowed| Error::PhoneSignInNotEnabled)?;

    let typed_number = if decision == WireDecision::Approve && details.number_matching {
        let text = typed_number.unwrap_or_default();
        let typed = TypedNumber::parse(text).map_err(|_| Error::InvalidNumber)?;
        // As many digits as the sign-in screen shows (signed in the details): a number cut
        // short or padded is refused before the user is asked anything.
        if !details.number_fits(&typed) {
            return Err(Error::InvalidNumber);
        }
        Some(typed)
    } else {
        None
    };

    // §5.9: a phishing-resistant request is approved only for the page this device saw, at
    // the origin the server signed. Checked before the user is asked anything.
    let browser_origin = match (&details.browser, decision) {
        (Some(binding), WireDecision::Approve) => {
            Some(super::browser::approved_origin(&core.store, binding)?)
        }
        _ => None,
    };

    let response = SignInResponse {
        request_id: request_id.clone(),
        account_id: account.account_id.clone(),
        nonce: details
            .nonce_bytes()
            .map_err(|e| Error::InvalidResponse(e.to_string()))?,
        decision,
        typed_number,
        context_sha256: stored.signed.context_sha256(),
        timestamp: core.store.next_response_timestamp(
            &account_id,
            &request_id,
            UnixMillis::now(),
        )?,
        browser_origin,
    };
    // Every approval is signed only after the user passed verification for that signature
    // (whichever key signs it); deny and report need none.
    let signature = if decision == WireDecision::Approve {
        let prompt = match (details.kind, &details.device_name) {
            (authenticator_protocol::sign_in::RequestKind::NewDevice, Some(name)) => format!(
                "Approve the new device {} for {} at {}",
                text::escape(name),
                text::escape(&details.upn),
                text::escape(&details.server_name)
            ),
            _ => format!(
                "Approve sign-in to {} as {}",
                text::escape(&details.server_name),
                text::escape(&details.upn)
            ),
        };
        core.sign_verified(alias, response.signed_bytes(), prompt)
            .await?
    } else {
        core.sign(alias, response.signed_bytes()).await?
    };
    let body = response.to_wire(&signature);
    let accepted = core
        .api
        .respond(&account.server_url, &request_id, &body)
        .await;
    let accepted = match accepted {
        Ok(a) => a,
        Err(
            e @ Error::Server {
                code:
                    ErrorCode::RequestExpired | ErrorCode::RequestNotPending | ErrorCode::RequestFailed,
                ..
            },
        ) => {
            core.store
                .finish_request(&account_id, &request_id, RequestState::Closed)?;
            return Err(e);
        }
        // `wrong_number` and everything else: still pending, the user may retry.
        Err(e) => return Err(e),
    };
    let (expected, state) = match decision {
        WireDecision::Approve => ("approved", RequestState::Approved),
        WireDecision::Deny => ("denied", RequestState::Denied),
        WireDecision::Report => ("reported", RequestState::Reported),
    };
    if accepted.status != expected {
        core.store
            .finish_request(&account_id, &request_id, RequestState::Closed)?;
        return Err(Error::InvalidResponse(
            "the server confirmed a different decision".into(),
        ));
    }
    core.store.finish_request(&account_id, &request_id, state)?;
    tracing::info!(request_id = %request_id, decision = expected, "answered");
    Ok(decision.into())
}
