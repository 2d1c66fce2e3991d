//! The user principal name, parsed and normalised once: trimmed, 1 to 256 bytes, one plain
//! line, in Unicode lower case. Every UPN that comes from outside (the sign-in page, the JSON
//! API, OpenID Connect `login_hint`, CIBA hints, the admin CLI and pages) goes through
//! [`Upn::parse`], so UPNs compare case-insensitively everywhere by comparing stored text.
//! A database from before this rule is brought to it at start ([`crate::accounts::normalize_upns`]).
use std::fmt;

use authenticator_protocol::text;

/// Longest UPN accepted (after trimming).
pub const MAX_UPN_LEN: usize = 256;

/// A user principal name in its one stored form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Upn(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpnError {
    #[error("a user name must be 1 to 256 characters")]
    Length,
    /// The one gate for names (`text::check_plain`): no control, newline, bidirectional,
    /// invisible or other format, private-use or unassigned character.
    #[error("a user name {0}")]
    NotPlain(text::UnsafeText),
}

impl Upn {
    pub fn parse(text: &str) -> Result<Upn, UpnError> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.len() > MAX_UPN_LEN {
            return Err(UpnError::Length);
        }
        text::check_plain(trimmed).map_err(UpnError::NotPlain)?;
        let lower = trimmed.to_lowercase();
        // Lower case can be longer (a few letters expand): the bound holds for the stored form.
        if lower.len() > MAX_UPN_LEN {
            return Err(UpnError::Length);
        }
        Ok(Upn(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this may be a new user's name: an email address (`name@example.com`: one `@`
    /// with text on both sides, a domain that neither starts nor ends with a dot) or a
    /// username, without spaces either way. Only names being created are held to it (the
    /// admin CLI and pages); a stored name is looked up as it is.
    pub fn check_new(&self) -> Result<(), NotAUserName> {
        if self.0.chars().any(char::is_whitespace) {
            return Err(NotAUserName);
        }
        match self.0.split_once('@') {
            None => Ok(()),
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(())
            }
            Some(_) => Err(NotAUserName),
        }
    }
}

/// A name [`Upn::check_new`] refuses for a new user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a user name must be an email address (name@example.com) or a username, without spaces")]
pub struct NotAUserName;

impl fmt::Display for Upn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Upn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A UPN an administrator gave (a CLI flag, an admin page, the accounts API), in its stored
/// form; an error names the flag and never echoes the value, so a control character cannot
/// reach the terminal.
pub fn cli_arg(flag: &str, text: &str) -> anyhow::Result<String> {
    Upn::parse(text)
        .map(|u| u.0)
        .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upns_are_trimmed_and_lower_cased_in_unicode() {
        for (typed, stored) in [
            ("Dana@Fabrikam.test", "dana@fabrikam.test"),
            ("  BOBBY@contoso.test\t", "bobby@contoso.test"),
            ("ÉLODIE@Exemple.fr", "élodie@exemple.fr"),
            ("ΟΔΥΣΣΕΥΣ@example.gr", "οδυσσευς@example.gr"),
        ] {
            assert_eq!(Upn::parse(typed).unwrap().as_str(), stored, "{typed}");
        }
        assert_eq!(
            Upn::parse("Dana@Fabrikam.test"),
            Upn::parse("dana@FABRIKAM.TEST")
        );
    }

    #[test]
    fn a_new_user_name_is_an_email_address_or_a_username_without_spaces() {
        for name in ["bobby@contoso.test", "bobby", "b.smith@mail.contoso.test"] {
            assert_eq!(Upn::parse(name).unwrap().check_new(), Ok(()), "{name}");
        }
        for name in [
            "not an email",
            "bobby @contoso.test",
            "@contoso.test",
            "bobby@",
            "bobby@@contoso.test",
            "a@b@contoso.test",
            "bobby@.contoso.test",
            "bobby@contoso.test.",
        ] {
            assert_eq!(
                Upn::parse(name).unwrap().check_new(),
                Err(NotAUserName),
                "{name}"
            );
        }
    }

    #[test]
    fn empty_long_and_multi_line_upns_are_refused() {
        assert_eq!(Upn::parse("  "), Err(UpnError::Length));
        assert_eq!(Upn::parse(&"a".repeat(257)), Err(UpnError::Length));
        assert!(Upn::parse(&"a".repeat(256)).is_ok());
        // 'İ' (2 bytes) lower-cases to "i̇" (3 bytes): the stored form is bounded too.
        assert_eq!(Upn::parse(&"İ".repeat(128)), Err(UpnError::Length));
        for c in [
            '\n', '\u{202e}', '\u{200b}', '\u{feff}', '\u{ad}', '\u{e000}',
        ] {
            match Upn::parse(&format!("bob{c}@contoso.test")) {
                Err(UpnError::NotPlain(e)) => assert_eq!(e.character, c),
                other => panic!("U+{:04X}: {other:?}", u32::from(c)),
            }
        }
    }
}
