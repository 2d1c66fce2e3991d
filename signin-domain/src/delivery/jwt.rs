//! The two JSON Web Tokens the push services want: ES256 (APNs provider token) and RS256
//! (Google OAuth2 JWT-bearer grant). Compact JWS, base64url without padding (RFC 7515).
use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use serde_json::Value;

/// DER bytes of the first PEM block labelled `label` (e.g. `PRIVATE KEY`).
pub fn pem_to_der(text: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| anyhow!("no `{begin}` block"))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| anyhow!("no `{end}` line"))?
        + start;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(body.as_bytes())
        .context("PEM body is not base64")
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// An ES256 signer (P-256, SHA-256, raw `r || s` signature as JWS requires).
pub struct Es256Key(p256::ecdsa::SigningKey);

impl Es256Key {
    /// From an Apple `.p8` file (PKCS#8 PEM, `BEGIN PRIVATE KEY`).
    pub fn from_pkcs8_pem(pem: &str) -> anyhow::Result<Self> {
        use p256::pkcs8::DecodePrivateKey;
        let der = pem_to_der(pem, "PRIVATE KEY")?;
        let key = p256::SecretKey::from_pkcs8_der(&der)
            .map_err(|_| anyhow!("not a PKCS#8 P-256 private key"))?;
        Ok(Es256Key(key.into()))
    }

    /// From a PKCS#8 document (DER), e.g. the stored VAPID key.
    pub fn from_pkcs8_der(der: &[u8]) -> anyhow::Result<Self> {
        use p256::pkcs8::DecodePrivateKey;
        let key = p256::SecretKey::from_pkcs8_der(der)
            .map_err(|_| anyhow!("not a PKCS#8 P-256 private key"))?;
        Ok(Es256Key(key.into()))
    }

    /// The public key as an uncompressed SEC1 point (65 bytes).
    pub fn public_key_sec1(&self) -> Vec<u8> {
        self.0
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    pub fn sign_jwt(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let sig: p256::ecdsa::Signature = self.0.sign(input.as_bytes());
        format!("{input}.{}", b64url(&sig.to_bytes()))
    }
}

impl std::fmt::Debug for Es256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Es256Key(<redacted>)")
    }
}

/// An RS256 signer (RSASSA-PKCS1-v1_5 with SHA-256).
pub struct Rs256Key(ring::signature::RsaKeyPair);

impl Rs256Key {
    /// From a service-account `private_key` (PKCS#8 PEM, `BEGIN PRIVATE KEY`).
    pub fn from_pkcs8_pem(pem: &str) -> anyhow::Result<Self> {
        let der = pem_to_der(pem, "PRIVATE KEY")?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| anyhow!("not a PKCS#8 RSA private key: {e}"))?;
        Ok(Rs256Key(key))
    }

    pub fn sign_jwt(&self, header: &Value, claims: &Value) -> anyhow::Result<String> {
        let input = signing_input(header, claims);
        let mut sig = vec![0u8; self.0.public().modulus_len()];
        self.0
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| anyhow!("RSA signing failed"))?;
        Ok(format!("{input}.{}", b64url(&sig)))
    }
}

impl std::fmt::Debug for Rs256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rs256Key(<redacted>)")
    }
}

/// A decoded compact JWS: header, claims, the signed input and the raw signature. Used by
/// tests and the local protocol endpoints; it does not verify anything by itself.
#[derive(Debug, Clone)]
pub struct DecodedJwt {
    pub header: Value,
    pub claims: Value,
    pub signing_input: String,
    pub signature: Vec<u8>,
}

pub fn decode(token: &str) -> anyhow::Result<DecodedJwt> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("a compact JWS has three parts");
    };
    let part = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p.as_bytes())
            .context("not base64url")
    };
    let header: Value = serde_json::from_slice(&part(h)?).context("header is not JSON")?;
    let claims: Value = serde_json::from_slice(&part(c)?).context("claims are not JSON")?;
    Ok(DecodedJwt {
        header,
        claims,
        signing_input: format!("{h}.{c}"),
        signature: part(s)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn pem(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            STANDARD.encode(der)
        )
    }

    #[test]
    fn es256_tokens_verify_under_the_public_key() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let key = Es256Key::from_pkcs8_pem(&pem("PRIVATE KEY", pkcs8.as_ref())).unwrap();
        let token = key.sign_jwt(
            &serde_json::json!({"alg": "ES256", "kid": "K"}),
            &serde_json::json!({"iss": "T", "iat": 1}),
        );
        let d = decode(&token).unwrap();
        assert_eq!(d.header["kid"], "K");
        assert_eq!(d.signature.len(), 64);
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        )
        .verify(d.signing_input.as_bytes(), &d.signature)
        .unwrap();
        // A changed claim no longer verifies.
        let forged = format!(
            "{}.{}",
            b64url(br#"{"alg":"ES256","kid":"K"}"#),
            b64url(br#"{"iss":"X","iat":1}"#)
        );
        assert!(ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        )
        .verify(forged.as_bytes(), &d.signature)
        .is_err());
    }

    #[test]
    fn pem_errors_are_clear() {
        assert!(pem_to_der("nothing", "PRIVATE KEY").is_err());
        assert!(Es256Key::from_pkcs8_pem(&pem("PRIVATE KEY", b"junk")).is_err());
        assert!(Rs256Key::from_pkcs8_pem(&pem("PRIVATE KEY", b"junk")).is_err());
        assert!(decode("a.b").is_err());
    }
}
