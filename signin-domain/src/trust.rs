//! The one trust model: every way into an account asks [`authenticate`] "may this credential
//! act for this user now?", every account change asks [`may`] "may a session made this way
//! make it?", and every session records the [`Method`] and device that made it, so that ending
//! the credential (a device removed or reported) or the user's standing (paused, disabled,
//! signed out everywhere) ends what they made ([`end_sessions`]).
//!
//! SECURITY.md ("Methods, strengths and what a session may do") is this module as a table.
use std::fmt;

use crate::audit::{self, Event};
use crate::error::AppError;
use crate::store::oidc::{self as tokens_db, NewTokens, Stored};
use crate::store::trust::{self as db, Ended, EndedSession, Made, Standing};
use crate::store::{now_ms, Pool};

/// How a user proved who they are. The names are what sessions store and the audit log says
/// (`web_sign_in` outcomes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// The phone approved a phone sign-in (number typed, user verified on the phone).
    PhoneSignIn,
    /// The same, bound to the browser that showed the page (PROTOCOL.md §5.9).
    PhoneSignInBound,
    /// A password, then the phone approved (push as second factor).
    PasswordAndPush,
    PasswordAndPushBound,
    /// A password alone (the Authenticator is not in use for this user).
    Password,
    /// An admin-issued temporary access pass.
    TemporaryPass,
    /// The TOTP code one of the user's devices shows (offline fallback).
    Totp,
    /// One of the user's backup codes (offline fallback).
    BackupCode,
}

/// What a method is worth. Ordered: a stronger method may do all a weaker one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strength {
    /// One thing the user knows or can read off a screen, which a relaying site can ask for
    /// (a password, a TOTP code, a backup code).
    SingleFactor,
    /// A pass an administrator issued after checking who the user is.
    Vouched,
    /// A key on the user's phone, released after the phone's own user verification.
    MultiFactor,
    /// The same, and the approval is bound to the browser that showed the page.
    PhishingResistant,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::PhoneSignIn,
        Method::PhoneSignInBound,
        Method::PasswordAndPush,
        Method::PasswordAndPushBound,
        Method::Password,
        Method::TemporaryPass,
        Method::Totp,
        Method::BackupCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::PhoneSignIn => "phone_sign_in",
            Method::PhoneSignInBound => "phone_sign_in_bound",
            Method::PasswordAndPush => "password_and_push",
            Method::PasswordAndPushBound => "password_and_push_bound",
            Method::Password => "password",
            Method::TemporaryPass => "temporary_pass",
            Method::Totp => "totp",
            Method::BackupCode => "backup_code",
        }
    }

    pub fn parse(text: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == text)
    }

    pub fn strength(self) -> Strength {
        match self {
            Method::PhoneSignInBound | Method::PasswordAndPushBound => Strength::PhishingResistant,
            Method::PhoneSignIn | Method::PasswordAndPush => Strength::MultiFactor,
            Method::TemporaryPass => Strength::Vouched,
            Method::Password | Method::Totp | Method::BackupCode => Strength::SingleFactor,
        }
    }

    /// `amr` values (RFC 8176). The phone's approval is a signature by a key on the phone
    /// released after the phone's own user verification: `swk` (the server has no attestation
    /// that the key is hardware-bound, so never `hwk`) plus `user`; `phr` (Okta's name, not
    /// RFC 8176's) when bound to the browser.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Method::PhoneSignIn => &["mfa", "swk", "user"],
            Method::PhoneSignInBound => &["mfa", "phr", "swk", "user"],
            Method::PasswordAndPush => &["mfa", "pwd", "swk", "user"],
            Method::PasswordAndPushBound => &["mfa", "phr", "pwd", "swk", "user"],
            Method::Password => &["pwd"],
            Method::TemporaryPass | Method::Totp | Method::BackupCode => &["otp"],
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user who may act now: the only way to start a signed-in session or issue tokens. Made
/// only by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    upn: String,
    method: Method,
    device: Option<String>,
}

impl Authenticated {
    pub fn upn(&self) -> &str {
        &self.upn
    }
    pub fn method(&self) -> Method {
        self.method
    }
    /// The device whose key or TOTP secret proved it, if a device did.
    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }
}

/// Why a credential may not act for a user now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no such user")]
    UnknownUser,
    #[error("the account is disabled")]
    Disabled,
    #[error("sign-ins are paused for this user after a report")]
    Paused { retry_after_secs: u64 },
    /// The device is enrolled but awaits approval: it has no power at all yet.
    #[error("the device awaits approval")]
    DeviceHeld,
    /// The device was removed, or belongs to someone else.
    #[error("the device is not one of this user's")]
    DeviceGone,
}

impl Refusal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::UnknownUser => "unknown_user",
            Refusal::Disabled => "disabled",
            Refusal::Paused { .. } => "paused",
            Refusal::DeviceHeld => "device_held",
            Refusal::DeviceGone => "device_gone",
        }
    }
}

/// The one decision for every way in: may `upn`, proven by `method` (and `device`, when a
/// device's key or TOTP secret proved it), act now? The caller has checked the proof itself
/// (signature, code, password, pass); this checks the standing it does not see: the user
/// exists and is not disabled or paused, and the device is the user's and not held.
/// Refusals are audited (`access_refused`).
pub async fn authenticate(
    pool: &Pool,
    upn: &str,
    method: Method,
    device: Option<&str>,
) -> Result<Result<Authenticated, Refusal>, AppError> {
    let now = now_ms();
    if device.is_some() {
        release_due_holds(pool, upn, now).await?;
    }
    let standing = db::standing(pool, upn, device).await?;
    if let Some(refusal) = refusal(standing.as_ref(), upn, device, now) {
        let outcome = format!("{} method={}", refusal.as_str(), method.as_str());
        audit::record(
            pool,
            Event::AccessRefused,
            audit::Entry {
                upn: Some(upn),
                account_id: device,
                outcome: &outcome,
                ..Default::default()
            },
        )
        .await?;
        tracing::info!(
            refusal = refusal.as_str(),
            method = method.as_str(),
            "access refused"
        );
        return Ok(Err(refusal));
    }
    Ok(Ok(Authenticated {
        upn: upn.to_owned(),
        method,
        device: device.map(str::to_owned),
    }))
}

/// The rule [`authenticate`] applies to a standing read from the database: why `upn` (proven
/// by `device`, when a device proved it) may not act at `now`, if it may not.
fn refusal(
    standing: Option<&Standing>,
    upn: &str,
    device: Option<&str>,
    now: i64,
) -> Option<Refusal> {
    match standing {
        None => Some(Refusal::UnknownUser),
        Some(s) if s.disabled => Some(Refusal::Disabled),
        Some(s) if s.paused_until > now => Some(Refusal::Paused {
            retry_after_secs: u64::try_from(s.paused_until - now)
                .unwrap_or(0)
                .div_ceil(1000)
                .max(1),
        }),
        Some(s) => match (device, &s.device) {
            (None, _) => None,
            (Some(_), None) => Some(Refusal::DeviceGone),
            (Some(_), Some(d)) if d.owner != upn => Some(Refusal::DeviceGone),
            (Some(_), Some(d)) if d.held => Some(Refusal::DeviceHeld),
            (Some(_), Some(_)) => None,
        },
    }
}

/// Writes OpenID Connect tokens for `who`, which [`authenticate`] let act: the access token,
/// and a refresh token (spending the one it replaces). The rule is applied again inside the
/// writing transaction, under the user's lock, to the standing read there. Ending sessions
/// ([`end_sessions`], a device's removal) takes the same lock, so tokens written concurrently
/// with an end are either written first and ended with the rest, or not written: a device
/// removed or a user paused or disabled meanwhile is [`Stored::Refused`], and a refresh whose
/// token was ended meanwhile (sign-out everywhere too) is [`Stored::Gone`].
pub async fn store_tokens(
    pool: &Pool,
    who: &Authenticated,
    tokens: NewTokens<'_>,
) -> Result<Stored, AppError> {
    let bound_to_who = |upn: &str, device: Option<&str>| upn == who.upn && device == who.device();
    if !bound_to_who(&tokens.access.upn, tokens.access.device.as_deref())
        || tokens
            .refresh
            .is_some_and(|r| !bound_to_who(&r.upn, r.device.as_deref()))
    {
        return Err(AppError::internal(anyhow::anyhow!(
            "tokens for another user or device than the one authenticated"
        )));
    }
    let now = tokens.now;
    let stored = tokens_db::store_tokens(pool, tokens, |standing| {
        refusal(standing, &who.upn, who.device(), now).is_none()
    })
    .await?;
    if stored == Stored::Refused {
        tracing::info!(method = who.method.as_str(), "tokens refused at the store");
    }
    Ok(stored)
}

/// A session's principal as stored: who and how (what [`may`] decides on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub upn: String,
    pub method: Method,
    pub device: Option<String>,
}

impl From<&Authenticated> for Principal {
    fn from(a: &Authenticated) -> Self {
        Principal {
            upn: a.upn.clone(),
            method: a.method,
            device: a.device.clone(),
        }
    }
}

/// A change to the user's own sign-in methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// Ask for a registration link (QR code) for a new phone.
    AddPhone,
    /// Remove one of the user's phones.
    RemovePhone,
    /// Create a new set of backup codes (the old ones stop working).
    CreateBackupCodes,
    /// Use the admin console: change the policy and other users' sign-in (issue temporary
    /// passes, set passwords, remove devices, ...). Only members of `admins` get that far; this
    /// decides which of their sessions may.
    Administer,
}

/// What [`may`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Allowed,
    /// Allowed, but a phone it adds is held until another of the user's devices or an admin
    /// approves it, or [`RECOVERY_WAIT_SECS`] pass (every other device was asked; audited).
    AllowedHeld,
    /// Refused: the session's method is too weak for this change.
    Refused,
}

/// How long a phone added from a single-factor session waits before it becomes active on its
/// own (when the user's other devices neither approve nor deny it first, and the policy does
/// not require approval).
pub const RECOVERY_WAIT_SECS: i64 = 24 * 3600;

/// The one rule for account changes. A single-factor session (a password, a TOTP code or a
/// backup code, which a relaying site can ask for) may add a phone only held, never under the
/// phishing-resistant policy, and may not remove phones or create backup codes: otherwise one
/// relayed or stolen code becomes the account (issue 19, chains 1, 2 and 4). Nor may it use
/// the admin console, which controls everyone's sign-in (issue 22, item 7): an administrator
/// signed in with a password alone may only add a phone, then sign in with it (or with a
/// temporary access pass another administrator issued).
pub fn may(method: Method, change: AccountChange, phishing_resistant_policy: bool) -> Permission {
    match (method.strength(), change) {
        (Strength::SingleFactor, AccountChange::Administer) => Permission::Refused,
        (Strength::SingleFactor, AccountChange::AddPhone) if phishing_resistant_policy => {
            Permission::Refused
        }
        (Strength::SingleFactor, AccountChange::AddPhone) => Permission::AllowedHeld,
        (Strength::SingleFactor, AccountChange::RemovePhone | AccountChange::CreateBackupCodes) => {
            Permission::Refused
        }
        (
            Strength::Vouched | Strength::MultiFactor | Strength::PhishingResistant,
            AccountChange::AddPhone
            | AccountChange::RemovePhone
            | AccountChange::CreateBackupCodes
            | AccountChange::Administer,
        ) => Permission::Allowed,
    }
}

/// Why sessions end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The user was paused after a report ("this wasn't me").
    Paused,
    /// An admin disabled the user.
    Disabled,
    /// "Sign out everywhere" (the user or an admin).
    SignOutEverywhere,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Paused => "user_paused",
            EndReason::Disabled => "user_disabled",
            EndReason::SignOutEverywhere => "sign_out_everywhere",
        }
    }
}

/// Ends every web session, authorization code, access token and refresh token of `upn` at
/// once (every server instance reads sessions and tokens from the database). Audited
/// (`sessions_ended`). A removed device's sessions and tokens end with it, in
/// `store::devices::remove`.
pub async fn end_sessions(pool: &Pool, upn: &str, why: EndReason) -> Result<Ended, AppError> {
    let ended = db::end_sessions(pool, Made::ForUser(upn)).await?;
    let outcome = format!(
        "{} web_sessions={} access_tokens={} codes={} refresh_tokens={}",
        why.as_str(),
        ended.web_sessions,
        ended.access_tokens,
        ended.codes,
        ended.refresh_tokens
    );
    audit::record(
        pool,
        Event::SessionsEnded,
        audit::Entry {
            upn: Some(upn),
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(ended)
}

/// How one browser's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOut {
    /// The user signed out on the server's pages.
    Pages,
    /// An application sent the browser to the end-session endpoint (RP-initiated logout).
    Application,
}

impl SignOut {
    fn as_str(self) -> &'static str {
        match self {
            SignOut::Pages => "pages",
            SignOut::Application => "rp_logout",
        }
    }
}

/// Ends one browser's session (by its id hash) and what it made: the session, its OpenID
/// Connect record, the unredeemed codes it issued and the access tokens they gave. Returns the
/// session's `sid` and the clients it issued codes to (to tell them, Back-Channel Logout).
/// Audited (`web_signout`) when the session was signed in (`upn`).
pub async fn end_session(
    pool: &Pool,
    id_hash: &str,
    upn: Option<&str>,
    how: SignOut,
) -> Result<EndedSession, AppError> {
    let ended = db::end_web_session(pool, id_hash).await?;
    if let Some(upn) = upn {
        let outcome = format!(
            "ok by={} access_tokens={} codes={} clients={}",
            how.as_str(),
            ended.ended.access_tokens,
            ended.ended.codes,
            ended.clients.len()
        );
        audit::record(
            pool,
            Event::WebSignOut,
            audit::Entry {
                upn: Some(upn),
                outcome: &outcome,
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(ended)
}

/// Disables (or enables) a user: a disabled user gets no sign-in by any method, and every
/// session and token they have ends. Whether the user exists. Audited.
pub async fn set_disabled(pool: &Pool, upn: &str, disabled: bool) -> Result<bool, AppError> {
    if !db::set_disabled(pool, upn, disabled).await? {
        return Ok(false);
    }
    audit::record(
        pool,
        if disabled {
            Event::UserDisabled
        } else {
            Event::UserEnabled
        },
        audit::Entry {
            upn: Some(upn),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    if disabled {
        end_sessions(pool, upn, EndReason::Disabled).await?;
    }
    Ok(true)
}

/// Activates the user's held devices whose waiting period has passed (audited
/// `device_approved by=waiting_period`). Called where a held device would first matter: a
/// sign-in start and [`authenticate`].
pub async fn release_due_holds(pool: &Pool, upn: &str, now: i64) -> Result<(), AppError> {
    for account_id in db::release_due_holds(pool, upn, now).await? {
        audit::record(
            pool,
            Event::DeviceApproved,
            audit::Entry {
                upn: Some(upn),
                account_id: Some(&account_id),
                outcome: "by=waiting_period",
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_name_that_parses_back_and_an_amr() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
            assert!(!m.amr().is_empty(), "{m}");
        }
        assert_eq!(Method::parse("phone"), None);
    }

    #[test]
    fn multi_factor_methods_and_only_they_say_mfa() {
        for m in Method::ALL {
            let mfa = m.amr().contains(&"mfa");
            assert_eq!(mfa, m.strength() >= Strength::MultiFactor, "{m}");
            assert_eq!(
                m.amr().contains(&"phr"),
                m.strength() == Strength::PhishingResistant,
                "{m}"
            );
        }
    }

    #[test]
    fn a_single_factor_session_adds_phones_only_held_and_never_under_phishing_resistance() {
        for m in [Method::Password, Method::Totp, Method::BackupCode] {
            assert_eq!(
                may(m, AccountChange::AddPhone, false),
                Permission::AllowedHeld
            );
            assert_eq!(may(m, AccountChange::AddPhone, true), Permission::Refused);
            assert_eq!(
                may(m, AccountChange::RemovePhone, false),
                Permission::Refused
            );
            assert_eq!(
                may(m, AccountChange::CreateBackupCodes, false),
                Permission::Refused
            );
        }
    }

    #[test]
    fn the_admin_console_needs_a_phone_or_a_temporary_pass_never_a_single_factor() {
        for m in Method::ALL {
            let expected = match m {
                Method::Password | Method::Totp | Method::BackupCode => Permission::Refused,
                Method::TemporaryPass
                | Method::PhoneSignIn
                | Method::PhoneSignInBound
                | Method::PasswordAndPush
                | Method::PasswordAndPushBound => Permission::Allowed,
            };
            for pr in [false, true] {
                assert_eq!(may(m, AccountChange::Administer, pr), expected, "{m}");
            }
        }
    }

    #[test]
    fn stronger_sessions_may_make_every_change() {
        for m in Method::ALL
            .into_iter()
            .filter(|m| m.strength() > Strength::SingleFactor)
        {
            for change in [
                AccountChange::AddPhone,
                AccountChange::RemovePhone,
                AccountChange::CreateBackupCodes,
                AccountChange::Administer,
            ] {
                for pr in [false, true] {
                    assert_eq!(may(m, change, pr), Permission::Allowed, "{m} {change:?}");
                }
            }
        }
    }
}
