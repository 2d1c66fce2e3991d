//! Local stand-ins for the push services, for tests (feature `testing`), speaking their
//! documented HTTP APIs on 127.0.0.1: an APNs provider endpoint (HTTP/2 cleartext, prior
//! knowledge) and an FCM HTTP v1 endpoint with its OAuth2 token endpoint. They verify the auth
//! tokens' signatures with the public keys, record what they received and answer with
//! scripted statuses. The server's own tests (`signin-server/tests/push*.rs`) and the
//! end-to-end tests (`tests/`) use them.
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use authenticator_protocol::encoding::b64;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use ring::signature::{self, KeyPair};
use serde_json::{json, Value};
use signin_domain::delivery::jwt::{decode, DecodedJwt};

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

// ------------------------------------------------------------------------------------------
// APNs

#[derive(Debug, Clone)]
pub struct ApnsHit {
    pub version: Version,
    pub token: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub jwt: DecodedJwt,
    pub jwt_verified: bool,
}

#[derive(Clone, Default)]
struct ApnsShared {
    hits: Arc<Mutex<Vec<ApnsHit>>>,
    script: Arc<Mutex<VecDeque<(u16, &'static str)>>>,
    unregistered: Arc<Mutex<HashSet<String>>>,
    public_key: Arc<Vec<u8>>,
}

pub struct Apns {
    pub url: String,
    pub key_path: PathBuf,
    shared: ApnsShared,
}

pub const APNS_KEY_ID: &str = "ABC123DEFG";
pub const APNS_TEAM_ID: &str = "DEF123GHIJ";
pub const APNS_TOPIC: &str = "com.example.phonesignin";

async fn apns_handler(
    State(s): State<ApnsShared>,
    UrlPath(token): UrlPath<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let jwt_text = auth.strip_prefix("bearer ").unwrap_or("");
    let jwt = decode(jwt_text).unwrap_or(DecodedJwt {
        header: Value::Null,
        claims: Value::Null,
        signing_input: String::new(),
        signature: Vec::new(),
    });
    let jwt_verified = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        s.public_key.as_slice(),
    )
    .verify(jwt.signing_input.as_bytes(), &jwt.signature)
    .is_ok();
    s.hits.lock().unwrap().push(ApnsHit {
        version,
        token: token.clone(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        jwt,
        jwt_verified,
    });
    if !jwt_verified {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"reason": "InvalidProviderToken"})),
        )
            .into_response();
    }
    if s.unregistered.lock().unwrap().contains(&token) {
        return (
            StatusCode::GONE,
            Json(json!({"reason": "Unregistered", "timestamp": 1_700_000_000_000u64})),
        )
            .into_response();
    }
    let next = s.script.lock().unwrap().pop_front();
    match next {
        Some((status, reason)) => {
            let mut r = (
                StatusCode::from_u16(status).unwrap(),
                Json(json!({"reason": reason})),
            )
                .into_response();
            if status == 429 {
                r.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("0"));
            }
            r
        }
        None => StatusCode::OK.into_response(),
    }
}

impl Apns {
    /// Starts the endpoint and writes a fresh `.p8` key for the server to sign with.
    pub async fn start(dir: &Path) -> Apns {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let pair = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        let key_path = dir.join("AuthKey_TEST.p8");
        std::fs::write(&key_path, pem("PRIVATE KEY", pkcs8.as_ref())).unwrap();
        let shared = ApnsShared {
            public_key: Arc::new(pair.public_key().as_ref().to_vec()),
            ..Default::default()
        };
        let router = Router::new()
            .route("/3/device/{token}", post(apns_handler))
            .with_state(shared.clone());
        let addr = serve(router).await;
        Apns {
            url: format!("http://{addr}"),
            key_path,
            shared,
        }
    }

    pub fn config(&self) -> signin_domain::delivery::push::ApnsConfig {
        signin_domain::delivery::push::ApnsConfig {
            key_path: self.key_path.clone(),
            key_id: APNS_KEY_ID.into(),
            team_id: APNS_TEAM_ID.into(),
            topic: APNS_TOPIC.into(),
            endpoint: url::Url::parse(&self.url).unwrap(),
        }
    }

    pub fn hits(&self) -> Vec<ApnsHit> {
        self.shared.hits.lock().unwrap().clone()
    }

    pub fn unregister(&self, token: &str) {
        self.shared
            .unregistered
            .lock()
            .unwrap()
            .insert(token.to_owned());
    }

    /// The next answers (status, reason), before the default 200.
    pub fn script(&self, answers: &[(u16, &'static str)]) {
        self.shared
            .script
            .lock()
            .unwrap()
            .extend(answers.iter().copied());
    }
}

// ------------------------------------------------------------------------------------------
// FCM and OAuth2

#[derive(Debug, Clone)]
pub struct FcmHit {
    pub project: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct TokenHit {
    pub grant_type: String,
    pub jwt: DecodedJwt,
    pub jwt_verified: bool,
}

#[derive(Clone, Default)]
struct FcmShared {
    sends: Arc<Mutex<Vec<FcmHit>>>,
    tokens: Arc<Mutex<Vec<TokenHit>>>,
    issued: Arc<Mutex<Vec<String>>>,
    script: Arc<Mutex<VecDeque<(u16, Value)>>>,
    unregistered: Arc<Mutex<HashSet<String>>>,
    public_key: Arc<Vec<u8>>,
}

pub struct Fcm {
    pub url: String,
    pub token_url: String,
    pub service_account: PathBuf,
    shared: FcmShared,
}

pub const FCM_PROJECT: &str = "phone-signin-test";
pub const FCM_CLIENT_EMAIL: &str = "push@phone-signin-test.iam.gserviceaccount.com";

async fn token_handler(State(s): State<FcmShared>, body: String) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let jwt = match decode(&get("assertion")) {
        Ok(j) => j,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant"})),
            )
                .into_response()
        }
    };
    let jwt_verified = signature::UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        s.public_key.as_slice(),
    )
    .verify(jwt.signing_input.as_bytes(), &jwt.signature)
    .is_ok();
    s.tokens.lock().unwrap().push(TokenHit {
        grant_type: get("grant_type"),
        jwt,
        jwt_verified,
    });
    if !jwt_verified {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    let access = format!("ya29.test-{}", b64(&bytes));
    s.issued.lock().unwrap().push(access.clone());
    Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

async fn send_handler(
    State(s): State<FcmShared>,
    UrlPath(project): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    s.sends.lock().unwrap().push(FcmHit {
        project,
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let bearer = authorization.strip_prefix("Bearer ").unwrap_or("");
    if !s.issued.lock().unwrap().iter().any(|t| t == bearer) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad token"}})),
        )
            .into_response();
    }
    let token = body["message"]["token"].as_str().unwrap_or("").to_owned();
    if s.unregistered.lock().unwrap().contains(&token) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": 404, "status": "NOT_FOUND",
                "message": "Requested entity was not found.",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                             "errorCode": "UNREGISTERED"}]}})),
        )
            .into_response();
    }
    let next = s.script.lock().unwrap().pop_front();
    match next {
        Some((status, body)) => (StatusCode::from_u16(status).unwrap(), Json(body)).into_response(),
        None => {
            Json(json!({"name": format!("projects/{FCM_PROJECT}/messages/0:1")})).into_response()
        }
    }
}

/// An FCM `INVALID_ARGUMENT` error blaming `field`.
pub fn fcm_invalid_argument(field: &str) -> Value {
    json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid value",
        "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": field, "description": "Invalid value"}]}]}})
}

impl Fcm {
    /// Starts the endpoints and writes a service-account file naming them.
    pub async fn start(dir: &Path) -> Fcm {
        let key_pem = include_str!("../tests/fixtures/fcm-test-key.pem");
        let der = signin_domain::delivery::jwt::pem_to_der(key_pem, "PRIVATE KEY").unwrap();
        let pair = signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let shared = FcmShared {
            public_key: Arc::new(pair.public_key().as_ref().to_vec()),
            ..Default::default()
        };
        let router = Router::new()
            .route("/token", post(token_handler))
            .route("/v1/projects/{project}/messages:send", post(send_handler))
            .with_state(shared.clone());
        let addr = serve(router).await;
        let token_url = format!("http://{addr}/token");
        let service_account = dir.join("service-account.json");
        std::fs::write(
            &service_account,
            json!({
                "type": "service_account",
                "project_id": FCM_PROJECT,
                "private_key_id": "test-key-1",
                "private_key": key_pem,
                "client_email": FCM_CLIENT_EMAIL,
                "token_uri": token_url,
            })
            .to_string(),
        )
        .unwrap();
        Fcm {
            url: format!("http://{addr}"),
            token_url,
            service_account,
            shared,
        }
    }

    pub fn config(&self) -> signin_domain::delivery::push::FcmConfig {
        signin_domain::delivery::push::FcmConfig {
            service_account_path: self.service_account.clone(),
            project_id: None,
            endpoint: url::Url::parse(&self.url).unwrap(),
            token_uri: None,
        }
    }

    pub fn sends(&self) -> Vec<FcmHit> {
        self.shared.sends.lock().unwrap().clone()
    }

    pub fn token_requests(&self) -> Vec<TokenHit> {
        self.shared.tokens.lock().unwrap().clone()
    }

    pub fn issued(&self) -> Vec<String> {
        self.shared.issued.lock().unwrap().clone()
    }

    pub fn unregister(&self, token: &str) {
        self.shared
            .unregistered
            .lock()
            .unwrap()
            .insert(token.to_owned());
    }

    pub fn script(&self, answers: Vec<(u16, Value)>) {
        self.shared.script.lock().unwrap().extend(answers);
    }
}
