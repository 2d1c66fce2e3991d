//! Append-only audit log. Entries name events, users, ids and outcomes; never numbers, codes,
//! keys, signatures or nonces.
use std::fmt;

use authenticator_protocol::text;

use crate::store::audit::NewAuditRow;
use crate::store::{self, now_ms, Pool, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    PolicyChanged,
    UserAdded,
    RegistrationLinkIssued,
    Enrolled,
    PasswordlessEnabled,
    SignInStarted,
    SignInDecision,
    WrongNumber,
    SignInFailed,
    PasswordSet,
    GroupMemberAdded,
    WebSignIn,
    WebSignOut,
    PushDelivery,
    PushTokenStale,
    RateLimited,
    SignInPaused,
    UserPaused,
    UserResumed,
    ApplicationAdded,
    ApplicationRemoved,
    DeviceRemoved,
    /// Another of the user's devices approved a device that awaited approval.
    DeviceApproved,
    TemporaryPassIssued,
    TemporaryPassUsed,
    /// A fallback sign-in try (TOTP or backup code); the outcome names the method and result.
    FallbackUsed,
    BackupCodesCreated,
    FallbackUnlocked,
    /// [`crate::trust::authenticate`] refused a credential (held or removed device, disabled
    /// or paused user); the outcome names why and the method.
    AccessRefused,
    /// Sessions and tokens ended (pause, disable, sign out everywhere); the outcome says why
    /// and how many.
    SessionsEnded,
    UserDisabled,
    UserEnabled,
    /// A user's UPN changed (`admin user rename`, or to lower case at start); the entry is
    /// under the new UPN, the outcome names the old.
    UserRenamed,
    /// The backup codes a reported device's session created were deleted.
    BackupCodesRevoked,
    /// A phone was added held (from a single-factor session); the outcome says until when.
    DeviceHeld,
    /// OpenID Connect tokens of one grant were revoked: a spent refresh token presented again
    /// (its whole family), or a client's revocation request (RFC 7009). The outcome says which
    /// and how many.
    TokensRevoked,
    /// A user's attributes were set (`admin user set`); the outcome names the fields, never
    /// their values.
    UserAttributesSet,
    /// A device replaced its push channel (PROTOCOL.md §5.10); the outcome is the new kind.
    PushRegistrationUpdated,
    /// A device vouched for moving its account to a new phone (PROTOCOL.md §5.11): a move
    /// code was issued; the outcome says whether TOTP accounts were left with it.
    MoveVouched,
    /// A new phone enrolled with a move code: active at once; the outcome names the device
    /// that vouched.
    Moved,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::PolicyChanged => "policy_changed",
            Event::UserAdded => "user_added",
            Event::RegistrationLinkIssued => "registration_link_issued",
            Event::Enrolled => "enrolled",
            Event::PasswordlessEnabled => "passwordless_enabled",
            Event::SignInStarted => "signin_started",
            Event::SignInDecision => "signin_decision",
            Event::WrongNumber => "wrong_number",
            Event::SignInFailed => "signin_failed",
            Event::PasswordSet => "password_set",
            Event::GroupMemberAdded => "group_member_added",
            Event::WebSignIn => "web_signin",
            Event::WebSignOut => "web_signout",
            Event::PushDelivery => "push_delivery",
            Event::PushTokenStale => "push_token_stale",
            Event::RateLimited => "rate_limited",
            Event::SignInPaused => "signin_paused",
            Event::UserPaused => "user_paused",
            Event::UserResumed => "user_resumed",
            Event::ApplicationAdded => "application_added",
            Event::ApplicationRemoved => "application_removed",
            Event::DeviceRemoved => "device_removed",
            Event::DeviceApproved => "device_approved",
            Event::TemporaryPassIssued => "temporary_pass_issued",
            Event::TemporaryPassUsed => "temporary_pass_used",
            Event::FallbackUsed => "fallback_used",
            Event::BackupCodesCreated => "backup_codes_created",
            Event::FallbackUnlocked => "fallback_unlocked",
            Event::AccessRefused => "access_refused",
            Event::SessionsEnded => "sessions_ended",
            Event::UserDisabled => "user_disabled",
            Event::UserEnabled => "user_enabled",
            Event::DeviceHeld => "device_held",
            Event::UserRenamed => "user_renamed",
            Event::BackupCodesRevoked => "backup_codes_revoked",
            Event::TokensRevoked => "tokens_revoked",
            Event::UserAttributesSet => "user_attributes_set",
            Event::PushRegistrationUpdated => "push_registration_updated",
            Event::MoveVouched => "move_vouched",
            Event::Moved => "moved",
        }
    }
}

/// One audit entry to write.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub upn: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub outcome: &'a str,
}

/// Appends one entry.
pub async fn record(pool: &Pool, event: Event, e: Entry<'_>) -> StoreResult<()> {
    store::audit::append(
        pool,
        NewAuditRow {
            at: now_ms(),
            event: event.as_str(),
            upn: e.upn,
            account_id: e.account_id,
            request_id: e.request_id,
            outcome: e.outcome,
        },
    )
    .await
}

/// One stored entry; `Display` is the line `admin audit` prints.
pub use crate::store::audit::AuditRow as Row;

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Users' names and outcomes can hold text someone else chose: escaped for terminals.
        let at = crate::format::rfc3339(self.at);
        write!(f, "{} {at} {}", self.seq, self.event)?;
        if let Some(u) = &self.upn {
            write!(f, " upn={}", text::escape(u))?;
        }
        if let Some(a) = &self.account_id {
            write!(f, " account={a}")?;
        }
        if let Some(r) = &self.request_id {
            write!(f, " request={r}")?;
        }
        write!(f, " outcome={}", text::escape(&self.outcome))?;
        if self.repeats > 0 {
            write!(
                f,
                " repeats={} last={}",
                self.repeats,
                crate::format::rfc3339(self.last_at.unwrap_or(self.at))
            )?;
        }
        Ok(())
    }
}

/// Every entry, oldest first.
pub async fn list(pool: &Pool) -> StoreResult<Vec<Row>> {
    store::audit::all(pool).await
}

/// The entries `filter` selects, newest first.
pub async fn query(pool: &Pool, filter: &store::audit::AuditFilter) -> StoreResult<Vec<Row>> {
    store::audit::query(pool, filter).await
}
