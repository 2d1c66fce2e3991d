//! How a failed command reports itself: `error: <message>` on stderr and, with `--json`, a JSON
//! object on stdout whose `error` is a stable code a script can match on (never the message).
use authenticator_core::AuthenticatorError;
use serde_json::{json, Value};

use crate::passcode::PasscodeError;

/// The desktop phone's own refusals (the core's are `AuthenticatorError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("no account {0:?} on this phone (see `authenticator accounts`)")]
    UnknownAccount(String),
    #[error("{0:?} is enrolled with several servers: use the account id")]
    AmbiguousAccount(String),
    #[error("request {0} is pending on several accounts: say which with --account")]
    AmbiguousRequest(String),
    #[error("no TOTP account {0:?} on this phone (see `authenticator totp list`)")]
    UnknownTotpAccount(String),
    #[error("{0:?} names several TOTP accounts: use the TOTP id")]
    AmbiguousTotpAccount(String),
}

impl CliError {
    fn code(&self) -> &'static str {
        match self {
            CliError::UnknownAccount(_) => "unknown_account",
            CliError::AmbiguousAccount(_) => "ambiguous_account",
            CliError::AmbiguousRequest(_) => "ambiguous_request",
            CliError::UnknownTotpAccount(_) => "unknown_totp_account",
            CliError::AmbiguousTotpAccount(_) => "ambiguous_totp_account",
        }
    }
}

/// The stable code of a core error: its variant's name in snake case.
pub fn core_code(e: &AuthenticatorError) -> &'static str {
    use AuthenticatorError as A;
    match e {
        A::InvalidEnrollmentUrl { .. } => "invalid_enrollment_url",
        A::InvalidPushPayload { .. } => "invalid_push_payload",
        A::InvalidInput { .. } => "invalid_input",
        A::InvalidNumber => "invalid_number",
        A::Network { .. } => "network",
        A::ServerRejected { .. } => "server_rejected",
        A::ServerKeyMismatch => "server_key_mismatch",
        A::BadServerSignature => "bad_server_signature",
        A::NotEnrolled => "not_enrolled",
        A::AlreadyEnrolled => "already_enrolled",
        A::PhoneSignInNotEnabled => "phone_sign_in_not_enabled",
        A::UnknownRequest => "unknown_request",
        A::RequestExpired => "request_expired",
        A::AlreadyAnswered => "already_answered",
        A::WrongNumber { .. } => "wrong_number",
        A::RequestFailed => "request_failed",
        A::UserCancelled => "user_cancelled",
        A::VerificationFailed => "verification_failed",
        A::VerificationUnavailable => "verification_unavailable",
        A::KeyStore { .. } => "key_store",
        A::Storage { .. } => "storage",
        A::InvalidTotpUri { .. } => "invalid_totp_uri",
        A::UnknownTotpAccount => "unknown_totp_account",
        A::BrowserNotSeen => "browser_not_seen",
        A::BrowserOriginMismatch { .. } => "browser_origin_mismatch",
        A::UnsafeServerText { .. } => "unsafe_server_text",
        A::SecretStoreUnavailable => "secret_store_unavailable",
        A::InvalidMoveLink { .. } => "invalid_move_link",
        A::MoveAlreadyUsed => "move_already_used",
        A::MoveExpired => "move_expired",
        A::MoveVoucherRemoved => "move_voucher_removed",
        A::WrongPassphrase => "wrong_passphrase",
        A::InvalidExportFile { .. } => "invalid_export_file",
        A::Closed => "closed",
        A::Internal { .. } => "internal",
    }
}

/// What the user reads: the core's text, said the desktop phone's way where it helps.
fn core_message(e: &AuthenticatorError) -> String {
    match e {
        AuthenticatorError::RequestExpired => {
            "this sign-in request expired: start the sign-in again on the sign-in screen".into()
        }
        AuthenticatorError::AlreadyAnswered => "this sign-in request was already answered".into(),
        AuthenticatorError::UnknownRequest => "unknown sign-in request: no account on this phone \
                                               has a request with this id (see `authenticator pending`)"
            .into(),
        other => other.to_string(),
    }
}

/// The error's stable code and message, and any fields a script needs.
pub fn describe(e: &anyhow::Error) -> Value {
    let (code, message) = if let Some(p) = e.downcast_ref::<PasscodeError>() {
        (p.code(), p.to_string())
    } else if let Some(c) = e.downcast_ref::<CliError>() {
        (c.code(), c.to_string())
    } else if let Some(a) = e.downcast_ref::<AuthenticatorError>() {
        // The core error is the root: keep the context around it ("cannot start …: …").
        let text = core_message(a);
        let message = match e.chain().count() {
            1 => text,
            _ => format!("{e}: {text}"),
        };
        (core_code(a), message)
    } else {
        ("failed", format!("{e:#}"))
    };
    let mut object = json!({ "error": code, "message": message });
    if let Some(AuthenticatorError::ServerRejected { status, code, .. }) =
        e.downcast_ref::<AuthenticatorError>()
    {
        object["status"] = json!(status);
        object["server_code"] = json!(code);
    }
    object
}

/// A command line clap refused (exit 2): `{"error": "usage", "message": …}`, the message being
/// clap's text before its usage line.
pub fn usage(clap_text: &str) -> Value {
    let message = clap_text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.trim_start_matches("error: ");
    json!({ "error": "usage", "message": message })
}

/// Prints a failed command's error: on stderr always; with `json`, also as an object on stdout.
pub fn report(e: &anyhow::Error, json: bool) {
    let described = describe(e);
    eprintln!(
        "error: {}",
        described["message"].as_str().unwrap_or("failed")
    );
    if json {
        println!("{described}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_own_stable_code() {
        let cases: Vec<(anyhow::Error, &str)> = vec![
            (PasscodeError::Wrong.into(), "wrong_passcode"),
            (PasscodeError::Missing.into(), "passcode_required"),
            (PasscodeError::NotSet.into(), "passcode_not_set"),
            (
                CliError::UnknownAccount("x".into()).into(),
                "unknown_account",
            ),
            (AuthenticatorError::RequestExpired.into(), "request_expired"),
            (AuthenticatorError::UnknownRequest.into(), "unknown_request"),
            (
                anyhow::Error::from(AuthenticatorError::Network {
                    reason: "down".into(),
                })
                .context("cannot enroll"),
                "network",
            ),
            (anyhow::anyhow!("something else"), "failed"),
        ];
        for (e, code) in cases {
            let d = describe(&e);
            assert_eq!(d["error"], code, "{e:#}");
            assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn an_expired_request_says_so_and_a_rejection_keeps_the_servers_code() {
        let d = describe(&AuthenticatorError::RequestExpired.into());
        assert!(
            d["message"]
                .as_str()
                .unwrap()
                .starts_with("this sign-in request expired"),
            "{d}"
        );
        let d = describe(
            &AuthenticatorError::ServerRejected {
                status: 429,
                code: "rate_limited".into(),
                detail: "slow down".into(),
            }
            .into(),
        );
        assert_eq!(d["error"], "server_rejected");
        assert_eq!(d["status"], 429);
        assert_eq!(d["server_code"], "rate_limited");
    }
}
