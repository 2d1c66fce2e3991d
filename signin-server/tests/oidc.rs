//! The OpenID Connect provider and CIBA (issue 10): discovery, JWKS, the authorization code
//! flow with PKCE through the real sign-in pages and a software phone, the token and userinfo
//! endpoints, and every refusal: wrong redirect URI, reused code, code by another client,
//! missing or wrong PKCE verifier, nonce binding, unregistered client, expired `auth_req_id`,
//! polling faster than the interval.
mod support;

use std::collections::HashMap;

use authenticator_protocol::encoding::{b64, sha256};
use authenticator_protocol::sign_in::Decision;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use signin_domain::outbound::{OutboundError, OutboundPolicy, Range};
use signin_server::oidc::token::IdTokenClaims;
use signin_server::oidc::{self, clients};
use support::*;

const HOST: &str = "127.0.0.1:8080";
const ISSUER: &str = "http://127.0.0.1:8080";
const BOB: &str = "bobby@contoso.test";
const REDIRECT: &str = "http://127.0.0.1:9000/callback";

/// A registered client's credential.
#[derive(Clone)]
struct Creds {
    id: String,
    secret: String,
}

async fn confidential(h: &Harness, name: &str, redirect: &str) -> Creds {
    let r = clients::add(&h.state.pool, name, &[redirect.to_owned()], false, None)
        .await
        .unwrap();
    assert!(!r.client_secret.is_empty());
    Creds {
        id: r.client_id,
        secret: r.client_secret,
    }
}

async fn public_client(h: &Harness, name: &str) -> Creds {
    let r = clients::add(&h.state.pool, name, &[REDIRECT.to_owned()], true, None)
        .await
        .unwrap();
    assert!(r.client_secret.is_empty(), "a public client has no secret");
    Creds {
        id: r.client_id,
        secret: String::new(),
    }
}

/// A browser: its cookies (by name) on the loopback host.
struct Browser<'h> {
    h: &'h Harness,
    cookies: HashMap<String, String>,
}

impl<'h> Browser<'h> {
    fn new(h: &'h Harness) -> Self {
        Browser {
            h,
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, mut req: Request<Body>) -> Reply {
        req.headers_mut().insert("host", HOST.parse().unwrap());
        if !self.cookies.is_empty() {
            let c = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        let r = self.h.send(req).await;
        for set in r.headers.get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        r
    }

    async fn get(&mut self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&mut self, uri: &str, pairs: &[(&str, &str)]) -> Reply {
        self.send(
            Request::post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form(pairs)))
                .unwrap(),
        )
        .await
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn location(r: &Reply) -> String {
    assert!(
        r.status.is_redirection(),
        "expected a redirect, got {} {:?}",
        r.status,
        r.body
    );
    r.headers["location"].to_str().unwrap().to_owned()
}

fn text(r: &Reply) -> &str {
    r.body.as_str().unwrap_or_default()
}

fn csrf_of(r: &Reply) -> String {
    let html = text(r);
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a CSRF field") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

fn number_of(r: &Reply) -> String {
    let html = text(r);
    let at = html.find("id=\"number\"").expect("the number on the page");
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    rest[start..].split('<').next().unwrap().trim().to_owned()
}

/// Where the page after a sign-in on the pages sends the browser (its meta refresh, which
/// must agree with its link).
fn continue_url(r: &Reply) -> String {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let html = text(r);
    let refresh = html
        .split("http-equiv=\"refresh\" content=\"0;url=")
        .nth(1)
        .expect("a meta refresh")
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let link = html
        .split("id=\"continue\" href=\"")
        .nth(1)
        .expect("a continue link")
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert_eq!(refresh, link);
    refresh
}

/// The query parameters of a redirect to the client.
fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A PKCE pair (RFC 7636): verifier and S256 challenge.
fn pkce() -> (String, String) {
    let verifier = b64(&rand_bytes());
    let challenge = b64(&sha256(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

fn authorize_uri(client_id: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("scope", "openid profile"),
    ];
    pairs.extend_from_slice(extra);
    format!("/oauth2/authorize?{}", form(&pairs))
}

/// The phone answers the one pending request: checks the client's name is shown, types
/// `number`, and approves or denies.
async fn phone_answers(
    h: &Harness,
    phone: &Phone,
    app_name: &str,
    number: &str,
    decision: Decision,
) -> Reply {
    let p = phone.poll(h, 5).await;
    let rid = p.body["pushes"][0]["rid"]
        .as_str()
        .unwrap_or_else(|| panic!("a pending request: {:?}", p.body))
        .to_owned();
    let f = phone.fetch(h, &rid).await.unwrap();
    let details: Value = serde_json::from_str(&f.signed.details).unwrap();
    assert_eq!(details["app_name"], app_name, "the phone names the client");
    assert_eq!(details["number_matching"], true);
    let typed = (decision == Decision::Approve).then_some(number);
    // A browser-bound sign-in (phishing-resistant policy): this phone stands for the
    // Authenticator on the browser's device, which saw the page at the signed origin.
    let body = match details["browser"]["origin"].as_str() {
        Some(origin) if decision == Decision::Approve => phone.response_seen_at(
            &f,
            decision,
            typed,
            &phone.passwordless,
            authenticator_protocol::UnixMillis::now(),
            Some(origin),
        ),
        _ => phone.answer(&f, decision, typed),
    };
    h.post(&respond_uri(&rid), body).await
}

/// Runs the browser from `authorize` through the sign-in pages with the phone approving, up
/// to the redirect back to the client; returns that redirect's query.
async fn sign_in_via_pages(
    b: &mut Browser<'_>,
    phone: &Phone,
    app_name: &str,
    authorize: &str,
) -> HashMap<String, String> {
    let r = b.get(authorize).await;
    assert_eq!(location(&r), "/signin", "{:?}", r.body);
    let page = b.get("/signin").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page);
    let r = b.post("/signin", &[("csrf", &csrf), ("upn", BOB)]).await;
    assert_eq!(location(&r), "/signin/wait");
    let wait = b.get("/signin/wait").await;
    let number = number_of(&wait);
    let csrf = csrf_of(&wait);
    let answered = phone_answers(b.h, phone, app_name, &number, Decision::Approve).await;
    assert_eq!(answered.status, StatusCode::OK, "{:?}", answered.body);
    let r = b.post("/signin/complete", &[("csrf", &csrf)]).await;
    assert_eq!(location(&r), oidc::RESUME_PATH);
    let r = b.get(oidc::RESUME_PATH).await;
    let to = continue_url(&r);
    assert!(to.starts_with(REDIRECT), "{to}");
    assert!(
        !b.cookies.contains_key("psi_oidc"),
        "the authorization ends with its code"
    );
    query_of(&to)
}

/// `POST /oauth2/token` with a form and optional HTTP Basic.
async fn token_request(h: &Harness, pairs: &[(&str, &str)], basic: Option<&Creds>) -> Reply {
    let mut req = Request::post("/oauth2/token")
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = basic {
        req = req.header("authorization", basic_auth(&c.id, &c.secret));
    }
    h.send(req.body(Body::from(form(pairs))).unwrap()).await
}

async fn redeem(h: &Harness, c: &Creds, code: &str, verifier: &str) -> Reply {
    token_request(
        h,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
        Some(c),
    )
    .await
}

async fn userinfo(h: &Harness, access_token: &str) -> Reply {
    h.send(
        Request::get("/oauth2/userinfo")
            .header("host", HOST)
            .header("authorization", format!("Bearer {access_token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// Verifies an ID token against the JWKS, as a relying party does.
async fn verify_id_token(h: &Harness, id_token: &str, client_id: &str) -> IdTokenClaims {
    let jwks = h
        .send(
            Request::get("/oauth2/jwks")
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(jwks.status, StatusCode::OK);
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    let kid = header.kid.expect("a kid");
    let jwk = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the kid is published");
    assert_eq!(
        (&jwk["kty"], &jwk["crv"], &jwk["alg"], &jwk["use"]),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("ES256"),
            &json!("sig")
        )
    );
    let key =
        DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
            .unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[client_id]);
    v.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &v)
        .expect("the ID token verifies")
        .claims
}

struct Ready {
    h: Harness,
    phone: Phone,
    client: Creds,
}

async fn ready() -> Ready {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let client = confidential(&h, "Contoso Mail", REDIRECT).await;
    Ready { h, phone, client }
}

/// A signed-in browser's code (the whole ceremony), with its PKCE verifier and nonce.
async fn code_for(r: &Ready, b: &mut Browser<'_>, nonce: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let q = sign_in_via_pages(
        b,
        &r.phone,
        "Contoso Mail",
        &authorize_uri(
            &r.client.id,
            REDIRECT,
            &[
                ("state", "st-1"),
                ("nonce", nonce),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ),
    )
    .await;
    (q["code"].clone(), verifier)
}

// ---- discovery ----

#[tokio::test]
async fn discovery_names_every_endpoint_under_the_issuer_and_the_jwks_has_the_es256_key() {
    let h = harness().await;
    let mut b = Browser::new(&h);
    let r = b.get("/.well-known/openid-configuration").await;
    assert_eq!(r.status, StatusCode::OK);
    let m = &r.body;
    assert_eq!(m["issuer"], ISSUER);
    for (field, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("jwks_uri", "/oauth2/jwks"),
        (
            "backchannel_authentication_endpoint",
            "/oauth2/bc-authorize",
        ),
    ] {
        assert_eq!(m[field], format!("{ISSUER}{path}"), "{field}");
    }
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["id_token_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(
        m["grant_types_supported"],
        json!(["authorization_code", "urn:openid:params:grant-type:ciba"])
    );
    assert_eq!(
        m["backchannel_token_delivery_modes_supported"],
        json!(["poll", "ping"])
    );
    let jwks = b.get("/oauth2/jwks").await;
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].get("d").is_none(), "no private part is published");
    // The key is stored: the same kid after a restart (a new router over the same database).
    let kid = keys[0]["kid"].clone();
    let again = signin_server::oidc::keys::jwks(&h.state.pool)
        .await
        .unwrap();
    assert_eq!(again.keys[0].common.key_id.as_deref(), kid.as_str());
}

#[tokio::test]
async fn a_rotated_key_signs_new_tokens_and_the_old_one_stays_published_until_removed() {
    let h = harness().await;
    let pool = &h.state.pool;
    let first = oidc::keys::current(pool).await.unwrap().kid;
    let second = oidc::keys::rotate(pool).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(oidc::keys::current(pool).await.unwrap().kid, second);
    let published: Vec<_> = oidc::keys::jwks(pool)
        .await
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.common.key_id.unwrap())
        .collect();
    assert_eq!(published, vec![second.clone(), first.clone()]);
    assert!(
        oidc::keys::remove(pool, &second).await.is_err(),
        "the signing key cannot be removed"
    );
    oidc::keys::remove(pool, &first).await.unwrap();
    assert_eq!(oidc::keys::jwks(pool).await.unwrap().keys.len(), 1);
}

// ---- the code flow ----

#[tokio::test]
async fn the_code_flow_with_pkce_signs_in_with_the_phone_and_gives_a_verified_id_token_and_userinfo(
) {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let (verifier, challenge) = pkce();
    let q = sign_in_via_pages(
        &mut b,
        &r.phone,
        "Contoso Mail",
        &authorize_uri(
            &r.client.id,
            REDIRECT,
            &[
                ("state", "state-123"),
                ("nonce", "nonce-abc"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ),
    )
    .await;
    assert_eq!(q["state"], "state-123");
    assert_eq!(q["iss"], ISSUER);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = redeem(&r.h, &r.client, &q["code"], &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.headers["cache-control"], "no-store");
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["scope"], "openid profile");
    assert!(t.body.get("refresh_token").is_none());
    let claims = verify_id_token(&r.h, t.body["id_token"].as_str().unwrap(), &r.client.id).await;
    assert_eq!(claims.nonce.as_deref(), Some("nonce-abc"));
    assert_eq!(claims.amr, vec!["mfa", "swk", "user"]);
    assert_eq!(claims.acr, oidc::ACR_MFA);
    assert!((before - 60..=before + 1).contains(&claims.auth_time));
    assert!(
        !claims.sub.contains("bobby") && claims.sub.len() >= 32,
        "sub is opaque"
    );
    let access = t.body["access_token"].as_str().unwrap();
    assert_eq!(
        claims.at_hash,
        b64(&sha256(access.as_bytes())[..16]),
        "at_hash binds the access token"
    );
    let u = userinfo(&r.h, access).await;
    assert_eq!(u.status, StatusCode::OK, "{:?}", u.body);
    assert_eq!(
        u.body,
        json!({"sub": claims.sub, "name": "Test User", "preferred_username": BOB})
    );

    // Signed in: the next authorization of another client needs no new ceremony (no push),
    // keeps the same sub, and the auth_time of the sign-in.
    let other = public_client(&r.h, "Contoso Files").await;
    let (verifier2, challenge2) = pkce();
    let back = b
        .get(&authorize_uri(
            &other.id,
            REDIRECT,
            &[
                ("code_challenge", &challenge2),
                ("code_challenge_method", "S256"),
            ],
        ))
        .await;
    let q2 = query_of(&location(&back));
    assert_eq!(r.phone.poll(&r.h, 0).await.body, json!({"pushes": []}));
    let t2 = token_request(
        &r.h,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &other.id),
            ("code", &q2["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier2),
        ],
        None,
    )
    .await;
    assert_eq!(t2.status, StatusCode::OK, "{:?}", t2.body);
    let claims2 = verify_id_token(&r.h, t2.body["id_token"].as_str().unwrap(), &other.id).await;
    assert_eq!(claims2.sub, claims.sub, "sub is stable per user");
    assert_eq!(claims2.auth_time, claims.auth_time);
    assert_eq!(claims2.nonce, None, "no nonce asked, none given");
}

#[tokio::test]
async fn a_redirect_uri_that_is_not_registered_exactly_gets_an_error_page_and_no_redirect() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    for wrong in [
        "http://127.0.0.1:9000/callback/",
        "http://127.0.0.1:9000/callback?x=1",
        "http://127.0.0.1:9000/CALLBACK",
        "http://127.0.0.1:9001/callback",
        "https://evil.example/callback",
    ] {
        let resp = b.get(&authorize_uri(&r.client.id, wrong, &[])).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{wrong}");
        assert!(resp.headers.get("location").is_none(), "{wrong}");
        assert!(text(&resp).contains("not registered"), "{wrong}");
    }
    assert!(b.cookies.is_empty(), "nothing started");
    // And at the token endpoint: a code is bound to the URI it was issued for.
    let (code, verifier) = code_for(&r, &mut b, "n").await;
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9000/other"),
            ("code_verifier", &verifier),
        ],
        Some(&r.client),
    )
    .await;
    assert_eq!(
        (t.status, t.error()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[tokio::test]
async fn an_unregistered_client_gets_an_error_page_at_authorize_and_invalid_client_at_token() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let resp = b.get(&authorize_uri("app-unknown", REDIRECT, &[])).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert!(resp.headers.get("location").is_none());
    assert!(text(&resp).contains("not registered"));
    // An API-only application (no redirect URI) is not an OpenID Connect client either.
    let api_app = signin_domain::accounts::applications::add(&r.h.state.pool, "Batch Job")
        .await
        .unwrap();
    let resp = b
        .get(&authorize_uri(&api_app.client_id, REDIRECT, &[]))
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    let stranger = Creds {
        id: "app-unknown".into(),
        secret: "whatever".into(),
    };
    let t = token_request(
        &r.h,
        &[("grant_type", "authorization_code"), ("code", "x")],
        Some(&stranger),
    )
    .await;
    assert_eq!(
        (t.status, t.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    assert!(t.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_the_tokens_it_gave() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n1").await;
    let first = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(first.status, StatusCode::OK);
    let access = first.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo(&r.h, &access).await.status, StatusCode::OK);
    let again = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(
        (again.status, again.error()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let u = userinfo(&r.h, &access).await;
    assert_eq!(
        (u.status, u.error()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
}

#[tokio::test]
async fn a_code_presented_by_another_client_is_refused_and_stays_usable_by_its_own() {
    let r = ready().await;
    let thief = confidential(&r.h, "Thief App", REDIRECT).await;
    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n").await;
    let stolen = redeem(&r.h, &thief, &code, &verifier).await;
    assert_eq!(
        (stolen.status, stolen.error()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let own = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
}

#[tokio::test]
async fn a_missing_or_wrong_pkce_verifier_is_refused_and_spends_the_code() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n").await;
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
        Some(&r.client),
    )
    .await;
    assert_eq!(
        (t.status, t.error()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // One attempt per code: the right verifier now comes too late.
    let late = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(late.error(), "invalid_grant");

    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n").await;
    let (other_verifier, _) = pkce();
    assert_ne!(other_verifier, verifier);
    let t = redeem(&r.h, &r.client, &code, &other_verifier).await;
    assert_eq!(
        (t.status, t.error()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[tokio::test]
async fn a_public_client_must_use_pkce_s256_and_cannot_present_a_secret() {
    let h = harness().await;
    let client = public_client(&h, "Contoso Files").await;
    let mut b = Browser::new(&h);
    let r = b
        .get(&authorize_uri(&client.id, REDIRECT, &[("state", "s1")]))
        .await;
    let q = query_of(&location(&r));
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "s1");
    let (_, challenge) = pkce();
    let r = b
        .get(&authorize_uri(
            &client.id,
            REDIRECT,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ],
        ))
        .await;
    assert_eq!(query_of(&location(&r))["error"], "invalid_request");
    let t = token_request(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client.id),
            ("client_secret", "guess"),
            ("code", "x"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (t.status, t.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

#[tokio::test]
async fn each_code_carries_the_nonce_of_its_own_request() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let (code1, verifier1) = code_for(&r, &mut b, "nonce-one").await;
    // Signed in: the second authorization is answered at once, with its own nonce.
    let (verifier2, challenge2) = pkce();
    let back = b
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[
                ("nonce", "nonce-two"),
                ("code_challenge", &challenge2),
                ("code_challenge_method", "S256"),
            ],
        ))
        .await;
    let code2 = query_of(&location(&back))["code"].clone();
    let t2 = redeem(&r.h, &r.client, &code2, &verifier2).await;
    let t1 = redeem(&r.h, &r.client, &code1, &verifier1).await;
    let c1 = verify_id_token(&r.h, t1.body["id_token"].as_str().unwrap(), &r.client.id).await;
    let c2 = verify_id_token(&r.h, t2.body["id_token"].as_str().unwrap(), &r.client.id).await;
    assert_eq!(c1.nonce.as_deref(), Some("nonce-one"));
    assert_eq!(c2.nonce.as_deref(), Some("nonce-two"));
    // The token request cannot change it: a nonce parameter there is not part of the grant.
    let (code3, verifier3) = {
        let (v, c) = pkce();
        let back = b
            .get(&authorize_uri(
                &r.client.id,
                REDIRECT,
                &[
                    ("nonce", "nonce-three"),
                    ("code_challenge", &c),
                    ("code_challenge_method", "S256"),
                ],
            ))
            .await;
        (query_of(&location(&back))["code"].clone(), v)
    };
    let t3 = token_request(
        &r.h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code3),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier3),
            ("nonce", "nonce-one"),
        ],
        Some(&r.client),
    )
    .await;
    let c3 = verify_id_token(&r.h, t3.body["id_token"].as_str().unwrap(), &r.client.id).await;
    assert_eq!(c3.nonce.as_deref(), Some("nonce-three"));
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_a_new_phone_sign_in_and_prompt_none_never_shows_a_page() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    // Not signed in, prompt=none: login_required at the client.
    let resp = b
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[("prompt", "none"), ("state", "z")],
        ))
        .await;
    let q = query_of(&location(&resp));
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("login_required", "z")
    );

    let (code, verifier) = code_for(&r, &mut b, "n").await;
    let first = redeem(&r.h, &r.client, &code, &verifier).await;
    let c1 = verify_id_token(&r.h, first.body["id_token"].as_str().unwrap(), &r.client.id).await;
    // Signed in: prompt=login and max_age=0 each start a new ceremony (the page, a push).
    for extra in [("prompt", "login"), ("max_age", "0")] {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (verifier, challenge) = pkce();
        let q = sign_in_via_pages(
            &mut b,
            &r.phone,
            "Contoso Mail",
            &authorize_uri(
                &r.client.id,
                REDIRECT,
                &[
                    extra,
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            ),
        )
        .await;
        let t = redeem(&r.h, &r.client, &q["code"], &verifier).await;
        let c = verify_id_token(&r.h, t.body["id_token"].as_str().unwrap(), &r.client.id).await;
        assert!(c.auth_time > c1.auth_time, "{extra:?}: a new auth_time");
    }
    // A generous max_age is met by the sign-in that happened.
    let (_, challenge) = pkce();
    let resp = b
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[
                ("max_age", "3600"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .await;
    assert!(query_of(&location(&resp)).contains_key("code"));
}

#[tokio::test]
async fn login_hint_fills_in_the_user_name_on_the_sign_in_page() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let resp = b
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[("login_hint", BOB)],
        ))
        .await;
    assert_eq!(location(&resp), "/signin");
    let page = b.get("/signin").await;
    assert!(
        text(&page).contains(&format!("value=\"{BOB}\"")),
        "{}",
        text(&page)
    );
    // Without an authorization in progress the page is empty.
    let mut fresh = Browser::new(&r.h);
    let page = fresh.get("/signin").await;
    assert!(!text(&page).contains(BOB));
}

#[tokio::test]
async fn confidential_clients_authenticate_with_basic_or_post_once_and_with_the_right_secret() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n").await;
    let wrong = Creds {
        id: r.client.id.clone(),
        secret: "not-the-secret".into(),
    };
    let t = redeem(&r.h, &wrong, &code, &verifier).await;
    assert_eq!(
        (t.status, t.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &r.client.id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    assert_eq!(
        t.error(),
        "invalid_client",
        "a confidential client needs its secret"
    );
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "authorization_code"),
            ("client_secret", &r.client.secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        Some(&r.client),
    )
    .await;
    assert_eq!(t.error(), "invalid_request", "two methods at once");
    // client_secret_post, and the code was not spent by the refusals above.
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &r.client.id),
            ("client_secret", &r.client.secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n").await;
    age_rows(&r.h, "oidc_codes", "expires_at", 61_000).await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(
        (t.status, t.error()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

/// Moves a time column of every row of `table` `ms` into the past (instead of sleeping).
async fn age_rows(h: &Harness, table: &str, column: &str, ms: i64) {
    sqlx::query(&format!("UPDATE {table} SET {column} = {column} - $1"))
        .bind(ms)
        .execute(&h.state.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn registration_refuses_unsafe_redirect_uris() {
    let h = harness().await;
    for bad in [
        "http://example.com/cb",
        "https://example.com/cb#frag",
        "javascript:alert(1)",
        "https://user:pw@example.com/cb",
        "/relative",
    ] {
        assert!(
            clients::add(&h.state.pool, "Bad App", &[bad.to_owned()], false, None)
                .await
                .is_err(),
            "{bad}"
        );
    }
    clients::add(
        &h.state.pool,
        "Good App",
        &["https://app.example.com/cb".to_owned()],
        false,
        None,
    )
    .await
    .unwrap();
    let listed = clients::list(&h.state.pool).await.unwrap();
    let line = listed
        .iter()
        .map(ToString::to_string)
        .find(|l| l.contains("Good App"))
        .unwrap();
    assert!(
        line.contains("confidential") && line.contains("https://app.example.com/cb"),
        "{line}"
    );
}

// ---- CIBA ----

async fn bc_authorize(h: &Harness, c: &Creds, pairs: &[(&str, &str)]) -> Reply {
    h.send(
        Request::post("/oauth2/bc-authorize")
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", basic_auth(&c.id, &c.secret))
            .body(Body::from(form(pairs)))
            .unwrap(),
    )
    .await
}

async fn ciba_poll(h: &Harness, c: &Creds, auth_req_id: &str) -> Reply {
    token_request(
        h,
        &[
            ("grant_type", "urn:openid:params:grant-type:ciba"),
            ("auth_req_id", auth_req_id),
        ],
        Some(c),
    )
    .await
}

#[tokio::test]
async fn ciba_poll_pending_then_slow_down_then_tokens_once_after_the_phone_types_the_binding_message(
) {
    let r = ready().await;
    let s = bc_authorize(&r.h, &r.client, &[("scope", "openid"), ("login_hint", BOB)]).await;
    assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
    let id = s.body["auth_req_id"].as_str().unwrap().to_owned();
    assert_eq!(s.body["interval"], 5);
    assert!(s.body["expires_in"].as_i64().unwrap() > 60);
    let binding = s.body["binding_message"].as_str().unwrap().to_owned();
    assert_eq!(binding.len(), 2);

    let p = ciba_poll(&r.h, &r.client, &id).await;
    assert_eq!(
        (p.status, p.error()),
        (StatusCode::BAD_REQUEST, "authorization_pending")
    );
    let p = ciba_poll(&r.h, &r.client, &id).await;
    assert_eq!(p.error(), "slow_down", "polled sooner than the interval");
    // The phone shows the client and expects the binding message as the number.
    let wrong = other_number(&binding, 1);
    let p2 = r.phone.poll(&r.h, 5).await;
    let rid = p2.body["pushes"][0]["rid"].as_str().unwrap().to_owned();
    let f = r.phone.fetch(&r.h, &rid).await.unwrap();
    let refused =
        r.h.post(
            &respond_uri(&rid),
            r.phone.answer(&f, Decision::Approve, Some(&wrong)),
        )
        .await;
    assert_eq!(refused.error(), "wrong_number");
    let ok = phone_answers(&r.h, &r.phone, "Contoso Mail", &binding, Decision::Approve).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    // Still too soon: each slow_down adds 5 s to the interval (now 15 s).
    assert_eq!(ciba_poll(&r.h, &r.client, &id).await.error(), "slow_down");
    age_rows(&r.h, "ciba_requests", "last_poll_at", 11_000).await;
    assert_eq!(ciba_poll(&r.h, &r.client, &id).await.error(), "slow_down");
    age_rows(&r.h, "ciba_requests", "last_poll_at", 21_000).await;
    let t = ciba_poll(&r.h, &r.client, &id).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    let claims = verify_id_token(&r.h, t.body["id_token"].as_str().unwrap(), &r.client.id).await;
    assert_eq!(claims.amr, vec!["mfa", "swk", "user"]);
    assert_eq!(claims.nonce, None);
    age_rows(&r.h, "ciba_requests", "last_poll_at", 60_000).await;
    let again = ciba_poll(&r.h, &r.client, &id).await;
    assert_eq!(again.error(), "invalid_grant", "tokens are issued once");
    // Another client cannot redeem it.
    let other = confidential(&r.h, "Other", REDIRECT).await;
    assert_eq!(ciba_poll(&r.h, &other, &id).await.error(), "invalid_grant");
}

/// Issue 20, finding 7: a CIBA request asked to live 30 s must not leave the phone a request
/// that lives the server's full 90 s: the user would approve for nothing.
#[tokio::test]
async fn ciba_requested_expiry_is_also_the_expiry_of_the_phones_request() {
    let r = ready().await;
    let s = bc_authorize(
        &r.h,
        &r.client,
        &[
            ("scope", "openid"),
            ("login_hint", BOB),
            ("requested_expiry", "30"),
        ],
    )
    .await;
    assert_eq!(s.body["expires_in"], 30);
    let binding = s.body["binding_message"].as_str().unwrap().to_owned();
    let p = r.phone.poll(&r.h, 5).await;
    let rid = p.body["pushes"][0]["rid"].as_str().unwrap().to_owned();
    let f = r.phone.fetch(&r.h, &rid).await.unwrap();
    let details: serde_json::Value = serde_json::from_str(&f.signed.details).unwrap();
    let lifetime =
        details["expires_at"].as_i64().unwrap() - details["created_at"].as_i64().unwrap();
    assert!(
        (29_000..=30_000).contains(&lifetime),
        "the phone's request lives {lifetime} ms"
    );
    // Both expire together: past 30 s, the phone's approval is refused as expired.
    age_rows(&r.h, "ciba_requests", "expires_at", 31_000).await;
    age_rows(&r.h, "signin_requests", "expires_at", 31_000).await;
    let late =
        r.h.post(
            &respond_uri(&rid),
            r.phone.answer(&f, Decision::Approve, Some(&binding)),
        )
        .await;
    assert_eq!(late.error(), "request_expired", "{:?}", late.body);
}

#[tokio::test]
async fn ciba_expired_auth_req_id_and_denial_and_refused_requests() {
    let r = ready().await;
    let s = bc_authorize(
        &r.h,
        &r.client,
        &[
            ("scope", "openid"),
            ("login_hint", BOB),
            ("requested_expiry", "30"),
        ],
    )
    .await;
    assert_eq!(s.body["expires_in"], 30);
    let id = s.body["auth_req_id"].as_str().unwrap().to_owned();
    age_rows(&r.h, "ciba_requests", "expires_at", 31_000).await;
    let p = ciba_poll(&r.h, &r.client, &id).await;
    assert_eq!(
        (p.status, p.error()),
        (StatusCode::BAD_REQUEST, "expired_token")
    );

    let s = bc_authorize(&r.h, &r.client, &[("scope", "openid"), ("login_hint", BOB)]).await;
    let id = s.body["auth_req_id"].as_str().unwrap().to_owned();
    let binding = s.body["binding_message"].as_str().unwrap().to_owned();
    // The first sign-in's request is still pending on the phone: answer the newest.
    let p = r.phone.poll(&r.h, 5).await;
    let rid = p.body["pushes"].as_array().unwrap().last().unwrap()["rid"]
        .as_str()
        .unwrap()
        .to_owned();
    let f = r.phone.fetch(&r.h, &rid).await.unwrap();
    let denied =
        r.h.post(&respond_uri(&rid), r.phone.answer(&f, Decision::Deny, None))
            .await;
    assert_eq!(denied.status, StatusCode::OK, "{:?}", denied.body);
    let _ = binding;
    let p = ciba_poll(&r.h, &r.client, &id).await;
    assert_eq!(p.error(), "access_denied");

    // Refusals at the backchannel endpoint.
    let b = bc_authorize(
        &r.h,
        &r.client,
        &[
            ("scope", "openid"),
            ("login_hint", BOB),
            ("binding_message", "42"),
        ],
    )
    .await;
    assert_eq!(b.error(), "invalid_binding_message");
    let b = bc_authorize(
        &r.h,
        &r.client,
        &[("scope", "openid"), ("login_hint", "nobody@x")],
    )
    .await;
    assert_eq!(b.error(), "unknown_user_id");
    let b = bc_authorize(
        &r.h,
        &r.client,
        &[("scope", "profile"), ("login_hint", BOB)],
    )
    .await;
    assert_eq!(b.error(), "invalid_scope");
    let public = public_client(&r.h, "Public").await;
    let b =
        r.h.send(
            Request::post("/oauth2/bc-authorize")
                .header("host", HOST)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form(&[
                    ("client_id", &public.id),
                    ("scope", "openid"),
                    ("login_hint", BOB),
                ])))
                .unwrap(),
        )
        .await;
    assert_eq!(b.error(), "unauthorized_client");
    let stranger = Creds {
        id: "app-nope".into(),
        secret: "x".into(),
    };
    let b = bc_authorize(&r.h, &stranger, &[("scope", "openid"), ("login_hint", BOB)]).await;
    assert_eq!(
        (b.status, b.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

/// The outbound policy with the development setting: the ping receivers of these tests are
/// plain http on 127.0.0.1.
fn development() -> OutboundPolicy {
    OutboundPolicy {
        allow_http_loopback: true,
        ..Default::default()
    }
}

/// A harness that may ping loopback receivers over plain http (the development setting).
async fn ping_harness() -> Harness {
    harness_with_state(90, |s| s.with_outbound(development())).await
}

/// A confidential client "Kiosk" in CIBA ping mode, notified at `endpoint` (registered under
/// the harness's outbound policy).
async fn ping_client(h: &Harness, endpoint: &str) -> Creds {
    let endpoint = clients::PingEndpoint::parse(endpoint, &h.state.outbound).unwrap();
    let r = clients::add(
        &h.state.pool,
        "Kiosk",
        &[REDIRECT.to_owned()],
        false,
        Some(&endpoint),
    )
    .await
    .unwrap();
    Creds {
        id: r.client_id,
        secret: r.client_secret,
    }
}

#[tokio::test]
async fn ciba_ping_notifies_the_client_endpoint_with_its_token_when_the_phone_answers() {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let sink = got.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = axum::Router::new().route(
        "/ping",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    let auth = headers["authorization"].to_str().unwrap().to_owned();
                    sink.lock().unwrap().push((auth, body));
                    StatusCode::NO_CONTENT
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    let h = ping_harness().await;
    let phone = h.ready_phone(BOB).await;
    let client = ping_client(&h, &format!("http://{addr}/ping")).await;
    let missing = bc_authorize(&h, &client, &[("scope", "openid"), ("login_hint", BOB)]).await;
    assert_eq!(
        missing.error(),
        "invalid_request",
        "ping mode needs a notification token"
    );
    let s = bc_authorize(
        &h,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", BOB),
            ("client_notification_token", "tok-123"),
        ],
    )
    .await;
    assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
    let id = s.body["auth_req_id"].as_str().unwrap().to_owned();
    let binding = s.body["binding_message"].as_str().unwrap().to_owned();
    assert!(got.lock().unwrap().is_empty());
    let ok = phone_answers(&h, &phone, "Kiosk", &binding, Decision::Approve).await;
    assert_eq!(ok.status, StatusCode::OK);
    let mut waited = 0;
    while got.lock().unwrap().is_empty() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    let pings = got.lock().unwrap().clone();
    assert_eq!(
        pings,
        vec![("Bearer tok-123".to_owned(), json!({"auth_req_id": id}))]
    );
    let t = ciba_poll(&h, &client, &id).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);

    // A denial is notified too; the token request then says access_denied.
    got.lock().unwrap().clear();
    let s = bc_authorize(
        &h,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", BOB),
            ("client_notification_token", "tok-456"),
        ],
    )
    .await;
    let id = s.body["auth_req_id"].as_str().unwrap().to_owned();
    let denied = phone_answers(&h, &phone, "Kiosk", "", Decision::Deny).await;
    assert_eq!(denied.status, StatusCode::OK, "{:?}", denied.body);
    let mut waited = 0;
    while got.lock().unwrap().is_empty() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    let pings = got.lock().unwrap().clone();
    assert_eq!(
        pings,
        vec![("Bearer tok-456".to_owned(), json!({"auth_req_id": id}))]
    );
    assert_eq!(ciba_poll(&h, &client, &id).await.error(), "access_denied");
}

// ---- admin pages, and a sign-in without the phone ----

/// A browser signed in with a password alone (a user without a phone, policy mode `any`).
async fn password_browser<'h>(h: &'h Harness, upn: &str, groups: &[&str]) -> Browser<'h> {
    h.add_user(upn, groups).await;
    signin_domain::accounts::passwords::set_password(&h.state.pool, upn, "a long password 1")
        .await
        .unwrap();
    let mut b = Browser::new(h);
    let page = b.get("/signin").await;
    let r = b
        .post("/signin", &[("csrf", &csrf_of(&page)), ("upn", upn)])
        .await;
    assert_eq!(location(&r), "/signin/password");
    let page = b.get("/signin/password").await;
    let r = b
        .post(
            "/signin/password",
            &[("csrf", &csrf_of(&page)), ("password", "a long password 1")],
        )
        .await;
    assert_eq!(location(&r), "/me");
    b
}

#[tokio::test]
async fn a_password_alone_session_gets_a_single_factor_acr_and_pwd_amr() {
    let h = harness().await;
    let client = confidential(&h, "Contoso Mail", REDIRECT).await;
    let mut b = password_browser(&h, "ada@contoso.test", &[]).await;
    let (verifier, challenge) = pkce();
    let back = b
        .get(&authorize_uri(
            &client.id,
            REDIRECT,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .await;
    let q = query_of(&location(&back));
    let t = redeem(&h, &client, &q["code"], &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    let c = verify_id_token(&h, t.body["id_token"].as_str().unwrap(), &client.id).await;
    assert_eq!(c.amr, vec!["pwd"]);
    assert_eq!(c.acr, oidc::ACR_SINGLE_FACTOR);
}

#[tokio::test]
async fn the_admin_page_lists_clients_and_removing_one_stops_it_at_once() {
    let r = ready().await;
    let public = public_client(&r.h, "Contoso Files").await;
    let mut admin = password_browser(&r.h, "ada@contoso.test", &["admins"]).await;
    let page = admin.get("/admin/apps").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = text(&page);
    for needle in [
        "Contoso Mail",
        "Contoso Files",
        r.client.id.as_str(),
        public.id.as_str(),
        "OpenID Connect, confidential",
        "OpenID Connect, public",
        REDIRECT,
        "Built-in",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
    assert!(!html.contains(&r.client.secret), "never a secret in a page");
    let csrf = csrf_of(&page);
    let done = admin
        .post(
            "/admin/apps/remove",
            &[("csrf", &csrf), ("client_id", &r.client.id)],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(text(&done).contains("Removed"));
    assert!(!text(&done).contains("Contoso Mail"));
    let mut b = Browser::new(&r.h);
    let resp = b.get(&authorize_uri(&r.client.id, REDIRECT, &[])).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    let t = token_request(
        &r.h,
        &[("grant_type", "authorization_code"), ("code", "x")],
        Some(&r.client),
    )
    .await;
    assert_eq!(t.error(), "invalid_client");
    // The built-in portal cannot be removed; a non-admin cannot open the page.
    let refused = admin
        .post(
            "/admin/apps/remove",
            &[("csrf", &csrf), ("client_id", "signin-portal")],
        )
        .await;
    assert!(text(&refused).contains("Not removed"));
    let mut bob = password_browser(&r.h, "eve@contoso.test", &[]).await;
    assert_eq!(bob.get("/admin/apps").await.status, StatusCode::FORBIDDEN);
}

// ---- the admin command line ----

/// `signin-server --database DB admin ARGS…`: (success, stdout, stderr).
fn admin_cli(db: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signin-server"))
        .args(["--database", db, "admin"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn field<'a>(stdout: &'a str, name: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn admin_app_add_registers_clients_and_admin_oidc_key_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let (ok, out, err) = admin_cli(
        &db,
        &[
            "app",
            "add",
            "--name",
            "Contoso Mail",
            "--redirect-uri",
            "https://mail.contoso.test/cb",
        ],
    );
    assert!(ok, "{err}");
    let id = field(&out, "client_id").expect("a client id");
    let secret = field(&out, "client_secret").expect("a confidential client's secret");
    assert_eq!(secret.len(), 43);
    let (ok, out, err) = admin_cli(
        &db,
        &[
            "app",
            "add",
            "--name",
            "Contoso Files",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:7777/cb",
        ],
    );
    assert!(ok, "{err}");
    assert!(field(&out, "client_id").is_some());
    assert!(
        field(&out, "client_secret").is_none(),
        "a public client has no secret: {out}"
    );
    // --public alone, an unsafe redirect URI: refused.
    let (ok, _, _) = admin_cli(&db, &["app", "add", "--name", "X", "--public"]);
    assert!(!ok);
    let (ok, _, err) = admin_cli(
        &db,
        &[
            "app",
            "add",
            "--name",
            "Y",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
    );
    assert!(!ok && err.contains("https"), "{err}");
    let (ok, list, _) = admin_cli(&db, &["app", "list"]);
    assert!(ok);
    assert!(list.contains(&format!("{id} Contoso Mail (OpenID Connect client, confidential, redirect_uri https://mail.contoso.test/cb)")), "{list}");
    assert!(
        list.contains("Contoso Files (OpenID Connect client, public"),
        "{list}"
    );
    assert!(!list.contains(secret));

    let (ok, out, _) = admin_cli(&db, &["oidc-key", "rotate"]);
    assert!(ok);
    let first = out
        .trim()
        .strip_prefix("new signing key ")
        .unwrap()
        .to_owned();
    let (ok, out, _) = admin_cli(&db, &["oidc-key", "rotate"]);
    assert!(ok);
    let second = out
        .trim()
        .strip_prefix("new signing key ")
        .unwrap()
        .to_owned();
    let (_, list, _) = admin_cli(&db, &["oidc-key", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with(&second) && lines[0].ends_with("signing"),
        "{list}"
    );
    assert!(
        lines[1].starts_with(&first) && lines[1].ends_with("published"),
        "{list}"
    );
    let (ok, _, err) = admin_cli(&db, &["oidc-key", "remove", "--kid", &second]);
    assert!(!ok && err.contains("rotate first"), "{err}");
    let (ok, _, err) = admin_cli(&db, &["oidc-key", "remove", "--kid", &first]);
    assert!(ok, "{err}");
    let (_, list, _) = admin_cli(&db, &["oidc-key", "list"]);
    assert_eq!(list.lines().count(), 1);
}

#[tokio::test]
async fn a_phishing_resistant_sign_in_says_so_in_the_id_token() {
    let r = ready().await;
    let pool = &r.h.state.pool;
    signin_domain::store::set_setting(
        pool,
        signin_domain::store::PUBLIC_URL_SETTING,
        &format!("{ISSUER}/"),
    )
    .await
    .unwrap();
    let update = signin_domain::rules::policy::PolicyUpdate {
        phishing_resistant: Some(true),
        ..Default::default()
    };
    signin_domain::accounts::set_policy(pool, &update)
        .await
        .unwrap();
    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n-phr").await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    let claims = verify_id_token(&r.h, t.body["id_token"].as_str().unwrap(), &r.client.id).await;
    assert_eq!(claims.amr, vec!["mfa", "phr", "swk", "user"]);
    assert_eq!(claims.acr, oidc::ACR_PHISHING_RESISTANT);
    let discovery = b.get("/.well-known/openid-configuration").await;
    assert!(discovery.body["acr_values_supported"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(oidc::ACR_PHISHING_RESISTANT)));
}

/// Issue 19: tokens belong to the credential that made them. Removing the phone that approved
/// the sign-in revokes its access token and spends its unredeemed code; pausing the user
/// (a report) and disabling the user revoke every token; a code redeemed for a disabled user
/// gets no tokens.
#[tokio::test]
async fn removing_the_phone_pausing_or_disabling_the_user_revokes_tokens_and_codes() {
    let mut r = ready().await;
    let pool = r.h.state.pool.clone();
    let pool = &pool;
    let account = r.phone.account().as_str().to_owned();
    // Removing the phone.
    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n1").await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    let access = t.body["access_token"].as_str().unwrap().to_owned();
    let (unredeemed, unredeemed_verifier) = code_for(&r, &mut Browser::new(&r.h), "n2").await;
    assert_eq!(userinfo(&r.h, &access).await.status, StatusCode::OK);
    signin_domain::accounts::devices::remove(pool, &account)
        .await
        .unwrap();
    assert_eq!(
        userinfo(&r.h, &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let spent = redeem(&r.h, &r.client, &unredeemed, &unredeemed_verifier).await;
    assert_eq!(spent.error(), "invalid_grant", "{:?}", spent.body);

    // Pausing and disabling end every token of the user, whichever device made it.
    for end in ["pause", "disable"] {
        // A new phone for Bob (the first one was removed).
        let mut phone = Phone::new();
        phone.enroll(&r.h, &r.h.link(BOB, 600).await).await;
        assert_eq!(
            phone.enable_passwordless(&r.h).await.status,
            StatusCode::NO_CONTENT
        );
        r.phone = phone;
        let r2 = &r;
        let (code, verifier) = code_for(r2, &mut Browser::new(&r.h), "n3").await;
        let t = redeem(&r.h, &r.client, &code, &verifier).await;
        let access = t.body["access_token"].as_str().unwrap().to_owned();
        let (later, later_verifier) = code_for(r2, &mut Browser::new(&r.h), "n4").await;
        match end {
            "pause" => {
                signin_domain::rules::risk::record_report(
                    pool,
                    &Default::default(),
                    BOB,
                    r2.phone.account().as_str(),
                    "rid",
                )
                .await
                .unwrap();
            }
            _ => {
                signin_domain::trust::set_disabled(pool, BOB, true)
                    .await
                    .unwrap();
            }
        }
        assert_eq!(
            userinfo(&r.h, &access).await.status,
            StatusCode::UNAUTHORIZED,
            "{end}"
        );
        let refused = redeem(&r.h, &r.client, &later, &later_verifier).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{end}: {:?}",
            refused.body
        );
        signin_domain::rules::risk::resume(pool, BOB).await.unwrap();
        signin_domain::trust::set_disabled(pool, BOB, false)
            .await
            .unwrap();
        signin_domain::accounts::devices::remove(pool, r2.phone.account().as_str())
            .await
            .unwrap();
    }
}

/// Issue 20, finding 3: a ping endpoint that answers with a redirect does not make the server
/// call the redirect's target (an internal address, say): the ping goes to the registered
/// endpoint only.
#[tokio::test]
async fn ciba_ping_does_not_follow_redirects() {
    use std::sync::{Arc, Mutex};
    let hits: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let (to_ping, to_inside) = (hits.clone(), hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = axum::Router::new()
        .route(
            "/ping",
            axum::routing::post(move || {
                let hits = to_ping.clone();
                async move {
                    hits.lock().unwrap().push("ping");
                    (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(axum::http::header::LOCATION, "/inside")],
                    )
                }
            }),
        )
        .route(
            "/inside",
            axum::routing::any(move || {
                let hits = to_inside.clone();
                async move {
                    hits.lock().unwrap().push("inside");
                    StatusCode::NO_CONTENT
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    let h = ping_harness().await;
    let phone = h.ready_phone(BOB).await;
    let client = ping_client(&h, &format!("http://{addr}/ping")).await;
    let s = bc_authorize(
        &h,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", BOB),
            ("client_notification_token", "tok-1"),
        ],
    )
    .await;
    assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
    let binding = s.body["binding_message"].as_str().unwrap().to_owned();
    let ok = phone_answers(&h, &phone, "Kiosk", &binding, Decision::Approve).await;
    assert_eq!(ok.status, StatusCode::OK);
    let mut waited = 0;
    while hits.lock().unwrap().is_empty() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    // Time for a followed redirect to land, had there been one.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(*hits.lock().unwrap(), ["ping"]);
}

/// Issue 20, finding 7 (first part): a ping-mode client that polls the token endpoint without
/// waiting for its ping is slowed down like a poll-mode client.
#[tokio::test]
async fn a_ping_mode_client_that_polls_too_fast_gets_slow_down() {
    let h = ping_harness().await;
    let _phone = h.ready_phone(BOB).await;
    let client = ping_client(&h, "http://127.0.0.1:9/ping").await;
    let s = bc_authorize(
        &h,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", BOB),
            ("client_notification_token", "tok-1"),
        ],
    )
    .await;
    assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
    let id = s.body["auth_req_id"].as_str().unwrap().to_owned();
    assert_eq!(
        ciba_poll(&h, &client, &id).await.error(),
        "authorization_pending"
    );
    assert_eq!(ciba_poll(&h, &client, &id).await.error(), "slow_down");
}

/// Issue 20, finding 3: a ping endpoint is a URL the server POSTs to on a client's say-so, so
/// registration holds it to the outbound policy: https to a host that is not an internal
/// address; plain http only on a loopback address, and only under the development setting.
/// The error names the rule.
#[tokio::test]
async fn client_registration_holds_ping_endpoints_to_the_outbound_policy() {
    let h = harness().await;
    let production = OutboundPolicy::default();
    for (endpoint, want) in [
        ("http://127.0.0.1:9/ping", OutboundError::NotHttps),
        ("http://localhost:9/ping", OutboundError::NotHttps),
        ("http://kiosk.contoso.test/ping", OutboundError::NotHttps),
        (
            "https://169.254.169.254/latest/meta-data/",
            OutboundError::Address(Range::LinkLocal),
        ),
        (
            "https://[::ffff:127.0.0.1]:8443/ping",
            OutboundError::Address(Range::Loopback),
        ),
        (
            "https://0.0.0.0/ping",
            OutboundError::Address(Range::Unspecified),
        ),
        (
            "https://10.0.0.7/ping",
            OutboundError::Address(Range::Private),
        ),
        (
            "https://localhost/ping",
            OutboundError::Address(Range::Loopback),
        ),
    ] {
        let err = clients::PingEndpoint::parse(endpoint, &production).unwrap_err();
        assert_eq!(
            err.downcast_ref::<OutboundError>(),
            Some(&want),
            "{endpoint}"
        );
        assert!(
            format!("{err:#}").starts_with("--ciba-ping-endpoint is refused: "),
            "{err:#}"
        );
    }
    // Under the development setting loopback http is accepted; other http never is.
    assert!(clients::PingEndpoint::parse("http://127.0.0.1:9/ping", &development()).is_ok());
    assert_eq!(
        clients::PingEndpoint::parse("http://kiosk.contoso.test/ping", &development())
            .unwrap_err()
            .downcast_ref::<OutboundError>(),
        Some(&OutboundError::NotHttps)
    );
    let ok = clients::PingEndpoint::parse("https://kiosk.contoso.test/ciba", &production).unwrap();
    clients::add(
        &h.state.pool,
        "Kiosk",
        &[REDIRECT.to_owned()],
        false,
        Some(&ok),
    )
    .await
    .unwrap();
    let listed = clients::list(&h.state.pool).await.unwrap();
    assert!(listed.iter().any(|l| l
        .to_string()
        .contains("CIBA ping to https://kiosk.contoso.test/ciba")));
}

/// `admin app add` refuses a plain-http ping endpoint unless the development setting is given
/// (flag, variable or `[outbound]` of the config file), and an http one that is not loopback
/// even then.
#[test]
fn admin_app_add_refuses_a_plain_http_ping_endpoint_without_the_development_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let add = |name: &str, endpoint: &str, extra: &[&str], config: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_signin-server"));
        command.env_remove("SIGNIN_OUTBOUND_ALLOW_HTTP_LOOPBACK");
        command.env_remove("SIGNIN_OUTBOUND_ALLOW_NETWORKS");
        command.env_remove("SIGNIN_CONFIG");
        if let Some(c) = config {
            command.arg("--config").arg(c);
        }
        let out = command
            .args(["--database", &db, "admin", "app", "add", "--name", name])
            .args(["--redirect-uri", "https://kiosk.contoso.test/cb"])
            .args(["--ciba-ping-endpoint", endpoint])
            .args(extra)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8(out.stderr).unwrap())
    };
    let (ok, err) = add("A", "http://127.0.0.1:9/ping", &[], None);
    assert!(
        !ok && err.contains("--ciba-ping-endpoint is refused") && err.contains("https"),
        "{err}"
    );
    let (ok, err) = add("B", "https://169.254.169.254/latest", &[], None);
    assert!(!ok && err.contains("link-local"), "{err}");
    let (ok, err) = add(
        "C",
        "http://kiosk.contoso.test/ping",
        &["--outbound-allow-http-loopback"],
        None,
    );
    assert!(!ok && err.contains("https"), "{err}");
    let (ok, err) = add(
        "D",
        "http://127.0.0.1:9/ping",
        &["--outbound-allow-http-loopback"],
        None,
    );
    assert!(ok, "{err}");
    let config = dir.path().join("signin.toml");
    std::fs::write(&config, "[outbound]\nallow_http_loopback = true\n").unwrap();
    let (ok, err) = add("E", "http://127.0.0.1:9/ping", &[], Some(&config));
    assert!(ok, "{err}");
    let (ok, err) = add("F", "https://kiosk.contoso.test/ciba", &[], None);
    assert!(ok, "{err}");
}

/// Issue 20, finding 3, at send time: a ping endpoint whose name resolves to an internal
/// address now (here `localhost`; DNS can change after registration) is not contacted. With
/// the development setting the same endpoint is (the control: the ping does go out).
#[tokio::test]
async fn a_ping_endpoint_whose_name_resolves_to_loopback_is_not_contacted() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    for (h, contacted) in [(harness().await, false), (ping_harness().await, true)] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        let phone = h.ready_phone(BOB).await;
        let client = {
            let endpoint =
                clients::PingEndpoint::parse("https://kiosk.contoso.test/ciba", &h.state.outbound)
                    .unwrap();
            let r = clients::add(
                &h.state.pool,
                "Kiosk",
                &[REDIRECT.to_owned()],
                false,
                Some(&endpoint),
            )
            .await
            .unwrap();
            Creds {
                id: r.client_id,
                secret: r.client_secret,
            }
        };
        // The name now resolves to a loopback address.
        sqlx::query("UPDATE applications SET ciba_notification_endpoint = $1 WHERE client_id = $2")
            .bind(format!("https://localhost:{port}/ciba"))
            .bind(&client.id)
            .execute(&h.state.pool)
            .await
            .unwrap();
        let s = bc_authorize(
            &h,
            &client,
            &[
                ("scope", "openid"),
                ("login_hint", BOB),
                ("client_notification_token", "tok-1"),
            ],
        )
        .await;
        assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
        let binding = s.body["binding_message"].as_str().unwrap().to_owned();
        let ok = phone_answers(&h, &phone, "Kiosk", &binding, Decision::Approve).await;
        assert_eq!(ok.status, StatusCode::OK);
        let mut waited = 0;
        while connections.load(Ordering::SeqCst) == 0 && waited < 20 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            waited += 1;
        }
        assert_eq!(
            connections.load(Ordering::SeqCst) > 0,
            contacted,
            "contacted: {contacted}"
        );
    }
}

/// Issue 21, item 3: single-page applications. Metadata and keys are readable from any
/// origin; the token and userinfo endpoints answer CORS only to the origins of public
/// clients' registered redirect URIs (a confidential client's origin, or any other, gets none).
#[tokio::test]
async fn cors_lets_public_clients_origins_call_token_and_userinfo_and_anyone_read_metadata() {
    let h = harness().await;
    clients::add(
        &h.state.pool,
        "Single Page",
        &["https://spa.example.com/app/cb".to_owned()],
        true,
        None,
    )
    .await
    .unwrap();
    confidential(&h, "Server App", "https://server.example.com/cb").await;
    let call = |method: &str, path: &str, origin: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(if method == "POST" {
                "grant_type=authorization_code"
            } else {
                ""
            }))
            .unwrap()
    };
    let acao = |r: &Reply| {
        r.headers
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    for path in ["/.well-known/openid-configuration", "/oauth2/jwks"] {
        let r = h.send(call("GET", path, "https://anyone.example")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(acao(&r).as_deref(), Some("*"), "{path}");
    }

    let spa = "https://spa.example.com";
    for path in ["/oauth2/token", "/oauth2/userinfo"] {
        let pre = h.send(call("OPTIONS", path, spa)).await;
        assert_eq!(pre.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(acao(&pre).as_deref(), Some(spa), "{path}");
        let methods = pre.headers["access-control-allow-methods"]
            .to_str()
            .unwrap();
        assert!(methods.contains("POST"), "{methods}");
        let headers = pre.headers["access-control-allow-headers"]
            .to_str()
            .unwrap();
        assert!(headers.contains("Authorization"), "{headers}");
        for other in ["https://server.example.com", "https://evil.example", "null"] {
            let refused = h.send(call("OPTIONS", path, other)).await;
            assert_eq!(acao(&refused), None, "{path} from {other}");
        }
    }
    // The real call (an error here: no code) still carries the header, so that the app can
    // read the error; another origin's does not.
    let t = h.send(call("POST", "/oauth2/token", spa)).await;
    assert!(t.status.is_client_error(), "{:?}", t.status);
    assert_eq!(acao(&t).as_deref(), Some(spa));
    assert!(t.headers["vary"].to_str().unwrap().contains("Origin"));
    let t = h
        .send(call("POST", "/oauth2/token", "https://server.example.com"))
        .await;
    assert_eq!(acao(&t), None);
}
