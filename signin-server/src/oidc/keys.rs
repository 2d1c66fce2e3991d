//! ID-token signing keys: ES256 (P-256), stored in the database (`oidc_signing_keys`, PKCS#8),
//! created on first use. The newest key signs; every stored key is in the JWKS.
//!
//! Rotation (docs/INTEGRATION.md): `admin oidc-key rotate` adds a new key, which signs from
//! then on; the old one stays published so tokens it signed still verify. Once those have
//! expired (ID tokens live [`super::token::ID_TOKEN_TTL_SECS`]) and relying parties have
//! refreshed their JWKS cache, `admin oidc-key remove --kid K` unpublishes it.
use anyhow::{bail, Context};
use authenticator_protocol::encoding::{b64, sha256, unb64};
use authenticator_protocol::EcdsaSigner;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

use signin_domain::store::oidc::{self as store, SigningKeyRow};
use signin_domain::store::{now_ms, Pool};

/// The key that signs ID tokens now. `Debug` shows the key id only.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A compact JWS (ES256, with `kid`) over `claims`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        self.sign_typed(None, claims)
    }

    /// A compact JWS (ES256, with `kid`) with the header's `typ` (explicit typing, RFC 8725
    /// §3.11: a logout token says `logout+jwt`, so that it is never taken for an ID token).
    pub fn sign_typed<T: Serialize>(
        &self,
        typ: Option<&str>,
        claims: &T,
    ) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing a token")
    }
}

/// The public key of the published key `kid` (to verify a token this provider signed, such as
/// an `id_token_hint`); `None` when no published key has that id.
pub async fn verifying_key(pool: &Pool, kid: &str) -> anyhow::Result<Option<DecodingKey>> {
    let keys = store::signing_keys(pool).await?;
    let Some(row) = keys.iter().find(|k| k.kid == kid) else {
        return Ok(None);
    };
    let sec1 = signer_of(row)?.public_key();
    let (x, y) = sec1.as_bytes()[1..].split_at(32);
    Ok(Some(
        DecodingKey::from_ec_components(&b64(x), &b64(y)).context("stored OIDC signing key")?,
    ))
}

/// The key id: the first 16 bytes of SHA-256 of the public key (SEC1), base64url.
fn kid_of(signer: &EcdsaSigner) -> String {
    b64(&sha256(signer.public_key().as_bytes())[..16])
}

fn signer_of(row: &SigningKeyRow) -> anyhow::Result<EcdsaSigner> {
    let pkcs8 = unb64("oidc signing key", &row.pkcs8).context("stored OIDC signing key")?;
    EcdsaSigner::from_pkcs8(&pkcs8).context("stored OIDC signing key")
}

/// Creates and stores a new signing key (it signs from now on); returns its `kid`.
pub async fn rotate(pool: &Pool) -> anyhow::Result<String> {
    let (signer, pkcs8) = EcdsaSigner::generate().context("generating an OIDC signing key")?;
    let kid = kid_of(&signer);
    // Strictly newer than any stored key, so that "newest" is never a tie.
    let newest = store::signing_keys(pool)
        .await?
        .first()
        .map_or(0, |k| k.created_at);
    store::insert_signing_key(
        pool,
        &SigningKeyRow {
            kid: kid.clone(),
            pkcs8: b64(&pkcs8),
            created_at: now_ms().max(newest + 1),
        },
    )
    .await?;
    Ok(kid)
}

/// The key that signs (the newest), created on first use.
pub async fn current(pool: &Pool) -> anyhow::Result<SigningKey> {
    let mut keys = store::signing_keys(pool).await?;
    if keys.is_empty() {
        rotate(pool).await?;
        keys = store::signing_keys(pool).await?;
    }
    let row = keys
        .first()
        .context("no OIDC signing key after creating one")?;
    let pkcs8 = unb64("oidc signing key", &row.pkcs8).context("stored OIDC signing key")?;
    Ok(SigningKey {
        kid: row.kid.clone(),
        encoding: EncodingKey::from_ec_der(&pkcs8),
    })
}

/// Unpublishes a rotated-out key. The signing (newest) key cannot be removed.
pub async fn remove(pool: &Pool, kid: &str) -> anyhow::Result<()> {
    let keys = store::signing_keys(pool).await?;
    match keys.iter().position(|k| k.kid == kid) {
        None => bail!("no signing key with kid {kid}"),
        Some(0) => bail!("{kid} is the key that signs now: rotate first"),
        Some(_) => {
            store::delete_signing_key(pool, kid).await?;
            Ok(())
        }
    }
}

/// `kid` and creation time of every key, newest (the signing one) first.
pub async fn list(pool: &Pool) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(store::signing_keys(pool)
        .await?
        .into_iter()
        .map(|k| (k.kid, k.created_at))
        .collect())
}

/// Every stored key as a public JWK (`kty` EC, `crv` P-256, `alg` ES256, `use` sig, `kid`).
pub async fn jwks(pool: &Pool) -> anyhow::Result<JwkSet> {
    // Make sure there is a key to publish before any token is signed.
    current(pool).await?;
    let mut keys = Vec::new();
    for row in store::signing_keys(pool).await? {
        let signer = signer_of(&row)?;
        let sec1 = signer.public_key();
        let (x, y) = sec1.as_bytes()[1..].split_at(32);
        keys.push(Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::ES256),
                key_id: Some(row.kid.clone()),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: b64(x),
                y: b64(y),
            }),
        });
    }
    Ok(JwkSet { keys })
}

/// `signin-server admin oidc-key ...`
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// The published keys, newest (the one that signs) first.
    List,
    /// A new signing key: it signs from now on; the old ones stay published.
    Rotate,
    /// Unpublish a rotated-out key (after the tokens it signed have expired).
    Remove {
        /// Key ids are base64url: one may start with `-`.
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
    },
}

pub async fn run_admin(pool: &Pool, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::List => {
            for (i, (kid, created_at)) in list(pool).await?.into_iter().enumerate() {
                let role = if i == 0 { "signing" } else { "published" };
                println!(
                    "{kid} {} {role}",
                    signin_domain::format::rfc3339(created_at)
                );
            }
        }
        AdminCommand::Rotate => {
            let kid = rotate(pool).await?;
            println!("new signing key {kid}");
        }
        AdminCommand::Remove { kid } => {
            remove(pool, kid.trim()).await?;
            println!("removed key {}", kid.trim());
        }
    }
    Ok(())
}
