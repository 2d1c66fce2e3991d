//! Devices (one enrolled account on a phone each): what admins list and remove.
use std::fmt::Write;

use anyhow::bail;
use authenticator_protocol::text;

use crate::audit::{self, Event};
use crate::store::devices::{self, DeviceSummary};
use crate::store::{users, Pool};

/// One device as `admin device list` and `admin user show` print it (never keys or tokens;
/// the name, which the phone chose, escaped for the terminal).
pub fn line(d: &DeviceSummary) -> String {
    let mut out = format!(
        "device {} ({}): enrolled {}, push {}",
        d.account_id,
        text::escape(&d.device_name),
        crate::format::rfc3339(d.enrolled_at),
        d.push_kind
    );
    // Writing to a String cannot fail.
    let _ = match d.push_stale_at {
        Some(at) => write!(
            out,
            " STALE since {} ({})",
            crate::format::rfc3339(at),
            d.push_stale_reason.as_deref().unwrap_or("-")
        ),
        None => write!(out, " ok"),
    };
    if d.awaiting_approval {
        out.push_str("; AWAITING APPROVAL");
    }
    let _ = match d.last_used_at {
        Some(at) => write!(out, "; last used {}", crate::format::rfc3339(at)),
        None => write!(out, "; never used"),
    };
    // Delivery health (PROTOCOL.md §5.10).
    if d.push_kind != "longpoll" {
        let _ = match d.last_push_at {
            Some(at) => write!(out, "; last push delivered {}", crate::format::rfc3339(at)),
            None => write!(out, "; no push delivered yet"),
        };
    }
    let _ = match d.last_seen_at {
        Some(at) => write!(out, "; last seen {}", crate::format::rfc3339(at)),
        None => write!(out, "; never seen"),
    };
    let _ = write!(
        out,
        "; phone sign-in {}",
        if d.passwordless_enabled_at.is_some() {
            "on"
        } else {
            "off"
        }
    );
    out
}

/// The user's devices, oldest first, as lines.
pub async fn list(pool: &Pool, upn: &str) -> anyhow::Result<Vec<String>> {
    let upn = crate::upn::cli_arg("--upn", upn)?;
    let upn = upn.as_str();
    if !users::exists(pool, upn).await? {
        bail!("no user {upn}");
    }
    let devices = devices::of_user(pool, upn).await?;
    if devices.is_empty() {
        return Ok(vec![format!("{} has no devices", text::escape(upn))]);
    }
    Ok(devices.iter().map(line).collect())
}

/// Who removed a device (the audit entry's outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remover {
    /// `admin device remove`, the admin's devices page.
    Admin,
    /// The user, on their security-info page.
    User,
    /// The phone itself, when the account is removed from it (`DELETE /api/v1/device`).
    Device,
    /// Another of the user's devices said "this wasn't me" about it (a `new_device` request).
    OtherDevice,
}

impl Remover {
    fn outcome(self) -> &'static str {
        match self {
            Remover::Admin => "by_admin",
            Remover::User => "by_user",
            Remover::Device => "by_device",
            Remover::OtherDevice => "by_other_device",
        }
    }
}

/// Activates a device that awaits approval, as an admin (audited `device_approved by_admin`).
pub async fn approve_as_admin(pool: &Pool, account_id: &str) -> anyhow::Result<()> {
    let account_id = account_id.trim();
    let Some(upn) = devices::owner_of(pool, account_id).await? else {
        bail!("no device {account_id}");
    };
    if !devices::approve(pool, account_id).await? {
        bail!("device {account_id} is not awaiting approval");
    }
    audit::record(
        pool,
        Event::DeviceApproved,
        audit::Entry {
            upn: Some(&upn),
            account_id: Some(account_id),
            outcome: "by_admin",
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Removes a device as an admin (audited; see [`remove_as`]).
pub async fn remove(pool: &Pool, account_id: &str) -> anyhow::Result<()> {
    remove_as(pool, account_id, Remover::Admin).await
}

/// Removes a device (audited with who did it): its requests are deleted with it, so the
/// phone's answers, details fetches and polls are refused at once, and sign-ins go to the
/// user's other devices only.
pub async fn remove_as(pool: &Pool, account_id: &str, by: Remover) -> anyhow::Result<()> {
    let account_id = account_id.trim();
    let Some(upn) = devices::owner_of(pool, account_id).await? else {
        bail!("no device {account_id}");
    };
    // Reported by another of the user's devices as not the user's: what its sessions
    // created goes too (backup codes would otherwise sign the reported party in again).
    let revoked = if by == Remover::OtherDevice {
        crate::store::trust::revoke_backup_codes_made_by(pool, account_id).await?
    } else {
        0
    };
    if !devices::remove(pool, account_id).await? {
        bail!("no device {account_id}");
    }
    if revoked > 0 {
        audit::record(
            pool,
            Event::BackupCodesRevoked,
            audit::Entry {
                upn: Some(&upn),
                account_id: Some(account_id),
                outcome: "made_by_reported_device",
                ..Default::default()
            },
        )
        .await?;
    }
    audit::record(
        pool,
        Event::DeviceRemoved,
        audit::Entry {
            upn: Some(&upn),
            account_id: Some(account_id),
            outcome: by.outcome(),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(push_kind: &str) -> DeviceSummary {
        DeviceSummary {
            account_id: "acct".into(),
            upn: "ada@contoso.test".into(),
            device_name: "Pixel".into(),
            push_kind: push_kind.into(),
            enrolled_at: 0,
            push_stale_at: None,
            push_stale_reason: None,
            passwordless_enabled_at: Some(0),
            last_used_at: None,
            awaiting_approval: false,
            last_push_at: None,
            last_seen_at: None,
        }
    }

    #[test]
    fn the_admin_line_shows_delivery_health() {
        let mut d = device("fcm");
        let never = line(&d);
        assert!(
            never.contains("; no push delivered yet; never seen;"),
            "{never}"
        );
        d.last_push_at = Some(60_000);
        d.last_seen_at = Some(120_000);
        let seen = line(&d);
        assert!(
            seen.contains(&format!(
                "; last push delivered {}; last seen {};",
                crate::format::rfc3339(60_000),
                crate::format::rfc3339(120_000)
            )),
            "{seen}"
        );
        assert!(seen.ends_with("phone sign-in on"), "{seen}");
        // A long-poll phone gets no pushes: nothing to say about them.
        assert!(!line(&device("longpoll")).contains("push delivered"));
    }
}
