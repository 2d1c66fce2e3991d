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
use signin_server::oidc::clients::IdTokenAlg;
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

/// The JWKS key a token names (`kid`), checked as a relying party does: published for
/// signatures, for exactly the token's algorithm (RS256 with an RSA key, ES256 with a P-256
/// one), no private part.
fn published_key(jwks: &Value, token: &str) -> (DecodingKey, Algorithm) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.expect("a kid");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the kid is published");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk.get("d").is_none(), "no private part is published");
    let key = match header.alg {
        Algorithm::ES256 => {
            assert_eq!(
                (&jwk["kty"], &jwk["crv"], &jwk["alg"]),
                (&json!("EC"), &json!("P-256"), &json!("ES256"))
            );
            DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
                .unwrap()
        }
        Algorithm::RS256 => {
            assert_eq!((&jwk["kty"], &jwk["alg"]), (&json!("RSA"), &json!("RS256")));
            DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
                .unwrap()
        }
        other => panic!("a token signed with {other:?}"),
    };
    (key, header.alg)
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
    let (key, alg) = published_key(&jwks.body, id_token);
    let mut v = Validation::new(alg);
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
        ("revocation_endpoint", "/oauth2/revoke"),
        ("introspection_endpoint", "/oauth2/introspect"),
    ] {
        assert_eq!(m[field], format!("{ISSUER}{path}"), "{field}");
    }
    assert_eq!(
        m["scopes_supported"],
        json!(["openid", "profile", "email", "groups", "offline_access"])
    );
    for claim in [
        "name",
        "preferred_username",
        "given_name",
        "family_name",
        "email",
        "email_verified",
        "groups",
    ] {
        assert!(
            m["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(claim)),
            "{claim}"
        );
    }
    assert_eq!(
        m["revocation_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        m["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        m["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(
        m["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "urn:openid:params:grant-type:ciba"
        ])
    );
    assert_eq!(
        m["backchannel_token_delivery_modes_supported"],
        json!(["poll", "ping"])
    );
    let jwks = b.get("/oauth2/jwks").await;
    let keys = jwks.body["keys"].as_array().unwrap();
    // One key per algorithm discovery lists, none with a private part.
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(algs.len(), 2, "{keys:?}");
    assert!(
        algs.contains(&"RS256") && algs.contains(&"ES256"),
        "{algs:?}"
    );
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "no private part is published");
        }
    }
    // The keys are stored: the same kids after a restart (a new router over the same database).
    let kids: Vec<Value> = keys.iter().map(|k| k["kid"].clone()).collect();
    let again: Vec<Value> = signin_server::oidc::keys::jwks(&h.state.pool)
        .await
        .unwrap()
        .keys
        .into_iter()
        .map(|k| json!(k.common.key_id.unwrap()))
        .collect();
    assert_eq!(again, kids);
}

#[tokio::test]
async fn a_rotated_key_signs_new_tokens_and_the_old_one_stays_published_until_removed() {
    let h = harness().await;
    let pool = &h.state.pool;
    for alg in IdTokenAlg::ALL {
        let first = oidc::keys::current(pool, alg).await.unwrap().kid;
        let second = oidc::keys::rotate(pool, alg).await.unwrap();
        assert_ne!(first, second);
        let now = oidc::keys::current(pool, alg).await.unwrap();
        assert_eq!((now.kid.as_str(), now.alg), (second.as_str(), alg));
        let published: Vec<_> = oidc::keys::jwks(pool)
            .await
            .unwrap()
            .keys
            .into_iter()
            .map(|k| k.common.key_id.unwrap())
            .collect();
        assert!(
            published.contains(&first) && published.contains(&second),
            "{alg}: {published:?}"
        );
        assert!(
            oidc::keys::remove(pool, &second).await.is_err(),
            "the key that signs {alg} cannot be removed"
        );
        oidc::keys::remove(pool, &first).await.unwrap();
        let after: Vec<_> = oidc::keys::jwks(pool)
            .await
            .unwrap()
            .keys
            .into_iter()
            .map(|k| k.common.key_id.unwrap())
            .collect();
        assert!(!after.contains(&first) && after.contains(&second));
    }
    // Rotating one algorithm never changes the other's signing key.
    let es = oidc::keys::current(pool, IdTokenAlg::Es256)
        .await
        .unwrap()
        .kid;
    oidc::keys::rotate(pool, IdTokenAlg::Rs256).await.unwrap();
    assert_eq!(
        oidc::keys::current(pool, IdTokenAlg::Es256)
            .await
            .unwrap()
            .kid,
        es
    );
    assert_eq!(oidc::keys::jwks(pool).await.unwrap().keys.len(), 3);
}

/// OpenID Connect Discovery §3 requires RS256, and it is the default of a client that names no
/// `id_token_signed_response_alg`; a client registered for ES256 gets ES256. Each token verifies
/// under the published key of its algorithm, and a signed-in browser gets each client's own.
#[tokio::test]
async fn a_client_gets_rs256_id_tokens_by_default_and_es256_when_registered_for_it() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let rs = confidential(&h, "Contoso Mail", REDIRECT).await;
    let es = clients::add_with_options(
        &h.state.pool,
        "Contoso Files",
        &[REDIRECT.to_owned()],
        false,
        None,
        &clients::ClientOptions {
            id_token_alg: IdTokenAlg::Es256,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let es = Creds {
        id: es.client_id,
        secret: es.client_secret,
    };
    assert_eq!(
        clients::find(&h.state.pool, &es.id)
            .await
            .unwrap()
            .unwrap()
            .id_token_alg,
        IdTokenAlg::Es256
    );
    let mut b = Browser::new(&h);
    let first = tokens_for(&h, &phone, &mut b, &rs, "Contoso Mail", false).await;
    let second = tokens_for(&h, &phone, &mut b, &es, "Contoso Files", true).await;
    let mut kids = Vec::new();
    for (t, c, alg) in [
        (&first, &rs, Algorithm::RS256),
        (&second, &es, Algorithm::ES256),
    ] {
        let id_token = t["id_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(id_token).unwrap();
        assert_eq!(header.alg, alg);
        let claims = verify_id_token(&h, id_token, &c.id).await;
        assert_eq!(claims.aud, c.id);
        kids.push(header.kid.unwrap());
    }
    assert_ne!(kids[0], kids[1], "one key per algorithm");
    // Refreshing the keys of one algorithm leaves the other client's tokens alone.
    oidc::keys::rotate(&h.state.pool, IdTokenAlg::Rs256)
        .await
        .unwrap();
    let third = tokens_for(&h, &phone, &mut b, &es, "Contoso Files", true).await;
    let header = jsonwebtoken::decode_header(third["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_ref()),
        (Algorithm::ES256, Some(&kids[1]))
    );
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

/// `upn` (added with `groups`) signed in on the pages with a temporary access pass (the admin
/// console refuses a password alone).
async fn pass_browser<'h>(h: &'h Harness, upn: &str, groups: &[&str]) -> Browser<'h> {
    h.add_user(upn, groups).await;
    let pass = signin_domain::accounts::temporary_pass::issue(&h.state.pool, upn, 600)
        .await
        .unwrap();
    let mut b = Browser::new(h);
    let page = b.get("/signin").await;
    let r = b
        .post("/signin", &[("csrf", &csrf_of(&page)), ("upn", upn)])
        .await;
    assert_eq!(location(&r), "/signin/password");
    let page = b.get("/signin/pass").await;
    let r = b
        .post(
            "/signin/pass",
            &[("csrf", &csrf_of(&page)), ("pass", &pass)],
        )
        .await;
    assert_eq!(location(&r), "/me/security-info");
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
    let mut admin = pass_browser(&r.h, "ada@contoso.test", &["admins"]).await;
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
    // Asked first (issue 22); confirmed, removed and named.
    let done = admin
        .post(
            "/admin/apps/remove",
            &[
                ("csrf", &csrf),
                ("client_id", &r.client.id),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(
        text(&done).contains("Removed the application \u{201c}Contoso Mail\u{201d}."),
        "{}",
        text(&done)
    );
    assert!(
        !text(&done).contains(r.client.id.as_str()),
        "no longer listed"
    );
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
    assert!(list.contains(&format!("{id} Contoso Mail (OpenID Connect client, confidential, redirect_uri https://mail.contoso.test/cb, refresh tokens 2592000 s, ID tokens RS256)")), "{list}");
    assert!(
        list.contains("Contoso Files (OpenID Connect client, public"),
        "{list}"
    );
    assert!(!list.contains(secret));

    // `rotate` makes a key of each algorithm; `--alg` one.
    let (ok, out, err) = admin_cli(&db, &["oidc-key", "rotate"]);
    assert!(ok, "{err}");
    let made: Vec<(&str, &str)> = out
        .lines()
        .map(|l| {
            let rest = l.strip_prefix("new ").unwrap();
            let (alg, kid) = rest.split_once(" signing key ").unwrap();
            (alg, kid)
        })
        .collect();
    assert_eq!(
        made.iter().map(|m| m.0).collect::<Vec<_>>(),
        ["RS256", "ES256"],
        "{out}"
    );
    let first = made[1].1.to_owned();
    let (ok, out, _) = admin_cli(&db, &["oidc-key", "rotate", "--alg", "ES256"]);
    assert!(ok);
    let second = out
        .trim()
        .strip_prefix("new ES256 signing key ")
        .unwrap()
        .to_owned();
    let (ok, _, err) = admin_cli(&db, &["oidc-key", "rotate", "--alg", "HS256"]);
    assert!(!ok && err.contains("RS256 or ES256"), "{err}");
    let (_, list, _) = admin_cli(&db, &["oidc-key", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].starts_with(&format!("{second} ES256 ")) && lines[0].ends_with("signing"),
        "{list}"
    );
    assert!(
        lines[1].starts_with(&format!("{first} ES256 ")) && lines[1].ends_with("published"),
        "{list}"
    );
    assert!(
        lines[2].contains(" RS256 ") && lines[2].ends_with("signing"),
        "the RS256 key still signs: {list}"
    );
    let (ok, _, err) = admin_cli(&db, &["oidc-key", "remove", "--kid", &second]);
    assert!(!ok && err.contains("rotate first"), "{err}");
    let (ok, _, err) = admin_cli(&db, &["oidc-key", "remove", "--kid", &first]);
    assert!(ok, "{err}");
    let (_, list, _) = admin_cli(&db, &["oidc-key", "list"]);
    assert_eq!(list.lines().count(), 2);
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

// ---- refresh tokens, revocation, introspection (issue 21) ----

const OFFLINE: &str = "openid profile offline_access";

/// The authorization URI of `client_id` asking for `scope`, with a PKCE challenge (when given).
fn scoped_authorize_uri(client_id: &str, scope: &str, challenge: Option<&str>) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("nonce", "n-offline"),
    ];
    if let Some(c) = challenge {
        pairs.extend([("code_challenge", c), ("code_challenge_method", "S256")]);
    }
    format!("/oauth2/authorize?{}", form(&pairs))
}

/// A code of `r.client` (named `app_name`) for `scope` (a whole ceremony in `b`), with its
/// PKCE verifier.
async fn scoped_code(
    r: &Ready,
    b: &mut Browser<'_>,
    app_name: &str,
    scope: &str,
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let q = sign_in_via_pages(
        b,
        &r.phone,
        app_name,
        &scoped_authorize_uri(&r.client.id, scope, Some(&challenge)),
    )
    .await;
    (q["code"].clone(), verifier)
}

/// Access and refresh token of a sign-in (in a fresh browser) asking for `offline_access`.
async fn offline_tokens(r: &Ready) -> (String, String) {
    offline_tokens_of(r, "Contoso Mail").await
}

async fn offline_tokens_of(r: &Ready, app_name: &str) -> (String, String) {
    let mut b = Browser::new(&r.h);
    let (code, verifier) = scoped_code(r, &mut b, app_name, OFFLINE).await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.body["scope"], OFFLINE);
    (
        t.body["access_token"].as_str().unwrap().to_owned(),
        t.body["refresh_token"]
            .as_str()
            .expect("offline_access gives a refresh token")
            .to_owned(),
    )
}

async fn refresh(h: &Harness, c: &Creds, refresh_token: &str) -> Reply {
    token_request(
        h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
        Some(c),
    )
    .await
}

/// A form POST to `path` with HTTP Basic of `c`.
async fn client_post(h: &Harness, path: &str, c: &Creds, pairs: &[(&str, &str)]) -> Reply {
    h.send(
        Request::post(path)
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", basic_auth(&c.id, &c.secret))
            .body(Body::from(form(pairs)))
            .unwrap(),
    )
    .await
}

async fn revoke(h: &Harness, c: &Creds, token: &str) -> Reply {
    client_post(h, "/oauth2/revoke", c, &[("token", token)]).await
}

async fn introspect(h: &Harness, c: &Creds, token: &str) -> Reply {
    client_post(h, "/oauth2/introspect", c, &[("token", token)]).await
}

fn is_invalid_grant(t: &Reply) -> bool {
    (t.status, t.error()) == (StatusCode::BAD_REQUEST, "invalid_grant")
}

async fn refresh_rows(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM oidc_refresh_tokens")
        .fetch_one(&h.state.pool)
        .await
        .unwrap()
}

async fn audit_outcomes(h: &Harness, event: &str) -> Vec<String> {
    signin_domain::audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.event == event)
        .map(|row| row.outcome)
        .collect()
}

#[tokio::test]
async fn offline_access_gives_a_refresh_token_that_rotates_on_every_use() {
    let r = ready().await;
    let (access, first) = offline_tokens(&r).await;
    let claims = {
        let u = userinfo(&r.h, &access).await;
        assert_eq!(u.status, StatusCode::OK);
        u.body["sub"].as_str().unwrap().to_owned()
    };
    let t = refresh(&r.h, &r.client, &first).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.headers["cache-control"], "no-store");
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["scope"], OFFLINE);
    let second = t.body["refresh_token"].as_str().unwrap().to_owned();
    let access2 = t.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "a new refresh token on every use");
    assert_ne!(access2, access);
    // The ID token of a refresh: the same user and sign-in, no nonce (Core §12.2).
    let id = verify_id_token(&r.h, t.body["id_token"].as_str().unwrap(), &r.client.id).await;
    assert_eq!(id.sub, claims);
    assert_eq!(id.nonce, None);
    assert_eq!(id.amr, vec!["mfa", "swk", "user"]);
    assert_eq!(id.at_hash, b64(&sha256(access2.as_bytes())[..16]));
    let u = userinfo(&r.h, &access2).await;
    assert_eq!(u.status, StatusCode::OK, "{:?}", u.body);
    assert_eq!(u.body["preferred_username"], BOB);

    // The family keeps the end of its first token; the spent one stays, to recognize reuse.
    let ends: Vec<(i64, Option<i64>)> =
        sqlx::query_as("SELECT expires_at, used_at FROM oidc_refresh_tokens ORDER BY created_at")
            .fetch_all(&r.h.state.pool)
            .await
            .unwrap();
    assert_eq!(ends.len(), 2);
    assert_eq!(ends[0].0, ends[1].0);
    assert!(ends[0].1.is_some() && ends[1].1.is_none());

    // A narrower scope for the new access token; the family keeps what it was granted.
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &second),
            ("scope", "openid"),
        ],
        Some(&r.client),
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.body["scope"], "openid");
    let third = t.body["refresh_token"].as_str().unwrap().to_owned();
    let u = userinfo(&r.h, t.body["access_token"].as_str().unwrap()).await;
    assert!(u.body.get("preferred_username").is_none(), "{:?}", u.body);
    // More than was granted: invalid_scope, and the token is not spent.
    let wider = token_request(
        &r.h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &third),
            ("scope", "openid email"),
        ],
        Some(&r.client),
    )
    .await;
    assert_eq!(
        (wider.status, wider.error()),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );
    // Another client presenting it learns nothing and spends nothing.
    let thief = confidential(&r.h, "Thief App", REDIRECT).await;
    assert!(is_invalid_grant(&refresh(&r.h, &thief, &third).await));
    let t = refresh(&r.h, &r.client, &third).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.body["scope"], OFFLINE);
    // An unknown token, a missing one.
    assert!(is_invalid_grant(
        &refresh(&r.h, &r.client, "not-a-token").await
    ));
    let missing = token_request(&r.h, &[("grant_type", "refresh_token")], Some(&r.client)).await;
    assert_eq!(missing.error(), "invalid_request");
    let refreshed = audit_outcomes(&r.h, "web_signin").await;
    assert!(
        refreshed
            .iter()
            .any(|o| o == &format!("tokens_refreshed client_id={} refresh_token", r.client.id)),
        "{refreshed:?}"
    );
}

#[tokio::test]
async fn a_spent_refresh_token_presented_again_revokes_the_whole_family() {
    let r = ready().await;
    let (access1, first) = offline_tokens(&r).await;
    let t = refresh(&r.h, &r.client, &first).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    let second = t.body["refresh_token"].as_str().unwrap().to_owned();
    let access2 = t.body["access_token"].as_str().unwrap().to_owned();
    // Another family of the same user and client is not touched.
    let (other_access, other_refresh) = offline_tokens(&r).await;

    // The first token again (a thief, or the client after the thief): refused, and nobody
    // keeps the family: neither the newer refresh token nor any access token of it works.
    let reused = refresh(&r.h, &r.client, &first).await;
    assert!(is_invalid_grant(&reused), "{:?}", reused.body);
    let after = refresh(&r.h, &r.client, &second).await;
    assert!(is_invalid_grant(&after), "{:?}", after.body);
    for access in [&access1, &access2] {
        assert_eq!(
            userinfo(&r.h, access).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            introspect(&r.h, &r.client, access).await.body,
            json!({"active": false})
        );
    }
    assert_eq!(userinfo(&r.h, &other_access).await.status, StatusCode::OK);
    let t = refresh(&r.h, &r.client, &other_refresh).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    // Audited once, with what went.
    let revoked = audit_outcomes(&r.h, "tokens_revoked").await;
    assert_eq!(
        revoked,
        vec![format!(
            "refresh_token_reused client_id={} refresh_tokens=2 access_tokens=2",
            r.client.id
        )]
    );
}

#[tokio::test]
async fn a_public_client_gets_a_refresh_token_only_when_its_code_came_with_pkce() {
    let r = ready().await;
    let files = public_client(&r.h, "Contoso Files").await;
    let redeem_public = |code: String, verifier: Option<String>| {
        let h = &r.h;
        let id = files.id.clone();
        async move {
            let mut pairs = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("client_id", id),
                ("code", code),
                ("redirect_uri", REDIRECT.to_owned()),
            ];
            if let Some(v) = verifier {
                pairs.push(("code_verifier", v));
            }
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_request(h, &pairs, None).await
        }
    };
    // With PKCE: a refresh token, refreshed with the client id alone.
    let (verifier, challenge) = pkce();
    let mut b = Browser::new(&r.h);
    let q = sign_in_via_pages(
        &mut b,
        &r.phone,
        "Contoso Files",
        &scoped_authorize_uri(&files.id, OFFLINE, Some(&challenge)),
    )
    .await;
    let t = redeem_public(q["code"].clone(), Some(verifier)).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.body["scope"], OFFLINE);
    let rt = t.body["refresh_token"].as_str().unwrap().to_owned();
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &files.id),
            ("refresh_token", &rt),
        ],
        None,
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert!(t.body["refresh_token"].is_string());

    // Without PKCE the authorization endpoint gives a public client no code at all...
    let no_pkce = b.get(&scoped_authorize_uri(&files.id, OFFLINE, None)).await;
    assert_eq!(query_of(&location(&no_pkce))["error"], "invalid_request");
    // ...and a code without a PKCE challenge (as stored before that rule) gets no refresh
    // token: offline_access is not granted.
    let code = "a-public-code-without-pkce";
    let now = signin_domain::store::now_ms();
    signin_domain::store::oidc::insert_code(
        &r.h.state.pool,
        &signin_domain::store::oidc::CodeRow {
            code_hash: oidc::secret_hash(code),
            client_id: files.id.clone(),
            redirect_uri: REDIRECT.to_owned(),
            upn: BOB.to_owned(),
            scope: OFFLINE.to_owned(),
            nonce: None,
            code_challenge: None,
            auth_time: now,
            amr: "mfa swk user".to_owned(),
            created_at: now,
            expires_at: now + 60_000,
            used_at: None,
            method: Some("phone_sign_in".to_owned()),
            device: Some(r.phone.account().as_str().to_owned()),
            sid: None,
        },
        now,
    )
    .await
    .unwrap();
    let t = redeem_public(code.to_owned(), None).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert!(t.body.get("refresh_token").is_none(), "{:?}", t.body);
    assert_eq!(t.body["scope"], "openid profile");

    // A confidential client needs no PKCE for one; a client registered without refresh
    // tokens gets none.
    let mut b = Browser::new(&r.h);
    let q = sign_in_via_pages(
        &mut b,
        &r.phone,
        "Contoso Mail",
        &scoped_authorize_uri(&r.client.id, OFFLINE, None),
    )
    .await;
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
        ],
        Some(&r.client),
    )
    .await;
    assert!(t.body["refresh_token"].is_string(), "{:?}", t.body);
    let none = clients::add_with_refresh(
        &r.h.state.pool,
        "Kiosk Notes",
        &[REDIRECT.to_owned()],
        false,
        None,
        clients::RefreshLifetimes::new(0, None).unwrap(),
    )
    .await
    .unwrap();
    let none = Creds {
        id: none.client_id,
        secret: none.client_secret,
    };
    let (verifier, challenge) = pkce();
    let back = b
        .get(&scoped_authorize_uri(&none.id, OFFLINE, Some(&challenge)))
        .await;
    let q = query_of(&location(&back));
    let t = redeem(&r.h, &none, &q["code"], &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert!(t.body.get("refresh_token").is_none(), "{:?}", t.body);
    assert_eq!(t.body["scope"], "openid profile");
}

/// CIBA asks for `offline_access` too: the refresh token belongs to the phone that approved.
#[tokio::test]
async fn a_ciba_sign_in_with_offline_access_gets_a_refresh_token_of_the_approving_phone() {
    let r = ready().await;
    let s = bc_authorize(
        &r.h,
        &r.client,
        &[("scope", "openid offline_access"), ("login_hint", BOB)],
    )
    .await;
    assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
    let id = s.body["auth_req_id"].as_str().unwrap().to_owned();
    let binding = s.body["binding_message"].as_str().unwrap().to_owned();
    let ok = phone_answers(&r.h, &r.phone, "Contoso Mail", &binding, Decision::Approve).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let t = ciba_poll(&r.h, &r.client, &id).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.body["scope"], "openid offline_access");
    let rt = t.body["refresh_token"].as_str().unwrap().to_owned();
    let t = refresh(&r.h, &r.client, &rt).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    let rt = t.body["refresh_token"].as_str().unwrap().to_owned();
    signin_domain::accounts::devices::remove(&r.h.state.pool, r.phone.account().as_str())
        .await
        .unwrap();
    assert!(is_invalid_grant(&refresh(&r.h, &r.client, &rt).await));
}

/// Rotation is one conditional update: of ten concurrent refreshes with one token, exactly one
/// gets tokens; the others presented a spent token, which ends the family (the winner's new
/// refresh token included).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_with_one_token_rotate_it_once_and_the_others_end_the_family() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let r = ready().await;
    let (_, rt) = offline_tokens(&r).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let app = r.h.app.clone();
        let req = Request::post("/oauth2/token")
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", basic_auth(&r.client.id, &r.client.secret))
            .body(Body::from(form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
            ])))
            .unwrap();
        set.spawn(async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        });
    }
    let answers = set.join_all().await;
    let (won, lost): (Vec<_>, Vec<_>) = answers
        .into_iter()
        .partition(|(status, _)| *status == StatusCode::OK);
    assert_eq!(won.len(), 1, "{lost:?}");
    for (status, body) in &lost {
        assert_eq!(
            (*status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
        );
    }
    let newer = won[0].1["refresh_token"].as_str().unwrap();
    assert!(is_invalid_grant(&refresh(&r.h, &r.client, newer).await));
    assert_eq!(refresh_rows(&r.h).await, 0);
}

/// Issue 21, done when: "a refresh token stops working within one second of its device being
/// removed" — here the very next refresh after the removal is refused, whether an admin removes
/// the phone or the user does on their security-info page. Runs on SQLite, and on PostgreSQL in
/// `cargo xtask test`'s PostgreSQL pass (`TEST_DATABASE_URL`).
#[tokio::test]
async fn a_refresh_token_stops_working_at_once_when_its_device_is_removed() {
    let mut r = ready().await;
    let pool = r.h.state.pool.clone();
    // An admin removes the phone.
    let (access, first) = offline_tokens(&r).await;
    let t = refresh(&r.h, &r.client, &first).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    let second = t.body["refresh_token"].as_str().unwrap().to_owned();
    let access2 = t.body["access_token"].as_str().unwrap().to_owned();
    let removed_at = std::time::Instant::now();
    signin_domain::accounts::devices::remove(&pool, r.phone.account().as_str())
        .await
        .unwrap();
    let refused = refresh(&r.h, &r.client, &second).await;
    let took = removed_at.elapsed();
    assert!(is_invalid_grant(&refused), "{:?}", refused.body);
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    for a in [&access, &access2] {
        assert_eq!(userinfo(&r.h, a).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        refresh_rows(&r.h).await,
        0,
        "the family went with the device"
    );

    // Bob, signed in with a new phone, removes it on his own page.
    let mut phone = Phone::new();
    phone.enroll(&r.h, &r.h.link(BOB, 600).await).await;
    assert_eq!(
        phone.enable_passwordless(&r.h).await.status,
        StatusCode::NO_CONTENT
    );
    r.phone = phone;
    let mut b = Browser::new(&r.h);
    let (code, verifier) = scoped_code(&r, &mut b, "Contoso Mail", OFFLINE).await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    let rt = t.body["refresh_token"].as_str().unwrap().to_owned();
    let info = b.get("/me/security-info").await;
    assert_eq!(info.status, StatusCode::OK);
    let removed_at = std::time::Instant::now();
    let removal = b
        .post(
            "/me/security-info/devices/remove",
            &[
                ("csrf", &csrf_of(&info)),
                ("account_id", r.phone.account().as_str()),
            ],
        )
        .await;
    assert!(
        removal.status.is_success() || removal.status.is_redirection(),
        "{:?}",
        removal.body
    );
    assert_eq!(
        signin_domain::store::devices::owner_of(&pool, r.phone.account().as_str())
            .await
            .unwrap(),
        None
    );
    let refused = refresh(&r.h, &r.client, &rt).await;
    let took = removed_at.elapsed();
    assert!(is_invalid_grant(&refused), "{:?}", refused.body);
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    let removed = audit_outcomes(&r.h, "device_removed").await;
    assert_eq!(removed, vec!["by_admin", "by_user"]);
}

/// A refresh asks the trust model again: a paused or disabled user, or one signed out
/// everywhere, gets `invalid_grant` (the trust rules delete the tokens, and a refresh whose
/// user's standing changed without that is refused all the same).
#[tokio::test]
async fn a_refresh_after_pausing_disabling_or_signing_the_user_out_is_invalid_grant() {
    let r = ready().await;
    let pool = r.h.state.pool.clone();
    let pool = &pool;
    for end in [
        "pause",
        "disable",
        "sign_out_everywhere",
        "disabled_in_the_database",
    ] {
        let (_, rt) = offline_tokens(&r).await;
        match end {
            "pause" => {
                signin_domain::rules::risk::record_report(
                    pool,
                    &Default::default(),
                    BOB,
                    r.phone.account().as_str(),
                    "rid",
                )
                .await
                .unwrap();
            }
            "disable" => {
                signin_domain::trust::set_disabled(pool, BOB, true)
                    .await
                    .unwrap();
            }
            "sign_out_everywhere" => {
                let ended = signin_domain::trust::end_sessions(
                    pool,
                    BOB,
                    signin_domain::trust::EndReason::SignOutEverywhere,
                )
                .await
                .unwrap();
                assert_eq!(ended.refresh_tokens, 1, "{ended:?}");
            }
            _ => {
                // Only the flag, as if the tokens had not been deleted: the refresh itself
                // asks `trust::authenticate`.
                sqlx::query("UPDATE users SET disabled = 1 WHERE upn = $1")
                    .bind(BOB)
                    .execute(pool)
                    .await
                    .unwrap();
                assert_eq!(refresh_rows(&r.h).await, 1);
            }
        }
        let t = refresh(&r.h, &r.client, &rt).await;
        assert!(is_invalid_grant(&t), "{end}: {:?}", t.body);
        // Ended for good: not back when the user is.
        signin_domain::rules::risk::resume(pool, BOB).await.unwrap();
        signin_domain::trust::set_disabled(pool, BOB, false)
            .await
            .unwrap();
        let t = refresh(&r.h, &r.client, &rt).await;
        assert!(is_invalid_grant(&t), "{end}, after: {:?}", t.body);
        assert_eq!(refresh_rows(&r.h).await, 0, "{end}");
    }
    let ended = audit_outcomes(&r.h, "sessions_ended").await;
    assert!(
        ended
            .iter()
            .any(|o| o.starts_with("sign_out_everywhere ") && o.ends_with(" refresh_tokens=1")),
        "{ended:?}"
    );
    let refused = audit_outcomes(&r.h, "access_refused").await;
    assert!(
        refused.iter().any(|o| o == "disabled method=phone_sign_in"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_refresh_token_ends_at_its_clients_lifetime_and_after_its_idle_limit() {
    let mut r = ready().await;
    let short = clients::add_with_refresh(
        &r.h.state.pool,
        "Contoso Notes",
        &[REDIRECT.to_owned()],
        false,
        None,
        clients::RefreshLifetimes::new(3600, Some(600)).unwrap(),
    )
    .await
    .unwrap();
    r.client = Creds {
        id: short.client_id,
        secret: short.client_secret,
    };
    let rows = |h: &Harness| {
        let pool = h.state.pool.clone();
        async move {
            sqlx::query_as::<_, (i64, i64, Option<i64>)>(
                "SELECT created_at, expires_at, idle_expires_at FROM oidc_refresh_tokens \
                 WHERE used_at IS NULL",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    // Idle: unused for longer than 600 s.
    let (_, rt) = offline_tokens_of(&r, "Contoso Notes").await;
    let [(created, ends, idle)] = rows(&r.h).await[..] else {
        panic!("one token")
    };
    assert_eq!(ends - created, 3_600_000);
    assert_eq!(idle, Some(created + 600_000));
    age_rows(&r.h, "oidc_refresh_tokens", "idle_expires_at", 600_001).await;
    assert!(is_invalid_grant(&refresh(&r.h, &r.client, &rt).await));
    // Absolute: used within the idle limit each time, but past the family's end.
    let (_, rt) = offline_tokens_of(&r, "Contoso Notes").await;
    let t = refresh(&r.h, &r.client, &rt).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    let rt = t.body["refresh_token"].as_str().unwrap().to_owned();
    age_rows(&r.h, "oidc_refresh_tokens", "expires_at", 3_600_001).await;
    let expired = refresh(&r.h, &r.client, &rt).await;
    assert!(is_invalid_grant(&expired), "{:?}", expired.body);
    assert_eq!(
        introspect(&r.h, &r.client, &rt).await.body,
        json!({"active": false})
    );
    // Registration refuses lifetimes out of range.
    for (lifetime, idle) in [(0, Some(60)), (3600, Some(0)), (3600, Some(7200))] {
        assert!(clients::RefreshLifetimes::new(lifetime, idle).is_err());
    }
    assert!(clients::RefreshLifetimes::new(clients::MAX_REFRESH_LIFETIME_SECS + 1, None).is_err());
}

#[tokio::test]
async fn revocation_ends_a_family_or_one_access_token_and_introspection_tells_resource_servers() {
    let r = ready().await;
    let api = confidential(&r.h, "Contoso API", "https://api.contoso.test/unused").await;
    let (access, rt) = offline_tokens(&r).await;
    // A resource server introspects an access token.
    let i = introspect(&r.h, &api, &access).await;
    assert_eq!(i.status, StatusCode::OK, "{:?}", i.body);
    assert_eq!(i.headers["cache-control"], "no-store");
    let sub = userinfo(&r.h, &access).await.body["sub"].clone();
    let (exp, iat) = (
        i.body["exp"].as_i64().unwrap(),
        i.body["iat"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 600);
    assert_eq!(
        i.body,
        json!({
            "active": true,
            "scope": OFFLINE,
            "client_id": r.client.id,
            "sub": sub,
            "exp": exp,
            "iat": iat,
            "token_type": "Bearer",
        })
    );
    // A refresh token is active only to its own client.
    let own = introspect(&r.h, &r.client, &rt).await;
    assert_eq!(own.body["active"], true, "{:?}", own.body);
    assert_eq!(own.body["client_id"], r.client.id.as_str());
    assert_eq!(
        introspect(&r.h, &api, &rt).await.body,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&r.h, &api, "unknown").await.body,
        json!({"active": false})
    );
    // Introspection needs a confidential client's credentials.
    let files = public_client(&r.h, "Contoso Files").await;
    let public = h_post_form(
        &r.h,
        "/oauth2/introspect",
        &[("client_id", &files.id), ("token", &access)],
    )
    .await;
    assert_eq!(
        (public.status, public.error()),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
    let anonymous = h_post_form(&r.h, "/oauth2/introspect", &[("token", &access)]).await;
    assert_eq!(
        (anonymous.status, anonymous.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let wrong = Creds {
        id: api.id.clone(),
        secret: "wrong".to_owned(),
    };
    assert_eq!(
        introspect(&r.h, &wrong, &access).await.error(),
        "invalid_client"
    );

    // Revoking: another client's token, an unknown one: 200, nothing happens.
    for token in [rt.as_str(), access.as_str(), "unknown"] {
        let v = revoke(&r.h, &api, token).await;
        assert_eq!(v.status, StatusCode::OK, "{:?}", v.body);
    }
    assert_eq!(userinfo(&r.h, &access).await.status, StatusCode::OK);
    assert_eq!(introspect(&r.h, &r.client, &rt).await.body["active"], true);
    assert_eq!(revoke(&r.h, &wrong, "x").await.error(), "invalid_client");
    // One access token alone.
    let t = refresh(&r.h, &r.client, &rt).await;
    let rt2 = t.body["refresh_token"].as_str().unwrap().to_owned();
    let access2 = t.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        revoke(&r.h, &r.client, &access).await.status,
        StatusCode::OK
    );
    assert_eq!(
        introspect(&r.h, &api, &access).await.body,
        json!({"active": false})
    );
    assert_eq!(userinfo(&r.h, &access2).await.status, StatusCode::OK);
    // The spent refresh token is inactive; the current one, revoked, takes its family.
    assert_eq!(
        introspect(&r.h, &r.client, &rt).await.body,
        json!({"active": false})
    );
    let v = client_post(
        &r.h,
        "/oauth2/revoke",
        &r.client,
        &[("token", &rt2), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(
        introspect(&r.h, &api, &access2).await.body,
        json!({"active": false})
    );
    assert_eq!(
        userinfo(&r.h, &access2).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(is_invalid_grant(&refresh(&r.h, &r.client, &rt2).await));
    // A public client revokes its own refresh token with its client id.
    let (verifier, challenge) = pkce();
    let mut b = Browser::new(&r.h);
    let q = sign_in_via_pages(
        &mut b,
        &r.phone,
        "Contoso Files",
        &scoped_authorize_uri(&files.id, OFFLINE, Some(&challenge)),
    )
    .await;
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &files.id),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    let public_rt = t.body["refresh_token"].as_str().unwrap().to_owned();
    let v = h_post_form(
        &r.h,
        "/oauth2/revoke",
        &[("client_id", &files.id), ("token", &public_rt)],
    )
    .await;
    assert_eq!(v.status, StatusCode::OK);
    let t = token_request(
        &r.h,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &files.id),
            ("refresh_token", &public_rt),
        ],
        None,
    )
    .await;
    assert!(is_invalid_grant(&t), "{:?}", t.body);
    let revoked = audit_outcomes(&r.h, "tokens_revoked").await;
    assert_eq!(
        revoked,
        vec![
            format!(
                "revoked_by_client client_id={} access_tokens=1",
                r.client.id
            ),
            format!(
                "revoked_by_client client_id={} refresh_tokens=2 access_tokens=1",
                r.client.id
            ),
            format!(
                "revoked_by_client client_id={} refresh_tokens=1 access_tokens=1",
                files.id
            ),
        ]
    );
}

/// A form POST to `path` without HTTP Basic.
async fn h_post_form(h: &Harness, path: &str, pairs: &[(&str, &str)]) -> Reply {
    h.send(
        Request::post(path)
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form(pairs)))
            .unwrap(),
    )
    .await
}

#[test]
fn admin_app_add_sets_a_clients_refresh_token_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let add = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "app",
            "add",
            "--name",
            name,
            "--redirect-uri",
            "https://notes.contoso.test/cb",
        ];
        args.extend_from_slice(extra);
        admin_cli(&db, &args)
    };
    let (ok, _, err) = add(
        "Notes",
        &[
            "--refresh-lifetime-secs",
            "86400",
            "--refresh-idle-secs",
            "3600",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = add("Kiosk", &["--refresh-lifetime-secs", "0"]);
    assert!(ok, "{err}");
    let (ok, _, err) = add("Mail", &["--id-token-alg", "ES256"]);
    assert!(ok, "{err}");
    let (ok, _, err) = add("Bad alg", &["--id-token-alg", "none"]);
    assert!(!ok && err.contains("--id-token-alg"), "{err}");
    let (_, list, _) = admin_cli(&db, &["app", "list"]);
    assert!(
        list.contains(
            "redirect_uri https://notes.contoso.test/cb, refresh tokens 86400 s (idle 3600 s), ID tokens RS256)"
        ),
        "{list}"
    );
    assert!(list.contains("Kiosk (OpenID Connect client, confidential, redirect_uri https://notes.contoso.test/cb, no refresh tokens, ID tokens RS256)"), "{list}");
    assert!(list.contains("Mail (OpenID Connect client, confidential, redirect_uri https://notes.contoso.test/cb, refresh tokens 2592000 s, ID tokens ES256)"), "{list}");
    let (ok, _, err) = add(
        "Idle",
        &[
            "--refresh-lifetime-secs",
            "3600",
            "--refresh-idle-secs",
            "7200",
        ],
    );
    assert!(!ok && err.contains("--refresh-idle-secs"), "{err}");
    let (ok, _, err) = add("Long", &["--refresh-lifetime-secs", "40000000"]);
    assert!(!ok && err.contains("--refresh-lifetime-secs"), "{err}");
    // Without --redirect-uri there is no OpenID Connect client to give refresh tokens to.
    let (ok, _, _) = admin_cli(
        &db,
        &[
            "app",
            "add",
            "--name",
            "Api",
            "--refresh-lifetime-secs",
            "60",
        ],
    );
    assert!(!ok);
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
    for path in ["/oauth2/token", "/oauth2/userinfo", "/oauth2/revoke"] {
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

// ---- issue 21: sign-out, errors that reach the application, requests honoured ----

const POST_LOGOUT: &str = "http://127.0.0.1:9000/signed-out";

/// A confidential client with a post-logout redirect URI and, optionally, a back-channel
/// logout URI (registered under the harness's outbound policy).
async fn logout_client(h: &Harness, name: &str, backchannel: Option<&str>) -> Creds {
    let logout = clients::Logout {
        post_logout_redirect_uris: vec![POST_LOGOUT.to_owned()],
        backchannel_logout_uri: backchannel
            .map(|u| clients::BackchannelLogoutUri::parse(u, &h.state.outbound).unwrap()),
    };
    let r = clients::add_with_logout(
        &h.state.pool,
        name,
        &[REDIRECT.to_owned()],
        false,
        None,
        &logout,
    )
    .await
    .unwrap();
    Creds {
        id: r.client_id,
        secret: r.client_secret,
    }
}

/// Tokens for `c`: through the sign-in pages with the phone (a browser not signed in yet), or
/// at once (a signed-in browser).
async fn tokens_for(
    h: &Harness,
    phone: &Phone,
    b: &mut Browser<'_>,
    c: &Creds,
    app: &str,
    signed_in: bool,
) -> Value {
    let (verifier, challenge) = pkce();
    let uri = authorize_uri(
        &c.id,
        REDIRECT,
        &[
            ("state", "st"),
            ("nonce", "n"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let q = if signed_in {
        query_of(&location(&b.get(&uri).await))
    } else {
        sign_in_via_pages(b, phone, app, &uri).await
    };
    let t = redeem(h, c, &q["code"], &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    t.body
}

fn logout_uri(pairs: &[(&str, &str)]) -> String {
    format!("/oauth2/logout?{}", form(pairs))
}

/// Whether the browser is signed in on the pages.
async fn signed_in(b: &mut Browser<'_>) -> bool {
    let me = b.get("/me").await;
    me.status == StatusCode::OK
}

/// An ID token of this provider's key with any claims (expired ones, other issuers…).
async fn own_token(h: &Harness, claims: &Value) -> String {
    oidc::keys::current(&h.state.pool, IdTokenAlg::default())
        .await
        .unwrap()
        .sign(claims)
        .unwrap()
}

#[tokio::test]
async fn discovery_names_the_end_session_endpoint_back_channel_logout_form_post_and_the_acrs() {
    let h = harness().await;
    let m = Browser::new(&h)
        .get("/.well-known/openid-configuration")
        .await
        .body;
    assert_eq!(m["end_session_endpoint"], format!("{ISSUER}/oauth2/logout"));
    assert_eq!(m["backchannel_logout_supported"], true);
    assert_eq!(m["backchannel_logout_session_supported"], true);
    assert_eq!(m["response_modes_supported"], json!(["query", "form_post"]));
    assert_eq!(
        m["acr_values_supported"],
        json!([
            oidc::ACR_PHISHING_RESISTANT,
            oidc::ACR_MFA,
            oidc::ACR_SINGLE_FACTOR
        ])
    );
    assert_eq!(m["claims_parameter_supported"], true);
    assert!(m["claims_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("sid")));
}

#[tokio::test]
async fn logout_with_a_valid_hint_ends_the_session_returns_with_state_and_the_next_sign_in_needs_the_phone(
) {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let c = logout_client(&h, "Contoso Mail", None).await;
    let mut b = Browser::new(&h);
    let t = tokens_for(&h, &phone, &mut b, &c, "Contoso Mail", false).await;
    let id_token = t["id_token"].as_str().unwrap();
    let access = t["access_token"].as_str().unwrap();
    assert!(signed_in(&mut b).await);
    assert_eq!(userinfo(&h, access).await.status, StatusCode::OK);

    let r = b
        .get(&logout_uri(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", POST_LOGOUT),
            ("state", "bye-1"),
        ]))
        .await;
    assert_eq!(
        location(&r),
        format!("{POST_LOGOUT}?state=bye-1"),
        "back to the client at once, state echoed"
    );
    assert!(!b.cookies.contains_key("psi_session"), "the cookie goes");
    assert!(!signed_in(&mut b).await);
    assert_eq!(
        userinfo(&h, access).await.status,
        StatusCode::UNAUTHORIZED,
        "the session's access tokens end with it"
    );
    // The session is gone from the server, not only from this browser's cookie jar.
    assert_eq!(
        signin_domain::store::sessions::count(&h.state.pool)
            .await
            .unwrap(),
        0
    );
    // The next authorization needs the phone again (sign_in_via_pages asserts the sign-in
    // page and the phone's request).
    let again = tokens_for(&h, &phone, &mut b, &c, "Contoso Mail", false).await;
    assert!(again["id_token"].is_string());

    // An expired ID token is still a hint (RP-Initiated Logout §2), and without a redirect URI
    // the browser sees the signed-out page.
    let claims = verify_id_token(&h, again["id_token"].as_str().unwrap(), &c.id).await;
    let mut old = serde_json::to_value(&claims).unwrap();
    old["exp"] = json!(claims.iat - 3600);
    old["iat"] = json!(claims.iat - 3900);
    let expired = own_token(&h, &old).await;
    let r = b.get(&logout_uri(&[("id_token_hint", &expired)])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(text(&r).contains("You have signed out"), "{:?}", r.body);
    assert!(!signed_in(&mut b).await);
}

#[tokio::test]
async fn logout_without_a_hint_or_with_another_users_asks_first_with_a_csrf_protected_form() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let c = logout_client(&h, "Contoso Mail", None).await;
    let mut b = Browser::new(&h);
    tokens_for(&h, &phone, &mut b, &c, "Contoso Mail", false).await;
    // Another user's ID token (Ada's `sub`, this provider's key).
    h.add_user("ada@contoso.test", &[]).await;
    let ada = oidc::token::subject(&h.state.pool, "ada@contoso.test")
        .await
        .unwrap();
    let adas = own_token(
        &h,
        &json!({"iss": ISSUER, "sub": ada, "aud": c.id, "iat": 1, "exp": 2}),
    )
    .await;
    for hint in [None, Some(adas.as_str())] {
        let mut pairs = vec![
            ("client_id", c.id.as_str()),
            ("post_logout_redirect_uri", POST_LOGOUT),
            ("state", "s-2"),
        ];
        if let Some(hint) = hint {
            pairs.push(("id_token_hint", hint));
        }
        let page = b.get(&logout_uri(&pairs)).await;
        assert_eq!(page.status, StatusCode::OK, "a page, not a redirect");
        assert!(text(&page).contains("Sign out?"));
        assert!(text(&page).contains("Contoso Mail"));
        assert!(
            signed_in(&mut b).await,
            "nothing ended before the user says so"
        );
        // The form's post needs this session's CSRF token.
        let forged = b
            .post(
                "/oauth2/logout/confirm",
                &[
                    ("csrf", "forged"),
                    ("client_id", &c.id),
                    ("post_logout_redirect_uri", POST_LOGOUT),
                ],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert!(signed_in(&mut b).await);
        if hint.is_some() {
            // The user confirms this time.
            let csrf = csrf_of(&page);
            let done = b
                .post(
                    "/oauth2/logout/confirm",
                    &[
                        ("csrf", &csrf),
                        ("client_id", &c.id),
                        ("post_logout_redirect_uri", POST_LOGOUT),
                        ("state", "s-2"),
                    ],
                )
                .await;
            // After a form post, a page goes on to the client (form-action 'self').
            assert_eq!(continue_url(&done), format!("{POST_LOGOUT}?state=s-2"));
            assert!(!signed_in(&mut b).await);
        }
    }
}

#[tokio::test]
async fn logout_refuses_unregistered_post_logout_redirect_uris_and_hints_this_provider_did_not_issue(
) {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let c = logout_client(&h, "Contoso Mail", None).await;
    let other = logout_client(&h, "Contoso Files", None).await;
    let mut b = Browser::new(&h);
    let t = tokens_for(&h, &phone, &mut b, &c, "Contoso Mail", false).await;
    let id_token = t["id_token"].as_str().unwrap().to_owned();
    let claims: Value = serde_json::to_value(verify_id_token(&h, &id_token, &c.id).await).unwrap();
    let genuine = jsonwebtoken::decode_header(&id_token).unwrap();
    assert_eq!(genuine.alg, Algorithm::RS256, "the client's default");
    // Signed by a key that is not this provider's, under its kid and algorithm.
    let foreign_rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let foreign_rsa = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        jsonwebtoken::EncodingKey::from_rsa_der(foreign_rsa.to_pkcs1_der().unwrap().as_bytes())
    };
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = genuine.kid.clone();
    let forged = jsonwebtoken::encode(&header, &claims, &foreign_rsa).unwrap();
    // Algorithm confusion: the RSA key's kid on an ES256 token (signed by some P-256 key).
    let (_, pkcs8) = authenticator_protocol::EcdsaSigner::generate().unwrap();
    let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
    header.kid = genuine.kid.clone();
    let confused = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&pkcs8),
    )
    .unwrap();
    let mut elsewhere = claims.clone();
    elsewhere["iss"] = json!("https://evil.example");
    let other_issuer = own_token(&h, &elsewhere).await;
    let refused: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ],
        vec![
            ("client_id", &c.id),
            (
                "post_logout_redirect_uri",
                "http://127.0.0.1:9000/signed-out/",
            ),
        ],
        // Registered for another client than the one the hint was issued to.
        vec![
            ("client_id", &other.id),
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", POST_LOGOUT),
        ],
        // A redirect URI without a client.
        vec![("post_logout_redirect_uri", POST_LOGOUT)],
        vec![
            ("id_token_hint", "garbage"),
            ("post_logout_redirect_uri", POST_LOGOUT),
        ],
        vec![
            ("id_token_hint", &forged),
            ("post_logout_redirect_uri", POST_LOGOUT),
        ],
        vec![
            ("id_token_hint", &confused),
            ("post_logout_redirect_uri", POST_LOGOUT),
        ],
        vec![
            ("id_token_hint", &other_issuer),
            ("post_logout_redirect_uri", POST_LOGOUT),
        ],
        vec![("client_id", "app-unknown")],
    ];
    for pairs in refused {
        let r = b.get(&logout_uri(&pairs)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(r.headers.get("location").is_none(), "{pairs:?}");
        assert!(text(&r).contains("Sign-out request refused"), "{pairs:?}");
        assert!(signed_in(&mut b).await, "{pairs:?}: still signed in");
    }
    // The genuine hint does it.
    let r = b
        .get(&logout_uri(&[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", POST_LOGOUT),
        ]))
        .await;
    assert_eq!(location(&r), POST_LOGOUT);
    assert!(!signed_in(&mut b).await);
}

#[tokio::test]
async fn a_cross_site_post_to_the_end_session_endpoint_goes_on_as_a_get_that_carries_the_cookie() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let c = logout_client(&h, "Contoso Mail", None).await;
    let mut b = Browser::new(&h);
    let t = tokens_for(&h, &phone, &mut b, &c, "Contoso Mail", false).await;
    let pairs = [
        ("id_token_hint", t["id_token"].as_str().unwrap()),
        ("post_logout_redirect_uri", POST_LOGOUT),
        ("state", "x"),
    ];
    // SameSite=Lax: the application's cross-site form post arrives without the cookie.
    let cookies = std::mem::take(&mut b.cookies);
    let r = b.post("/oauth2/logout", &pairs).await;
    let to = location(&r);
    assert!(to.starts_with("/oauth2/logout?"), "{to}");
    assert_eq!(
        query_of(&format!("{ISSUER}{to}")),
        query_of(&format!("{ISSUER}/?{}", form(&pairs)))
    );
    b.cookies = cookies;
    assert!(signed_in(&mut b).await);
    let r = b.get(&to).await;
    assert_eq!(location(&r), format!("{POST_LOGOUT}?state=x"));
    assert!(!signed_in(&mut b).await);
}

/// A local receiver of back-channel logout requests: answers `first` to the first request and
/// 200 after, and keeps each request's content type and `logout_token`.
async fn logout_receiver(
    first: StatusCode,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = got.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = axum::Router::new().route(
        "/backchannel",
        axum::routing::post(
            move |headers: axum::http::HeaderMap,
                  axum::Form(f): axum::Form<HashMap<String, String>>| {
                let sink = sink.clone();
                async move {
                    let mut got = sink.lock().unwrap();
                    let kind = headers["content-type"].to_str().unwrap().to_owned();
                    got.push((kind, f.get("logout_token").cloned().unwrap_or_default()));
                    if got.len() == 1 {
                        first
                    } else {
                        StatusCode::OK
                    }
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    (format!("http://{addr}/backchannel"), got)
}

/// Waits until `got` holds `n` entries (at most `secs` seconds).
async fn wait_for<T: Clone>(got: &std::sync::Mutex<Vec<T>>, n: usize, secs: u64) -> Vec<T> {
    for _ in 0..secs * 20 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    got.lock().unwrap().clone()
}

/// Verifies a logout token as Back-Channel Logout 1.0 §2.6 has a client do: `typ`, signature
/// against the JWKS, `iss`, `aud`; returns its claims.
async fn verify_logout_token(h: &Harness, token: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks = Browser::new(h).get("/oauth2/jwks").await.body;
    // The ID-token key of the client's algorithm signs logout tokens.
    let (key, alg) = published_key(&jwks, token);
    let mut v = Validation::new(alg);
    v.set_audience(&[client_id]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["iss", "aud", "exp", "iat"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("the logout token verifies")
        .claims
}

#[tokio::test]
async fn back_channel_logout_posts_a_signed_logout_token_to_the_sessions_clients_and_retries() {
    let h = ping_harness().await;
    let phone = h.ready_phone(BOB).await;
    let (uri, got) = logout_receiver(StatusCode::SERVICE_UNAVAILABLE).await;
    let mail = logout_client(&h, "Contoso Mail", Some(&uri)).await;
    // A client of the same session without a back-channel URI, and one with a URI that this
    // session gave no code.
    let files = logout_client(&h, "Contoso Files", None).await;
    let (unused_uri, unused) = logout_receiver(StatusCode::OK).await;
    logout_client(&h, "Contoso Chat", Some(&unused_uri)).await;
    let mut b = Browser::new(&h);
    let t = tokens_for(&h, &phone, &mut b, &mail, "Contoso Mail", false).await;
    tokens_for(&h, &phone, &mut b, &files, "Contoso Files", true).await;
    let id = verify_id_token(&h, t["id_token"].as_str().unwrap(), &mail.id).await;
    let sid = id
        .sid
        .clone()
        .expect("a browser sign-in's ID token says sid");

    let r = b
        .get(&logout_uri(&[
            ("id_token_hint", t["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", POST_LOGOUT),
        ]))
        .await;
    assert_eq!(location(&r), POST_LOGOUT);
    // The first POST is answered 503: the same token comes again.
    let posts = wait_for(&got, 2, 10).await;
    assert_eq!(posts.len(), 2, "one retry after a 503: {posts:?}");
    assert_eq!(posts[0], posts[1]);
    assert_eq!(posts[0].0, "application/x-www-form-urlencoded");
    let claims = verify_logout_token(&h, &posts[0].1, &mail.id).await;
    assert_eq!(claims["sub"], id.sub);
    assert_eq!(claims["sid"], sid);
    assert_eq!(
        claims["events"],
        json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );
    assert!(claims.get("nonce").is_none(), "a logout token has no nonce");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22));
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    // A logout token is no ID token: it is refused as an id_token_hint.
    let mut b2 = Browser::new(&h);
    let refused = b2
        .get(&logout_uri(&[
            ("id_token_hint", &posts[0].1),
            ("post_logout_redirect_uri", POST_LOGOUT),
        ]))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        unused.lock().unwrap().is_empty(),
        "only the session's clients"
    );

    // The pages' own "Sign out" tells the clients too.
    got.lock().unwrap().clear();
    let mut b = Browser::new(&h);
    tokens_for(&h, &phone, &mut b, &mail, "Contoso Mail", false).await;
    let me = b.get("/me").await;
    let r = b.post("/signout", &[("csrf", &csrf_of(&me))]).await;
    assert_eq!(location(&r), "/signin");
    let posts = wait_for(&got, 1, 5).await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    let claims = verify_logout_token(&h, &posts[0].1, &mail.id).await;
    assert_eq!(claims["sub"], id.sub);
    assert_ne!(claims["sid"], sid, "a new sign-in is a new session");
}

#[tokio::test]
async fn a_back_channel_logout_uri_is_held_to_the_outbound_policy() {
    let production = OutboundPolicy::default();
    for (uri, want) in [
        ("http://127.0.0.1:9/bcl", OutboundError::NotHttps),
        (
            "https://169.254.169.254/bcl",
            OutboundError::Address(Range::LinkLocal),
        ),
        (
            "https://10.1.2.3/bcl",
            OutboundError::Address(Range::Private),
        ),
    ] {
        let err = clients::BackchannelLogoutUri::parse(uri, &production).unwrap_err();
        assert_eq!(err.downcast_ref::<OutboundError>(), Some(&want), "{uri}");
        assert!(
            format!("{err:#}").starts_with("--backchannel-logout-uri is refused: "),
            "{err:#}"
        );
    }
    assert!(clients::BackchannelLogoutUri::parse("http://127.0.0.1:9/bcl", &development()).is_ok());
    assert!(
        clients::BackchannelLogoutUri::parse("https://mail.contoso.test/bcl", &production).is_ok()
    );
    // Post-logout redirect URIs follow the redirect URIs' rules.
    let h = harness().await;
    for bad in [
        "http://evil.example/",
        "https://mail.contoso.test/#x",
        "relative",
    ] {
        let logout = clients::Logout {
            post_logout_redirect_uris: vec![bad.to_owned()],
            backchannel_logout_uri: None,
        };
        let err = clients::add_with_logout(
            &h.state.pool,
            "X",
            &[REDIRECT.to_owned()],
            false,
            None,
            &logout,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("--post-logout-redirect-uri"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn admin_app_add_registers_post_logout_redirect_uris_and_a_back_channel_logout_uri() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let add = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "app",
            "add",
            "--name",
            name,
            "--redirect-uri",
            "https://mail.contoso.test/cb",
        ];
        args.extend_from_slice(extra);
        admin_cli(&db, &args)
    };
    let (ok, out, err) = add(
        "Contoso Mail",
        &[
            "--post-logout-redirect-uri",
            "https://mail.contoso.test/bye",
            "--post-logout-redirect-uri",
            "http://127.0.0.1:7777/bye",
            "--backchannel-logout-uri",
            "https://mail.contoso.test/backchannel",
        ],
    );
    assert!(ok, "{err}");
    let id = field(&out, "client_id").unwrap().to_owned();
    let (_, list, _) = admin_cli(&db, &["app", "list"]);
    assert!(
        list.contains(&format!(
            "{id} Contoso Mail (OpenID Connect client, confidential, redirect_uri \
             https://mail.contoso.test/cb, post_logout_redirect_uri https://mail.contoso.test/bye, \
             post_logout_redirect_uri http://127.0.0.1:7777/bye, back-channel logout to \
             https://mail.contoso.test/backchannel, refresh tokens 2592000 s, ID tokens RS256)"
        )),
        "{list}"
    );
    let (ok, _, err) = add(
        "B",
        &["--post-logout-redirect-uri", "http://evil.example/bye"],
    );
    assert!(!ok && err.contains("--post-logout-redirect-uri"), "{err}");
    let (ok, _, err) = add("C", &["--backchannel-logout-uri", "http://127.0.0.1:9/bcl"]);
    assert!(
        !ok && err.contains("--backchannel-logout-uri is refused"),
        "{err}"
    );
    let (ok, _, err) = add(
        "D",
        &[
            "--backchannel-logout-uri",
            "http://127.0.0.1:9/bcl",
            "--outbound-allow-http-loopback",
        ],
    );
    assert!(ok, "{err}");
}

/// The phone ends the sign-in of an authorization `how` (deny, report, or nobody answers and
/// it expires); returns the browser's page after "I've answered".
async fn ended_sign_in(
    h: &Harness,
    phone: &Phone,
    b: &mut Browser<'_>,
    authorize: &str,
    how: &str,
) -> Reply {
    let r = b.get(authorize).await;
    assert_eq!(location(&r), "/signin");
    let page = b.get("/signin").await;
    let r = b
        .post("/signin", &[("csrf", &csrf_of(&page)), ("upn", BOB)])
        .await;
    assert_eq!(location(&r), "/signin/wait");
    let wait = b.get("/signin/wait").await;
    let csrf = csrf_of(&wait);
    match how {
        "deny" => {
            phone_answers(h, phone, "Contoso Mail", "", Decision::Deny).await;
        }
        "report" => {
            phone_answers(h, phone, "Contoso Mail", "", Decision::Report).await;
        }
        _ => age_rows(h, "signin_requests", "expires_at", 600_000).await,
    }
    // A link from elsewhere cannot end an authorization whose sign-in is still going: checked
    // before the phone's answer in `a_pending_sign_in_cannot_be_aborted`.
    b.post("/signin/complete", &[("csrf", &csrf)]).await
}

#[tokio::test]
async fn a_denied_reported_or_expired_sign_in_returns_access_denied_to_the_application() {
    for (how, outcome) in [
        ("deny", "denied"),
        ("expire", "expired"),
        ("report", "reported"),
    ] {
        let r = ready().await;
        let mut b = Browser::new(&r.h);
        let authorize = authorize_uri(&r.client.id, REDIRECT, &[("state", "st-9")]);
        let page = ended_sign_in(&r.h, &r.phone, &mut b, &authorize, how).await;
        // The page says so, then goes back to the application by itself.
        assert_eq!(page.status, StatusCode::OK, "{how}");
        let html = text(&page);
        assert!(
            html.contains(&format!("data-outcome=\"{outcome}\"")),
            "{how}: {html}"
        );
        assert!(
            html.contains("http-equiv=\"refresh\" content=\"3;url=/oauth2/authorize/abort\""),
            "{how}: {html}"
        );
        assert!(html.contains("Returning to <strong>Contoso Mail</strong>"));
        let back = b.get("/oauth2/authorize/abort").await;
        let q = query_of(&location(&back));
        assert_eq!(q["error"], "access_denied", "{how}");
        assert_eq!(q["state"], "st-9");
        assert_eq!(q["iss"], ISSUER);
        assert!(location(&back).starts_with(REDIRECT));
        assert!(
            !b.cookies.contains_key("psi_oidc"),
            "the authorization ends"
        );
        // Once.
        let again = b.get("/oauth2/authorize/abort").await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_pending_sign_in_cannot_be_aborted_by_a_link() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let authorize = authorize_uri(&r.client.id, REDIRECT, &[("state", "s")]);
    let first = b.get(&authorize).await;
    assert_eq!(location(&first), "/signin");
    // Nothing started yet.
    assert_eq!(location(&b.get("/oauth2/authorize/abort").await), "/signin");
    let page = b.get("/signin").await;
    b.post("/signin", &[("csrf", &csrf_of(&page)), ("upn", BOB)])
        .await;
    // Waiting for the phone.
    assert_eq!(
        location(&b.get("/oauth2/authorize/abort").await),
        "/signin/wait"
    );
    assert!(b.cookies.contains_key("psi_oidc"), "still in progress");
}

#[tokio::test]
async fn form_post_answers_with_a_form_for_the_client_under_a_csp_that_admits_only_its_origin() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let (verifier, challenge) = pkce();
    let authorize = authorize_uri(
        &r.client.id,
        REDIRECT,
        &[
            ("response_mode", "form_post"),
            ("state", "fp-1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    // Through the sign-in pages: the answer at the end is the form.
    let first = b.get(&authorize).await;
    assert_eq!(location(&first), "/signin");
    let page = b.get("/signin").await;
    b.post("/signin", &[("csrf", &csrf_of(&page)), ("upn", BOB)])
        .await;
    let wait = b.get("/signin/wait").await;
    let number = number_of(&wait);
    phone_answers(&r.h, &r.phone, "Contoso Mail", &number, Decision::Approve).await;
    b.post("/signin/complete", &[("csrf", &csrf_of(&wait))])
        .await;
    let answer = b.get(oidc::RESUME_PATH).await;
    assert_eq!(answer.status, StatusCode::OK);
    let fields = form_post_fields(&answer);
    assert_eq!(fields["state"], "fp-1");
    assert_eq!(fields["iss"], ISSUER);
    assert!(location_free(&answer));
    let t = redeem(&r.h, &r.client, &fields["code"], &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);

    // Signed in: at once, as a form too; and errors go the same way.
    let (_, challenge) = pkce();
    let at_once = b
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[
                ("response_mode", "form_post"),
                ("state", "fp-2"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .await;
    assert!(form_post_fields(&at_once).contains_key("code"));
    let error = Browser::new(&r.h)
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[
                ("response_mode", "form_post"),
                ("prompt", "none"),
                ("state", "fp-3"),
            ],
        ))
        .await;
    let fields = form_post_fields(&error);
    assert_eq!(fields["error"], "login_required");
    assert_eq!(fields["state"], "fp-3");
    // An unsupported mode is an error in the query.
    let other = Browser::new(&r.h)
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[("response_mode", "fragment"), ("state", "fp-4")],
        ))
        .await;
    let q = query_of(&location(&other));
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "fp-4");
}

/// No `Location`: a page, not a redirect.
fn location_free(r: &Reply) -> bool {
    r.headers.get("location").is_none()
}

/// The fields of a `form_post` answer, after checking the page: a form posting to the
/// redirect URI, submitted by the server's static script (no inline script), under a CSP whose
/// `form-action` admits the client's origin only.
fn form_post_fields(r: &Reply) -> HashMap<String, String> {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("form-action http://127.0.0.1:9000;"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("nonce-"),
        "{csp}"
    );
    let html = text(r);
    assert!(html.contains(&format!(
        "<form id=\"autosubmit\" method=\"post\" action=\"{REDIRECT}\">"
    )));
    assert!(html.contains("<script src=\"/assets/autosubmit.js\" defer>"));
    assert_eq!(html.matches("<script").count(), 1, "no inline script");
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|field| {
            let (name, rest) = field.split_once('"').unwrap();
            let value = rest
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .replace("&amp;", "&");
            (name.to_owned(), value)
        })
        .collect()
}

#[tokio::test]
async fn userinfo_takes_the_access_token_in_a_form_body_but_not_two_ways_at_once() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n").await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    let access = t.body["access_token"].as_str().unwrap();
    let post = |auth: Option<String>, body: String, kind: &'static str| {
        let mut req = Request::post("/oauth2/userinfo")
            .header("host", HOST)
            .header("content-type", kind);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        r.h.send(req.body(Body::from(body)).unwrap())
    };
    let ok = post(
        None,
        form(&[("access_token", access)]),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.body["preferred_username"], BOB);
    let both = post(
        Some(format!("Bearer {access}")),
        form(&[("access_token", access)]),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    assert_eq!(both.error(), "invalid_request");
    // Not in another body type, not in the query.
    let json_body = post(
        None,
        format!("{{\"access_token\":\"{access}\"}}"),
        "application/json",
    )
    .await;
    assert_eq!(json_body.status, StatusCode::UNAUTHORIZED);
    let query =
        r.h.send(
            Request::get(format!("/oauth2/userinfo?access_token={access}"))
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(query.status, StatusCode::UNAUTHORIZED);
    let wrong = post(
        None,
        form(&[("access_token", "nope")]),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(wrong.error(), "invalid_token");
}

/// Turns the policy's phishing-resistant option on (it needs the public URL).
async fn phishing_resistant_policy(h: &Harness) {
    let pool = &h.state.pool;
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
}

#[tokio::test]
async fn a_phishing_resistant_acr_is_unmet_without_the_policy_and_honoured_with_it() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    // An mfa sign-in (the policy is off).
    let (code, _) = code_for(&r, &mut b, "n").await;
    assert!(!code.is_empty());
    let essential =
        json!({"id_token": {"acr": {"essential": true, "values": [oidc::ACR_PHISHING_RESISTANT]}}})
            .to_string();
    for extra in [
        vec![("acr_values", oidc::ACR_PHISHING_RESISTANT)],
        vec![("claims", essential.as_str())],
    ] {
        let mut pairs = vec![("state", "acr-1")];
        pairs.extend(extra.iter().copied());
        let back = b.get(&authorize_uri(&r.client.id, REDIRECT, &pairs)).await;
        let q = query_of(&location(&back));
        assert_eq!(q["error"], "unmet_authentication_requirements", "{extra:?}");
        assert_eq!(q["state"], "acr-1");
        assert_eq!(q["iss"], ISSUER);
    }
    // Asking for mfa or less, or listing phr among weaker values, is met by this sign-in.
    for acr_values in [
        oidc::ACR_MFA.to_owned(),
        format!("{} {}", oidc::ACR_PHISHING_RESISTANT, oidc::ACR_MFA),
        "urn:other:acr".to_owned(),
    ] {
        let back = b
            .get(&authorize_uri(
                &r.client.id,
                REDIRECT,
                &[("acr_values", &acr_values)],
            ))
            .await;
        assert!(
            query_of(&location(&back)).contains_key("code"),
            "{acr_values}"
        );
    }
    let malformed = b
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[("claims", "{not json")],
        ))
        .await;
    assert_eq!(query_of(&location(&malformed))["error"], "invalid_request");

    // With the policy on, the mfa session is not enough: prompt=none says so, otherwise the
    // browser signs in again, bound to it, and gets a phishing-resistant code.
    phishing_resistant_policy(&r.h).await;
    let none = b
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[
                ("acr_values", oidc::ACR_PHISHING_RESISTANT),
                ("prompt", "none"),
            ],
        ))
        .await;
    assert_eq!(query_of(&location(&none))["error"], "login_required");
    let (verifier, challenge) = pkce();
    let q = sign_in_via_pages(
        &mut b,
        &r.phone,
        "Contoso Mail",
        &authorize_uri(
            &r.client.id,
            REDIRECT,
            &[
                ("acr_values", oidc::ACR_PHISHING_RESISTANT),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ),
    )
    .await;
    let t = redeem(&r.h, &r.client, &q["code"], &verifier).await;
    let claims = verify_id_token(&r.h, t.body["id_token"].as_str().unwrap(), &r.client.id).await;
    assert_eq!(claims.acr, oidc::ACR_PHISHING_RESISTANT);
}

#[tokio::test]
async fn a_sign_in_weaker_than_the_requested_acr_is_unmet_at_the_end_of_the_sign_in() {
    let h = harness().await;
    let client = confidential(&h, "Contoso Mail", REDIRECT).await;
    // A user without a phone signs in with a password alone (single-factor).
    let mut b = password_browser(&h, "ada@contoso.test", &[]).await;
    let authorize = authorize_uri(
        &client.id,
        REDIRECT,
        &[("acr_values", oidc::ACR_MFA), ("state", "acr-2")],
    );
    let r = b.get(&authorize).await;
    assert_eq!(
        location(&r),
        "/signin",
        "the session is too weak: sign in again"
    );
    let page = b.get("/signin").await;
    b.post(
        "/signin",
        &[("csrf", &csrf_of(&page)), ("upn", "ada@contoso.test")],
    )
    .await;
    let page = b.get("/signin/password").await;
    let r = b
        .post(
            "/signin/password",
            &[("csrf", &csrf_of(&page)), ("password", "a long password 1")],
        )
        .await;
    assert_eq!(location(&r), oidc::RESUME_PATH);
    let q = query_of(&continue_url(&b.get(oidc::RESUME_PATH).await));
    assert_eq!(q["error"], "unmet_authentication_requirements");
    assert_eq!(q["state"], "acr-2");
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn id_token_hint_must_be_this_providers_for_this_client_and_name_the_sessions_user() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    let (code, verifier) = code_for(&r, &mut b, "n").await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    let id_token = t.body["id_token"].as_str().unwrap().to_owned();
    let claims =
        serde_json::to_value(verify_id_token(&r.h, &id_token, &r.client.id).await).unwrap();
    let none = |hint: &str| {
        authorize_uri(
            &r.client.id,
            REDIRECT,
            &[("prompt", "none"), ("id_token_hint", hint), ("state", "h")],
        )
    };
    // Garbage, and tokens this provider did not issue for this client: invalid_request.
    let mut other_issuer = claims.clone();
    other_issuer["iss"] = json!("https://evil.example");
    let mut other_client = claims.clone();
    other_client["aud"] = json!("app-someone-else");
    for hint in [
        "garbage".to_owned(),
        format!("{id_token}x"),
        own_token(&r.h, &other_issuer).await,
        own_token(&r.h, &other_client).await,
    ] {
        let q = query_of(&location(&b.get(&none(&hint)).await));
        assert_eq!(q["error"], "invalid_request", "{hint}");
        assert_eq!(q["state"], "h");
        assert!(!q.contains_key("code"));
    }
    // The session's user's own hint (also expired) gets a code.
    let mut expired = claims.clone();
    expired["exp"] = json!(1);
    for hint in [id_token.clone(), own_token(&r.h, &expired).await] {
        let q = query_of(&location(&b.get(&none(&hint)).await));
        assert!(q.contains_key("code"), "{q:?}");
    }
    // Another user's: login_required (prompt=none), or a sign-in as that user.
    r.h.add_user("ada@contoso.test", &[]).await;
    let mut ada = claims.clone();
    ada["sub"] = json!(oidc::token::subject(&r.h.state.pool, "ada@contoso.test")
        .await
        .unwrap());
    let adas = own_token(&r.h, &ada).await;
    let q = query_of(&location(&b.get(&none(&adas)).await));
    assert_eq!(q["error"], "login_required");
    let to = b
        .get(&authorize_uri(
            &r.client.id,
            REDIRECT,
            &[("id_token_hint", &adas), ("state", "h2")],
        ))
        .await;
    assert_eq!(location(&to), "/signin");
    let page = b.get("/signin").await;
    assert!(
        text(&page).contains("value=\"ada@contoso.test\""),
        "the hint's user is filled in"
    );
    // Bob signs in instead: the request ends with login_required, no code.
    let r2 = b
        .post("/signin", &[("csrf", &csrf_of(&page)), ("upn", BOB)])
        .await;
    assert_eq!(location(&r2), "/signin/wait");
    let wait = b.get("/signin/wait").await;
    let number = number_of(&wait);
    phone_answers(&r.h, &r.phone, "Contoso Mail", &number, Decision::Approve).await;
    b.post("/signin/complete", &[("csrf", &csrf_of(&wait))])
        .await;
    let q = query_of(&continue_url(&b.get(oidc::RESUME_PATH).await));
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "h2");
}

// ---- claims: email, groups, given and family names (issue 21) ----

/// Bob with an email address (verified), given and family names, and two groups.
async fn with_attributes(r: &Ready) {
    let pool = &r.h.state.pool;
    signin_domain::accounts::attributes::set_attributes(
        pool,
        BOB,
        signin_domain::accounts::attributes::AttributesUpdate {
            email: Some("Bobby.Tables@Contoso.TEST".to_owned()),
            email_verified: Some(true),
            given_name: Some("Bobby".to_owned()),
            family_name: Some("Tables".to_owned()),
        },
    )
    .await
    .unwrap();
    for group in ["sales", "engineering"] {
        signin_domain::accounts::add_group_member(pool, group, BOB)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_email_groups_and_profile_scopes_give_their_claims_in_userinfo_and_the_id_token() {
    let r = ready().await;
    with_attributes(&r).await;
    let mut b = Browser::new(&r.h);
    // Unknown scopes are ignored and not echoed; the supported ones are all granted.
    let (code, verifier) = scoped_code(
        &r,
        &mut b,
        "Contoso Mail",
        "openid email unknown groups profile phone",
    )
    .await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.body["scope"], "openid profile email groups");
    let claims = verify_id_token(&r.h, t.body["id_token"].as_str().unwrap(), &r.client.id).await;
    let expected = json!({
        "name": "Test User",
        "preferred_username": BOB,
        "given_name": "Bobby",
        "family_name": "Tables",
        "email": "bobby.tables@contoso.test",
        "email_verified": true,
        "groups": ["engineering", "sales"],
    });
    assert_eq!(Value::Object(claims.user.clone()), expected);
    let u = userinfo(&r.h, t.body["access_token"].as_str().unwrap()).await;
    assert_eq!(u.status, StatusCode::OK, "{:?}", u.body);
    let mut with_sub = expected.clone();
    with_sub["sub"] = json!(claims.sub);
    assert_eq!(u.body, with_sub);

    // `email` alone: the address, nothing of the profile or the groups.
    let mut b = Browser::new(&r.h);
    let (code, verifier) = scoped_code(&r, &mut b, "Contoso Mail", "openid email").await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(t.body["scope"], "openid email");
    let claims = verify_id_token(&r.h, t.body["id_token"].as_str().unwrap(), &r.client.id).await;
    let expected = json!({"email": "bobby.tables@contoso.test", "email_verified": true});
    assert_eq!(Value::Object(claims.user.clone()), expected);
    let u = userinfo(&r.h, t.body["access_token"].as_str().unwrap()).await;
    let mut with_sub = expected.clone();
    with_sub["sub"] = json!(claims.sub);
    assert_eq!(u.body, with_sub);
}

#[tokio::test]
async fn without_those_scopes_no_user_claims_are_given() {
    let r = ready().await;
    with_attributes(&r).await;
    let mut b = Browser::new(&r.h);
    let (code, verifier) = scoped_code(&r, &mut b, "Contoso Mail", "openid").await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    assert_eq!(t.body["scope"], "openid");
    let raw = t.body["id_token"].as_str().unwrap();
    let claims = verify_id_token(&r.h, raw, &r.client.id).await;
    assert!(claims.user.is_empty(), "{:?}", claims.user);
    let u = userinfo(&r.h, t.body["access_token"].as_str().unwrap()).await;
    assert_eq!(u.body, json!({"sub": claims.sub}));
}

#[tokio::test]
async fn an_unverified_or_missing_email_says_so_and_profile_puts_names_in_the_id_token() {
    let r = ready().await;
    let mut b = Browser::new(&r.h);
    // No attributes set: `profile` still gives name and preferred_username (in the ID token
    // too); `email` gives nothing without an address; `groups` an empty list.
    let (code, verifier) =
        scoped_code(&r, &mut b, "Contoso Mail", "openid profile email groups").await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    let claims = verify_id_token(&r.h, t.body["id_token"].as_str().unwrap(), &r.client.id).await;
    assert_eq!(
        Value::Object(claims.user),
        json!({"name": "Test User", "preferred_username": BOB, "groups": []})
    );
    // A new address is not verified unless the administrator says so.
    signin_domain::accounts::attributes::set_attributes(
        &r.h.state.pool,
        BOB,
        signin_domain::accounts::attributes::AttributesUpdate {
            email: Some("bob@contoso.test".to_owned()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut b = Browser::new(&r.h);
    let (code, verifier) = scoped_code(&r, &mut b, "Contoso Mail", "openid email").await;
    let t = redeem(&r.h, &r.client, &code, &verifier).await;
    let u = userinfo(&r.h, t.body["access_token"].as_str().unwrap()).await;
    assert_eq!(u.body["email"], "bob@contoso.test");
    assert_eq!(u.body["email_verified"], false);
}

#[test]
fn admin_user_set_sets_email_and_names_and_refuses_a_bad_email() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let (ok, _, err) = admin_cli(&db, &["user", "add", "--upn", BOB, "--name", "Bob"]);
    assert!(ok, "{err}");
    let (ok, out, err) = admin_cli(
        &db,
        &[
            "user",
            "set",
            "--upn",
            BOB,
            "--email",
            "Bob.T@Contoso.TEST",
            "--email-verified",
            "true",
            "--given-name",
            "Bob",
            "--family-name",
            "Tables",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("attributes set"), "{out}");
    let (ok, out, _) = admin_cli(&db, &["user", "show", "--upn", BOB]);
    assert!(ok);
    assert_eq!(field(&out, "email"), Some("bob.t@contoso.test (verified)"));
    assert_eq!(field(&out, "given name"), Some("Bob"));
    assert_eq!(field(&out, "family name"), Some("Tables"));
    for bad in [
        "bob",
        "bob@localhost",
        "bob@@contoso.test",
        "b ob@contoso.test",
    ] {
        let (ok, _, err) = admin_cli(&db, &["user", "set", "--upn", BOB, "--email", bad]);
        assert!(!ok, "{bad} accepted");
        assert!(err.contains("--email is not an email address"), "{err}");
        assert!(
            !err.contains(bad),
            "the refusal does not repeat the value: {err}"
        );
    }
    let (ok, _, err) = admin_cli(
        &db,
        &["user", "set", "--upn", BOB, "--given-name", "Bob\u{202e}"],
    );
    assert!(!ok);
    assert!(err.contains("--given-name"), "{err}");
    let (ok, _, err) = admin_cli(&db, &["user", "set", "--upn", BOB]);
    assert!(!ok);
    assert!(err.contains("nothing to set"), "{err}");
    let (ok, _, err) = admin_cli(
        &db,
        &[
            "user",
            "set",
            "--upn",
            "nobody@contoso.test",
            "--email",
            "a@b.test",
        ],
    );
    assert!(!ok);
    assert!(err.contains("no user"), "{err}");
    // Refused values changed nothing; clearing the address clears its verification.
    let (_, out, _) = admin_cli(&db, &["user", "show", "--upn", BOB]);
    assert_eq!(field(&out, "email"), Some("bob.t@contoso.test (verified)"));
    let (ok, _, err) = admin_cli(&db, &["user", "set", "--upn", BOB, "--email", ""]);
    assert!(ok, "{err}");
    let (_, out, _) = admin_cli(&db, &["user", "show", "--upn", BOB]);
    assert_eq!(field(&out, "email"), Some("-"));
    let (ok, _, err) = admin_cli(
        &db,
        &["user", "set", "--upn", BOB, "--email-verified", "true"],
    );
    assert!(!ok);
    assert!(err.contains("needs an email address"), "{err}");
}
