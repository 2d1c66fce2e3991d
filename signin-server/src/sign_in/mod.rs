//! The sign-in lifecycle, the one place a request is started, read, waited on and answered
//! (PROTOCOL.md §5.5–§5.6, §7), whatever the entry point (the JSON API, the web pages, and
//! later OpenID Connect and CIBA). No HTTP and no SQL here: handlers call these functions,
//! these call `crate::store`.
//!
//! Beside it, the rules it applies: [`policy`] (who may use which mode), [`verify`]
//! (signatures, freshness, number matching), [`risk`] (anti-fatigue limits and pauses) and
//! [`location`] (what the phone shows as "where").
pub mod geoip;
pub mod location;
pub mod policy;
pub mod risk;
pub mod verify;

use std::net::IpAddr;
use std::time::Duration;

use authenticator_protocol::encoding::b64;
use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::sign_in::{
    Decision, RequestDetails, RequestKind, SignedRequestDetails,
};
use authenticator_protocol::wire::{ResponseBody, MAX_WRONG_NUMBERS};
use authenticator_protocol::{AccountId, RequestId, UnixMillis, PROTOCOL_VERSION};
use rand::Rng;

use crate::audit::{self, Event};
use crate::delivery::Delivery;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::requests::{self as requests, NewRequest, Status, StoredRequest};
use crate::store::{devices, now_ms, to_db_ms, users};

/// Longest UPN accepted (after trimming).
pub const MAX_UPN_LEN: usize = 256;
/// Longest application name accepted (after trimming).
pub const MAX_APP_LEN: usize = 128;

/// What an entry point asks for.
#[derive(Debug, Clone, Copy)]
pub struct StartSignIn<'a> {
    pub upn: &'a str,
    /// The application the user signs in to, shown on the phone when the policy says so.
    pub app: Option<&'a str>,
    /// Phone sign-in (always number matching) or a second factor after a password (number
    /// matching as the policy says).
    pub kind: RequestKind,
    /// Where the sign-in comes from, for the location shown on the phone.
    pub client_ip: Option<IpAddr>,
}

/// A started sign-in. The number is for the sign-in page only: `Debug` hides it.
pub struct Started {
    pub id: RequestId,
    pub number: String,
    pub expires_at: UnixMillis,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A uniformly random two-digit number (10..=99) from the OS CSPRNG.
pub fn random_number() -> String {
    rand::rngs::OsRng.gen_range(10u8..=99).to_string()
}

/// `N` bytes from the OS CSPRNG (nonces, challenges).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], AppError> {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| AppError::internal(anyhow::anyhow!("random source failed")))?;
    Ok(bytes)
}

/// Starts a sign-in for `upn`: checks the policy, picks the phone, applies the anti-fatigue
/// limits, signs the details, stores the request as the user's one pending request (older
/// ones are superseded, and their pages woken) and wakes the phone.
pub async fn start(state: &AppState, s: StartSignIn<'_>) -> Result<Started, AppError> {
    let upn = s.upn.trim();
    if upn.is_empty() || upn.len() > MAX_UPN_LEN {
        return Err(AppError::InvalidRequest("upn must be 1 to 256 characters"));
    }
    let app = s.app.map(str::trim).filter(|a| !a.is_empty());
    if app.is_some_and(|a| a.len() > MAX_APP_LEN) {
        return Err(AppError::InvalidRequest(
            "app must be at most 128 characters",
        ));
    }
    if !users::exists(&state.pool, upn).await? {
        return Err(AppError::UnknownAccount);
    }
    let groups = users::groups_of(&state.pool, upn).await?;
    let policy = policy::load(&state.pool)
        .await
        .map_err(AppError::Internal)?;
    let allowed = match s.kind {
        RequestKind::Passwordless => policy.allows_passwordless_for(&groups),
        RequestKind::Push => policy.allows_push_for(&groups),
    };
    if !allowed {
        return Err(AppError::PolicyDisabled);
    }
    let account = devices::account_for_sign_in(&state.pool, upn, s.kind).await?;
    let account_id = AccountId::parse(&account.ok_or(AppError::NotPasswordlessCapable)?)
        .map_err(|e| AppError::internal(anyhow::anyhow!("stored account id: {e}")))?;
    // Anti-fatigue: a paused user gets no sign-in (so no push); starts are rate limited.
    risk::admit_signin(&state.pool, &state.risk, upn).await?;

    let request_id = RequestId::random();
    let number = random_number();
    let nonce = random_bytes::<32>()?;
    let created_at = UnixMillis::now();
    let expires_at = created_at.plus_secs(state.settings.request_ttl_secs);
    let details = RequestDetails {
        v: PROTOCOL_VERSION,
        request_id: request_id.clone(),
        account_id: account_id.clone(),
        kind: s.kind,
        upn: upn.to_owned(),
        server_name: state.settings.server_name.clone(),
        app_name: if policy.show_app_name {
            app.map(str::to_owned)
        } else {
            None
        },
        location: policy
            .show_location
            .then(|| state.locator.locate(s.client_ip)),
        // Phone sign-in always uses number matching, whatever the policy says.
        number_matching: s.kind == RequestKind::Passwordless || policy.number_matching,
        nonce: b64(&nonce),
        created_at,
        expires_at,
    };
    let signed = SignedRequestDetails::sign(&details, &state.signer);
    let superseded = requests::insert_superseding(
        &state.pool,
        &NewRequest {
            id: &request_id,
            account_id: &account_id,
            upn,
            kind: s.kind,
            details: &signed.details,
            signature: &signed.signature,
            number: &number,
            nonce: &details.nonce,
            number_matching: details.number_matching,
            created_at: to_db_ms(created_at),
            expires_at: to_db_ms(expires_at),
        },
    )
    .await?;
    for old in &superseded {
        state.request_waiters.wake(old);
    }
    state
        .dispatcher
        .deliver(&PushEnvelope::new(account_id.clone(), request_id.clone()));
    audit::record(
        &state.pool,
        Event::SignInStarted,
        audit::Entry {
            upn: Some(upn),
            account_id: Some(account_id.as_str()),
            request_id: Some(request_id.as_str()),
            outcome: "pending",
        },
    )
    .await?;
    tracing::info!(request_id = %request_id, account_id = %account_id, "sign-in started");
    Ok(Started {
        id: request_id,
        number,
        expires_at,
    })
}

/// The request `id` with its status settled. This is the one place expiry is decided: a
/// pending request past its expiry is stored as expired, and whoever waits on it is woken.
pub async fn current(state: &AppState, id: &str) -> Result<Option<StoredRequest>, AppError> {
    let Some(mut req) = requests::load_request(&state.pool, id).await? else {
        return Ok(None);
    };
    let now = UnixMillis::now();
    if req.status == Status::Pending && req.is_expired_at(now) {
        if requests::expire_if_due(&state.pool, &req.id, to_db_ms(now)).await? {
            state.request_waiters.wake(req.id.as_str());
        }
        req.status = Status::Expired;
    }
    Ok(Some(req))
}

/// Waits up to `wait` (and at the latest until the request expires) for request `id` to leave
/// `pending`; returns it as it then is. `unknown_request` if there is no such request.
pub async fn wait(state: &AppState, id: &str, wait: Duration) -> Result<StoredRequest, AppError> {
    let req = current(state, id).await?.ok_or(AppError::UnknownRequest)?;
    if req.status != Status::Pending || wait.is_zero() {
        return Ok(req);
    }
    // Wake up at the latest when the request expires, to report it promptly.
    let until_expiry = u64::try_from(to_db_ms(req.expires_at).saturating_sub(now_ms()))
        .unwrap_or(0)
        .saturating_add(50);
    let wait = wait.min(Duration::from_millis(until_expiry));
    let decided: Option<StoredRequest> = state
        .request_waiters
        .wait_for(id, wait, &state.shutdown, || async {
            let r = current(state, id).await?.ok_or(AppError::UnknownRequest)?;
            Ok((r.status != Status::Pending).then_some(Some(r)))
        })
        .await?;
    match decided {
        Some(r) => Ok(r),
        None => current(state, id).await?.ok_or(AppError::UnknownRequest),
    }
}

/// The account's pending requests as push envelopes, oldest first.
pub async fn pending_for(
    state: &AppState,
    account_id: &AccountId,
) -> Result<Vec<PushEnvelope>, AppError> {
    let ids = requests::pending_ids_for_account(&state.pool, account_id, now_ms()).await?;
    ids.iter()
        .map(|id| {
            RequestId::parse(id)
                .map(|rid| PushEnvelope::new(account_id.clone(), rid))
                .map_err(|e| AppError::internal(anyhow::anyhow!("stored request id: {e}")))
        })
        .collect()
}

/// The long-poll: waits up to `wait` until the account has pending requests.
pub async fn wait_pending_for(
    state: &AppState,
    account_id: &AccountId,
    wait: Duration,
) -> Result<Vec<PushEnvelope>, AppError> {
    state
        .longpoll
        .accounts
        .wait_for(account_id.as_str(), wait, &state.shutdown, || async {
            let p = pending_for(state, account_id).await?;
            Ok((!p.is_empty()).then_some(p))
        })
        .await
}

/// The request `id` if it exists and belongs to `account_id`; `unknown_request` otherwise.
async fn owned(
    state: &AppState,
    id: &str,
    account_id: &AccountId,
) -> Result<StoredRequest, AppError> {
    match current(state, id).await? {
        Some(req) if req.account_id == *account_id => Ok(req),
        _ => Err(AppError::UnknownRequest),
    }
}

/// §5.6 step 2 on a settled request: expired by time, or no longer pending (answered, or
/// superseded by a newer sign-in).
fn check_pending(req: &StoredRequest) -> Result<(), AppError> {
    match req.status {
        Status::Pending => Ok(()),
        Status::Expired if req.is_expired_at(UnixMillis::now()) => Err(AppError::RequestExpired),
        _ => Err(AppError::RequestNotPending),
    }
}

/// §5.5: the signed details of a pending request, for the phone of its account.
pub async fn details_for(
    state: &AppState,
    id: &str,
    account_id: &AccountId,
) -> Result<SignedRequestDetails, AppError> {
    let req = owned(state, id, account_id).await?;
    check_pending(&req)?;
    Ok(SignedRequestDetails {
        details: req.details,
        signature: req.signature,
    })
}

/// §5.6: checks the phone's signed answer in the protocol's order and stores the decision (or
/// counts the wrong number). Returns the new status.
pub async fn answer(state: &AppState, id: &str, body: &ResponseBody) -> Result<Status, AppError> {
    // 1. exists and belongs to the account.
    let req = owned(state, id, &body.account_id).await?;
    let device = devices::load_device(&state.pool, &body.account_id)
        .await?
        .ok_or(AppError::UnknownRequest)?;
    // 2. not expired, still pending.
    check_pending(&req)?;
    // 3. signature under the §6.3 key; 4. nonce and context binding.
    let response = verify::verify_response(&req, &device.keys, body)?;
    // 4. fresh and newer than any earlier response.
    verify::check_response_time(response.timestamp, UnixMillis::now(), req.last_response_ts)?;
    let ts = to_db_ms(response.timestamp);
    let entry = |outcome| audit::Entry {
        upn: Some(&req.upn),
        account_id: Some(req.account_id.as_str()),
        request_id: Some(req.id.as_str()),
        outcome,
    };

    // 5. number matching.
    if !verify::number_matches(&req, &response) {
        let counted =
            requests::record_wrong_number(&state.pool, &req.id, ts, MAX_WRONG_NUMBERS, now_ms())
                .await?;
        let Some((attempts, status)) = counted else {
            return Err(lost_race(state, &req).await?);
        };
        audit::record(&state.pool, Event::WrongNumber, entry("wrong_number")).await?;
        tracing::info!(request_id = %req.id, "wrong number");
        if status == Status::Failed {
            audit::record(&state.pool, Event::SignInFailed, entry("failed")).await?;
            state.request_waiters.wake(req.id.as_str());
            return Err(AppError::RequestFailed);
        }
        return Err(AppError::WrongNumber {
            attempts_left: MAX_WRONG_NUMBERS.saturating_sub(attempts),
        });
    }

    let new_status = match response.decision {
        Decision::Approve => Status::Approved,
        Decision::Deny => Status::Denied,
        Decision::Report => Status::Reported,
    };
    if !requests::decide(&state.pool, &req.id, new_status, ts, now_ms()).await? {
        return Err(lost_race(state, &req).await?);
    }
    state.request_waiters.wake(req.id.as_str());
    audit::record(
        &state.pool,
        Event::SignInDecision,
        entry(new_status.as_str()),
    )
    .await?;
    if new_status == Status::Reported {
        risk::record_report(
            &state.pool,
            &state.risk,
            &req.upn,
            req.account_id.as_str(),
            req.id.as_str(),
        )
        .await?;
    }
    tracing::info!(request_id = %req.id, decision = response.decision.as_str(), "sign-in answered");
    Ok(new_status)
}

/// The conditional update changed nothing: someone else answered, the request expired, or
/// a response with a later timestamp came first.
async fn lost_race(state: &AppState, before: &StoredRequest) -> Result<AppError, AppError> {
    let now = current(state, before.id.as_str())
        .await?
        .ok_or(AppError::UnknownRequest)?;
    Ok(match check_pending(&now) {
        Err(e) => e,
        Ok(()) => AppError::Replay,
    })
}

/// After a correct password, when no push could be started (`policy_disabled` or no phone):
/// whether the password alone signs the user in. Not when the policy has phone sign-in for
/// the user and they have a phone with it (mode `passwordless`: the phone only).
pub async fn password_alone_allowed(state: &AppState, upn: &str) -> Result<bool, AppError> {
    let policy = policy::load(&state.pool)
        .await
        .map_err(AppError::Internal)?;
    let groups = users::groups_of(&state.pool, upn).await?;
    let phone_sign_in = devices::has_phone_sign_in(&state.pool, upn).await?;
    Ok(!(phone_sign_in && policy.allows_passwordless_for(&groups)))
}
