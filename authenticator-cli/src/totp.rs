//! The desktop phone's TOTP commands (issue 11, offline fallback): `totp add URI`, `totp list`,
//! `totp remove ID` and `code ACCOUNT`. Secrets are sealed by the software key store's wrapping
//! key (`SoftwareKeyStore` is also the `SecretStore`); codes are printed, never logged.
use std::process::ExitCode;

use anyhow::Result;
use authenticator_core::TotpAccount;
use serde_json::json;

use crate::failure::CliError;
use crate::phone::{Output, Phone};

pub(crate) fn label(t: &TotpAccount) -> String {
    if t.issuer.is_empty() {
        t.account_name.clone()
    } else {
        format!("{}:{}", t.issuer, t.account_name)
    }
}

pub(crate) fn totp_json(t: &TotpAccount) -> serde_json::Value {
    json!({
        "totp_id": t.totp_id, "issuer": t.issuer, "account_name": t.account_name,
        "algorithm": t.algorithm, "digits": t.digits, "period": t.period, "account_id": t.account_id,
    })
}

impl Phone {
    /// A TOTP account by its id; by the phone sign-in account (id or UPN) whose enrollment
    /// brought it; or by its label `issuer:name` or name, when exactly one has it.
    async fn resolve_totp(&self, account: &str) -> Result<TotpAccount> {
        let all = self.core.totp_accounts().await?;
        if let Some(t) = all.iter().find(|t| t.totp_id == account) {
            return Ok(t.clone());
        }
        let linked: Vec<String> = self
            .core
            .accounts()
            .await?
            .into_iter()
            .filter(|a| a.account_id == account || a.upn.eq_ignore_ascii_case(account))
            .map(|a| a.account_id)
            .collect();
        let found: Vec<&TotpAccount> = all
            .iter()
            .filter(|t| {
                t.account_id.as_ref().is_some_and(|a| linked.contains(a))
                    || label(t) == account
                    || t.account_name == account
            })
            .collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(CliError::UnknownTotpAccount(account.to_owned()).into()),
            _ => Err(CliError::AmbiguousTotpAccount(account.to_owned()).into()),
        }
    }

    pub async fn totp_add(&self, out: &Output, uri: &str) -> Result<ExitCode> {
        let t = self.core.add_totp_account(uri.to_owned()).await?;
        out.print(
            || format!("Added TOTP account {} — id {}", label(&t), t.totp_id),
            || totp_json(&t),
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn totp_list(&self, out: &Output) -> Result<ExitCode> {
        let all = self.core.totp_accounts().await?;
        out.print(
            || {
                if all.is_empty() {
                    return "No TOTP accounts: `authenticator totp add <otpauth://totp/… URI>`"
                        .into();
                }
                all.iter()
                    .map(|t| {
                        let from = match &t.account_id {
                            Some(a) => format!("offline fallback of account {a}"),
                            None => "imported".into(),
                        };
                        format!("{}  {}  [{from}]", t.totp_id, label(t))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            },
            || json!(all.iter().map(totp_json).collect::<Vec<_>>()),
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn totp_remove(&self, out: &Output, account: &str) -> Result<ExitCode> {
        let t = self.resolve_totp(account).await?;
        self.core.remove_totp_account(t.totp_id.clone()).await?;
        out.print(
            || format!("Removed TOTP account {}", label(&t)),
            || json!({"removed": t.totp_id}),
        );
        Ok(ExitCode::SUCCESS)
    }

    /// Prints the current code alone on stdout (the time left goes to stderr), or JSON.
    pub async fn code(&self, out: &Output, account: &str) -> Result<ExitCode> {
        let t = self.resolve_totp(account).await?;
        let code = self.core.totp_code(t.totp_id.clone()).await?;
        if !out.json {
            eprintln!(
                "{}: valid for {} more second{}",
                label(&t),
                code.seconds_remaining,
                if code.seconds_remaining == 1 { "" } else { "s" }
            );
        }
        out.print(
            || code.code.clone(),
            || {
                json!({"totp_id": t.totp_id, "code": code.code,
                       "seconds_remaining": code.seconds_remaining, "period": code.period})
            },
        );
        Ok(ExitCode::SUCCESS)
    }
}
