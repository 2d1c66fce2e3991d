//! Moving to a new phone (PROTOCOL.md §5.11) on the desktop phone: `move-out` shows the one
//! link (and its QR code) for the new phone, `move-in LINK` completes the move there, and
//! `move-done --keep|--remove` is the old phone's choice afterwards. `totp export` / `totp
//! import` write and read the passphrase-encrypted file of TOTP accounts.
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use authenticator_core::{PushKind, PushRegistration};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;
use serde_json::json;

use crate::passcode::write_private;
use crate::phone::{account_json, Output, Phone};
use crate::totp::{label, totp_json};

/// The export passphrase: given, or asked twice on the terminal (once for an import).
pub fn passphrase(given: Option<String>, confirm: bool) -> Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("give the passphrase with --passphrase or AUTHENTICATOR_EXPORT_PASSPHRASE");
    }
    let first = rpassword::prompt_password("Export passphrase: ")?;
    if confirm && rpassword::prompt_password("Repeat passphrase: ")? != first {
        bail!("the passphrases differ");
    }
    Ok(first)
}

impl Phone {
    pub async fn move_out(&self, out: &Output) -> Result<ExitCode> {
        let started = self.core.move_out().await?;
        out.print(
            || {
                let qr = QrCode::new(started.link.as_bytes())
                    .map(|qr| qr.render::<Dense1x2>().quiet_zone(true).build())
                    .unwrap_or_else(|_| "(the link does not fit one QR code)".into());
                format!(
                    "{qr}\nScan this on the new phone (or run there: authenticator move-in '{}').\n\
                     It moves {} account(s) and {} TOTP account(s), works once, for ten minutes.\n\
                     Then keep this phone's accounts (`authenticator move-done --keep`) or remove \
                     them (`authenticator move-done --remove`).",
                    started.link, started.accounts, started.totp_accounts
                )
            },
            || {
                json!({
                    "link": started.link, "expires_at_ms": started.expires_at_ms,
                    "accounts": started.accounts, "totp_accounts": started.totp_accounts,
                })
            },
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn move_in(&self, out: &Output, link: &str, device_name: &str) -> Result<ExitCode> {
        let push = PushRegistration {
            kind: PushKind::LongPoll,
            token: String::new(),
        };
        let moved = self
            .core
            .move_in(link.to_owned(), device_name.to_owned(), push)
            .await?;
        out.print(
            || {
                let mut lines = vec![format!(
                    "Moved {} account(s) and {} TOTP account(s):",
                    moved.accounts.len(),
                    moved.totp_accounts.len()
                )];
                for a in &moved.accounts {
                    lines.push(format!(
                        "  {} ({}) from {}{} — account {}",
                        a.display_name,
                        a.upn,
                        a.server_name,
                        if a.phone_sign_in_enabled {
                            ", phone sign-in on"
                        } else {
                            ""
                        },
                        a.account_id
                    ));
                }
                for t in &moved.totp_accounts {
                    lines.push(format!("  TOTP {}", label(t)));
                }
                lines.join("\n")
            },
            || {
                json!({
                    "accounts": moved.accounts.iter().map(account_json).collect::<Vec<_>>(),
                    "totp_accounts": moved.totp_accounts.iter().map(totp_json).collect::<Vec<_>>(),
                })
            },
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn move_done(&self, out: &Output, remove: bool) -> Result<ExitCode> {
        if remove {
            self.core.remove_all_accounts().await?;
        }
        out.print(
            || {
                if remove {
                    "Removed every account from this phone (their servers are told).".into()
                } else {
                    "Kept this phone's accounts.".into()
                }
            },
            || json!({ "removed": remove }),
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn totp_export(
        &self,
        out: &Output,
        file: &Path,
        passphrase: String,
    ) -> Result<ExitCode> {
        let contents = self.core.export_totp_accounts(passphrase).await?;
        write_private(file, contents.as_bytes())
            .with_context(|| format!("cannot write {}", file.display()))?;
        out.print(
            || format!("Wrote the encrypted TOTP accounts to {}", file.display()),
            || json!({ "file": file.display().to_string() }),
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn totp_import(
        &self,
        out: &Output,
        file: &Path,
        passphrase: String,
    ) -> Result<ExitCode> {
        let contents = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let added = self.core.import_totp_accounts(contents, passphrase).await?;
        out.print(
            || {
                let mut lines = vec![format!("Added {} TOTP account(s):", added.len())];
                lines.extend(added.iter().map(|t| format!("  {}", label(t))));
                lines.join("\n")
            },
            || json!({ "totp_accounts": added.iter().map(totp_json).collect::<Vec<_>>() }),
        );
        Ok(ExitCode::SUCCESS)
    }
}
