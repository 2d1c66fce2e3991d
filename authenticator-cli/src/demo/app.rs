//! Contoso Notes, the demo's sample application: a small web app that signs its users in
//! through the sign-in server as an OpenID Provider (docs/INTEGRATION.md). It is the template
//! for connecting an application: a confidential client on the `openidconnect` crate, which
//! does the protocol and every JOSE check; the app only keeps its logins and sessions.
//!
//! - At start: discovery (`/.well-known/openid-configuration`, and the JWKS it names).
//! - `GET /`: who is signed in, or a link to sign in.
//! - `GET /login`: a new login, with PKCE (S256), `state` and `nonce` kept in the app under a
//!   random id that only this browser holds (an HttpOnly cookie); redirect to the provider's
//!   authorization endpoint.
//! - `GET /callback`: that login (once), `state` and `iss` (RFC 9207) checked against it; the
//!   code exchanged at the token endpoint (`client_secret_basic`, with the PKCE verifier); the
//!   ID token validated (RS256 signature against the JWKS, issuer, audience, expiry, nonce,
//!   `at_hash`); userinfo read; the app's own session started; redirect home.
//!
//! Nothing here logs or shows a code, a token or the client secret. The cookies are plain
//! `HttpOnly; SameSite=Lax` because the demo runs on loopback http; an app served over https
//! names them `__Host-…` and adds `Secure`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use axum::extract::{Query, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The name the administrator registers, and so the name the phone shows.
pub const NAME: &str = "Contoso Notes";
/// The app's redirect URI path (registered exactly, with the app's loopback origin).
pub const CALLBACK_PATH: &str = "/callback";
/// The cookie naming this browser's login in progress.
const LOGIN_COOKIE: &str = "notes_login";
/// The cookie of the app's own session once signed in.
const SESSION_COOKIE: &str = "notes_session";
/// A login not finished within this time is forgotten (the provider's own limit is similar).
const LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
/// At most this many logins in progress are kept (the oldest go first).
const MAX_LOGINS: usize = 1000;

/// The client as discovery configures it: authorization endpoint set, token and userinfo
/// endpoints as the provider's metadata gives them.
type NotesClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What the app knows about a user once they signed in: the validated ID token's claims and
/// userinfo.
#[derive(Debug, Clone)]
pub struct SignedInUser {
    /// The ID token's `sub`: the provider's opaque, stable id for the user.
    pub sub: String,
    /// Userinfo `name` (scope `profile`).
    pub name: Option<String>,
    /// Userinfo `preferred_username`: the UPN.
    pub preferred_username: Option<String>,
    /// The ID token's `amr` (RFC 8176).
    pub amr: Vec<String>,
    /// The ID token's `acr`.
    pub acr: Option<String>,
    /// The ID token's `auth_time`, RFC 3339.
    pub auth_time: Option<String>,
    /// Whether the ID token carried `at_hash` (then it matched the access token).
    pub at_hash_checked: bool,
}

/// How the app is registered with the provider. The secret never leaves the app except to
/// the token endpoint (HTTP Basic).
pub struct Registration {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: ClientSecret,
}

/// The app's port, bound before the client is registered: the redirect URI names it.
pub struct Bound {
    listener: TcpListener,
    pub url: String,
}

impl Bound {
    /// The redirect URI to register for this app (exactly this string).
    pub fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.url)
    }
}

/// Binds a loopback port for the app.
pub async fn bind() -> Result<Bound> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("the sample app cannot bind a loopback port")?;
    let addr = listener.local_addr()?;
    Ok(Bound {
        listener,
        url: format!("http://{addr}"),
    })
}

/// The running app.
pub struct SampleApp {
    pub url: String,
    /// What discovery found (for the demo to show).
    pub discovered: Discovered,
    /// Each finished sign-in (or why the callback refused it), as the app saw it.
    signed_in: mpsc::Receiver<Result<SignedInUser, String>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The provider metadata the app relies on.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub jwks_keys: usize,
}

/// Discovers the provider and starts serving the app on its bound port.
pub async fn start(bound: Bound, registration: Registration) -> Result<SampleApp> {
    // No redirects: the app talks to the provider's endpoints only (discovery says which).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let issuer = IssuerUrl::new(registration.issuer.clone()).context("the issuer URL")?;
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .context("OpenID Connect discovery failed")?;
    let discovered = Discovered {
        issuer: metadata.issuer().to_string(),
        authorization_endpoint: metadata.authorization_endpoint().to_string(),
        token_endpoint: metadata
            .token_endpoint()
            .map(|u| u.to_string())
            .unwrap_or_default(),
        userinfo_endpoint: metadata
            .userinfo_endpoint()
            .map(|u| u.to_string())
            .unwrap_or_default(),
        jwks_uri: metadata.jwks_uri().to_string(),
        jwks_keys: metadata.jwks().keys().len(),
    };
    let redirect_uri = RedirectUrl::new(bound.redirect_uri()).context("the redirect URI")?;
    let client: NotesClient = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registration.client_id),
        Some(registration.client_secret),
    )
    .set_redirect_uri(redirect_uri);

    let (events, signed_in) = mpsc::channel(16);
    let app = Arc::new(App {
        client,
        http,
        issuer: registration.issuer,
        logins: Mutex::new(HashMap::new()),
        sessions: Mutex::new(HashMap::new()),
        events,
    });
    let router = Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route(CALLBACK_PATH, get(callback))
        .with_state(app);
    let (stop, stopped) = oneshot::channel::<()>();
    let listener = bound.listener;
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "the sample app stopped");
        }
    });
    Ok(SampleApp {
        url: bound.url,
        discovered,
        signed_in,
        stop: Some(stop),
        task: Some(task),
    })
}

impl SampleApp {
    /// The next sign-in the app finished (its callback), waiting up to `within`.
    pub async fn next_sign_in(&mut self, within: Duration) -> Result<SignedInUser> {
        match tokio::time::timeout(within, self.signed_in.recv()).await {
            Ok(Some(Ok(user))) => Ok(user),
            Ok(Some(Err(why))) => bail!("{NAME} refused the sign-in: {why}"),
            Ok(None) => bail!("{NAME} stopped"),
            Err(_) => bail!("{NAME} saw no sign-in within {} s", within.as_secs()),
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            // Open keep-alive connections could hold a graceful stop: not for long.
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for SampleApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct App {
    client: NotesClient,
    http: reqwest::Client,
    issuer: String,
    logins: Mutex<HashMap<String, Login>>,
    sessions: Mutex<HashMap<String, SignedInUser>>,
    events: mpsc::Sender<Result<SignedInUser, String>>,
}

/// A login in progress: what the callback checks and needs.
struct Login {
    state: CsrfToken,
    nonce: Nonce,
    pkce_verifier: PkceCodeVerifier,
    started: Instant,
}

/// A random id for a login or a session (128 bits, base64url).
fn random_id() -> String {
    CsrfToken::new_random().secret().clone()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age_secs: u64) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax")
}

fn layout(title: &str, content: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (title) " · " (NAME) }
                }
                body { h1 { (NAME) } (content) }
            }
        }
        .into_string(),
    )
}

/// `GET /`
async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let user = cookie(&headers, SESSION_COOKIE).and_then(|id| {
        app.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    });
    let content = match user {
        Some(u) => html! {
            p id="signed-in" {
                "Signed in as " strong { (u.name.as_deref().unwrap_or("?")) }
                " (" (u.preferred_username.as_deref().unwrap_or("?")) ")"
            }
            dl {
                dt { "sub" } dd { (u.sub) }
                dt { "amr" } dd { (u.amr.join(" ")) }
                dt { "acr" } dd { (u.acr.as_deref().unwrap_or("")) }
                dt { "auth_time" } dd { (u.auth_time.as_deref().unwrap_or("")) }
            }
        },
        None => html! {
            p { "Your notes, anywhere. Sign in with your phone: no password." }
            p { a id="sign-in" href="/login" { "Sign in" } }
        },
    };
    layout("Home", content).into_response()
}

/// `GET /login`: a new authorization request (PKCE S256, state, nonce).
async fn login(State(app): State<Arc<App>>) -> Response {
    let (pkce_challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = app
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(pkce_challenge)
        .url();
    let id = random_id();
    {
        let mut logins = app.logins.lock().unwrap_or_else(|e| e.into_inner());
        logins.retain(|_, l| l.started.elapsed() < LOGIN_TTL);
        if logins.len() >= MAX_LOGINS {
            if let Some(oldest) = logins
                .iter()
                .min_by_key(|(_, l)| l.started)
                .map(|(k, _)| k.clone())
            {
                logins.remove(&oldest);
            }
        }
        logins.insert(
            id.clone(),
            Login {
                state,
                nonce,
                pkce_verifier,
                started: Instant::now(),
            },
        );
    }
    (
        AppendHeaders([(
            SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &id, LOGIN_TTL.as_secs()),
        )]),
        Redirect::to(url.as_str()),
    )
        .into_response()
}

/// The authorization response's parameters. No `Debug`: it carries the code.
#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /callback`
async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    // The login is this browser's (its cookie), and is used once.
    let login = cookie(&headers, LOGIN_COOKIE).and_then(|id| {
        app.logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .filter(|l| l.started.elapsed() < LOGIN_TTL)
    });
    let clear_login = (SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
    let outcome = match login {
        Some(login) => finish(&app, login, params).await,
        None => Err(anyhow::anyhow!(
            "no sign-in is in progress in this browser (start again from the home page)"
        )),
    };
    match outcome {
        Ok(user) => {
            let session = random_id();
            app.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(session.clone(), user.clone());
            let _ = app.events.try_send(Ok(user));
            (
                AppendHeaders([
                    clear_login,
                    (
                        SET_COOKIE,
                        set_cookie(SESSION_COOKIE, &session, 8 * 60 * 60),
                    ),
                ]),
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(e) => {
            let why = format!("{e:#}");
            let _ = app.events.try_send(Err(why.clone()));
            let page = layout(
                "Sign-in failed",
                html! {
                    p id="error" { "The sign-in did not complete: " (why) }
                    p { a href="/login" { "Try again" } }
                },
            );
            (StatusCode::BAD_REQUEST, AppendHeaders([clear_login]), page).into_response()
        }
    }
}

/// The relying party's checks and calls, all through `openidconnect`.
async fn finish(app: &App, login: Login, params: CallbackParams) -> Result<SignedInUser> {
    // RFC 9207: the response names the provider it came from (mix-up defence).
    ensure!(
        params.iss.as_deref() == Some(app.issuer.as_str()),
        "the response is not from the expected provider (iss)"
    );
    ensure!(
        params.state.as_deref() == Some(login.state.secret().as_str()),
        "the state does not match this browser's sign-in"
    );
    if let Some(error) = params.error {
        bail!(
            "the provider answered {error}: {}",
            params.error_description.unwrap_or_default()
        );
    }
    let code = params.code.context("the response has no code")?;

    let token = app
        .client
        .exchange_code(AuthorizationCode::new(code))
        .context("the provider has no token endpoint")?
        .set_pkce_verifier(login.pkce_verifier)
        .request_async(&app.http)
        .await
        .context("the token endpoint refused the code")?;
    let id_token = token
        .id_token()
        .context("the token endpoint gave no ID token")?;
    // Registered without an algorithm, the app gets RS256 ID tokens (OpenID Connect's
    // default); anything else is refused.
    let verifier = app
        .client
        .id_token_verifier()
        .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    let claims = id_token
        .claims(&verifier, &login.nonce)
        .context("the ID token is not valid")?;
    let at_hash_checked = match claims.access_token_hash() {
        Some(expected) => {
            let actual = AccessTokenHash::from_token(
                token.access_token(),
                id_token.signing_alg()?,
                id_token.signing_key(&verifier)?,
            )?;
            ensure!(
                actual == *expected,
                "the ID token's at_hash does not match the access token"
            );
            true
        }
        None => false,
    };

    let info: CoreUserInfoClaims = app
        .client
        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
        .context("the provider has no userinfo endpoint")?
        .request_async(&app.http)
        .await
        .context("userinfo failed")?;

    Ok(SignedInUser {
        sub: claims.subject().to_string(),
        name: info.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
        preferred_username: info.preferred_username().map(|u| u.to_string()),
        amr: claims
            .auth_method_refs()
            .map(|a| a.iter().map(|m| m.to_string()).collect())
            .unwrap_or_default(),
        acr: claims.auth_context_ref().map(|a| a.to_string()),
        auth_time: claims.auth_time().map(|t| t.to_rfc3339()),
        at_hash_checked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider (the real server on a loopback port) and the app registered with it.
    async fn provider_and_app() -> (signin_server::RunningServer, SampleApp, tempfile::TempDir) {
        let db = tempfile::tempdir().unwrap();
        let server = signin_server::spawn(signin_server::ServeConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            database: format!("sqlite://{}", db.path().join("s.db").display()),
            ..Default::default()
        })
        .await
        .unwrap();
        let bound = bind().await.unwrap();
        let registered = signin_server::oidc::clients::add(
            server.pool(),
            NAME,
            &[bound.redirect_uri()],
            false,
            None,
        )
        .await
        .unwrap();
        let app = start(
            bound,
            Registration {
                issuer: format!("http://{}", server.addr),
                client_id: registered.client_id,
                client_secret: ClientSecret::new(registered.client_secret),
            },
        )
        .await
        .unwrap();
        (server, app, db)
    }

    fn browser() -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// `/login` in this browser: the `state` it sent to the provider.
    async fn login_state(app: &SampleApp, browser: &reqwest::Client) -> String {
        let r = browser
            .get(format!("{}/login", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let to = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let q: HashMap<_, _> = to.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(q.contains_key("nonce") && q.contains_key("code_challenge"));
        assert_eq!(q["scope"], "openid profile");
        q["state"].clone()
    }

    async fn callback_refused(
        app: &mut SampleApp,
        browser: &reqwest::Client,
        query: &[(&str, &str)],
    ) -> String {
        let r = browser
            .get(format!("{}{CALLBACK_PATH}", app.url))
            .query(query)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let err = app
            .next_sign_in(Duration::from_secs(10))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("refused the sign-in"), "{err}");
        err
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_callback_refuses_what_this_browser_did_not_start() {
        let (server, mut app, _db) = provider_and_app().await;
        let iss = format!("http://{}", server.addr);
        let b = browser();

        // No login in this browser: nothing to complete.
        let err = callback_refused(
            &mut app,
            &b,
            &[("code", "c"), ("state", "s"), ("iss", &iss)],
        )
        .await;
        assert!(err.contains("no sign-in is in progress"), "{err}");

        // A forged state.
        let _ = login_state(&app, &b).await;
        let err = callback_refused(
            &mut app,
            &b,
            &[("code", "c"), ("state", "forged"), ("iss", &iss)],
        )
        .await;
        assert!(err.contains("state does not match"), "{err}");

        // The right state from another provider (RFC 9207), or without iss.
        let state = login_state(&app, &b).await;
        let err = callback_refused(
            &mut app,
            &b,
            &[
                ("code", "c"),
                ("state", &state),
                ("iss", "http://127.0.0.1:1"),
            ],
        )
        .await;
        assert!(err.contains("expected provider"), "{err}");
        let state = login_state(&app, &b).await;
        let err = callback_refused(&mut app, &b, &[("code", "c"), ("state", &state)]).await;
        assert!(err.contains("expected provider"), "{err}");

        // A login completes once: its state does not work a second time.
        let state = login_state(&app, &b).await;
        let query = [
            ("code", "not-a-code"),
            ("state", state.as_str()),
            ("iss", &iss),
        ];
        let err = callback_refused(&mut app, &b, &query).await;
        assert!(err.contains("the token endpoint refused the code"), "{err}");
        let err = callback_refused(&mut app, &b, &query).await;
        assert!(err.contains("no sign-in is in progress"), "{err}");

        // The provider's error comes through, after the state check.
        let state = login_state(&app, &b).await;
        let err = callback_refused(
            &mut app,
            &b,
            &[("error", "access_denied"), ("state", &state), ("iss", &iss)],
        )
        .await;
        assert!(err.contains("access_denied"), "{err}");

        app.shutdown().await;
        server.shutdown().await;
    }
}
