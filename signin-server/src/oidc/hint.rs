//! `id_token_hint` (OpenID Connect Core §3.1.2.1, RP-Initiated Logout 1.0 §2): an ID token this
//! provider issued, handed back by a client to name the user it means. The hint is checked as
//! the provider's own token: signed by a key this provider publishes, with the algorithm that
//! key is for (RS256 or ES256), issued by this issuer, an ID token (not a logout token). Its expiry is **not** checked: both specifications
//! let a client send an expired ID token as a hint (it names a user; it grants nothing).
use std::collections::HashSet;

use jsonwebtoken::Validation;
use serde_json::Value;

use super::OAuthError;
use signin_domain::store::Pool;

/// Longest hint accepted (an ID token of this provider is well under 2 KiB).
const MAX_HINT_LEN: usize = 8 * 1024;

/// Why a hint is not an ID token of this provider. The text is static; it never repeats the
/// token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HintError {
    #[error("not a compact JWS with a key id, signed with the algorithm of that key")]
    Malformed,
    #[error("signed with a key this provider does not publish")]
    UnknownKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("issued by another issuer")]
    OtherIssuer,
    #[error("issued to another client")]
    OtherAudience,
    /// Explicitly typed as something else (a logout token) or carrying a logout event.
    #[error("not an ID token")]
    NotAnIdToken,
}

/// What a valid hint says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub sub: String,
    /// The clients it was issued to (`aud`).
    pub aud: Vec<String>,
    pub sid: Option<String>,
}

impl Hint {
    pub fn is_for(&self, client_id: &str) -> bool {
        self.aud.iter().any(|a| a == client_id)
    }
}

/// Checks `token` as an ID token of issuer `iss` (see the module). The outer error is a fault
/// of the server (the keys could not be read); the inner one, why the hint is refused.
pub async fn verify(
    pool: &Pool,
    iss: &str,
    token: &str,
) -> Result<Result<Hint, HintError>, OAuthError> {
    if token.len() > MAX_HINT_LEN {
        return Ok(Err(HintError::Malformed));
    }
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return Ok(Err(HintError::Malformed));
    };
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Ok(Err(HintError::NotAnIdToken));
    }
    let Some(kid) = header.kid.as_deref() else {
        return Ok(Err(HintError::Malformed));
    };
    let Some((alg, key)) = super::keys::verifying_key(pool, kid)
        .await
        .map_err(OAuthError::Internal)?
    else {
        return Ok(Err(HintError::UnknownKey));
    };
    // The header's `alg` must be the one the named key is for: no algorithm confusion.
    if header.alg != super::keys::jws_alg(alg) {
        return Ok(Err(HintError::Malformed));
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let claims = match jsonwebtoken::decode::<Value>(token, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Ok(Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => HintError::BadSignature,
                _ => HintError::Malformed,
            }))
        }
    };
    Ok(read_claims(&claims, iss))
}

/// The claims of a hint whose signature verified.
fn read_claims(claims: &Value, iss: &str) -> Result<Hint, HintError> {
    if claims.get("iss").and_then(Value::as_str) != Some(iss) {
        return Err(HintError::OtherIssuer);
    }
    if claims.get("events").is_some() {
        return Err(HintError::NotAnIdToken);
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(HintError::Malformed)?;
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(HintError::Malformed)?,
        _ => return Err(HintError::Malformed),
    };
    if aud.is_empty() {
        return Err(HintError::Malformed);
    }
    Ok(Hint {
        sub: sub.to_owned(),
        aud,
        sid: claims.get("sid").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://signin.contoso.test";

    #[test]
    fn claims_must_name_this_issuer_a_subject_and_an_audience_and_no_logout_event() {
        let ok = json!({"iss": ISS, "sub": "s1", "aud": "app-1", "sid": "x", "exp": 1});
        assert_eq!(
            read_claims(&ok, ISS),
            Ok(Hint {
                sub: "s1".into(),
                aud: vec!["app-1".into()],
                sid: Some("x".into())
            })
        );
        let many = json!({"iss": ISS, "sub": "s1", "aud": ["a", "b"]});
        assert!(read_claims(&many, ISS).unwrap().is_for("b"));
        for (claims, want) in [
            (
                json!({"iss": "https://other.test", "sub": "s", "aud": "a"}),
                HintError::OtherIssuer,
            ),
            (json!({"sub": "s", "aud": "a"}), HintError::OtherIssuer),
            (json!({"iss": ISS, "aud": "a"}), HintError::Malformed),
            (json!({"iss": ISS, "sub": "s"}), HintError::Malformed),
            (
                json!({"iss": ISS, "sub": "s", "aud": []}),
                HintError::Malformed,
            ),
            (
                json!({"iss": ISS, "sub": "s", "aud": [1]}),
                HintError::Malformed,
            ),
            (
                json!({"iss": ISS, "sub": "s", "aud": "a", "events": {}}),
                HintError::NotAnIdToken,
            ),
        ] {
            assert_eq!(read_claims(&claims, ISS), Err(want), "{claims}");
        }
    }
}
