//! A simulated phone: one enrolled user with phone sign-in enabled, speaking the protocol with
//! `authenticator-protocol` over HTTP, and checking what a real phone checks (the server's
//! signature on the details, the ids, the number shown on the "page").
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use authenticator_protocol::encoding::{b64, unb64_fixed};
use authenticator_protocol::enroll::{EnrollProof, EnrollmentUrl, PasswordlessKeyRegistration};
use authenticator_protocol::sign_in::{Decision, DeviceAuth, SignInResponse, SignedRequestDetails};
use authenticator_protocol::wire::PollResponse;
use authenticator_protocol::{AccountId, EcdsaSigner, PublicKey, TypedNumber, UnixMillis};
use serde_json::{json, Value};

use crate::server::{App, Server};
use crate::Delivery;

pub struct Phone {
    http: reqwest::Client,
    base: String,
    upn: String,
    device: EcdsaSigner,
    passwordless: EcdsaSigner,
    account_id: AccountId,
    server_key: PublicKey,
}

/// One ceremony's timings.
pub struct Ceremony {
    /// Start → the page reads `approved`.
    pub total: Duration,
    /// The approval POST alone.
    pub approval: Duration,
}

/// Enrolls `n` phones (one user each) and enables phone sign-in on them, 32 at a time.
pub async fn enroll_all(server: &Server, n: usize) -> Result<Vec<Arc<Phone>>> {
    let mut phones = Vec::with_capacity(n);
    let links = server.links.clone();
    for chunk in links.chunks(32) {
        let mut tasks = Vec::new();
        for (upn, link) in chunk {
            let (base, upn, link) = (server.base_url.clone(), upn.clone(), link.clone());
            tasks.push(tokio::spawn(async move {
                Phone::enroll(base, upn, &link).await
            }));
        }
        for t in tasks {
            phones.push(Arc::new(t.await??));
        }
    }
    Ok(phones)
}

async fn json_of(resp: reqwest::Response, what: &str) -> Result<Value> {
    let status = resp.status();
    let body = resp.text().await?;
    ensure!(status.is_success(), "{what}: HTTP {status}: {body}");
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: not JSON: {body}"))
}

impl Phone {
    async fn enroll(base: String, upn: String, link: &str) -> Result<Phone> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4)
            .build()?;
        let link = EnrollmentUrl::parse(link).context("registration link")?;
        let device = EcdsaSigner::generate()?.0;
        let passwordless = EcdsaSigner::generate()?.0;
        let r = json_of(
            http.post(format!("{base}api/v1/enroll/challenge"))
                .json(&json!({"code": link.code}))
                .send()
                .await?,
            "enroll/challenge",
        )
        .await?;
        let server_key =
            PublicKey::from_b64("server_public_key", str_of(&r, "server_public_key")?)?;
        ensure!(
            server_key.fingerprint() == link.server_fingerprint,
            "the server key does not match the link"
        );
        let challenge = unb64_fixed::<32>("challenge", str_of(&r, "challenge")?)?;
        let proof = EnrollProof {
            challenge,
            device_public_key: device.public_key(),
            push_kind: "longpoll".into(),
            push_token: String::new(),
            device_name: "Load phone".into(),
            timestamp: UnixMillis::now(),
        };
        let signature = device.sign(&proof.signed_bytes());
        let r = json_of(
            http.post(format!("{base}api/v1/enroll/complete"))
                .json(&json!({
                    "code": link.code, "challenge": b64(&challenge),
                    "device_public_key": proof.device_public_key.to_b64(),
                    "push": {"kind": "longpoll", "token": ""},
                    "device_name": proof.device_name, "timestamp": proof.timestamp,
                    "signature": signature.to_b64(),
                }))
                .send()
                .await?,
            "enroll/complete",
        )
        .await?;
        let account_id = AccountId::parse(str_of(&r, "account_id")?)?;
        let registration = PasswordlessKeyRegistration {
            account_id: account_id.clone(),
            passwordless_public_key: passwordless.public_key(),
            timestamp: UnixMillis::now(),
        };
        let bytes = registration.signed_bytes();
        json_of(
            http.post(format!("{base}api/v1/device/passwordless"))
                .json(&json!({
                    "account_id": account_id,
                    "passwordless_public_key": registration.passwordless_public_key.to_b64(),
                    "timestamp": registration.timestamp,
                    "device_signature": device.sign(&bytes).to_b64(),
                    "key_signature": passwordless.sign(&bytes).to_b64(),
                }))
                .send()
                .await?,
            "device/passwordless",
        )
        .await?;
        Ok(Phone {
            http,
            base,
            upn,
            device,
            passwordless,
            account_id,
            server_key,
        })
    }

    fn device_auth(&self, method: &str, path_and_query: &str) -> String {
        let ts = UnixMillis::now();
        let signature = self.device.sign(&DeviceAuth::signed_bytes(
            method,
            path_and_query,
            &self.account_id,
            ts,
        ));
        DeviceAuth {
            account_id: self.account_id.clone(),
            timestamp: ts,
            signature,
        }
        .to_header()
    }

    async fn device_get(&self, path_and_query: &str) -> Result<Value> {
        let resp = self
            .http
            .get(format!("{}{}", self.base, &path_and_query[1..]))
            .header("authorization", self.device_auth("GET", path_and_query))
            .send()
            .await?;
        json_of(resp, path_and_query).await
    }

    /// The application starts a sign-in for this phone's user: (id, number).
    async fn start(&self, app: &App) -> Result<(String, String)> {
        let r = json_of(
            self.http
                .post(format!("{}api/v1/signin", self.base))
                .header("authorization", &app.authorization)
                .json(&json!({"upn": self.upn}))
                .send()
                .await?,
            "signin",
        )
        .await?;
        Ok((
            str_of(&r, "id")?.to_owned(),
            str_of(&r, "number")?.to_owned(),
        ))
    }

    /// One full ceremony; fails on anything a real phone or page would refuse.
    pub async fn ceremony(&self, app: &App, delivery: Delivery) -> Result<Ceremony> {
        let started = Instant::now();
        let (signin_id, number) = self.start(app).await?;
        let request_id = match delivery {
            Delivery::Longpoll => {
                let poll: PollResponse =
                    serde_json::from_value(self.device_get("/api/v1/device/poll?wait=10").await?)?;
                let Some(envelope) = poll
                    .pushes
                    .iter()
                    .find(|e| e.request_id.as_str() == signin_id)
                else {
                    bail!("the long-poll did not deliver the new request");
                };
                envelope.request_id.to_string()
            }
            // A push carries the account and request ids; with one phone per user the
            // request's id is the sign-in's id.
            Delivery::Push => signin_id.clone(),
        };
        let signed: SignedRequestDetails = serde_json::from_value(
            self.device_get(&format!("/api/v1/device/requests/{request_id}"))
                .await?,
        )?;
        let details = signed.verify(&self.server_key)?;
        ensure!(
            details.request_id.as_str() == request_id && details.account_id == self.account_id,
            "details of another request"
        );
        let response = SignInResponse {
            request_id: details.request_id.clone(),
            account_id: self.account_id.clone(),
            nonce: details.nonce_bytes()?,
            decision: Decision::Approve,
            typed_number: Some(TypedNumber::parse(&number)?),
            context_sha256: signed.context_sha256(),
            timestamp: UnixMillis::now(),
            browser_origin: None,
        };
        let body = response.to_wire(&self.passwordless.sign(&response.signed_bytes()));
        let approving = Instant::now();
        let accepted = json_of(
            self.http
                .post(format!(
                    "{}api/v1/device/requests/{request_id}/response",
                    self.base
                ))
                .json(&body)
                .send()
                .await?,
            "response",
        )
        .await?;
        let approval = approving.elapsed();
        ensure!(
            str_of(&accepted, "status")? == "approved",
            "not approved: {accepted}"
        );
        let status = json_of(
            self.http
                .get(format!("{}api/v1/signin/{signin_id}", self.base))
                .send()
                .await?,
            "signin status",
        )
        .await?;
        ensure!(
            str_of(&status, "status")? == "approved",
            "the page reads {status}"
        );
        Ok(Ceremony {
            total: started.elapsed(),
            approval,
        })
    }

    /// Starts a sign-in and leaves it pending (memory scenario).
    pub async fn start_only(self: Arc<Self>, app: Arc<App>) -> Result<()> {
        self.start(&app).await.map(|_| ())
    }

    /// A long-poll that waits (nothing is pending for this phone).
    pub async fn park_poll(&self, wait: u32) -> Result<()> {
        self.device_get(&format!("/api/v1/device/poll?wait={wait}"))
            .await
            .map(|_| ())
    }
}

fn str_of<'a>(v: &'a Value, field: &str) -> Result<&'a str> {
    v[field]
        .as_str()
        .with_context(|| format!("no {field} in {v}"))
}
