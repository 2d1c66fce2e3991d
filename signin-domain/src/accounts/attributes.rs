//! A user's attributes for OpenID Connect claims (`admin user set`): email address (with
//! whether it is verified, as the administrator says), given and family names. Names pass the
//! one text gate; email addresses follow a strict, simple rule ([`parse_email`]) and are stored
//! in lower case. Audited without the values (an email address is personal data).
use anyhow::bail;

use super::check_plain_flag;
use crate::audit::{self, Event};
use crate::store::users::{self, Attributes};
use crate::store::Pool;

/// Longest email address (RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its angle
/// brackets) and local part (§4.5.3.1.1).
const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
/// Longest given or family name.
const MAX_NAME_LEN: usize = 256;

/// An email address in lower case, or why it is refused: `local@domain` where the local part is
/// a dot-atom (RFC 5322 §3.2.3: letters, digits and ``!#$%&'*+/=?^_`{|}~-``, dots between) and
/// the domain is two or more DNS labels (letters, digits, hyphens inside; at most 63 each).
/// Quoted local parts, address literals and non-ASCII addresses are refused.
pub fn parse_email(value: &str) -> Result<String, &'static str> {
    let email = value.trim().to_ascii_lowercase();
    if email.is_empty() {
        return Err("is empty");
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err("is longer than 254 characters");
    }
    if !email.is_ascii() {
        return Err("must be ASCII (internationalised addresses are not accepted)");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("has no @");
    };
    if domain.contains('@') {
        return Err("has more than one @");
    }
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err("needs 1 to 64 characters before the @");
    }
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
    if local
        .split('.')
        .any(|atom| atom.is_empty() || !atom.bytes().all(atext))
    {
        return Err("has a character or a dot that is not allowed before the @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("needs a domain with a dot after the @ (name@example.com)");
    }
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !labels.iter().all(label_ok) {
        return Err("has a domain that is not a host name");
    }
    Ok(email)
}

/// What `admin user set` changes: `None` leaves a field as it is; `Some("")` clears it.
#[derive(Debug, Clone, Default)]
pub struct AttributesUpdate {
    pub email: Option<String>,
    /// Whether the (new or current) email address is verified. A new address without this is
    /// not verified.
    pub email_verified: Option<bool>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// A name flag's value: trimmed, `None` when empty (cleared); checked by the text gate.
fn name(flag: &'static str, value: &str) -> anyhow::Result<Option<String>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_NAME_LEN {
        bail!("{flag} must be at most {MAX_NAME_LEN} characters");
    }
    check_plain_flag(flag, value)?;
    Ok(Some(value.to_owned()))
}

/// Sets the user's attributes (audited: which fields, never their values). Errors name the
/// flag and the problem, never the value.
pub async fn set_attributes(
    pool: &Pool,
    upn: &str,
    update: AttributesUpdate,
) -> anyhow::Result<()> {
    let upn = crate::upn::cli_arg("--upn", upn)?;
    let upn = upn.as_str();
    if update.email.is_none()
        && update.email_verified.is_none()
        && update.given_name.is_none()
        && update.family_name.is_none()
    {
        bail!("nothing to set: give --email, --email-verified, --given-name or --family-name");
    }
    let email = match update.email.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(value) => {
            check_plain_flag("--email", value)?;
            let email = parse_email(value)
                .map_err(|why| anyhow::anyhow!("--email is not an email address: it {why}"))?;
            Some(Some(email))
        }
    };
    let given_name = update
        .given_name
        .as_deref()
        .map(|v| name("--given-name", v))
        .transpose()?;
    let family_name = update
        .family_name
        .as_deref()
        .map(|v| name("--family-name", v))
        .transpose()?;
    let Some(current) = users::attributes(pool, upn).await? else {
        bail!("no user {upn}");
    };
    let mut next: Attributes = current.clone();
    let mut changed = Vec::new();
    if let Some(email) = email {
        if email != current.email {
            // Another address is not verified unless the administrator says so.
            next.email_verified = false;
        }
        next.email = email;
        changed.push("email");
    }
    if let Some(verified) = update.email_verified {
        if verified && next.email.is_none() {
            bail!("--email-verified true needs an email address (--email)");
        }
        next.email_verified = verified;
        changed.push("email_verified");
    }
    if next.email.is_none() {
        next.email_verified = false;
    }
    if let Some(given_name) = given_name {
        next.given_name = given_name;
        changed.push("given_name");
    }
    if let Some(family_name) = family_name {
        next.family_name = family_name;
        changed.push("family_name");
    }
    if !users::set_attributes(pool, upn, &next).await? {
        bail!("no user {upn}");
    }
    let outcome = format!("set={}", changed.join(","));
    audit::record(
        pool,
        Event::UserAttributesSet,
        audit::Entry {
            upn: Some(upn),
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_email;

    #[test]
    fn emails_follow_a_strict_simple_rule_and_are_lower_case() {
        assert_eq!(
            parse_email(" Ada.Lovelace+x@Example.COM ").unwrap(),
            "ada.lovelace+x@example.com"
        );
        assert_eq!(parse_email("a@b.co").unwrap(), "a@b.co");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a@b@example.com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "\"ada\"@example.com",
            "ada lovelace@example.com",
            "ada@-example.com",
            "ada@example-.com",
            "ada@exa_mple.com",
            "ada@example..com",
            "ada@[127.0.0.1]",
            "adä@example.com",
            "ada@exämple.com",
            "ada\n@example.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} accepted");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(parse_email(&long_local).is_err());
        let long = format!("a@{}.com", "b".repeat(250));
        assert!(parse_email(&long).is_err());
    }
}
