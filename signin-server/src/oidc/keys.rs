//! ID-token signing keys, one set per algorithm: ES256 (P-256) and RS256 (RSA 2048), stored in
//! the database (`oidc_signing_keys`, PKCS#8, with their `alg`), created on first use. The
//! newest key of an algorithm signs the tokens of the clients registered for it; every stored
//! key is in the JWKS.
//!
//! RSA keys are generated with the `rsa` crate and used through `jsonwebtoken`, which signs
//! with ring: ring cannot generate RSA keys, and the `rsa` crate's private-key operations are
//! not constant-time (RUSTSEC-2023-0071), so it only ever generates.
//!
//! Rotation (docs/INTEGRATION.md): `admin oidc-key rotate` adds a new key of each algorithm
//! (or of one, `--alg`), which signs from then on; the old ones stay published so tokens they
//! signed still verify. Once those have expired (ID tokens live
//! [`super::token::ID_TOKEN_TTL_SECS`]) and relying parties have refreshed their JWKS cache,
//! `admin oidc-key remove --kid K` unpublishes one.
use anyhow::{bail, Context};
use authenticator_protocol::encoding::{b64, sha256, unb64};
use authenticator_protocol::EcdsaSigner;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use serde::Serialize;

pub use signin_domain::oidc::clients::IdTokenAlg;
use signin_domain::store::oidc::{self as store, SigningKeyRow};
use signin_domain::store::{now_ms, Pool};

/// The size of the RSA keys this provider generates.
const RSA_BITS: usize = 2048;

/// The key that signs a client's tokens now. `Debug` shows the key id and algorithm only.
pub struct SigningKey {
    pub kid: String,
    pub alg: IdTokenAlg,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A compact JWS (the key's algorithm, with `kid`) over `claims`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        self.sign_typed(None, claims)
    }

    /// A compact JWS (the key's algorithm, with `kid`) with the header's `typ` (explicit
    /// typing, RFC 8725 §3.11: a logout token says `logout+jwt`, so that it is never taken for
    /// an ID token).
    pub fn sign_typed<T: Serialize>(
        &self,
        typ: Option<&str>,
        claims: &T,
    ) -> anyhow::Result<String> {
        let mut header = Header::new(jws_alg(self.alg));
        header.kid = Some(self.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing a token")
    }
}

/// `jsonwebtoken`'s name of `alg`.
pub fn jws_alg(alg: IdTokenAlg) -> Algorithm {
    match alg {
        IdTokenAlg::Rs256 => Algorithm::RS256,
        IdTokenAlg::Es256 => Algorithm::ES256,
    }
}

/// A stored key, decoded.
enum KeyPair {
    // Both boxed: the two keys differ a lot in size and this enum lives in a cache.
    Ec(Box<EcdsaSigner>),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl KeyPair {
    fn generate(alg: IdTokenAlg) -> anyhow::Result<(KeyPair, Vec<u8>)> {
        Ok(match alg {
            IdTokenAlg::Es256 => {
                let (signer, pkcs8) =
                    EcdsaSigner::generate().context("generating an ES256 signing key")?;
                (KeyPair::Ec(Box::new(signer)), pkcs8)
            }
            IdTokenAlg::Rs256 => {
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                    .context("generating an RS256 signing key")?;
                let pkcs8 = key
                    .to_pkcs8_der()
                    .context("encoding an RS256 signing key")?
                    .as_bytes()
                    .to_vec();
                (KeyPair::Rsa(Box::new(key)), pkcs8)
            }
        })
    }

    fn from_row(row: &SigningKeyRow) -> anyhow::Result<(IdTokenAlg, Vec<u8>, KeyPair)> {
        let alg = IdTokenAlg::from_name(&row.alg).with_context(|| {
            format!("stored OIDC signing key {} has alg {:?}", row.kid, row.alg)
        })?;
        let pkcs8 = unb64("oidc signing key", &row.pkcs8).context("stored OIDC signing key")?;
        let pair = match alg {
            IdTokenAlg::Es256 => KeyPair::Ec(Box::new(
                EcdsaSigner::from_pkcs8(&pkcs8).context("stored ES256 signing key")?,
            )),
            IdTokenAlg::Rs256 => KeyPair::Rsa(Box::new(
                rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8).context("stored RS256 signing key")?,
            )),
        };
        Ok((alg, pkcs8, pair))
    }

    /// The key id: the first 16 bytes of SHA-256 of the public key (SEC1 for P-256, PKCS#1
    /// DER for RSA), base64url.
    fn kid(&self) -> anyhow::Result<String> {
        let public = match self {
            KeyPair::Ec(signer) => signer.public_key().as_bytes().to_vec(),
            KeyPair::Rsa(key) => key
                .to_public_key()
                .to_pkcs1_der()
                .context("encoding an RSA public key")?
                .into_vec(),
        };
        Ok(b64(&sha256(&public)[..16]))
    }

    fn jwk(&self, kid: &str) -> Jwk {
        let (key_algorithm, algorithm) = match self {
            KeyPair::Ec(signer) => {
                let sec1 = signer.public_key();
                let (x, y) = sec1.as_bytes()[1..].split_at(32);
                (
                    KeyAlgorithm::ES256,
                    AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                        key_type: EllipticCurveKeyType::EC,
                        curve: EllipticCurve::P256,
                        x: b64(x),
                        y: b64(y),
                    }),
                )
            }
            KeyPair::Rsa(key) => (
                KeyAlgorithm::RS256,
                AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n: b64(&key.n().to_bytes_be()),
                    e: b64(&key.e().to_bytes_be()),
                }),
            ),
        };
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(key_algorithm),
                key_id: Some(kid.to_owned()),
                ..Default::default()
            },
            algorithm,
        }
    }

    fn decoding_key(&self) -> anyhow::Result<DecodingKey> {
        match self {
            KeyPair::Ec(signer) => {
                let sec1 = signer.public_key();
                let (x, y) = sec1.as_bytes()[1..].split_at(32);
                DecodingKey::from_ec_components(&b64(x), &b64(y)).context("stored ES256 key")
            }
            KeyPair::Rsa(key) => DecodingKey::from_rsa_components(
                &b64(&key.n().to_bytes_be()),
                &b64(&key.e().to_bytes_be()),
            )
            .context("stored RS256 key"),
        }
    }
}

/// `jsonwebtoken`'s signing key for a stored key: the PKCS#8 document for P-256, the PKCS#1
/// `RSAPrivateKey` inside it for RSA (what ring reads).
fn encoding_key(alg: IdTokenAlg, pkcs8: &[u8]) -> anyhow::Result<EncodingKey> {
    Ok(match alg {
        IdTokenAlg::Es256 => EncodingKey::from_ec_der(pkcs8),
        IdTokenAlg::Rs256 => {
            let info = rsa::pkcs8::PrivateKeyInfo::try_from(pkcs8)
                .map_err(|e| anyhow::anyhow!("stored RS256 signing key: {e}"))?;
            EncodingKey::from_rsa_der(info.private_key)
        }
    })
}

/// The public key of the published key `kid` and the algorithm it is for (to verify a token
/// this provider signed, such as an `id_token_hint`); `None` when no published key has that id.
pub async fn verifying_key(
    pool: &Pool,
    kid: &str,
) -> anyhow::Result<Option<(IdTokenAlg, DecodingKey)>> {
    let keys = store::signing_keys(pool).await?;
    let Some(row) = keys.iter().find(|k| k.kid == kid) else {
        return Ok(None);
    };
    let (alg, _, pair) = KeyPair::from_row(row)?;
    Ok(Some((alg, pair.decoding_key()?)))
}

/// Creates and stores a new signing key for `alg` (it signs from now on); returns its `kid`.
pub async fn rotate(pool: &Pool, alg: IdTokenAlg) -> anyhow::Result<String> {
    // RSA generation takes a while (tens to hundreds of milliseconds): off the async threads.
    let (pair, pkcs8) = tokio::task::spawn_blocking(move || KeyPair::generate(alg))
        .await
        .context("generating a signing key")??;
    let kid = pair.kid()?;
    // Strictly newer than any stored key, so that "newest" is never a tie.
    let newest = store::signing_keys(pool)
        .await?
        .first()
        .map_or(0, |k| k.created_at);
    store::insert_signing_key(
        pool,
        &SigningKeyRow {
            kid: kid.clone(),
            alg: alg.as_str().to_owned(),
            pkcs8: b64(&pkcs8),
            created_at: now_ms().max(newest + 1),
        },
    )
    .await?;
    Ok(kid)
}

/// The key that signs `alg` tokens (the newest of that algorithm), created on first use.
pub async fn current(pool: &Pool, alg: IdTokenAlg) -> anyhow::Result<SigningKey> {
    let newest = |keys: Vec<SigningKeyRow>| keys.into_iter().find(|k| k.alg == alg.as_str());
    let row = match newest(store::signing_keys(pool).await?) {
        Some(row) => row,
        None => {
            rotate(pool, alg).await?;
            newest(store::signing_keys(pool).await?)
                .context("no OIDC signing key after creating one")?
        }
    };
    let pkcs8 = unb64("oidc signing key", &row.pkcs8).context("stored OIDC signing key")?;
    Ok(SigningKey {
        encoding: encoding_key(alg, &pkcs8)?,
        kid: row.kid,
        alg,
    })
}

/// Unpublishes a rotated-out key. The key that signs its algorithm now cannot be removed.
pub async fn remove(pool: &Pool, kid: &str) -> anyhow::Result<()> {
    let keys = store::signing_keys(pool).await?;
    let Some(row) = keys.iter().find(|k| k.kid == kid) else {
        bail!("no signing key with kid {kid}");
    };
    let signing = keys.iter().find(|k| k.alg == row.alg).map(|k| &k.kid);
    if signing == Some(&row.kid) {
        bail!("{kid} is the key that signs {} now: rotate first", row.alg);
    }
    store::delete_signing_key(pool, kid).await?;
    Ok(())
}

/// A published key as `admin oidc-key list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub kid: String,
    pub alg: String,
    pub created_at: i64,
    /// Whether it is the key that signs its algorithm now.
    pub signing: bool,
}

/// Every key, newest first.
pub async fn list(pool: &Pool) -> anyhow::Result<Vec<Listed>> {
    let mut seen = std::collections::HashSet::new();
    Ok(store::signing_keys(pool)
        .await?
        .into_iter()
        .map(|k| Listed {
            signing: seen.insert(k.alg.clone()),
            kid: k.kid,
            alg: k.alg,
            created_at: k.created_at,
        })
        .collect())
}

/// Every stored key as a public JWK (`use` sig, `kid`, `alg`; `kty` EC with `crv` P-256, or
/// `kty` RSA with `n` and `e`).
pub async fn jwks(pool: &Pool) -> anyhow::Result<JwkSet> {
    // Make sure there is a key of each algorithm to publish before any token is signed.
    for alg in IdTokenAlg::ALL {
        current(pool, alg).await?;
    }
    let mut keys = Vec::new();
    for row in store::signing_keys(pool).await? {
        let (_, _, pair) = KeyPair::from_row(&row)?;
        keys.push(pair.jwk(&row.kid));
    }
    Ok(JwkSet { keys })
}

/// `signin-server admin oidc-key ...`
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// The published keys, newest (the one that signs) first.
    List,
    /// A new signing key of each algorithm (or of `--alg`): it signs from now on; the old
    /// ones stay published.
    Rotate {
        /// Only this algorithm's key (RS256 or ES256).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<IdTokenAlg>,
    },
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
            for key in list(pool).await? {
                let role = if key.signing { "signing" } else { "published" };
                println!(
                    "{} {} {} {role}",
                    key.kid,
                    key.alg,
                    signin_domain::format::rfc3339(key.created_at)
                );
            }
        }
        AdminCommand::Rotate { alg } => {
            let algs = alg.map_or(IdTokenAlg::ALL.to_vec(), |a| vec![a]);
            for alg in algs {
                let kid = rotate(pool, alg).await?;
                println!("new {alg} signing key {kid}");
            }
        }
        AdminCommand::Remove { kid } => {
            remove(pool, kid.trim()).await?;
            println!("removed key {}", kid.trim());
        }
    }
    Ok(())
}

fn parse_alg(name: &str) -> Result<IdTokenAlg, String> {
    IdTokenAlg::from_name(&name.to_ascii_uppercase())
        .ok_or_else(|| format!("{name:?} is not an ID-token algorithm: RS256 or ES256"))
}
