//! The six device endpoints over a pluggable transport. `ReqwestTransport` is the real one;
//! tests plug an in-process fake server (`testing::FakeNetwork`) that verifies signatures
//! with the protocol crate. All JSON decoding and error mapping lives here, on both paths.
use std::sync::Arc;
use std::time::Duration;

use authenticator_protocol::enroll::EnrollmentUrl;
use authenticator_protocol::sign_in::{DeviceAuth, SignedRequestDetails};
use authenticator_protocol::wire::{self, ErrorBody};
use authenticator_protocol::{AccountId, RequestId, UnixMillis};
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

use crate::error::{Error, Result};

/// Per-request timeout of ordinary calls.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The server caps long-poll waits at 60 s.
pub const MAX_POLL_WAIT_SECS: u32 = 60;
/// The largest response body the core reads (64 KiB, the server's own request-body limit).
/// Every legitimate answer is a few KiB at most; a larger one (a hostile or broken enrolled
/// server) fails with `ResponseTooLarge` before more than this is buffered, which keeps the
/// iOS Notification Service Extension within its memory limit.
pub const MAX_RESPONSE_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// One HTTP exchange as the core needs it.
#[derive(Clone)]
pub struct HttpRequest {
    pub method: HttpMethod,
    pub url: Url,
    /// `PSI-Device …` for device-authenticated reads.
    pub authorization: Option<String>,
    /// JSON body of a POST.
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies may hold enrollment codes: never printed.
        write!(
            f,
            "HttpRequest({} {})",
            self.method.as_str(),
            self.url.path()
        )
    }
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A transport failure: DNS, connect, TLS, timeout, or an answer over the body limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No usable answer (the text is short and holds no URL).
    #[error("{0}")]
    Failed(String),
    /// The body is larger than `limit` bytes; reading stopped there.
    #[error("the answer (HTTP {status}) is larger than {limit} bytes")]
    BodyTooLarge { status: u16, limit: usize },
}

#[async_trait::async_trait]
pub trait HttpTransport: Send + Sync {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// reqwest with rustls; redirects are refused (a redirect could leave the pinned https origin).
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    pub fn new() -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("authenticator-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                TransportError::Failed(format!("could not create the HTTP client: {e}"))
            })?;
        Ok(ReqwestTransport { client })
    }
}

#[async_trait::async_trait]
impl HttpTransport for ReqwestTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut builder = match request.method {
            HttpMethod::Get => self.client.get(request.url),
            HttpMethod::Post => self.client.post(request.url),
            HttpMethod::Delete => self.client.delete(request.url),
        }
        .timeout(request.timeout)
        .header(reqwest::header::ACCEPT, "application/json");
        if let Some(auth) = request.authorization {
            builder = builder.header(reqwest::header::AUTHORIZATION, auth);
        }
        if let Some(body) = request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = builder.send().await.map_err(describe_reqwest)?;
        let status = response.status().as_u16();
        let body = read_capped(response, MAX_RESPONSE_BODY_BYTES).await?;
        Ok(HttpResponse { status, body })
    }
}

/// Reads the body chunk by chunk and stops (dropping the connection) as soon as it would
/// exceed `limit`; a `Content-Length` over the limit fails before reading anything.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, TransportError> {
    let status = response.status().as_u16();
    let too_large = TransportError::BodyTooLarge { status, limit };
    let declared = response.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Err(too_large);
    }
    let mut body = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await.map_err(describe_reqwest)? {
        if chunk.len() > limit - body.len() {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn describe_reqwest(e: reqwest::Error) -> TransportError {
    // `without_url`: URLs can carry nothing secret here, but keep messages short and stable.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the answer"
    } else {
        "request failed"
    };
    TransportError::Failed(kind.to_owned())
}

/// Something that signs device-auth messages with an account's device key.
#[async_trait::async_trait]
pub(crate) trait DeviceSigner: Send + Sync {
    async fn sign_device_auth(&self, message: Vec<u8>)
        -> Result<authenticator_protocol::Signature>;
}

/// Typed client of the device endpoints.
#[derive(Clone)]
pub(crate) struct ServerApi {
    transport: Arc<dyn HttpTransport>,
}

impl ServerApi {
    pub fn new(transport: Arc<dyn HttpTransport>) -> Self {
        ServerApi { transport }
    }

    pub async fn enroll_challenge(
        &self,
        server: &Url,
        body: &wire::EnrollChallengeRequest,
    ) -> Result<wire::EnrollChallengeResponse> {
        let url = EnrollmentUrl::endpoint(server, wire::ENROLL_CHALLENGE_PATH);
        decode(self.post(url, body).await?)
    }

    pub async fn enroll_complete(
        &self,
        server: &Url,
        body: &wire::EnrollCompleteRequest,
    ) -> Result<wire::EnrollCompleteResponse> {
        let url = EnrollmentUrl::endpoint(server, wire::ENROLL_COMPLETE_PATH);
        decode(self.post(url, body).await?)
    }

    /// §5.11: a move code for one account, vouched for by its device key.
    pub async fn move_vouch(
        &self,
        server: &Url,
        body: &authenticator_protocol::moving::MoveVouchRequest,
    ) -> Result<authenticator_protocol::moving::MoveVouchResponse> {
        let url = EnrollmentUrl::endpoint(server, authenticator_protocol::moving::MOVE_VOUCH_PATH);
        decode(self.post(url, body).await?)
    }

    /// §5.11: checks a move code and takes the TOTP blob left with it.
    pub async fn move_claim(
        &self,
        server: &Url,
        body: &authenticator_protocol::moving::MoveClaimRequest,
    ) -> Result<authenticator_protocol::moving::MoveClaimResponse> {
        let url = EnrollmentUrl::endpoint(server, authenticator_protocol::moving::MOVE_CLAIM_PATH);
        decode(self.post(url, body).await?)
    }

    pub async fn register_passwordless(
        &self,
        server: &Url,
        body: &wire::PasswordlessRequest,
    ) -> Result<()> {
        let url = EnrollmentUrl::endpoint(server, wire::PASSWORDLESS_PATH);
        self.post(url, body).await.map(|_| ())
    }

    /// §5.10: the device's new push channel, signed by its device key.
    pub async fn update_push(
        &self,
        server: &Url,
        body: &authenticator_protocol::push_registration::PushRegistrationRequest,
    ) -> Result<()> {
        let url = EnrollmentUrl::endpoint(
            server,
            authenticator_protocol::push_registration::PUSH_REGISTRATION_PATH,
        );
        self.post(url, body).await.map(|_| ())
    }

    pub async fn poll(
        &self,
        server: &Url,
        account_id: &AccountId,
        wait_seconds: u32,
        signer: &dyn DeviceSigner,
    ) -> Result<wire::PollResponse> {
        let wait = wait_seconds.min(MAX_POLL_WAIT_SECS);
        let mut url = EnrollmentUrl::endpoint(server, wire::POLL_PATH);
        url.set_query(Some(&format!("wait={wait}")));
        let timeout = REQUEST_TIMEOUT + Duration::from_secs(wait.into());
        decode(
            self.authed(HttpMethod::Get, url, account_id, signer, timeout)
                .await?,
        )
    }

    /// §5.7: tells the server this phone removed the account (it forgets the device).
    pub async fn unregister(
        &self,
        server: &Url,
        account_id: &AccountId,
        signer: &dyn DeviceSigner,
    ) -> Result<()> {
        let url = EnrollmentUrl::endpoint(server, wire::DEVICE_PATH);
        self.authed(HttpMethod::Delete, url, account_id, signer, REQUEST_TIMEOUT)
            .await
            .map(|_| ())
    }

    pub async fn request_details(
        &self,
        server: &Url,
        account_id: &AccountId,
        request_id: &RequestId,
        signer: &dyn DeviceSigner,
    ) -> Result<SignedRequestDetails> {
        let path = format!("{}/{}", wire::REQUESTS_PATH, request_id);
        let url = EnrollmentUrl::endpoint(server, &path);
        decode(
            self.authed(HttpMethod::Get, url, account_id, signer, REQUEST_TIMEOUT)
                .await?,
        )
    }

    pub async fn respond(
        &self,
        server: &Url,
        request_id: &RequestId,
        body: &wire::ResponseBody,
    ) -> Result<wire::ResponseAccepted> {
        let path = format!("{}/{}/response", wire::REQUESTS_PATH, request_id);
        let url = EnrollmentUrl::endpoint(server, &path);
        decode(self.post(url, body).await?)
    }

    async fn post<B: Serialize>(&self, url: Url, body: &B) -> Result<Vec<u8>> {
        let body =
            serde_json::to_vec(body).map_err(|e| Error::Internal(format!("encode body: {e}")))?;
        self.exchange(HttpRequest {
            method: HttpMethod::Post,
            url,
            authorization: None,
            body: Some(body),
            timeout: REQUEST_TIMEOUT,
        })
        .await
    }

    /// A device-authenticated exchange (§4): the header signs the method and path.
    async fn authed(
        &self,
        method: HttpMethod,
        url: Url,
        account_id: &AccountId,
        signer: &dyn DeviceSigner,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let timestamp = UnixMillis::now();
        let message = DeviceAuth::signed_bytes(
            method.as_str(),
            &path_and_query(&url),
            account_id,
            timestamp,
        );
        let signature = signer.sign_device_auth(message).await?;
        let auth = DeviceAuth {
            account_id: account_id.clone(),
            timestamp,
            signature,
        };
        self.exchange(HttpRequest {
            method,
            url,
            authorization: Some(auth.to_header()),
            body: None,
            timeout,
        })
        .await
    }

    async fn exchange(&self, request: HttpRequest) -> Result<Vec<u8>> {
        let path = request.url.path().to_owned();
        let response = self.transport.send(request).await.map_err(|e| match e {
            TransportError::Failed(reason) => Error::Network(reason),
            TransportError::BodyTooLarge { status, limit } => {
                Error::ResponseTooLarge { status, limit }
            }
        })?;
        // The same cap for any transport (a plugged-in one may not stream).
        if response.body.len() > MAX_RESPONSE_BODY_BYTES {
            return Err(Error::ResponseTooLarge {
                status: response.status,
                limit: MAX_RESPONSE_BODY_BYTES,
            });
        }
        if (200..300).contains(&response.status) {
            return Ok(response.body);
        }
        tracing::debug!(status = response.status, path = %path, "server refused");
        Err(error_from_response(response.status, &response.body))
    }
}

/// `path?query` exactly as sent: what device auth signs.
pub fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_owned(),
    }
}

fn decode<T: DeserializeOwned>(body: Vec<u8>) -> Result<T> {
    serde_json::from_slice(&body).map_err(|e| {
        // serde_json reports type and position, never the value.
        Error::InvalidResponse(e.to_string())
    })
}

/// Maps a non-2xx answer. Bodies that are not the protocol's `ErrorBody` (a proxy's HTML page)
/// become `Network` for 5xx (retry later) and `ServerRejected{unknown}` otherwise.
fn error_from_response(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => Error::Server {
            status,
            code: b.error,
            message: b.message.chars().take(200).collect(),
            attempts_left: b.attempts_left,
        },
        Err(_) if status >= 500 => Error::Network(format!("the service is unavailable ({status})")),
        Err(_) => Error::Server {
            status,
            code: wire::ErrorCode::Unknown,
            message: "the server answered with an unexpected error".into(),
            attempts_left: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_map_to_typed_errors() {
        let e = error_from_response(
            400,
            br#"{"error":"wrong_number","message":"wrong","attempts_left":2}"#,
        );
        assert!(matches!(
            e,
            Error::Server {
                status: 400,
                code: wire::ErrorCode::WrongNumber,
                attempts_left: Some(2),
                ..
            }
        ));
        assert!(matches!(
            error_from_response(502, b"<html>bad gateway</html>"),
            Error::Network(_)
        ));
        assert!(matches!(
            error_from_response(404, b"nope"),
            Error::Server {
                code: wire::ErrorCode::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn garbage_success_bodies_are_invalid_responses() {
        for body in [&b""[..], b"null", b"{}", b"[1,2]", b"\xff\xfe"] {
            assert!(matches!(
                decode::<wire::PollResponse>(body.to_vec()),
                Err(Error::InvalidResponse(_))
            ));
        }
    }

    /// A plugged-in transport that hands over an oversized body is refused all the same.
    #[tokio::test]
    async fn oversized_bodies_from_any_transport_are_refused() {
        struct Big(usize);
        #[async_trait::async_trait]
        impl HttpTransport for Big {
            async fn send(&self, _: HttpRequest) -> Result<HttpResponse, TransportError> {
                Ok(HttpResponse {
                    status: 200,
                    body: vec![b' '; self.0],
                })
            }
        }
        let server = Url::parse("https://id.example/").unwrap();
        let body = wire::EnrollChallengeRequest { code: "c".into() };
        let api = ServerApi::new(Arc::new(Big(MAX_RESPONSE_BODY_BYTES + 1)));
        assert!(matches!(
            api.enroll_challenge(&server, &body).await,
            Err(Error::ResponseTooLarge {
                status: 200,
                limit: MAX_RESPONSE_BODY_BYTES
            })
        ));
        // At the limit it is read (and here fails as JSON, not as too large).
        let api = ServerApi::new(Arc::new(Big(MAX_RESPONSE_BODY_BYTES)));
        assert!(matches!(
            api.enroll_challenge(&server, &body).await,
            Err(Error::InvalidResponse(_))
        ));
    }

    #[test]
    fn path_and_query_keeps_base_path_and_query() {
        let mut url = EnrollmentUrl::endpoint(
            &Url::parse("https://id.example/tenant/").unwrap(),
            wire::POLL_PATH,
        );
        url.set_query(Some("wait=5"));
        assert_eq!(path_and_query(&url), "/tenant/api/v1/device/poll?wait=5");
    }
}
