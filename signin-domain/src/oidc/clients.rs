//! OpenID Connect clients: registered applications with redirect URIs.
//!
//! `admin app add --name N --redirect-uri U [--redirect-uri U2] [--public]
//! [--refresh-lifetime-secs S] [--refresh-idle-secs S]` registers one.
//! A confidential client gets a secret (printed once, stored as SHA-256 like every
//! application's) and authenticates at the token endpoint with `client_secret_basic` or
//! `client_secret_post`; a public client (a native or browser app) has no secret
//! (`token_endpoint_auth_method` `none`) and must use PKCE with S256. Redirect URIs are
//! matched exactly (no prefix, no wildcard) and must be `https`, or `http` on a loopback
//! address (RFC 8252 §7.3), without a fragment. A CIBA ping endpoint, which the server itself
//! calls, is held to the outbound policy instead ([`PingEndpoint`]).
//!
//! Sign-out (OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0):
//! `--post-logout-redirect-uri U` (repeatable; the same rules as redirect URIs, matched exactly)
//! is where the end-session endpoint may send a browser back; `--backchannel-logout-uri U` is
//! where the server POSTs a logout token when a session the client got tokens from ends, held to
//! the outbound policy like a ping endpoint ([`BackchannelLogoutUri`]).
use std::fmt;

use anyhow::bail;
use authenticator_protocol::encoding::{b64, ct_eq, sha256, unb64_fixed};
use authenticator_protocol::text;

use crate::accounts::applications::{check_name, Application, Registered};
use crate::audit::{self, Event};
use crate::outbound::{OutboundError, OutboundPolicy};
use crate::random::random_bytes;
use crate::store::oidc::{self as store, ClientRow};
use crate::store::{now_ms, Pool, StoreResult};

/// At most this many redirect URIs per client.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;

/// Refresh token lifetime of a client, when none is given: 30 days from the sign-in.
pub const DEFAULT_REFRESH_LIFETIME_SECS: u64 = 30 * 24 * 3600;
/// The longest refresh token lifetime (and idle limit) a client may have: one year.
pub const MAX_REFRESH_LIFETIME_SECS: u64 = 365 * 24 * 3600;

/// How long a client's refresh tokens live: a family (the refresh tokens one sign-in gave,
/// each replacing the one before) ends `lifetime_secs` after its sign-in however often it is
/// used, and a token unused for `idle_secs` ends too. With `lifetime_secs` 0 the client gets
/// no refresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLifetimes {
    lifetime_secs: u64,
    idle_secs: Option<u64>,
}

impl Default for RefreshLifetimes {
    fn default() -> Self {
        RefreshLifetimes {
            lifetime_secs: DEFAULT_REFRESH_LIFETIME_SECS,
            idle_secs: None,
        }
    }
}

impl RefreshLifetimes {
    /// Checks the lifetimes an administrator gives: at most [`MAX_REFRESH_LIFETIME_SECS`], and
    /// an idle limit between 1 s and the lifetime (none without refresh tokens).
    pub fn new(lifetime_secs: u64, idle_secs: Option<u64>) -> anyhow::Result<Self> {
        if lifetime_secs > MAX_REFRESH_LIFETIME_SECS {
            bail!("--refresh-lifetime-secs must be at most {MAX_REFRESH_LIFETIME_SECS} (a year)");
        }
        match idle_secs {
            Some(_) if lifetime_secs == 0 => {
                bail!("--refresh-idle-secs needs refresh tokens (--refresh-lifetime-secs above 0)")
            }
            Some(idle) if idle == 0 || idle > lifetime_secs => {
                bail!("--refresh-idle-secs must be between 1 and --refresh-lifetime-secs")
            }
            _ => {}
        }
        Ok(RefreshLifetimes {
            lifetime_secs,
            idle_secs,
        })
    }

    /// Whether the client gets refresh tokens at all.
    pub fn issued(&self) -> bool {
        self.lifetime_secs > 0
    }

    /// Seconds from the sign-in to the end of a family.
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }

    /// Seconds a token may go unused, if limited.
    pub fn idle_secs(&self) -> Option<u64> {
        self.idle_secs
    }

    /// [`Self::lifetime_secs`] in milliseconds, as stored times are.
    pub fn lifetime_ms(&self) -> i64 {
        secs_to_ms(self.lifetime_secs)
    }

    /// [`Self::idle_secs`] in milliseconds.
    pub fn idle_ms(&self) -> Option<i64> {
        self.idle_secs.map(secs_to_ms)
    }

    /// As stored: a row written by hand (negative or out of range) counts as the nearest
    /// allowed value, never as a longer lifetime.
    fn from_row(lifetime_secs: i64, idle_secs: Option<i64>) -> Self {
        let clamp = |v: i64| u64::try_from(v).unwrap_or(0).min(MAX_REFRESH_LIFETIME_SECS);
        let lifetime_secs = clamp(lifetime_secs);
        RefreshLifetimes {
            lifetime_secs,
            idle_secs: idle_secs.map(|i| clamp(i).clamp(1, lifetime_secs.max(1))),
        }
    }
}

/// At most [`MAX_REFRESH_LIFETIME_SECS`] (every constructor clamps to it), so no overflow.
fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.min(MAX_REFRESH_LIFETIME_SECS)).unwrap_or(0) * 1000
}

impl fmt::Display for RefreshLifetimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.issued() {
            return f.write_str("no refresh tokens");
        }
        write!(f, "refresh tokens {} s", self.lifetime_secs)?;
        if let Some(idle) = self.idle_secs {
            write!(f, " (idle {idle} s)")?;
        }
        Ok(())
    }
}

/// A registered OpenID Connect client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub application: Application,
    pub redirect_uris: Vec<String>,
    /// No secret: PKCE (S256) is required, and it cannot use CIBA or the JSON API.
    pub public: bool,
    /// CIBA ping mode: where the server POSTs `{"auth_req_id"}` when a request is decided.
    pub ciba_notification_endpoint: Option<String>,
    /// Its refresh tokens' lifetimes (for the `offline_access` scope).
    pub refresh: RefreshLifetimes,
    /// Where the end-session endpoint may send a browser back (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-Channel Logout: where the server POSTs a logout token.
    pub backchannel_logout_uri: Option<String>,
    /// How its ID tokens and logout tokens are signed.
    pub id_token_alg: IdTokenAlg,
    secret_hash: Option<String>,
}

/// URIs stored one per line.
fn lines_of(stored: Option<&str>) -> Vec<String> {
    stored
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Client {
    fn from_row(r: ClientRow) -> Option<Client> {
        let redirect_uris = lines_of(Some(r.redirect_uris.as_deref()?));
        Some(Client {
            application: Application {
                client_id: r.client_id,
                name: r.name,
                builtin: r.builtin != 0,
            },
            redirect_uris,
            public: r.public_client != 0,
            ciba_notification_endpoint: r.ciba_notification_endpoint,
            refresh: RefreshLifetimes::from_row(r.refresh_lifetime_secs, r.refresh_idle_secs),
            post_logout_redirect_uris: lines_of(r.post_logout_redirect_uris.as_deref()),
            backchannel_logout_uri: r.backchannel_logout_uri,
            // Only `add_with_options` writes the column; a name it never writes fails closed
            // (no such client) rather than signing with an algorithm the client does not expect.
            id_token_alg: IdTokenAlg::from_name(&r.id_token_alg)?,
            secret_hash: r.secret_hash,
        })
    }

    pub fn client_id(&self) -> &str {
        &self.application.client_id
    }

    /// Exact, code-point-for-code-point match (OpenID Connect Core §3.1.2.1).
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    /// Exact match against the registered post-logout redirect URIs (RP-Initiated Logout §3).
    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether `secret` is this confidential client's secret (constant time).
    pub fn secret_matches(&self, secret: &str) -> bool {
        let presented = sha256(secret.as_bytes());
        let Some(stored) = self.secret_hash.as_deref() else {
            return false;
        };
        match unb64_fixed::<32>("secret_hash", stored) {
            Ok(stored) => ct_eq(&stored, &presented),
            Err(_) => false,
        }
    }
}

/// What `admin app list` prints for an application: its line, then for a client its type,
/// redirect URIs and CIBA mode.
pub struct Listed {
    pub application: Application,
    pub client: Option<Client>,
}

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.application)?;
        if let Some(c) = &self.client {
            let kind = if c.public { "public" } else { "confidential" };
            write!(f, " (OpenID Connect client, {kind}")?;
            for uri in &c.redirect_uris {
                write!(f, ", redirect_uri {}", text::escape(uri))?;
            }
            if let Some(ep) = &c.ciba_notification_endpoint {
                write!(f, ", CIBA ping to {}", text::escape(ep))?;
            }
            for uri in &c.post_logout_redirect_uris {
                write!(f, ", post_logout_redirect_uri {}", text::escape(uri))?;
            }
            if let Some(uri) = &c.backchannel_logout_uri {
                write!(f, ", back-channel logout to {}", text::escape(uri))?;
            }
            write!(f, ", {}, ID tokens {})", c.refresh, c.id_token_alg)?;
        }
        Ok(())
    }
}

/// A redirect URI as registered: absolute, `https` (or `http` on a loopback address), no
/// fragment, no user info.
pub fn check_redirect_uri(uri: &str) -> anyhow::Result<String> {
    check_browser_uri("--redirect-uri", uri)
}

/// A post-logout redirect URI as registered: the rules of [`check_redirect_uri`].
pub fn check_post_logout_redirect_uri(uri: &str) -> anyhow::Result<String> {
    check_browser_uri("--post-logout-redirect-uri", uri)
}

/// A URI a browser is sent to (`flag` names it in errors).
fn check_browser_uri(flag: &str, uri: &str) -> anyhow::Result<String> {
    if uri.is_empty() || uri.len() > MAX_REDIRECT_URI_LEN || uri.trim() != uri {
        bail!("{flag} must be 1 to {MAX_REDIRECT_URI_LEN} characters without spaces around it");
    }
    let parsed = url::Url::parse(uri).map_err(|e| anyhow::anyhow!("{flag} {uri:?}: {e}"))?;
    if parsed.fragment().is_some() {
        bail!("{flag} must not have a fragment (#...)");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        bail!("{flag} must not carry user info");
    }
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => {}
        "http" if loopback => {}
        _ => bail!("{flag} must be https (or http on a loopback address): {uri:?}"),
    }
    Ok(uri.to_owned())
}

/// A URL the server itself calls on a client's say-so, checked under `outbound` at
/// registration (`flag` names it in errors; the cause is the [`OutboundError`]).
fn check_outbound_uri(flag: &str, uri: &str, outbound: &OutboundPolicy) -> anyhow::Result<()> {
    if uri.is_empty() || uri.len() > MAX_REDIRECT_URI_LEN || uri.trim() != uri {
        bail!("{flag} must be 1 to {MAX_REDIRECT_URI_LEN} characters without spaces around it");
    }
    let url = outbound
        .parse_url(uri)
        .map_err(|e: OutboundError| anyhow::Error::new(e).context(format!("{flag} is refused")))?;
    if url.fragment().is_some() {
        bail!("{flag} must not have a fragment (#...)");
    }
    Ok(())
}

/// A CIBA ping notification endpoint the outbound policy accepted at registration: https
/// to a host that is not an internal address (plain http to a loopback address only under the
/// development setting). The server POSTs to it on the client's say-so, so every ping checks
/// it again, with the addresses its name resolves to then (`crate::outbound`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingEndpoint(String);

impl PingEndpoint {
    /// Checks `uri` under `outbound`; the error says which rule refused it (its cause is the
    /// [`OutboundError`]).
    pub fn parse(uri: &str, outbound: &OutboundPolicy) -> anyhow::Result<Self> {
        check_outbound_uri("--ciba-ping-endpoint", uri, outbound)?;
        Ok(PingEndpoint(uri.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Back-Channel Logout URI the outbound policy accepted at registration: the server POSTs
/// logout tokens to it, so, like a [`PingEndpoint`], it is https to a host that is not an
/// internal address (plain http to a loopback address only under the development setting),
/// and every delivery checks it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelLogoutUri(String);

impl BackchannelLogoutUri {
    /// Checks `uri` under `outbound`; the error says which rule refused it.
    pub fn parse(uri: &str, outbound: &OutboundPolicy) -> anyhow::Result<Self> {
        check_outbound_uri("--backchannel-logout-uri", uri, outbound)?;
        Ok(BackchannelLogoutUri(uri.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a client registers beyond its redirect URIs: sign-out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logout {
    /// Where the end-session endpoint may send the browser back (checked like redirect URIs).
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<BackchannelLogoutUri>,
}

/// The JWS algorithm of a client's ID tokens and logout tokens (`id_token_signed_response_alg`).
/// [`IdTokenAlg::Rs256`] is the default, as OpenID Connect Dynamic Client Registration §2 has it
/// for a client that names none; `ES256` (P-256, smaller and faster) for clients that ask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IdTokenAlg {
    #[default]
    Rs256,
    Es256,
}

impl IdTokenAlg {
    /// Every algorithm the provider signs with, as discovery lists them (RS256 first: the
    /// default).
    pub const ALL: [IdTokenAlg; 2] = [IdTokenAlg::Rs256, IdTokenAlg::Es256];

    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenAlg::Rs256 => "RS256",
            IdTokenAlg::Es256 => "ES256",
        }
    }

    /// The algorithm named `alg` (exactly as JWS spells it); `None` for any other.
    pub fn from_name(alg: &str) -> Option<IdTokenAlg> {
        IdTokenAlg::ALL.into_iter().find(|a| a.as_str() == alg)
    }
}

impl fmt::Display for IdTokenAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client registers beyond its redirect URIs, public flag and CIBA ping endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    pub refresh: RefreshLifetimes,
    pub logout: Logout,
    pub id_token_alg: IdTokenAlg,
}

/// Registers an OpenID Connect client with the default refresh token lifetimes and no
/// sign-out settings. A public client gets no secret.
pub async fn add(
    pool: &Pool,
    name: &str,
    redirect_uris: &[String],
    public: bool,
    ciba_ping_endpoint: Option<&PingEndpoint>,
) -> anyhow::Result<Registered> {
    add_with_options(
        pool,
        name,
        redirect_uris,
        public,
        ciba_ping_endpoint,
        &ClientOptions::default(),
    )
    .await
}

/// `uris` checked by `check` (at most [`MAX_REDIRECT_URIS`], duplicates dropped).
fn checked_uris(
    flag: &str,
    uris: &[String],
    check: fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Vec<String>> {
    if uris.len() > MAX_REDIRECT_URIS {
        bail!("at most {MAX_REDIRECT_URIS} {flag}");
    }
    let mut checked = Vec::new();
    for u in uris {
        let u = check(u)?;
        if !checked.contains(&u) {
            checked.push(u);
        }
    }
    Ok(checked)
}

/// Registers an OpenID Connect client whose refresh tokens live `refresh`.
pub async fn add_with_refresh(
    pool: &Pool,
    name: &str,
    redirect_uris: &[String],
    public: bool,
    ciba_ping_endpoint: Option<&PingEndpoint>,
    refresh: RefreshLifetimes,
) -> anyhow::Result<Registered> {
    let options = ClientOptions {
        refresh,
        ..ClientOptions::default()
    };
    add_with_options(
        pool,
        name,
        redirect_uris,
        public,
        ciba_ping_endpoint,
        &options,
    )
    .await
}

/// Registers an OpenID Connect client with its sign-out settings ([`Logout`]).
pub async fn add_with_logout(
    pool: &Pool,
    name: &str,
    redirect_uris: &[String],
    public: bool,
    ciba_ping_endpoint: Option<&PingEndpoint>,
    logout: &Logout,
) -> anyhow::Result<Registered> {
    let options = ClientOptions {
        logout: logout.clone(),
        ..ClientOptions::default()
    };
    add_with_options(
        pool,
        name,
        redirect_uris,
        public,
        ciba_ping_endpoint,
        &options,
    )
    .await
}

/// Registers an OpenID Connect client with its refresh token lifetimes, sign-out settings and
/// ID-token algorithm ([`ClientOptions`]).
pub async fn add_with_options(
    pool: &Pool,
    name: &str,
    redirect_uris: &[String],
    public: bool,
    ciba_ping_endpoint: Option<&PingEndpoint>,
    options: &ClientOptions,
) -> anyhow::Result<Registered> {
    let ClientOptions {
        refresh,
        logout,
        id_token_alg,
    } = options;
    let name = check_name(name)?;
    if redirect_uris.is_empty() {
        bail!("an OpenID Connect client needs at least one --redirect-uri");
    }
    let uris = checked_uris("--redirect-uri", redirect_uris, check_redirect_uri)?;
    let post_logout = checked_uris(
        "--post-logout-redirect-uri",
        &logout.post_logout_redirect_uris,
        check_post_logout_redirect_uri,
    )?;
    if public && ciba_ping_endpoint.is_some() {
        bail!("CIBA needs a confidential client: --ciba-ping-endpoint cannot go with --public");
    }
    let ping = ciba_ping_endpoint.map(|p| p.as_str().to_owned());
    let client_id = format!("app-{}", b64(&random_bytes::<12>()?));
    let secret = (!public)
        .then(|| random_bytes::<32>().map(|b| b64(&b)))
        .transpose()?;
    let row = ClientRow {
        client_id: client_id.clone(),
        name: name.to_owned(),
        secret_hash: secret.as_ref().map(|s| b64(&sha256(s.as_bytes()))),
        builtin: 0,
        redirect_uris: Some(uris.join("\n")),
        public_client: i64::from(public),
        ciba_notification_endpoint: ping,
        created_at: now_ms(),
        refresh_lifetime_secs: i64::try_from(refresh.lifetime_secs).unwrap_or(i64::MAX),
        refresh_idle_secs: refresh
            .idle_secs
            .map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
        post_logout_redirect_uris: (!post_logout.is_empty()).then(|| post_logout.join("\n")),
        backchannel_logout_uri: logout
            .backchannel_logout_uri
            .as_ref()
            .map(|u| u.as_str().to_owned()),
        id_token_alg: id_token_alg.as_str().to_owned(),
    };
    if !store::insert_client(pool, &row).await? {
        bail!("an application named {:?} is already registered", name);
    }
    let outcome = format!(
        "client_id={client_id} oidc={} id_token_alg={id_token_alg} refresh_lifetime_secs={}{}",
        if public { "public" } else { "confidential" },
        refresh.lifetime_secs,
        refresh
            .idle_secs
            .map(|i| format!(" refresh_idle_secs={i}"))
            .unwrap_or_default()
    );
    audit::record(
        pool,
        Event::ApplicationAdded,
        audit::Entry {
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(Registered {
        client_id,
        client_secret: secret.unwrap_or_default(),
    })
}

/// The OpenID Connect client `client_id`, if it is one.
pub async fn find(pool: &Pool, client_id: &str) -> StoreResult<Option<Client>> {
    if client_id.is_empty() || client_id.len() > 128 {
        return Ok(None);
    }
    Ok(store::find_client(pool, client_id)
        .await?
        .and_then(Client::from_row))
}

/// The origins (`scheme://host[:port]`) of every public client's registered redirect URIs:
/// the single-page applications whose scripts may call the token, userinfo and revocation
/// endpoints from the browser (CORS).
pub async fn public_client_origins(pool: &Pool) -> StoreResult<Vec<String>> {
    let mut origins: Vec<String> = store::all_clients(pool)
        .await?
        .into_iter()
        .filter_map(Client::from_row)
        .filter(|c| c.public)
        .flat_map(|c| c.redirect_uris)
        .filter_map(|uri| url::Url::parse(&uri).ok())
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null")
        .collect();
    origins.sort();
    origins.dedup();
    Ok(origins)
}

/// Every application, with the OpenID Connect details of those that are clients.
pub async fn list(pool: &Pool) -> anyhow::Result<Vec<Listed>> {
    Ok(store::all_clients(pool)
        .await?
        .into_iter()
        .map(|r| {
            let application = Application {
                client_id: r.client_id.clone(),
                name: r.name.clone(),
                builtin: r.builtin != 0,
            };
            Listed {
                application,
                client: Client::from_row(r),
            }
        })
        .collect())
}
