//! "Other ways to sign in": the methods a user whose phone sign-in did not work (denied,
//! expired, failed, paused, or not at hand) may use instead — exactly those the user has and
//! the policy allows, as Entra's "I can't use my Authenticator app right now" lists them.
//!
//! Only for a user the sign-in pages already showed a number for (the user exists and has
//! phone sign-in): the password page, which an unknown user reaches too, keeps offering every
//! way to everyone, so it cannot tell names apart (SECURITY.md).
use crate::error::AppError;
use crate::rules::policy;
use crate::store::{self, devices, now_ms, passes, users, Pool};
use authenticator_protocol::sign_in::RequestKind;

use super::{backup_codes, fallback, passwords};

/// Which ways in this user has now, besides the request on the page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtherWays {
    /// A (new) request to a phone: phone sign-in is allowed and a device has it enabled.
    pub phone: bool,
    /// An unused, unexpired temporary access pass.
    pub temporary_pass: bool,
    /// The offline fallback: the policy allows it, the user has a TOTP secret or an unused
    /// backup code, and it is not locked after failures.
    pub code: bool,
    /// A password, and the policy lets it sign in (alone, or with a push to a phone).
    pub password: bool,
}

impl OtherWays {
    pub fn any(&self) -> bool {
        self.phone || self.temporary_pass || self.code || self.password
    }
}

/// The other ways in for `upn` (stored form), as the policy and the user's methods are now.
pub async fn other_ways(pool: &Pool, upn: &str) -> Result<OtherWays, AppError> {
    let policy = policy::load(pool).await.map_err(AppError::Internal)?;
    let groups = users::groups_of(pool, upn).await?;
    let phone_sign_in = !devices::accounts_for_sign_in(pool, upn, RequestKind::Passwordless)
        .await?
        .is_empty();
    let push_devices = !devices::accounts_for_sign_in(pool, upn, RequestKind::Push)
        .await?
        .is_empty();
    let has_password = passwords::has_password(pool, upn).await?;
    let code = fallback::enabled(pool).await?
        && (!store::fallback::totp_secrets_of(pool, upn)
            .await?
            .is_empty()
            || backup_codes::counts(pool, upn).await?.0 > 0)
        && store::fallback::consecutive_failures(pool, upn).await?
            < fallback::MAX_CONSECUTIVE_FAILURES;
    Ok(OtherWays {
        phone: phone_sign_in && policy.allows_passwordless_for(&groups),
        temporary_pass: passes::has_usable(pool, upn, now_ms()).await?,
        code,
        password: has_password
            && (policy.allows_password_alone_for(&groups, phone_sign_in)
                || (push_devices && policy.allows_push_for(&groups))),
    })
}
