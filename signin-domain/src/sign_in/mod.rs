//! The sign-in lifecycle, the one place a request is started, read, waited on and answered
//! (PROTOCOL.md §5.5–§5.6, §7), whatever the entry point (the JSON API, the web pages, and
//! later OpenID Connect and CIBA). No HTTP and no SQL here: handlers call these functions,
//! these call `crate::store`.
//!
//! Beside it, the rules it applies ([`crate::rules`]): [`policy`] (who may use which mode),
//! [`verify`] (signatures, freshness, number matching), [`risk`] (anti-fatigue limits and
//! pauses) and `location` (what the phone shows as "where").

use std::net::IpAddr;
use std::time::Duration;

use authenticator_protocol::encoding::b64;
use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::sign_in::{
    web_origin, BrowserBinding, Decision, RequestDetails, RequestKind, SignedRequestDetails,
    BROWSER_CHALLENGE_BYTES,
};
use authenticator_protocol::wire::{ResponseBody, MAX_WRONG_NUMBERS};
use authenticator_protocol::{AccountId, RequestId, UnixMillis, PROTOCOL_VERSION};
use rand::Rng;

use crate::accounts::applications::Application;
use crate::audit::{self, Event};
use crate::delivery::Delivery;
use crate::error::AppError;
use crate::random::random_bytes;
use crate::rules::{policy, risk, verify};
use crate::state::AppState;
use crate::store::requests::{
    self as requests, InsertSignIn, NewRequest, StartStored, Status, StoredRequest,
};
use crate::store::risk::{LimitWrite, RiskKey};
use crate::store::{self, devices, now_ms, to_db_ms, users};

/// Longest UPN accepted (after trimming).
pub use crate::upn::MAX_UPN_LEN;

/// What an entry point asks for.
#[derive(Debug, Clone, Copy)]
pub struct StartSignIn<'a> {
    pub upn: &'a str,
    /// The registered application the user signs in to (its credential checked, or the
    /// server's own pages): its registered name is what the phone shows.
    pub application: &'a Application,
    /// Phone sign-in (always number matching) or a second factor after a password (number
    /// matching as the policy says).
    pub kind: RequestKind,
    /// Where the sign-in comes from, for the location shown on the phone and, for the
    /// server's own pages, the rate limit.
    pub client_ip: Option<IpAddr>,
    /// The earlier sign-in this one replaces ("resend" on the pages). No other start
    /// supersedes anything: a stranger's start cannot cancel the user's own sign-in.
    pub replaces: Option<&'a str>,
    /// Started by an unauthenticated browser on the sign-in pages (for the server itself, or
    /// for an OpenID Connect client's authorization): the rate limit also counts the client
    /// address, as for the built-in portal, and the phishing-resistant policy binds the
    /// approval to that browser (§5.9).
    pub browser: bool,
    /// A shorter lifetime than the server's request TTL (a CIBA `requested_expiry`): the
    /// phone's request must not outlive what it was started for, or the user approves nothing.
    pub lifetime_secs: Option<u64>,
}

/// A started sign-in. The number is for the sign-in page only: `Debug` hides it.
pub struct Started {
    /// The sign-in's id (that of its first device's request), for the page's status.
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

/// A uniformly random number of `digits` digits (2 to 6) without a leading zero (10..=99 for
/// two), from the OS CSPRNG.
pub fn random_number(digits: u8) -> String {
    let digits = u32::from(digits.clamp(2, 6));
    rand::rngs::OsRng
        .gen_range(10u32.pow(digits - 1)..10u32.pow(digits))
        .to_string()
}

/// Who a start counts against in the rate limit: the user *and* the requesting application,
/// and for the server's own (unauthenticated) pages also the client address (an IPv6 address
/// by its /64, see [`risk::address_key`]), so that a stranger who knows a UPN exhausts only
/// their own allowance.
fn limit_subject(upn: &str, s: &StartSignIn<'_>) -> String {
    if s.application.builtin || s.browser {
        let ip = s.client_ip.map_or_else(
            || "unknown".to_owned(),
            |ip| risk::address_key(ip).to_string(),
        );
        format!("{upn}\n{}\n{ip}", s.application.client_id)
    } else {
        format!("{upn}\n{}", s.application.client_id)
    }
}

/// Starts a sign-in for `upn`: checks the policy, applies the anti-fatigue limits, and sends
/// one signed request to every device of the user that can answer it (any one may answer;
/// the first answer wins). They share the number and the expiry; each has its own id, nonce
/// and signed details (which name its account).
pub async fn start(state: &AppState, s: StartSignIn<'_>) -> Result<Started, AppError> {
    let upn = crate::upn::Upn::parse(s.upn).map_err(|e| match e {
        crate::upn::UpnError::Length => AppError::InvalidRequest("upn must be 1 to 256 characters"),
        crate::upn::UpnError::NotPlain(_) => AppError::UnknownAccount,
    })?;
    let upn = upn.as_str();
    // One statement: the application, the user's standing and the cache generation.
    let subject = limit_subject(upn, &s);
    let view = crate::store::trust::start_view(
        &state.pool,
        upn,
        &s.application.client_id,
        &subject,
        &risk::ceiling_subject(upn),
    )
    .await?;
    // Removed since its credential was checked (possibly against a cached copy).
    if !view.application_registered {
        return Err(AppError::UnauthorizedApplication);
    }
    match view.user {
        None => return Err(AppError::UnknownAccount),
        // A disabled user gets no push (and `trust::authenticate` refuses any approval).
        Some(s) if s.disabled => return Err(AppError::PolicyDisabled),
        Some(_) => {}
    }
    // Groups and policy as of the generation just read: a change anywhere is seen here.
    let current = state.cache.confirm(view.generation);
    let groups = state.cache.groups(&state.pool, &current, upn).await?;
    let policy = policy::load_current(&state.pool, &state.cache, &current)
        .await
        .map_err(AppError::Internal)?;
    let allowed = match s.kind {
        RequestKind::Passwordless => policy.allows_passwordless_for(&groups),
        RequestKind::Push => policy.allows_push_for(&groups),
        // Only the server sends these, on an enrollment (`notify_new_device`).
        RequestKind::NewDevice => false,
    };
    if !allowed {
        return Err(AppError::PolicyDisabled);
    }
    // A device held from a single-factor session whose waiting period ended answers too:
    // released (audited) when the one read of the devices finds one, then read again.
    let now = now_ms();
    let mut targets = devices::targets(upn, view.devices, s.kind, now);
    if targets.release_due {
        crate::trust::release_due_holds(&state.pool, upn, now).await?;
        let again = devices::for_sign_in(&state.pool, upn).await?;
        targets = devices::targets(upn, again, s.kind, now);
    }
    let accounts = targets
        .accounts
        .into_iter()
        .map(|(a, channel)| AccountId::parse(&a).map(|id| (id, Some(channel))))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::internal(anyhow::anyhow!("stored account id: {e}")))?;
    if accounts.is_empty() {
        return Err(AppError::NotPasswordlessCapable);
    }
    let location = policy
        .shows_location_to(&groups)
        .then(|| state.locator.locate(s.client_ip));
    // Phone sign-in always uses number matching, whatever the policy says.
    let number_matching = s.kind == RequestKind::Passwordless || policy.number_matching;
    let browser = if policy.phishing_resistant && s.browser {
        Some(browser_binding(state).await?)
    } else {
        None
    };
    let ttl = s
        .lifetime_secs
        .map_or(state.settings.request_ttl_secs, |secs| {
            secs.clamp(1, state.settings.request_ttl_secs)
        });
    // Anti-fatigue: a paused user gets no sign-in (so no push); starts are rate limited. An
    // admitted start stores its rate-limit rows with its requests, if they are still as read.
    let mut read = risk::StartRisk {
        user: view.user_risk,
        subject: view.subject_limit,
        ceiling: view.ceiling_limit,
    };
    for _ in 0..MAX_ADMISSION_TRIES {
        let (elevation, limits) =
            match risk::admitted_from(&state.risk, upn, &subject, &read, now_ms()) {
                Some(admitted) => admitted,
                // Refused as read: decided again (the rows may have changed) and recorded.
                None => (
                    risk::admit_signin(&state.pool, &state.risk, upn, &subject, read).await?,
                    Vec::new(),
                ),
            };
        let number_length = elevation.number_digits(policy.number_length);
        let number = random_number(number_length);
        // One clock reading: the request lives exactly `ttl` (its details say so to the phone).
        let created_at = UnixMillis::now();
        let expires_at = created_at.plus_secs(ttl);
        let sent = send_requests(
            state,
            &Outgoing {
                upn,
                client_id: &s.application.client_id,
                started_by: if s.browser || s.application.builtin {
                    audit::Actor::User(upn.to_owned())
                } else {
                    audit::Actor::Application(s.application.client_id.clone())
                },
                kind: s.kind,
                accounts: accounts.clone(),
                app_name: policy
                    .shows_app_name_to(&groups)
                    .then(|| s.application.name.clone()),
                location: location.clone(),
                device_name: None,
                subject: None,
                number: &number,
                number_matching,
                number_length,
                browser: browser.clone(),
                created_at,
                expires_at,
                replaces: s.replaces,
                limits,
            },
        )
        .await?;
        if let Some(id) = sent {
            return Ok(Started {
                id,
                number,
                expires_at,
            });
        }
        // Another start of the user changed a rate-limit row since it was read.
        read.subject = store::risk::load(&state.pool, RiskKey::Limit(&subject)).await?;
        read.ceiling =
            store::risk::load(&state.pool, RiskKey::Limit(&risk::ceiling_subject(upn))).await?;
    }
    Err(AppError::internal(anyhow::anyhow!(
        "the start's rate-limit rows kept changing"
    )))
}

/// How often a start decides its admission again when its rate-limit rows keep changing
/// under it (each time another start of the same user was stored first).
const MAX_ADMISSION_TRIES: usize = 16;

/// §5.9: a fresh challenge and the origin the sign-in page must be at: that of the configured
/// public URL, never one taken from the request (a relaying proxy chooses those headers).
async fn browser_binding(state: &AppState) -> Result<BrowserBinding, AppError> {
    let url = store::get_setting(&state.pool, store::PUBLIC_URL_SETTING)
        .await?
        .ok_or(AppError::PublicUrlRequired)?;
    let origin = web_origin(&url).ok_or(AppError::PublicUrlRequired)?;
    Ok(BrowserBinding {
        challenge: b64(&random_bytes::<BROWSER_CHALLENGE_BYTES>()?),
        origin,
    })
}

/// What one sign-in (or new-device notice) sends: one request per account in `accounts`,
/// sharing everything but the id, the nonce and the account the signed details name.
struct Outgoing<'a> {
    upn: &'a str,
    client_id: &'a str,
    kind: RequestKind,
    /// Each account with its push channel when the caller read it (else the push reads it).
    accounts: Vec<(AccountId, Option<devices::PushChannel>)>,
    app_name: Option<String>,
    location: Option<String>,
    device_name: Option<String>,
    /// The device a `new_device` request asks about.
    subject: Option<&'a str>,
    /// Who started it, for the audit log: the user on the pages (their own or an OpenID
    /// Connect authorization's), the application through the API or CIBA, the server for a
    /// new-device notice.
    started_by: audit::Actor,
    number: &'a str,
    number_matching: bool,
    number_length: u8,
    /// §5.9: the page and origin the approval must come from (phishing-resistant policy).
    browser: Option<BrowserBinding>,
    created_at: UnixMillis,
    expires_at: UnixMillis,
    replaces: Option<&'a str>,
    /// The rate-limit rows the start was admitted from, stored with its requests.
    limits: Vec<LimitWrite>,
}

/// Signs, stores (one transaction) and pushes the requests of `o`; audited per device.
/// Returns the id of the first request (the sign-in's id); `None` when nothing was stored and
/// sent because a rate-limit row in `o.limits` changed since it was read.
async fn send_requests(state: &AppState, o: &Outgoing<'_>) -> Result<Option<RequestId>, AppError> {
    let created_at = o.created_at;
    struct Prepared {
        id: RequestId,
        account_id: AccountId,
        signed: SignedRequestDetails,
        nonce: String,
    }
    let mut prepared = Vec::with_capacity(o.accounts.len());
    for (account_id, _) in &o.accounts {
        let id = RequestId::try_random().map_err(AppError::internal)?;
        let nonce = b64(&random_bytes::<32>()?);
        let details = RequestDetails {
            v: PROTOCOL_VERSION,
            request_id: id.clone(),
            account_id: account_id.clone(),
            kind: o.kind,
            upn: o.upn.to_owned(),
            server_name: state.settings.server_name.clone(),
            app_name: o.app_name.clone(),
            location: o.location.clone(),
            device_name: o.device_name.clone(),
            number_matching: o.number_matching,
            number_length: o.number_length,
            browser: o.browser.clone(),
            nonce: nonce.clone(),
            created_at,
            expires_at: o.expires_at,
        };
        prepared.push(Prepared {
            signed: SignedRequestDetails::try_sign(&details, &state.signer)
                .map_err(AppError::internal)?,
            id,
            account_id: account_id.clone(),
            nonce,
        });
    }
    let signin_id = prepared
        .first()
        .map(|p| p.id.clone())
        .ok_or(AppError::NotPasswordlessCapable)?;
    let requests: Vec<NewRequest> = prepared
        .iter()
        .map(|p| NewRequest {
            id: p.id.clone(),
            account_id: p.account_id.clone(),
            details: p.signed.details.clone(),
            signature: p.signed.signature.clone(),
            nonce: p.nonce.clone(),
        })
        .collect();
    // The requests and their `sign_in_started` entries commit together, before any push; so
    // do the long-poll's `queued` entries of the accounts whose push channel the caller read
    // (their push tasks then do not write them).
    let envelopes: Vec<PushEnvelope> = prepared
        .iter()
        .map(|p| PushEnvelope::new(p.account_id.clone(), p.id.clone()))
        .collect();
    let mut audit: Vec<_> = prepared
        .iter()
        .map(|p| {
            audit::owned(
                Event::SignInStarted,
                audit::Entry {
                    upn: Some(o.upn),
                    account_id: Some(p.account_id.as_str()),
                    request_id: Some(p.id.as_str()),
                    outcome: "pending",
                    actor: Some(o.started_by.clone()),
                },
            )
        })
        .collect();
    for (envelope, (_, channel)) in envelopes.iter().zip(&o.accounts) {
        if let Some(channel) = channel {
            audit.push(crate::delivery::push::queued_entry(&channel.upn, envelope));
        }
    }
    let stored = requests::store_sign_in(
        &state.writer,
        InsertSignIn {
            signin_id: signin_id.as_str().to_owned(),
            client_id: o.client_id.to_owned(),
            upn: o.upn.to_owned(),
            kind: o.kind,
            number: o.number.to_owned(),
            number_matching: o.number_matching,
            created_at: to_db_ms(created_at),
            expires_at: to_db_ms(o.expires_at),
            replaces: o.replaces.map(str::to_owned),
            subject: o.subject.map(str::to_owned),
            requests,
            audit,
            limits: o.limits.clone(),
        },
    )
    .await?;
    let superseded = match stored {
        StartStored::Stored { superseded } => superseded,
        StartStored::LimitChanged => return Ok(None),
    };
    if let Some(old) = &superseded {
        state.request_waiters.wake(old);
    }
    for (envelope, (_, channel)) in envelopes.iter().zip(&o.accounts) {
        match channel {
            Some(channel) => state.dispatcher.deliver_to(envelope, channel.clone()),
            None => state.dispatcher.deliver(envelope),
        }
    }
    // DEBUG: the request's HTTP line is the one INFO line (the audit log keeps the event).
    tracing::debug!(
        signin_id = %signin_id,
        devices = prepared.len(),
        client_id = %o.client_id,
        kind = requests::kind_str(o.kind),
        "requests sent"
    );
    Ok(Some(signin_id))
}

/// How long the user's other devices have to answer "was this you?" about a new device.
pub const NEW_DEVICE_TTL_SECS: u64 = 600;

/// A device was just enrolled for `upn`: asks each of the user's other active devices "was
/// this you?" (a `new_device` request naming it; PROTOCOL.md §5.8). Nothing to do for a first
/// device. Not rate limited (an enrollment code is single use) and not number-matched.
pub async fn notify_new_device(
    state: &AppState,
    upn: &str,
    new_account: &AccountId,
    device_name: &str,
) -> Result<(), AppError> {
    let accounts = devices::other_active_devices(&state.pool, upn, new_account.as_str())
        .await?
        .iter()
        .map(|a| AccountId::parse(a).map(|id| (id, None)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::internal(anyhow::anyhow!("stored account id: {e}")))?;
    if accounts.is_empty() {
        return Ok(());
    }
    let now = UnixMillis::now();
    send_requests(
        state,
        &Outgoing {
            upn,
            client_id: crate::accounts::applications::PORTAL_CLIENT_ID,
            started_by: audit::Actor::System,
            kind: RequestKind::NewDevice,
            accounts,
            app_name: None,
            location: None,
            device_name: Some(device_name.to_owned()),
            subject: Some(new_account.as_str()),
            number: "",
            number_matching: false,
            number_length: authenticator_protocol::number::DEFAULT_NUMBER_DIGITS,
            browser: None,
            created_at: now,
            expires_at: now.plus_secs(NEW_DEVICE_TTL_SECS),
            replaces: None,
            // Not rate limited: nothing to store but the requests, so always stored.
            limits: Vec::new(),
        },
    )
    .await?;
    Ok(())
}

/// One device's request `id` with its status settled (see [`settle`]).
pub async fn current_request(
    state: &AppState,
    id: &str,
) -> Result<Option<StoredRequest>, AppError> {
    let Some(req) = requests::load_request(&state.pool, id).await? else {
        return Ok(None);
    };
    Ok(Some(settled(state, req).await?))
}

/// `req` with its status settled: pending past its expiry is stored and reported as expired.
async fn settled(state: &AppState, mut req: StoredRequest) -> Result<StoredRequest, AppError> {
    if req.status == Status::Pending && req.is_expired_at(UnixMillis::now()) {
        settle(state, &req.signin_id).await?;
        req.status = Status::Expired;
    }
    Ok(req)
}

/// This is the one place expiry is decided: the sign-in's pending requests past their expiry
/// are stored as expired, and whoever waits on the sign-in is woken.
async fn settle(state: &AppState, signin_id: &str) -> Result<(), AppError> {
    if requests::expire_if_due(&state.pool, signin_id, now_ms()).await? {
        state.request_waiters.wake(signin_id);
    }
    Ok(())
}

/// The sign-in `signin_id` as its page sees it: the request that was answered (or the first
/// one), with the sign-in's status — the answer of whichever device answered, `failed` once
/// the wrong numbers across its devices reach the limit, `pending` while any device may
/// still answer, `expired` otherwise.
pub async fn current(state: &AppState, signin_id: &str) -> Result<Option<StoredRequest>, AppError> {
    let mut rows = requests::load_sign_in(&state.pool, signin_id).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let now = UnixMillis::now();
    if rows
        .iter()
        .any(|r| r.status == Status::Pending && r.is_expired_at(now))
    {
        settle(state, signin_id).await?;
        for r in rows.iter_mut() {
            if r.status == Status::Pending && r.is_expired_at(now) {
                r.status = Status::Expired;
            }
        }
    }
    let decided = rows.iter().position(|r| {
        matches!(
            r.status,
            Status::Approved | Status::Denied | Status::Reported | Status::Failed
        )
    });
    let status = match decided {
        Some(i) => rows[i].status,
        None if rows.iter().any(|r| r.status == Status::Pending) => Status::Pending,
        None => Status::Expired,
    };
    let mut shown = rows.swap_remove(decided.unwrap_or(0));
    shown.status = status;
    Ok(Some(shown))
}

/// Waits up to `wait` (and at the latest until the request expires) for request `id` to leave
/// `pending`; returns it as it then is. `unknown_request` if there is no such request.
pub async fn wait(state: &AppState, id: &str, wait: Duration) -> Result<StoredRequest, AppError> {
    wait_while(state, id, wait, |r| r.status == Status::Pending).await
}

/// [`wait`] that also returns when the sign-in's count of wrong numbers is past `wrong_seen`:
/// the sign-in page says each wrong try as it happens.
pub async fn wait_for_news(
    state: &AppState,
    id: &str,
    wait: Duration,
    wrong_seen: u32,
) -> Result<StoredRequest, AppError> {
    wait_while(state, id, wait, |r| {
        r.status == Status::Pending && r.wrong_attempts <= wrong_seen
    })
    .await
}

async fn wait_while(
    state: &AppState,
    id: &str,
    wait: Duration,
    unchanged: impl Fn(&StoredRequest) -> bool,
) -> Result<StoredRequest, AppError> {
    let req = current(state, id).await?.ok_or(AppError::UnknownRequest)?;
    if !unchanged(&req) || wait.is_zero() {
        return Ok(req);
    }
    // Wake up at the latest when the request expires, to report it promptly.
    let until_expiry = u64::try_from(to_db_ms(req.expires_at).saturating_sub(now_ms()))
        .unwrap_or(0)
        .saturating_add(50);
    let wait = wait.min(Duration::from_millis(until_expiry));
    let _parked = state.parking.sign_in(id)?;
    let decided: Option<StoredRequest> = state
        .request_waiters
        .wait_for(id, wait, &state.shutdown, || async {
            let r = current(state, id).await?.ok_or(AppError::UnknownRequest)?;
            Ok((!unchanged(&r)).then_some(Some(r)))
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
    // The device's row is read with them: a removed device is refused here, whatever key
    // copy proved it (`store::cache`).
    let ids = requests::pending_ids_for_account(&state.pool, account_id, now_ms())
        .await?
        .ok_or(AppError::UnknownAccount)?;
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
    if wait.is_zero() {
        return pending_for(state, account_id).await;
    }
    let _parked = state.parking.device(account_id.as_str())?;
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
    match current_request(state, id).await? {
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

/// §5.5: the signed details of a pending request, for the phone of its account. A request
/// exists only while its device does; when there is none, `unknown_account` if the device is
/// gone (removed: whatever key copy proved it, `store::cache`), `unknown_request` otherwise.
pub async fn details_for(
    state: &AppState,
    id: &str,
    account_id: &AccountId,
) -> Result<SignedRequestDetails, AppError> {
    let req = match owned(state, id, account_id).await {
        Err(AppError::UnknownRequest)
            if devices::owner_of(&state.pool, account_id.as_str())
                .await?
                .is_none() =>
        {
            return Err(AppError::UnknownAccount)
        }
        other => other?,
    };
    check_pending(&req)?;
    Ok(SignedRequestDetails {
        details: req.details,
        signature: req.signature,
    })
}

/// §5.6: checks the phone's signed answer in the protocol's order and stores the decision (or
/// counts the wrong number). Returns the new status.
pub async fn answer(state: &AppState, id: &str, body: &ResponseBody) -> Result<Status, AppError> {
    // 1. exists and belongs to the account (so its device exists: they are removed
    // together), read with the device's phone sign-in key as it is now.
    let (req, passwordless) = match requests::load_request_and_key(&state.pool, id).await? {
        Some((req, key)) if req.account_id == body.account_id => (settled(state, req).await?, key),
        _ => return Err(AppError::UnknownRequest),
    };
    // The device key never changes for an account: the cache's copy will do.
    let device = state
        .cache
        .device_key(&state.pool, &body.account_id)
        .await?
        .ok_or(AppError::UnknownRequest)?;
    let keys = devices::DeviceKeys {
        device,
        passwordless: passwordless
            .map(|k| authenticator_protocol::PublicKey::from_b64("passwordless_public_key", &k))
            .transpose()
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored passwordless key: {e}")))?,
    };
    // 2. not expired, still pending.
    check_pending(&req)?;
    // 3. signature under the §6.3 key; 4. nonce and context binding.
    let response = verify::verify_response(&req, &keys, body)?;
    // 4. fresh and newer than any earlier response.
    verify::check_response_time(response.timestamp, UnixMillis::now(), req.last_response_ts)?;
    // The device proved its key for this request: its "last used" (a wrong number too),
    // written with the answer at most once a minute per device.
    let now = now_ms();
    let used = state
        .cache
        .used_due(req.account_id.as_str(), now, USED_RESOLUTION_MS)
        .then(|| requests::Used {
            account_id: req.account_id.as_str().to_owned(),
            at: now,
        });
    let ts = to_db_ms(response.timestamp);
    let entry = |outcome| audit::Entry {
        upn: Some(&req.upn),
        account_id: Some(req.account_id.as_str()),
        request_id: Some(req.id.as_str()),
        outcome,
        actor: None,
    };

    // 4a. browser binding (§5.9): only the Authenticator that saw the real page approves.
    match verify::check_browser_binding(&req, &response)? {
        verify::BrowserCheck::Ok => {}
        verify::BrowserCheck::NotSeen => {
            audit::record(
                &state.pool,
                Event::SignInDecision,
                entry("browser_not_seen"),
            )
            .await?;
            return Err(AppError::BrowserNotBound);
        }
        verify::BrowserCheck::OtherOrigin => {
            // The user approved a relayed page: whoever holds this sign-in is not the user's
            // browser. End it, so the relay can try nothing more with it.
            let decided = state
                .writer
                .run(decision(
                    &req,
                    Status::Failed,
                    ts,
                    used,
                    vec![audit::owned(
                        Event::SignInFailed,
                        entry("browser_other_origin"),
                    )],
                ))
                .await?;
            if !decided {
                return Err(lost_race(state, &req).await?);
            }
            state.request_waiters.wake(&req.signin_id);
            tracing::warn!(request_id = %req.id, "approval for a relayed sign-in page refused");
            return Err(AppError::BrowserNotBound);
        }
    }

    // 5. number matching.
    if !verify::number_matches(&req, &response) {
        let wrong = audit::owned(Event::WrongNumber, entry("wrong_number"));
        let failed = audit::owned(Event::SignInFailed, entry("failed"));
        let counted = state
            .writer
            .run(requests::WrongNumber {
                id: req.id.as_str().to_owned(),
                signin_id: req.signin_id.clone(),
                upn: req.upn.clone(),
                response_ts: ts,
                max: MAX_WRONG_NUMBERS,
                now,
                used,
                wrong,
                failed,
            })
            .await?;
        let Some((attempts, status)) = counted else {
            return Err(lost_race(state, &req).await?);
        };
        tracing::info!(request_id = %req.id, "wrong number");
        if status == Status::Failed {
            state.request_waiters.wake(&req.signin_id);
            return Err(AppError::RequestFailed);
        }
        // The sign-in page counts the wrong tries as they come (`wait_for_news`).
        state.request_waiters.wake(&req.signin_id);
        return Err(AppError::WrongNumber {
            attempts_left: MAX_WRONG_NUMBERS.saturating_sub(attempts),
        });
    }

    let new_status = match response.decision {
        Decision::Approve => Status::Approved,
        Decision::Deny => Status::Denied,
        Decision::Report => Status::Reported,
    };
    let decided = state
        .writer
        .run(decision(
            &req,
            new_status,
            ts,
            used,
            vec![audit::owned(
                Event::SignInDecision,
                entry(new_status.as_str()),
            )],
        ))
        .await?;
    if !decided {
        return Err(lost_race(state, &req).await?);
    }
    state.request_waiters.wake(&req.signin_id);
    if req.kind == RequestKind::NewDevice {
        new_device_answered(state, &req, new_status).await?;
    }
    if new_status == Status::Reported {
        // "This wasn't me": the user's other pending sign-ins are as suspect; end them all.
        for ended in requests::expire_pending_of_user(&state.pool, &req.upn, now_ms()).await? {
            state.request_waiters.wake(&ended);
        }
        risk::record_report(
            &state.pool,
            &state.risk,
            &req.upn,
            req.account_id.as_str(),
            req.id.as_str(),
        )
        .await?;
    }
    // DEBUG: the HTTP line is the request's one INFO line; the audit log keeps the answer.
    tracing::debug!(request_id = %req.id, decision = response.decision.as_str(), "sign-in answered");
    Ok(new_status)
}

/// How often a device's "last used" is written: a minute is as precise as the pages show it.
const USED_RESOLUTION_MS: i64 = 60 * 1000;

/// The unit that stores a decision on `req` with its audit entries (see [`requests::Decide`]).
fn decision(
    req: &StoredRequest,
    status: Status,
    response_ts: i64,
    used: Option<requests::Used>,
    audit: Vec<crate::store::audit::OwnedAuditRow>,
) -> requests::Decide {
    requests::Decide {
        id: req.id.as_str().to_owned(),
        signin_id: req.signin_id.clone(),
        upn: req.upn.clone(),
        status,
        response_ts,
        now: now_ms(),
        used,
        audit,
    }
}

/// A `new_device` request was answered: approval activates the device it names (if it waits
/// for one), deny and report remove it.
async fn new_device_answered(
    state: &AppState,
    req: &StoredRequest,
    status: Status,
) -> Result<(), AppError> {
    let Some(subject) = req.subject_account_id.as_deref() else {
        return Ok(());
    };
    match status {
        Status::Approved => {
            let activated = devices::approve(&state.pool, subject).await?;
            if activated {
                audit::record(
                    &state.pool,
                    Event::DeviceApproved,
                    audit::Entry {
                        upn: Some(&req.upn),
                        account_id: Some(subject),
                        request_id: Some(req.id.as_str()),
                        outcome: "ok",
                        actor: None,
                    },
                )
                .await?;
            }
        }
        Status::Denied | Status::Reported => {
            // Already removed (by the user, an admin, another device): nothing more to do.
            let still_there = devices::owner_of(&state.pool, subject).await?.is_some();
            if still_there {
                crate::accounts::devices::remove_as(
                    &state.pool,
                    subject,
                    crate::accounts::devices::Remover::OtherDevice,
                )
                .await
                .map_err(AppError::Internal)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The conditional update changed nothing: someone else answered, the request expired, or
/// a response with a later timestamp came first.
async fn lost_race(state: &AppState, before: &StoredRequest) -> Result<AppError, AppError> {
    let now = current_request(state, before.id.as_str())
        .await?
        .ok_or(AppError::UnknownRequest)?;
    Ok(match check_pending(&now) {
        Err(e) => e,
        Ok(()) => AppError::Replay,
    })
}

/// After a correct password, when no push could be started (`policy_disabled` or no phone):
/// whether the password alone signs the user in (see `Policy::allows_password_alone_for`).
pub async fn password_alone_allowed(state: &AppState, upn: &str) -> Result<bool, AppError> {
    let policy = policy::load(&state.pool)
        .await
        .map_err(AppError::Internal)?;
    let groups = users::groups_of(&state.pool, upn).await?;
    let phone_sign_in = devices::has_phone_sign_in(&state.pool, upn).await?;
    Ok(policy.allows_password_alone_for(&groups, phone_sign_in))
}
