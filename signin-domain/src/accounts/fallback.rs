//! The offline fallback sign-in: when the phone is lost, dead or offline, the user signs in
//! once on the sign-in page ("Use a verification code") with the TOTP code their phone shows
//! (`totp`) or one of their backup codes (`backup_codes`), for instance to register a new phone
//! and remove the old one. Behind a policy switch (`admin fallback set --enabled on`, off by
//! default).
//!
//! Tries are bounded per typed UPN (existing or not), before any code is checked: at most [`TRIES_PER_WINDOW`] per
//! [`WINDOW_SECS`], and after [`MAX_CONSECUTIVE_FAILURES`] failures in a row the fallback stays
//! locked until an admin unlocks it (`admin fallback unlock --upn U`); a success resets both.
//! Tries are also bounded per client address, with password attempts (the address bucket of
//! [`super::passwords::PasswordGuard`]): one address cannot spray made-up UPNs, each with its own
//! per-UPN budget. Every try, the switch, creating backup codes and unlocking are audited (never
//! a code); tries an address makes beyond its bound are one counted entry per address, not a row
//! each (an audit flood otherwise: ~8 M rows a day from one address).
use std::net::IpAddr;

use crate::audit::{self, Event};
use crate::error::AppError;
use crate::store::fallback::{self as db, TryRefused, FALLBACK_ENABLED_SETTING};
use crate::store::{self, now_ms, users, Pool};

use super::{backup_codes, totp};

pub const WINDOW_SECS: i64 = 15 * 60;
pub const TRIES_PER_WINDOW: i64 = 5;
/// With three TOTP steps accepted per try, a guesser's whole chance before the lock is
/// 10 × 3 / 10⁶ = 3 × 10⁻⁵ (backup codes: 10 × 10 / 2⁶⁰).
pub const MAX_CONSECUTIVE_FAILURES: i64 = 10;

/// Which fallback a code is, by its shape: six digits are a TOTP code, `abcd-efgh-jkmn` a
/// backup code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    BackupCode,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::BackupCode => "backup_code",
        }
    }

    fn of(code: &str) -> Option<Method> {
        let code = code.trim();
        if code.len() == totp::DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
            Some(Method::Totp)
        } else if backup_codes::looks_like_backup_code(code) {
            Some(Method::BackupCode)
        } else {
            None
        }
    }
}

/// What a fallback try did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The code is right (the caller asks `trust::authenticate`, then starts the session);
    /// `device` is the device whose TOTP secret matched.
    SignedIn {
        method: Method,
        device: Option<String>,
    },
    /// Not a valid code (wrong, used, expired, or not a code at all).
    Refused,
    /// A correct TOTP code of a step that was already used.
    Replayed,
    /// The window's tries are used up.
    Throttled { retry_after_secs: u64 },
    /// Locked after too many failures in a row (an admin unlocks).
    Locked,
    /// The policy does not allow the fallback.
    Disabled,
}

/// Whether the policy allows the offline fallback.
pub async fn enabled(pool: &Pool) -> Result<bool, AppError> {
    Ok(store::get_setting(pool, FALLBACK_ENABLED_SETTING)
        .await?
        .as_deref()
        == Some("on"))
}

/// Switches the offline fallback on or off (audited as a policy change).
pub async fn set_enabled(pool: &Pool, on: bool) -> anyhow::Result<()> {
    let value = if on { "on" } else { "off" };
    store::set_setting(pool, FALLBACK_ENABLED_SETTING, value).await?;
    let outcome = format!("offline_fallback={value}");
    audit::record(
        pool,
        Event::PolicyChanged,
        audit::Entry {
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

async fn audit_try(
    pool: &Pool,
    upn: Option<&str>,
    account_id: Option<&str>,
    outcome: &str,
) -> Result<(), AppError> {
    audit::record(
        pool,
        Event::FallbackUsed,
        audit::Entry {
            upn,
            account_id,
            outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// One fallback sign-in try of `upn` with `code` (a TOTP code or a backup code), from the
/// client address `ip` when known.
pub async fn sign_in_with_code(
    pool: &Pool,
    argon2: &super::passwords::PasswordGuard,
    upn: &str,
    code: &str,
    ip: Option<IpAddr>,
) -> Result<Outcome, AppError> {
    if !enabled(pool).await? {
        audit_try(pool, Some(upn), None, "disabled").await?;
        return Ok(Outcome::Disabled);
    }
    if let Some(ip) = ip {
        if let Err(wait) = argon2.admit_address(ip) {
            // No user in the entry: one row per address, its repeats counted (audit::record
            // collapses identical entries), whatever names the address sprays.
            let outcome = format!("throttled address={}", crate::rules::risk::address_tag(ip));
            audit_try(pool, None, None, &outcome).await?;
            return Ok(Outcome::Throttled {
                retry_after_secs: wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0),
            });
        }
    }
    // An unknown UPN goes the same way as a known one (its tries are counted and throttled
    // too, and no code matches it): the pages do not tell who exists.
    let now = now_ms();
    let taken = db::take_try(
        pool,
        upn,
        now,
        WINDOW_SECS * 1000,
        TRIES_PER_WINDOW,
        MAX_CONSECUTIVE_FAILURES,
    )
    .await?;
    match taken {
        Ok(()) => {}
        Err(TryRefused::Locked) => {
            audit_try(pool, Some(upn), None, "locked").await?;
            return Ok(Outcome::Locked);
        }
        Err(TryRefused::WindowFull { until }) => {
            let retry_after_secs = u64::try_from((until - now).max(1000))
                .unwrap_or(1000)
                .div_ceil(1000);
            let outcome = format!("throttled retry_after_secs={retry_after_secs}");
            audit_try(pool, Some(upn), None, &outcome).await?;
            return Ok(Outcome::Throttled { retry_after_secs });
        }
    }
    let Some(method) = Method::of(code) else {
        audit_try(pool, Some(upn), None, "refused").await?;
        return Ok(Outcome::Refused);
    };
    let (outcome, account_id) = match method {
        Method::Totp => {
            let now_secs = u64::try_from(now / 1000).map_err(AppError::internal)?;
            match totp::check(pool, upn, code.trim(), now_secs).await? {
                totp::TotpCheck::Accepted { account_id } => (
                    Outcome::SignedIn {
                        method,
                        device: Some(account_id.clone()),
                    },
                    Some(account_id),
                ),
                totp::TotpCheck::Replayed => (Outcome::Replayed, None),
                totp::TotpCheck::Wrong => (Outcome::Refused, None),
            }
        }
        Method::BackupCode => {
            if backup_codes::redeem(pool, argon2, upn, code, now).await? {
                (
                    Outcome::SignedIn {
                        method,
                        device: None,
                    },
                    None,
                )
            } else {
                (Outcome::Refused, None)
            }
        }
    };
    let text = match &outcome {
        Outcome::SignedIn { .. } => {
            db::give_back_try(pool, upn).await?;
            format!("{}:ok", method.as_str())
        }
        Outcome::Replayed => format!("{}:replay", method.as_str()),
        _ => format!("{}:refused", method.as_str()),
    };
    audit_try(pool, Some(upn), account_id.as_deref(), &text).await?;
    if let Outcome::SignedIn { .. } = outcome {
        tracing::info!(method = method.as_str(), "offline fallback sign-in");
    }
    Ok(outcome)
}

/// Creates a new set of backup codes for `upn` (audited) and returns them for display once.
/// `created_by_device` is the device whose session asked (`None`: no device made it): if
/// another of the user's devices reports that one, the codes go with it.
pub async fn create_backup_codes(
    pool: &Pool,
    upn: &str,
    created_by_device: Option<&str>,
) -> Result<Vec<zeroize::Zeroizing<String>>, AppError> {
    let codes = backup_codes::create(pool, upn, now_ms(), created_by_device).await?;
    // No count in the outcome (always `backup_codes::COUNT`): a bare two-digit number in the
    // audit log could be mistaken for a sign-in number (the log scan flagged it).
    audit::record(
        pool,
        Event::BackupCodesCreated,
        audit::Entry {
            upn: Some(upn),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    Ok(codes)
}

/// The line `admin user show` prints about the user's offline fallback: unused backup codes,
/// and failures in a row (locked past the bound).
pub async fn status_line(pool: &Pool, upn: &str) -> Result<String, AppError> {
    let (unused, total) = backup_codes::counts(pool, upn).await?;
    let failures = db::consecutive_failures(pool, upn).await?;
    let tries = if failures >= MAX_CONSECUTIVE_FAILURES {
        format!("locked after {failures} wrong codes in a row (admin fallback unlock --upn …)")
    } else {
        format!("{failures} wrong codes in a row")
    };
    Ok(format!(
        "offline fallback: backup codes {unused} of {total} unused, {tries}"
    ))
}

/// Ends a fallback lock (admin; audited). Whether there was anything to reset.
pub async fn unlock(pool: &Pool, upn: &str) -> anyhow::Result<bool> {
    let reset = db::reset_tries(pool, upn).await?;
    audit::record(
        pool,
        Event::FallbackUnlocked,
        audit::Entry {
            upn: Some(upn),
            outcome: if reset { "ok" } else { "nothing_to_reset" },
            ..Default::default()
        },
    )
    .await?;
    Ok(reset)
}

/// `signin-server admin fallback …`
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Allow or refuse the offline fallback (TOTP and backup codes) on the sign-in page.
    Set {
        /// `on` or `off`
        #[arg(long, value_parser = ["on", "off"])]
        enabled: String,
    },
    /// Print whether the offline fallback is allowed, and its limits.
    Show,
    /// End a user's fallback lock (after too many wrong codes in a row).
    Unlock {
        #[arg(long)]
        upn: String,
    },
}

/// Runs an `admin fallback` command.
pub async fn run_admin(pool: &Pool, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Set { enabled: on } => {
            set_enabled(pool, on == "on").await?;
            println!("offline-fallback: {on}");
        }
        AdminCommand::Show => {
            let on = enabled(pool).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("offline-fallback: {}", if on { "on" } else { "off" });
            println!(
                "tries: {TRIES_PER_WINDOW} per {WINDOW_SECS} s, locked after \
                 {MAX_CONSECUTIVE_FAILURES} failures in a row"
            );
        }
        AdminCommand::Unlock { upn } => {
            let upn = crate::upn::cli_arg("--upn", &upn)?;
            let upn = upn.as_str();
            if !users::exists(pool, upn).await? {
                anyhow::bail!("no user {upn}");
            }
            if unlock(pool, upn).await? {
                println!("fallback tries reset for {upn}");
            } else {
                println!("{upn} had no fallback tries to reset");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_shape_picks_the_method() {
        assert_eq!(Method::of("123456"), Some(Method::Totp));
        assert_eq!(Method::of(" 123456 "), Some(Method::Totp));
        assert_eq!(Method::of("abcd-efgh-jkmn"), Some(Method::BackupCode));
        for not in ["12345", "1234567", "١٢٣٤٥٦", "", "abc"] {
            assert_eq!(Method::of(not), None, "{not}");
        }
    }
}
