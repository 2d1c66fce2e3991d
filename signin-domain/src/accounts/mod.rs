//! Users, groups, passwords and phone registration: what the admin CLI, the admin pages and
//! the enrollment API do to accounts.
pub mod applications;
pub mod attributes;
pub mod backup_codes;
pub mod devices;
pub mod fallback;
mod hash_pool;
pub mod methods;
pub mod passwords;
pub mod temporary_pass;
pub mod totp;

use anyhow::{bail, Context};
use authenticator_protocol::encoding::b64;
use authenticator_protocol::enroll::EnrollmentUrl;
use authenticator_protocol::UnixMillis;
use url::Url;

use crate::audit::{self, Event};
use crate::error::AppError;
use crate::rules::policy::{self, Policy, PolicyUpdate};
use crate::store::risk::RiskKey;
use crate::store::{self, now_ms, to_db_ms, users, Pool};
use crate::upn::Upn;
use authenticator_protocol::text;

/// What the database keys an enrollment code or a temporary access pass by: SHA-256 of the
/// code, base64url.
pub fn code_hash(code: &str) -> String {
    b64(&authenticator_protocol::encoding::sha256(code.as_bytes()))
}

/// What the phone, the pages and terminals show passes the one gate for names
/// (`text::check_plain`): a value given with `flag` that holds a control, newline,
/// bidirectional, invisible or other format, private-use or unassigned character is refused
/// with [`AppError::UnsafeText`], naming the flag and the code point (never the text).
pub(crate) fn check_plain_flag(flag: &'static str, value: &str) -> anyhow::Result<()> {
    text::check_plain(value).map_err(|error| AppError::UnsafeText { field: flag, error })?;
    Ok(())
}

/// Creates a user. Fails clearly if the UPN exists, in any case (`Upn`).
pub async fn add_user(pool: &Pool, upn: &str, name: &str, groups: &[String]) -> anyhow::Result<()> {
    check_plain_flag("--upn", upn.trim())?;
    let upn = Upn::parse(upn).map_err(|e| anyhow::anyhow!("--upn: {e}"))?;
    upn.check_new().map_err(|e| anyhow::anyhow!("--upn: {e}"))?;
    let upn = upn.as_str();
    if name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    let mut trimmed = Vec::with_capacity(groups.len());
    for g in groups {
        let g = g.trim();
        if g.is_empty() {
            bail!("--group must not be empty");
        }
        trimmed.push(g);
    }
    for (flag, value) in [("--upn", upn), ("--name", name)]
        .into_iter()
        .chain(trimmed.iter().map(|g| ("--group", *g)))
    {
        check_plain_flag(flag, value)?;
    }
    if !users::insert(pool, upn, name.trim(), &trimmed).await? {
        bail!("user {upn} already exists (user names are compared ignoring case)");
    }
    audit::record(
        pool,
        Event::UserAdded,
        audit::Entry {
            upn: Some(upn),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// The command that renames a user (named by the start-up refusal below).
pub const RENAME_COMMAND: &str = "signin-server admin user rename --upn OLD --new-upn NEW";

/// Brings a database from before case-insensitive UPNs to the rule: every UPN stored in lower
/// case (`Upn`). Refuses, changing nothing, when users differ only by case, listing them and
/// the command that renames one; otherwise renames each in one transaction (audited).
pub async fn normalize_upns(pool: &Pool) -> anyhow::Result<()> {
    let upns = users::all_upns(pool).await?;
    let mut by_form: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for upn in &upns {
        let form = Upn::parse(upn).map_or_else(|_| upn.to_lowercase(), |u| u.as_str().to_owned());
        by_form.entry(form).or_default().push(upn);
    }
    let clashes: Vec<String> = by_form
        .values()
        .filter(|same| same.len() > 1)
        .map(|same| same.join(", "))
        .collect();
    if !clashes.is_empty() {
        bail!(
            "user names are compared ignoring case now, and these users differ only by case: \
             {}. Rename all but one of each (or merge them by hand) with `{RENAME_COMMAND}`, \
             then start again",
            clashes.join("; ")
        );
    }
    for (form, same) in by_form {
        let [stored] = same.as_slice() else { continue };
        if *stored != form {
            rename_user(pool, stored, &form).await?;
        }
    }
    Ok(())
}

/// Renames a user (`from` exactly as stored; `to` is normalised), moving everything that is
/// theirs. Audited (`user_renamed`).
pub async fn rename_user(pool: &Pool, from: &str, to: &str) -> anyhow::Result<String> {
    let to = Upn::parse(to).map_err(|e| anyhow::anyhow!("--new-upn: {e}"))?;
    let from = from.trim();
    if !users::exists(pool, from).await? {
        bail!("no user {from}");
    }
    if !users::rename(pool, from, to.as_str()).await? {
        bail!("user {to} already exists (user names are compared ignoring case)");
    }
    let outcome = format!("from={from}");
    audit::record(
        pool,
        Event::UserRenamed,
        audit::Entry {
            upn: Some(to.as_str()),
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(to.as_str().to_owned())
}

pub async fn set_policy(pool: &Pool, update: &PolicyUpdate) -> anyhow::Result<Policy> {
    let current = policy::load(pool).await?;
    let next = current.apply(update)?;
    policy::save(pool, &next).await?;
    let changes = current.changes_to(&next);
    let outcome = if changes.is_empty() {
        "unchanged".to_owned()
    } else {
        changes.join("; ")
    };
    audit::record(
        pool,
        Event::PolicyChanged,
        audit::Entry {
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(next)
}

/// Issues a one-time enrollment code for `upn` and returns the `phonesignin://enroll` URL.
/// Only SHA-256(code) is stored.
pub async fn registration_link(
    pool: &Pool,
    upn: &str,
    server_url: &Url,
    ttl_secs: u64,
) -> anyhow::Result<String> {
    issue_registration_link(pool, upn, server_url, ttl_secs, None).await
}

/// A registration link the signed-in user asked for on the security-info page: the code
/// remembers how that session was made (`issued_by`), which decides whether the phone it
/// enrolls is held (`trust::may`, applied at enrollment).
pub async fn registration_link_for_session(
    pool: &Pool,
    upn: &str,
    server_url: &Url,
    ttl_secs: u64,
    issued_by: crate::trust::Method,
) -> anyhow::Result<String> {
    issue_registration_link(pool, upn, server_url, ttl_secs, Some(issued_by)).await
}

async fn issue_registration_link(
    pool: &Pool,
    upn: &str,
    server_url: &Url,
    ttl_secs: u64,
    issued_by: Option<crate::trust::Method>,
) -> anyhow::Result<String> {
    authenticator_protocol::enroll::check_server_url(server_url)
        .context("--server-url must be https (or http on a loopback address)")?;
    let upn = crate::upn::cli_arg("--upn", upn)?;
    let upn = upn.as_str();
    if !users::exists(pool, upn).await? {
        bail!("no user {upn}");
    }
    let signer = store::server_signer(pool).await?;
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("random source failed"))?;
    let code = b64(&bytes);
    let now = UnixMillis::now();
    store::enrollment::insert_code(
        pool,
        &code_hash(&code),
        upn,
        to_db_ms(now),
        to_db_ms(now.plus_secs(ttl_secs)),
        issued_by.map(crate::trust::Method::as_str),
    )
    .await?;
    let outcome = match issued_by {
        Some(m) => format!("ok issued_by={m}"),
        None => "ok issued_by=admin".to_owned(),
    };
    audit::record(
        pool,
        Event::RegistrationLinkIssued,
        audit::Entry {
            upn: Some(upn),
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(EnrollmentUrl {
        server: server_url.clone(),
        code,
        server_fingerprint: signer.public_key().fingerprint(),
    }
    .to_url_string())
}

/// What `admin user show` prints: the user, groups, risk, pause, rate limit and each
/// device's push channel (with stale tokens). Never tokens or keys.
pub async fn describe_user(pool: &Pool, upn: &str) -> anyhow::Result<String> {
    use std::fmt::Write;
    let upn = crate::upn::cli_arg("--upn", upn)?;
    let upn = upn.as_str();
    let Some(users::UserRecord {
        display_name: name,
        groups,
        ..
    }) = users::find(pool, upn).await?
    else {
        anyhow::bail!("no user {upn}");
    };
    let now = now_ms();
    let mut out = String::new();
    // Everything printed that someone else wrote is escaped for the terminal.
    writeln!(out, "upn: {}", text::escape(upn))?;
    writeln!(out, "name: {}", text::escape(&name))?;
    writeln!(
        out,
        "groups: {}",
        if groups.is_empty() {
            "-".to_owned()
        } else {
            text::escape(&groups.join(", ")).into_owned()
        }
    )?;
    if let Some(a) = users::attributes(pool, upn).await? {
        let or_dash = |v: &Option<String>| {
            v.as_deref()
                .map_or_else(|| "-".to_owned(), |v| text::escape(v).into_owned())
        };
        writeln!(
            out,
            "email: {}{}",
            or_dash(&a.email),
            match (&a.email, a.email_verified) {
                (None, _) => "",
                (Some(_), true) => " (verified)",
                (Some(_), false) => " (not verified)",
            }
        )?;
        writeln!(out, "given name: {}", or_dash(&a.given_name))?;
        writeln!(out, "family name: {}", or_dash(&a.family_name))?;
    }
    let limited = store::risk::blocked_limits(pool, upn, now).await?;
    let risk = store::risk::load(pool, RiskKey::User(upn))
        .await?
        .map(|r| r.0);
    match risk {
        Some(r) => {
            write!(
                out,
                "risk: {} (score {}, reports {}",
                r.level(),
                r.risk,
                r.reports
            )?;
            if let Some(at) = r.last_report_at {
                write!(out, ", last report {}", crate::format::rfc3339(at))?;
            }
            writeln!(out, ")")?;
            if r.paused_until > now {
                writeln!(
                    out,
                    "paused: until {}",
                    crate::format::rfc3339(r.paused_until)
                )?;
            } else {
                writeln!(out, "paused: no")?;
            }
        }
        None => {
            writeln!(out, "risk: low (score 0, reports 0)")?;
            writeln!(out, "paused: no")?;
        }
    }
    if limited.is_empty() {
        writeln!(out, "rate limit: ok")?;
    }
    for (client, r) in limited {
        writeln!(
            out,
            "rate limit: blocked for {} until {} (cool-down #{})",
            text::escape(&client),
            crate::format::rfc3339(r.blocked_until),
            r.strikes
        )?;
    }
    writeln!(out, "{}", fallback::status_line(pool, upn).await?)?;
    let devices = store::devices::of_user(pool, upn).await?;
    if devices.is_empty() {
        writeln!(out, "devices: none")?;
    }
    for d in &devices {
        writeln!(out, "{}", devices::line(d))?;
    }
    Ok(out.trim_end().to_owned())
}

/// Adds `upn` to `group` (audited). Errors name the problem.
pub async fn add_group_member(pool: &Pool, group: &str, upn: &str) -> anyhow::Result<()> {
    let upn = crate::upn::cli_arg("--upn", upn)?;
    let upn = upn.as_str();
    let group = group.trim();
    if group.is_empty() || group.len() > 128 {
        bail!("the group name must be 1 to 128 characters");
    }
    check_plain_flag("--group", group)?;
    if !users::exists(pool, upn).await? {
        bail!("no user {upn}");
    }
    users::add_to_group(pool, upn, group).await?;
    let outcome = format!("group={group}");
    audit::record(
        pool,
        Event::GroupMemberAdded,
        audit::Entry {
            upn: Some(upn),
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}
