//! A device that speaks the protocol by hand with `authenticator-protocol` — the attacker's own
//! legitimately enrolled account, used to forge and replay answers.
use anyhow::{Context, Result};
use authenticator_protocol::encoding::unb64_fixed;
use authenticator_protocol::enroll::{EnrollProof, EnrollmentUrl, PasswordlessKeyRegistration};
use authenticator_protocol::push_registration::{PushRegistrationUpdate, PUSH_REGISTRATION_PATH};
use authenticator_protocol::sign_in::{Decision, DeviceAuth, SignInResponse, SignedRequestDetails};
use authenticator_protocol::wire::{
    EnrollChallengeResponse, EnrollCompleteResponse, PollResponse, PushChannel,
    ENROLL_CHALLENGE_PATH, ENROLL_COMPLETE_PATH, PASSWORDLESS_PATH, POLL_PATH, REQUESTS_PATH,
};
use authenticator_protocol::{AccountId, EcdsaSigner, RequestId, TypedNumber, UnixMillis};
use serde_json::{json, Value};

pub struct RawDevice {
    pub server: url::Url,
    pub account_id: AccountId,
    pub device_key: EcdsaSigner,
    pub passwordless_key: EcdsaSigner,
    client: reqwest::Client,
}

impl RawDevice {
    /// Enrolls from a registration link and registers a passwordless key, over plain HTTP.
    pub async fn enroll(link: &str) -> Result<Self> {
        let url = EnrollmentUrl::parse(link)?;
        let client = reqwest::Client::new();
        let ch: EnrollChallengeResponse = client
            .post(EnrollmentUrl::endpoint(&url.server, ENROLL_CHALLENGE_PATH))
            .json(&json!({"code": url.code}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let (device_key, _) = EcdsaSigner::generate()?;
        let proof = EnrollProof {
            challenge: unb64_fixed("challenge", &ch.challenge)?,
            device_public_key: device_key.public_key(),
            push_kind: "longpoll".into(),
            push_token: String::new(),
            device_name: "raw".into(),
            timestamp: UnixMillis::now(),
        };
        let done: EnrollCompleteResponse = client
            .post(EnrollmentUrl::endpoint(&url.server, ENROLL_COMPLETE_PATH))
            .json(&json!({
                "code": url.code, "challenge": ch.challenge, "device_public_key": device_key.public_key().to_b64(),
                "push": PushChannel { kind: "longpoll".into(), token: String::new() }, "device_name": "raw",
                "timestamp": proof.timestamp, "signature": device_key.sign(&proof.signed_bytes()).to_b64(),
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let (passwordless_key, _) = EcdsaSigner::generate()?;
        let reg = PasswordlessKeyRegistration {
            account_id: done.account_id.clone(),
            passwordless_public_key: passwordless_key.public_key(),
            timestamp: UnixMillis::now(),
        };
        let bytes = reg.signed_bytes();
        client
            .post(EnrollmentUrl::endpoint(&url.server, PASSWORDLESS_PATH))
            .json(&json!({
                "account_id": reg.account_id, "passwordless_public_key": passwordless_key.public_key().to_b64(),
                "timestamp": reg.timestamp, "device_signature": device_key.sign(&bytes).to_b64(),
                "key_signature": passwordless_key.sign(&bytes).to_b64(),
            }))
            .send()
            .await?
            .error_for_status()?;
        Ok(RawDevice {
            server: url.server,
            account_id: done.account_id,
            device_key,
            passwordless_key,
            client,
        })
    }

    /// Signs an approval for `request_id` claiming to be `claimed_account`, binding the nonce and
    /// context of the `details` text (as seen on the wire), and posts it. Returns (status, body).
    pub async fn forge_approval(
        &self,
        request_id: &str,
        claimed_account: &str,
        details_text: &str,
        number: &str,
    ) -> Result<(u16, Value)> {
        let details: Value = serde_json::from_str(details_text).context("details JSON")?;
        let response = SignInResponse {
            request_id: RequestId::parse(request_id)?,
            account_id: AccountId::parse(claimed_account)?,
            nonce: unb64_fixed("nonce", details["nonce"].as_str().context("nonce")?)?,
            decision: Decision::Approve,
            typed_number: Some(TypedNumber::parse(number)?),
            context_sha256: authenticator_protocol::encoding::sha256(details_text.as_bytes()),
            timestamp: UnixMillis::now(),
            browser_origin: None,
        };
        let sig = self.passwordless_key.sign(&response.signed_bytes());
        let body = serde_json::to_value(response.to_wire(&sig))?;
        self.post_response(request_id, &body).await
    }

    /// Long-polls (briefly) as this device and fetches the details of every pending request:
    /// `(request_id, details text)`.
    pub async fn pending(&self) -> Result<Vec<(String, String)>> {
        let poll: PollResponse = self.get(&format!("{POLL_PATH}?wait=5")).await?;
        let mut out = Vec::new();
        for push in poll.pushes {
            let signed: SignedRequestDetails = self
                .get(&format!("{REQUESTS_PATH}/{}", push.request_id))
                .await?;
            out.push((push.request_id.to_string(), signed.details));
        }
        Ok(out)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path_and_query: &str) -> Result<T> {
        let ts = UnixMillis::now();
        let sig = self.device_key.sign(&DeviceAuth::signed_bytes(
            "GET",
            path_and_query,
            &self.account_id,
            ts,
        ));
        let auth = DeviceAuth {
            account_id: self.account_id.clone(),
            timestamp: ts,
            signature: sig,
        };
        let base = self.server.as_str().trim_end_matches('/');
        Ok(self
            .client
            .get(format!("{base}{path_and_query}"))
            .header("authorization", auth.to_header())
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Posts a push rotation (PROTOCOL.md §5.10) that names `claimed_account` (someone else's,
    /// for a forgery) and is signed by this device's own key. Returns (status, body).
    pub async fn forge_push_rotation(
        &self,
        claimed_account: &str,
        kind: &str,
        token: &str,
    ) -> Result<(u16, Value)> {
        let update = PushRegistrationUpdate {
            account_id: AccountId::parse(claimed_account)?,
            push_kind: kind.into(),
            push_token: token.into(),
            timestamp: UnixMillis::now(),
        };
        let body = update.to_wire(&self.device_key.sign(&update.signed_bytes()));
        let url = EnrollmentUrl::endpoint(&self.server, PUSH_REGISTRATION_PATH);
        let resp = self.client.post(url).json(&body).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// Posts a raw response body (for replays).
    pub async fn post_response(&self, request_id: &str, body: &Value) -> Result<(u16, Value)> {
        let url = EnrollmentUrl::endpoint(
            &self.server,
            &format!("/api/v1/device/requests/{request_id}/response"),
        );
        let resp = self.client.post(url).json(body).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }
}

/// Extracts the `details` text from a recorded `GET /api/v1/device/requests/{id}` answer.
pub fn details_text(response_body: &str) -> Result<String> {
    let v: Value = serde_json::from_str(response_body)?;
    Ok(v["details"].as_str().context("details")?.to_owned())
}
