//! The desktop phone's push channel (issue 23): `enroll --push …` registers one, and
//! `push-update --push …` tells every account's server that it changed (PROTOCOL.md §5.10),
//! as a phone app does from FCM's `onNewToken`, a new APNs device token or a UnifiedPush
//! endpoint change. The desktop phone itself is woken by long-poll (`pending --wait`); the
//! other kinds let it stand in for a phone app against a server's push configuration.
use std::process::ExitCode;

use anyhow::{bail, Result};
use authenticator_core::{web_push_token, PushKind, PushRegistration, PushUpdateOutcome};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::phone::{Output, Phone};

/// Exit code of `push-update` when some account's server was not told (see its output).
pub const EXIT_PUSH_NOT_UPDATED: u8 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PushChoice {
    /// No push service: the phone asks (`pending --wait`).
    LongPoll,
    /// Apple Push Notification service: `--push-token` is the APNs device token (hex).
    Apns,
    /// Firebase Cloud Messaging: `--push-token` is the FCM registration token.
    Fcm,
    /// Web Push (UnifiedPush): `--push-endpoint`, `--push-p256dh` and `--push-auth` are the
    /// subscription the distributor gave.
    WebPush,
}

/// How the server wakes this phone.
#[derive(Args, Debug, Clone)]
pub struct PushArgs {
    /// The push channel [default: long-poll].
    #[arg(long = "push", value_enum)]
    pub kind: Option<PushChoice>,
    /// The APNs device token or FCM registration token (with `--push apns` or `--push fcm`).
    #[arg(long)]
    pub push_token: Option<String>,
    /// The Web Push subscription's endpoint URL (with `--push web-push`).
    #[arg(long)]
    pub push_endpoint: Option<String>,
    /// The Web Push subscription's `p256dh` public key, base64url (with `--push web-push`).
    #[arg(long)]
    pub push_p256dh: Option<String>,
    /// The Web Push subscription's `auth` secret, base64url (with `--push web-push`).
    #[arg(long)]
    pub push_auth: Option<String>,
}

impl PushArgs {
    /// The registration these flags describe; flags that do not belong to the chosen kind
    /// are refused rather than ignored.
    pub fn registration(&self) -> Result<PushRegistration> {
        let kind = self.kind.unwrap_or(PushChoice::LongPoll);
        let web = [&self.push_endpoint, &self.push_p256dh, &self.push_auth];
        let any_web = web.iter().any(|f| f.is_some());
        match kind {
            PushChoice::LongPoll => {
                if self.push_token.is_some() || any_web {
                    bail!("long-poll takes no push token or subscription: choose --push apns, fcm or web-push");
                }
                Ok(PushRegistration {
                    kind: PushKind::LongPoll,
                    token: String::new(),
                })
            }
            PushChoice::Apns | PushChoice::Fcm => {
                if any_web {
                    bail!(
                        "--push-endpoint, --push-p256dh and --push-auth belong to --push web-push"
                    );
                }
                let Some(token) = self.push_token.clone() else {
                    bail!("--push {} needs --push-token", name(kind));
                };
                Ok(PushRegistration {
                    kind: if kind == PushChoice::Apns {
                        PushKind::Apns
                    } else {
                        PushKind::Fcm
                    },
                    token,
                })
            }
            PushChoice::WebPush => {
                if self.push_token.is_some() {
                    bail!("--push web-push takes --push-endpoint, --push-p256dh and --push-auth, not --push-token");
                }
                let (Some(endpoint), Some(p256dh), Some(auth)) =
                    (&self.push_endpoint, &self.push_p256dh, &self.push_auth)
                else {
                    bail!("--push web-push needs --push-endpoint, --push-p256dh and --push-auth");
                };
                Ok(PushRegistration {
                    kind: PushKind::WebPush,
                    token: web_push_token(endpoint.clone(), p256dh.clone(), auth.clone())?,
                })
            }
        }
    }
}

fn name(kind: PushChoice) -> &'static str {
    match kind {
        PushChoice::LongPoll => "long-poll",
        PushChoice::Apns => "apns",
        PushChoice::Fcm => "fcm",
        PushChoice::WebPush => "web-push",
    }
}

impl Phone {
    /// `push-update`: every account's server learns the new channel; one line (or JSON
    /// object) per account. Exits `EXIT_PUSH_NOT_UPDATED` when any account was not updated.
    pub async fn push_update(&self, out: &Output, push: &PushArgs) -> Result<ExitCode> {
        let registration = push.registration()?;
        let results = self.core.update_push_registration(registration).await?;
        let all_updated = results
            .iter()
            .all(|r| r.outcome == PushUpdateOutcome::Updated);
        out.print(
            || {
                if results.is_empty() {
                    return "No accounts yet: nothing to update.".into();
                }
                results
                    .iter()
                    .map(|r| {
                        let what = match &r.outcome {
                            PushUpdateOutcome::Updated => "updated".to_owned(),
                            PushUpdateOutcome::RetryLater { reason } => {
                                format!("not updated, try again later: {reason}")
                            }
                            PushUpdateOutcome::Refused { code, detail, .. } => {
                                format!("refused by the server ({code}): {detail}")
                            }
                        };
                        format!("{}  {} on {}: {what}", r.account_id, r.upn, r.server_name)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            },
            || {
                json!(results
                    .iter()
                    .map(|r| {
                        let mut v = json!({
                            "account_id": r.account_id, "upn": r.upn, "server_name": r.server_name,
                        });
                        match &r.outcome {
                            PushUpdateOutcome::Updated => v["outcome"] = json!("updated"),
                            PushUpdateOutcome::RetryLater { reason } => {
                                v["outcome"] = json!("retry_later");
                                v["reason"] = json!(reason);
                            }
                            PushUpdateOutcome::Refused {
                                status,
                                code,
                                detail,
                            } => {
                                v["outcome"] = json!("refused");
                                v["status"] = json!(status);
                                v["code"] = json!(code);
                                v["detail"] = json!(detail);
                            }
                        }
                        v
                    })
                    .collect::<Vec<_>>())
            },
        );
        Ok(if all_updated {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_PUSH_NOT_UPDATED)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kind: Option<PushChoice>) -> PushArgs {
        PushArgs {
            kind,
            push_token: None,
            push_endpoint: None,
            push_p256dh: None,
            push_auth: None,
        }
    }

    #[test]
    fn no_push_flags_mean_long_poll() {
        let r = args(None).registration().unwrap();
        assert_eq!(r.kind, PushKind::LongPoll);
        assert_eq!(r.token, "");
    }

    #[test]
    fn flags_that_do_not_belong_to_the_kind_are_refused() {
        let mut a = args(Some(PushChoice::Fcm));
        assert!(a.registration().is_err(), "fcm without a token");
        a.push_token = Some("t".into());
        assert_eq!(a.registration().unwrap().token, "t");
        a.push_endpoint = Some("https://push.example.net/x".into());
        assert!(a.registration().is_err(), "fcm with a web push endpoint");
        let mut a = args(None);
        a.push_token = Some("t".into());
        assert!(a.registration().is_err(), "long-poll with a token");
        let mut a = args(Some(PushChoice::WebPush));
        a.push_endpoint = Some("https://push.example.net/x".into());
        assert!(a.registration().is_err(), "web push without its keys");
    }
}
