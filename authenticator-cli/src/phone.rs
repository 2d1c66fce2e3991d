//! The desktop phone's commands: thin wrappers over `authenticator_core::Authenticator`.
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use authenticator_core::{
    AccountSummary, Authenticator, AuthenticatorError, Decision, PendingRequest, RequestKind,
    SoftwareKeyStore, WrappingKeySource,
};
use serde_json::json;

use crate::failure::CliError;
use crate::passcode::PasscodeVerifier;
use crate::KeyProtection;

/// Exit code of `approve` when the number was wrong but the request can still be answered.
pub const EXIT_WRONG_NUMBER: u8 = 3;

pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn print(
        &self,
        human: impl FnOnce() -> String,
        machine: impl FnOnce() -> serde_json::Value,
    ) {
        if self.json {
            println!("{}", machine());
        } else {
            println!("{}", human());
        }
    }
}

pub struct Phone {
    pub core: Arc<Authenticator>,
    /// The key store's user verification: it knows what was wrong with a passcode.
    verifier: Arc<PasscodeVerifier>,
}

impl Phone {
    pub fn open(home: &Path, passcode: Option<String>, protection: KeyProtection) -> Result<Self> {
        std::fs::create_dir_all(home)
            .with_context(|| format!("cannot create {}", home.display()))?;
        let wrapping = match protection {
            KeyProtection::File => WrappingKeySource::File(home.join("wrapping.key")),
            KeyProtection::Keyring => WrappingKeySource::Keyring {
                service: format!("phonesignin:{}", home.display()),
            },
        };
        // The passcode is asked by the key store, for each signature that carries a prompt.
        let verifier = Arc::new(PasscodeVerifier::new(home, passcode));
        let keys = Arc::new(
            SoftwareKeyStore::open(home.join("keys"), wrapping, verifier.clone())
                .context("cannot open the key store")?,
        );
        // The same wrapping key seals the TOTP secrets (offline fallback) at rest.
        let core = Authenticator::with_secret_store(
            home.to_string_lossy().into_owned(),
            keys.clone(),
            keys,
        )
        .context("cannot open the authenticator")?;
        Ok(Phone { core, verifier })
    }

    /// A command's error, with what was wrong with the passcode when user verification failed
    /// (wrong, not given, not set yet…: the core only knows that it failed).
    pub fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        let verification = matches!(
            e.downcast_ref::<AuthenticatorError>(),
            Some(
                AuthenticatorError::VerificationFailed
                    | AuthenticatorError::VerificationUnavailable
                    | AuthenticatorError::UserCancelled
                    | AuthenticatorError::KeyStore { .. }
            )
        );
        match self.verifier.problem() {
            Some(problem) if verification => problem.into(),
            _ => e,
        }
    }

    /// An account by id, or by UPN when exactly one account has it.
    async fn resolve(&self, account: &str) -> Result<AccountSummary> {
        let all = self.core.accounts().await?;
        if let Some(a) = all.iter().find(|a| a.account_id == account) {
            return Ok(a.clone());
        }
        let mut by_upn = all
            .into_iter()
            .filter(|a| a.upn.eq_ignore_ascii_case(account));
        match (by_upn.next(), by_upn.next()) {
            (Some(one), None) => Ok(one),
            (None, _) => Err(CliError::UnknownAccount(account.to_owned()).into()),
            (Some(_), Some(_)) => Err(CliError::AmbiguousAccount(account.to_owned()).into()),
        }
    }

    pub async fn enroll(
        &self,
        out: &Output,
        url: &str,
        device_name: &str,
        push: authenticator_core::PushRegistration,
    ) -> Result<ExitCode> {
        let a = self
            .core
            .enroll(url.to_owned(), device_name.to_owned(), push)
            .await?;
        out.print(
            || {
                format!(
                    "Added {} ({}) from {} — account {}",
                    a.display_name, a.upn, a.server_name, a.account_id
                )
            },
            || account_json(&a),
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn accounts(&self, out: &Output) -> Result<ExitCode> {
        let all = self.core.accounts().await?;
        out.print(
            || {
                if all.is_empty() {
                    return "No accounts yet: `authenticator enroll <registration link>`".into();
                }
                all.iter()
                    .map(|a| {
                        let ps = if a.phone_sign_in_enabled {
                            "phone sign-in enabled"
                        } else {
                            "push only"
                        };
                        format!(
                            "{}  {} <{}>  {}  [{ps}]",
                            a.account_id, a.display_name, a.upn, a.server_name
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            },
            || json!(all.iter().map(account_json).collect::<Vec<_>>()),
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn enable_phone_sign_in(&self, out: &Output, account: &str) -> Result<ExitCode> {
        let a = self.resolve(account).await?;
        let a = self.core.enable_phone_sign_in(a.account_id).await?;
        out.print(
            || format!("Phone sign-in enabled for {} on {}", a.upn, a.server_name),
            || account_json(&a),
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn remove(&self, out: &Output, account: &str) -> Result<ExitCode> {
        let a = self.resolve(account).await?;
        self.core.remove_account(a.account_id.clone()).await?;
        out.print(
            || format!("Removed {} ({})", a.upn, a.server_name),
            || json!({"removed": a.account_id}),
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn pending(&self, out: &Output, wait: u32) -> Result<ExitCode> {
        let requests = self.core.poll(wait).await?;
        out.print(
            || {
                if requests.is_empty() {
                    return "No pending sign-in requests.".into();
                }
                requests
                    .iter()
                    .map(describe_request)
                    .collect::<Vec<_>>()
                    .join("\n")
            },
            || json!(requests.iter().map(request_json).collect::<Vec<_>>()),
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn approve(
        &self,
        out: &Output,
        request: &str,
        account: Option<&str>,
        number: &str,
    ) -> Result<ExitCode> {
        let result = self
            .answer(request, account, |core, account, id| async move {
                core.approve(account, id, number.to_owned()).await
            })
            .await?;
        match result {
            Err(AuthenticatorError::WrongNumber { attempts_left }) => {
                out.print(
                    || format!("Wrong number: that is not the number on the sign-in screen. {attempts_left} attempt(s) left — try again."),
                    || json!({"error": "wrong_number", "attempts_left": attempts_left}),
                );
                Ok(ExitCode::from(EXIT_WRONG_NUMBER))
            }
            Err(AuthenticatorError::BrowserOriginMismatch {
                seen_origin,
                expected_origin,
            }) => {
                out.print(
                    || format!("Not approved: the sign-in page on this computer is at {seen_origin}, not {expected_origin}. \
                                Someone may be relaying it to steal your sign-in: close it, and report this request (`authenticator report`)."),
                    || json!({"error": "browser_origin_mismatch", "seen_origin": seen_origin, "expected_origin": expected_origin}),
                );
                Ok(ExitCode::FAILURE)
            }
            other => self.report_decision(out, other),
        }
    }

    /// Serves the sign-in pages of this computer's browsers until interrupted (PROTOCOL.md
    /// §5.9): what a phishing-resistant sign-in needs before it can be approved here.
    pub async fn browser_listener(&self, out: &Output, port: u16) -> Result<ExitCode> {
        let bound = self
            .core
            .start_browser_listener(port)
            .await
            .context("cannot start the browser listener")?;
        out.print(
            || format!("Listening for sign-in pages on http://127.0.0.1:{bound} (Ctrl-C stops)."),
            || json!({"port": bound}),
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        self.core.stop_browser_listener().await;
        Ok(ExitCode::SUCCESS)
    }

    pub async fn deny(
        &self,
        out: &Output,
        request: &str,
        account: Option<&str>,
    ) -> Result<ExitCode> {
        let result = self
            .answer(request, account, |core, account, id| async move {
                core.deny(account, id).await
            })
            .await?;
        self.report_decision(out, result)
    }

    pub async fn report(
        &self,
        out: &Output,
        request: &str,
        account: Option<&str>,
    ) -> Result<ExitCode> {
        let result = self
            .answer(request, account, |core, account, id| async move {
                core.report_fraud(account, id).await
            })
            .await?;
        self.report_decision(out, result)
    }

    /// The account a pending request belongs to. A request is identified by (account,
    /// request): the id alone is enough only while one account has it pending; otherwise
    /// `--account` says which.
    async fn account_of(&self, request: &str, account: Option<&str>) -> Result<Option<String>> {
        let account = match account {
            Some(a) => Some(self.resolve(a).await?.account_id),
            None => None,
        };
        let mut holders: Vec<String> = Vec::new();
        for r in self.core.pending_requests().await? {
            if r.request_id == request
                && account.as_ref().is_none_or(|a| *a == r.account_id)
                && !holders.contains(&r.account_id)
            {
                holders.push(r.account_id);
            }
        }
        match holders.len() {
            0 => Ok(account),
            1 => Ok(holders.pop()),
            _ => Err(CliError::AmbiguousRequest(request.to_owned()).into()),
        }
    }

    /// Runs `f` with the request's account; if the request was never fetched on this phone,
    /// fetches pending requests once and retries (a push may have been missed). A request
    /// that is no longer pending (expired, or answered already) is found in each account's
    /// store, so the user is told which rather than "unknown".
    async fn answer<F, Fut>(
        &self,
        request: &str,
        account: Option<&str>,
        f: F,
    ) -> Result<Result<Decision, AuthenticatorError>>
    where
        F: Fn(Arc<Authenticator>, String, String) -> Fut,
        Fut: std::future::Future<Output = Result<Decision, AuthenticatorError>>,
    {
        if let Some(holder) = self.account_of(request, account).await? {
            let first = f(self.core.clone(), holder, request.to_owned()).await;
            if !matches!(first, Err(AuthenticatorError::UnknownRequest)) {
                return Ok(first);
            }
        }
        self.core.poll(0).await?;
        if let Some(holder) = self.account_of(request, account).await? {
            return Ok(f(self.core.clone(), holder, request.to_owned()).await);
        }
        // Pending on no account: the core looks the request up in the account's store before
        // anything else (no network, no prompt), and says `RequestExpired` or
        // `AlreadyAnswered` for the account that has it.
        for a in self.core.accounts().await? {
            let result = f(self.core.clone(), a.account_id, request.to_owned()).await;
            if !matches!(result, Err(AuthenticatorError::UnknownRequest)) {
                return Ok(result);
            }
        }
        Ok(Err(AuthenticatorError::UnknownRequest))
    }

    fn report_decision(
        &self,
        out: &Output,
        result: Result<Decision, AuthenticatorError>,
    ) -> Result<ExitCode> {
        let decision = result.map_err(|e| anyhow!(e))?;
        let (word, status) = match decision {
            Decision::Approved => ("Approved: the sign-in screen will continue.", "approved"),
            Decision::Denied => ("Denied.", "denied"),
            Decision::Reported => ("Denied and reported as fraud. Thank you.", "reported"),
        };
        out.print(|| word.to_owned(), || json!({"status": status}));
        Ok(ExitCode::SUCCESS)
    }
}

pub fn describe_request(r: &PendingRequest) -> String {
    let mut s = match &r.device_name {
        Some(device) => format!(
            "{}  NEW DEVICE {device:?} added to {} at {}: was this you? (approve / deny)",
            r.request_id, r.upn, r.server_name
        ),
        None => format!(
            "{}  sign-in to {} as {}",
            r.request_id, r.server_name, r.upn
        ),
    };
    if let Some(app) = &r.app_name {
        s.push_str(&format!("  app: {app}"));
    }
    if let Some(loc) = &r.location {
        s.push_str(&format!("  location: {loc}"));
    }
    if r.number_matching {
        s.push_str(&format!("  number: {} digits", r.number_length));
    }
    if let Some(origin) = &r.browser_origin {
        s.push_str(&format!(
            "  phishing-resistant: approve on the computer showing {origin}"
        ));
    }
    let left = r
        .expires_at_ms
        .saturating_sub(authenticator_protocol::UnixMillis::now().millis())
        / 1000;
    s.push_str(&format!("  (expires in {left} s)"));
    s
}

pub(crate) fn account_json(a: &AccountSummary) -> serde_json::Value {
    json!({
        "account_id": a.account_id, "upn": a.upn, "display_name": a.display_name, "server_name": a.server_name,
        "server_url": a.server_url, "phone_sign_in_enabled": a.phone_sign_in_enabled, "enrolled_at_ms": a.enrolled_at_ms,
    })
}

fn request_json(r: &PendingRequest) -> serde_json::Value {
    json!({
        "request_id": r.request_id, "account_id": r.account_id, "upn": r.upn, "server_name": r.server_name,
        "kind": match r.kind {
            RequestKind::Passwordless => "passwordless",
            RequestKind::Push => "push",
            RequestKind::NewDevice => "new_device",
        },
        "app_name": r.app_name, "location": r.location, "device_name": r.device_name,
        "number_matching": r.number_matching, "number_length": r.number_length,
        "browser_origin": r.browser_origin,
        "created_at_ms": r.created_at_ms, "expires_at_ms": r.expires_at_ms,
    })
}
