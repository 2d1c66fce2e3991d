//! The protocol test vectors (authenticator-protocol/tests/vectors/v1.json), checked through the
//! server's own verification functions — the ones its handlers call.
use authenticator_protocol::encoding::{sha256, unb64_fixed};
use authenticator_protocol::enroll::{EnrollChallenge, EnrollProof, PasswordlessKeyRegistration};
use authenticator_protocol::sign_in::{
    request_details_signed_bytes, DeviceAuth, RequestDetails, SignInResponse, SignedRequestDetails,
};
use authenticator_protocol::wire::ResponseBody;
use authenticator_protocol::{AccountId, PublicKey, RequestId, Signature, UnixMillis};
use serde_json::Value;
use signin_domain::rules::verify::{
    check_browser_binding, number_matches, verify_device_auth, verify_enroll_proof,
    verify_move_vouch, verify_passwordless_registration, verify_push_registration, verify_response,
    BrowserCheck,
};
use signin_domain::store::devices::DeviceKeys;
use signin_domain::store::requests::{Status, StoredRequest};
use signin_server::AppError;

const V1: &str = include_str!("../../authenticator-protocol/tests/vectors/v1.json");

struct Vectors {
    doc: Value,
}

impl Vectors {
    fn load() -> Self {
        Vectors {
            doc: serde_json::from_str(V1).unwrap(),
        }
    }
    fn key(&self, name: &str) -> PublicKey {
        PublicKey::from_b64("k", self.doc["keys"][name]["public_sec1"].as_str().unwrap()).unwrap()
    }
    fn vector(&self, name: &str) -> &Value {
        self.doc["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("vector {name} missing"))
    }
    fn keys(&self) -> DeviceKeys {
        DeviceKeys {
            device: self.key("device"),
            passwordless: Some(self.key("passwordless")),
        }
    }
    /// The stored request the response vectors answer, built from the request-details vector.
    fn stored_request(&self) -> StoredRequest {
        self.stored_request_of("request-details", "response/approve")
    }
    /// The stored request of the `details` vector, whose number `approve` types.
    fn stored_request_of(&self, details: &str, approve: &str) -> StoredRequest {
        let text = self.vector(details)["inputs"]["details"]
            .as_str()
            .unwrap()
            .to_owned();
        let d: RequestDetails = serde_json::from_str(&text).unwrap();
        StoredRequest {
            signin_id: d.request_id.as_str().to_owned(),
            client_id: "app-vectors".into(),
            id: d.request_id.clone(),
            account_id: d.account_id.clone(),
            upn: d.upn.clone(),
            kind: d.kind,
            nonce: d.nonce_bytes().unwrap(),
            number: self.vector(approve)["inputs"]["typed_number"]
                .as_str()
                .unwrap()
                .to_owned(),
            number_matching: d.number_matching,
            created_at: d.created_at,
            expires_at: d.expires_at,
            status: Status::Pending,
            wrong_attempts: 0,
            last_response_ts: None,
            signature: self.vector(details)["signature"]
                .as_str()
                .unwrap()
                .to_owned(),
            details: text,
            subject_account_id: None,
        }
    }
}

fn s(v: &Value, k: &str) -> String {
    v["inputs"][k].as_str().unwrap().to_owned()
}
fn ms(v: &Value, k: &str) -> UnixMillis {
    UnixMillis(v["inputs"][k].as_u64().unwrap())
}
fn sig(v: &Value) -> String {
    v["signature"].as_str().unwrap().to_owned()
}
fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v["bytes_hex"].as_str().unwrap()).unwrap()
}

fn response_of(v: &Value) -> (SignInResponse, ResponseBody) {
    let typed = v["inputs"]["typed_number"]
        .as_str()
        .map(|t| authenticator_protocol::TypedNumber::parse(t).unwrap());
    let r = SignInResponse {
        request_id: RequestId::parse(&s(v, "request_id")).unwrap(),
        account_id: AccountId::parse(&s(v, "account_id")).unwrap(),
        nonce: unb64_fixed::<32>("n", &s(v, "nonce")).unwrap(),
        decision: serde_json::from_value(v["inputs"]["decision"].clone()).unwrap(),
        typed_number: typed,
        context_sha256: unb64_fixed::<32>("c", &s(v, "context_sha256")).unwrap(),
        timestamp: ms(v, "timestamp"),
        browser_origin: v["inputs"]["browser_origin"].as_str().map(str::to_owned),
    };
    let body = r.to_wire(&Signature::from_b64("s", &sig(v)).unwrap());
    (r, body)
}

#[test]
fn every_vector_is_covered() {
    let v = Vectors::load();
    let names: Vec<&str> = v.doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    let covered = [
        "enroll-challenge",
        "enroll-proof",
        "passwordless-key/device",
        "passwordless-key/self",
        "request-details",
        "request-details/six-digit-number",
        "response/approve",
        "response/approve-six-digit-number",
        "request-details/browser-bound",
        "response/approve-browser-bound",
        "response/deny",
        "response/report",
        "device-auth",
        "push-registration",
        "move-vouch",
        "move-vouch/no-totp",
    ];
    for n in &names {
        assert!(covered.contains(n), "vector {n} has no server check");
    }
    for n in covered {
        assert!(names.contains(&n), "vector {n} missing from v1.json");
    }
}

#[test]
fn server_signed_messages() {
    let v = Vectors::load();
    let server = v.key("server");
    let e = v.vector("enroll-challenge");
    let challenge = EnrollChallenge {
        challenge: unb64_fixed::<32>("c", &s(e, "challenge")).unwrap(),
        upn: s(e, "upn"),
        display_name: s(e, "display_name"),
        server_name: s(e, "server_name"),
        expires_at: ms(e, "expires_at"),
    };
    let msg = challenge.signed_bytes(&s(e, "code"));
    assert_eq!(msg, bytes(e));
    server
        .verify(&msg, &Signature::from_b64("s", &sig(e)).unwrap())
        .unwrap();

    let d = v.vector("request-details");
    let signed = SignedRequestDetails {
        details: s(d, "details"),
        signature: sig(d),
    };
    assert_eq!(request_details_signed_bytes(&signed.details), bytes(d));
    signed.verify(&server).unwrap();
    // The server re-serializes details identically (it signs serde_json output).
    let parsed: RequestDetails = serde_json::from_str(&signed.details).unwrap();
    assert_eq!(serde_json::to_string(&parsed).unwrap(), signed.details);
}

#[test]
fn enroll_proof_through_the_server_check() {
    let v = Vectors::load();
    let e = v.vector("enroll-proof");
    let proof = EnrollProof {
        challenge: unb64_fixed::<32>("c", &s(e, "challenge")).unwrap(),
        device_public_key: PublicKey::from_b64("k", &s(e, "device_public_key")).unwrap(),
        push_kind: s(e, "push_kind"),
        push_token: s(e, "push_token"),
        device_name: s(e, "device_name"),
        timestamp: ms(e, "timestamp"),
    };
    assert_eq!(proof.device_public_key, v.key("device"));
    assert_eq!(proof.signed_bytes(), bytes(e));
    verify_enroll_proof(&proof, &sig(e)).unwrap();
    let mut changed = proof.clone();
    changed.device_name.push('!');
    assert!(matches!(
        verify_enroll_proof(&changed, &sig(e)),
        Err(AppError::BadSignature)
    ));
}

#[test]
fn passwordless_registration_through_the_server_check() {
    let v = Vectors::load();
    let dev = v.vector("passwordless-key/device");
    let own = v.vector("passwordless-key/self");
    let reg = PasswordlessKeyRegistration {
        account_id: AccountId::parse(&s(dev, "account_id")).unwrap(),
        passwordless_public_key: PublicKey::from_b64("k", &s(dev, "passwordless_public_key"))
            .unwrap(),
        timestamp: ms(dev, "timestamp"),
    };
    assert_eq!(reg.signed_bytes(), bytes(dev));
    assert_eq!(reg.signed_bytes(), bytes(own));
    verify_passwordless_registration(&reg, &v.key("device"), &sig(dev), &sig(own)).unwrap();
    // Swapped signatures, or another device key, do not verify.
    assert!(matches!(
        verify_passwordless_registration(&reg, &v.key("device"), &sig(own), &sig(dev)),
        Err(AppError::BadSignature)
    ));
    assert!(matches!(
        verify_passwordless_registration(&reg, &v.key("other_device"), &sig(dev), &sig(own)),
        Err(AppError::BadSignature)
    ));
}

#[test]
fn responses_through_the_server_check() {
    let v = Vectors::load();
    let stored = v.stored_request();
    let keys = v.keys();
    // The context hash in the vectors is the hash of the signed details text.
    for name in ["response/approve", "response/deny", "response/report"] {
        let x = v.vector(name);
        let (r, body) = response_of(x);
        assert_eq!(r.signed_bytes(), bytes(x), "{name}");
        assert_eq!(
            r.context_sha256,
            sha256(stored.details.as_bytes()),
            "{name}"
        );
        let verified =
            verify_response(&stored, &keys, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(number_matches(&stored, &verified), "{name}");
    }
    // Approvals need the passwordless key: without one, the key is not allowed.
    let (_, approve) = response_of(v.vector("response/approve"));
    let no_pwl = DeviceKeys {
        device: v.key("device"),
        passwordless: None,
    };
    assert!(matches!(
        verify_response(&stored, &no_pwl, &approve),
        Err(AppError::KeyNotAllowed)
    ));
    // A different stored number: the signature verifies, the number does not match.
    let mut other_number = stored.clone();
    other_number.number = "17".into();
    let verified = verify_response(&other_number, &keys, &approve).unwrap();
    assert!(!number_matches(&other_number, &verified));
    // Another request's nonce or details: the binding fails.
    let mut other_nonce = stored.clone();
    other_nonce.nonce[0] ^= 1;
    assert!(matches!(
        verify_response(&other_nonce, &keys, &approve),
        Err(AppError::BadSignature)
    ));
    let mut other_details = stored.clone();
    other_details.details.push(' ');
    assert!(matches!(
        verify_response(&other_details, &keys, &approve),
        Err(AppError::BadSignature)
    ));
}

#[test]
fn a_six_digit_number_through_the_server_checks() {
    let v = Vectors::load();
    let d = v.vector("request-details/six-digit-number");
    let text = s(d, "details");
    SignedRequestDetails {
        details: text.clone(),
        signature: sig(d),
    }
    .verify(&v.key("server"))
    .unwrap();
    let details: RequestDetails = serde_json::from_str(&text).unwrap();
    assert_eq!(details.number_length, 6);
    let stored = v.stored_request_of(
        "request-details/six-digit-number",
        "response/approve-six-digit-number",
    );
    assert_eq!(stored.number.len(), 6);
    let (r, body) = response_of(v.vector("response/approve-six-digit-number"));
    assert_eq!(r.context_sha256, sha256(text.as_bytes()));
    let verified = verify_response(&stored, &v.keys(), &body).unwrap();
    assert!(number_matches(&stored, &verified));
    // The two-digit approval does not answer it: other details, other number.
    let (_, two) = response_of(v.vector("response/approve"));
    assert!(matches!(
        verify_response(&stored, &v.keys(), &two),
        Err(AppError::BadSignature)
    ));
    let mut first_two_digits = stored.clone();
    first_two_digits.number = "28".into();
    assert!(!number_matches(&first_two_digits, &verified));
}

#[test]
fn negative_vectors_fail_the_server_checks() {
    let v = Vectors::load();
    let stored = v.stored_request();
    let keys = v.keys();
    let (approve, approve_body) = response_of(v.vector("response/approve"));
    let negatives = v.doc["negative"].as_array().unwrap();
    assert!(!negatives.is_empty());
    let mut server_path = 0;
    for n in negatives {
        let name = n["name"].as_str().unwrap();
        assert_eq!(n["error"], "BadSignature", "{name}");
        let key = v.key(n["public_key"].as_str().unwrap());
        let msg = bytes(n);
        let signature = Signature::from_b64("s", &sig(n)).unwrap();
        // Byte level: the signature does not verify over these bytes under that key.
        assert!(key.verify(&msg, &signature).is_err(), "{name}");

        // Server path: the approve body carrying this signature and any change of a field the
        // body can express (typed number, context hash). A wrong tag or a truncated frame cannot
        // be expressed: the server always rebuilds the bytes itself, so those stay byte-level.
        let changes = changed_fields(&approve, &msg);
        let other_signature = sig(n) != approve_body.signature;
        if changes.is_empty() && !other_signature {
            continue;
        }
        let mut body = approve_body.clone();
        body.signature = sig(n);
        for (field, value) in changes {
            match field {
                "typed_number" => body.typed_number = Some(value),
                _ => body.context_sha256 = value,
            }
        }
        assert!(
            matches!(
                verify_response(&stored, &keys, &body),
                Err(AppError::BadSignature)
            ),
            "{name}"
        );
        server_path += 1;
    }
    // changed typed number, other context, another account's key, device key for passwordless
    assert!(
        server_path >= 4,
        "only {server_path} negatives reached the server path"
    );
}

/// Fields of the canonical response message that differ between `r` and `msg` (if `msg`
/// still parses as frames with the response tag).
fn changed_fields(r: &SignInResponse, msg: &[u8]) -> Vec<(&'static str, String)> {
    let mut frames = Vec::new();
    let mut rest = msg;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if rest.len() < 4 + len {
            return Vec::new();
        }
        frames.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    if frames.len() != 8 || frames[0] != b"phonesignin/v1/response" {
        return Vec::new();
    }
    let mut out = Vec::new();
    let typed = r.typed_number.as_ref().map_or("", |t| t.as_str());
    if frames[5] != typed.as_bytes() {
        out.push((
            "typed_number",
            String::from_utf8(frames[5].clone()).unwrap(),
        ));
    }
    if frames[6] != r.context_sha256 {
        out.push((
            "context_sha256",
            authenticator_protocol::encoding::b64(&frames[6]),
        ));
    }
    out
}

#[test]
fn device_auth_through_the_server_check() {
    let v = Vectors::load();
    let x = v.vector("device-auth");
    let auth = DeviceAuth {
        account_id: AccountId::parse(&s(x, "account_id")).unwrap(),
        timestamp: ms(x, "timestamp"),
        signature: Signature::from_b64("s", &sig(x)).unwrap(),
    };
    let (method, pq) = (s(x, "method"), s(x, "path_and_query"));
    assert_eq!(
        DeviceAuth::signed_bytes(&method, &pq, &auth.account_id, auth.timestamp),
        bytes(x)
    );
    // Through the header form, as the extractor receives it.
    let parsed = DeviceAuth::parse_header(&auth.to_header()).unwrap();
    verify_device_auth(&method, &pq, &parsed, &v.key("device")).unwrap();
    assert!(matches!(
        verify_device_auth(
            &method,
            "/api/v1/device/poll?wait=31",
            &parsed,
            &v.key("device")
        ),
        Err(AppError::BadSignature)
    ));
    assert!(matches!(
        verify_device_auth(&method, &pq, &parsed, &v.key("other_device")),
        Err(AppError::BadSignature)
    ));
}

#[test]
fn a_browser_bound_approval_through_the_server_checks() {
    let v = Vectors::load();
    let d = v.vector("request-details/browser-bound");
    let text = s(d, "details");
    let details = SignedRequestDetails {
        details: text.clone(),
        signature: sig(d),
    }
    .verify(&v.key("server"))
    .unwrap();
    let binding = details.browser.expect("a browser binding");
    assert_eq!(binding.origin, "https://id.contoso.test");
    let stored = v.stored_request_of(
        "request-details/browser-bound",
        "response/approve-browser-bound",
    );
    assert_eq!(stored.browser_binding().unwrap(), Some(binding.clone()));
    let (r, body) = response_of(v.vector("response/approve-browser-bound"));
    assert_eq!(
        body.browser_origin.as_deref(),
        Some("https://id.contoso.test")
    );
    let verified = verify_response(&stored, &v.keys(), &body).unwrap();
    assert_eq!(
        check_browser_binding(&stored, &verified).unwrap(),
        BrowserCheck::Ok
    );
    assert!(number_matches(&stored, &verified));
    // The same signature with the origin changed (a relay's) or dropped: not this approval.
    for origin in [Some("https://id.contoso.test.relay.example"), None] {
        let mut changed = body.clone();
        changed.browser_origin = origin.map(str::to_owned);
        assert!(
            matches!(
                verify_response(&stored, &v.keys(), &changed),
                Err(AppError::BadSignature)
            ),
            "{origin:?}"
        );
    }
    // A validly signed approval for another origin, or for none: refused by the binding.
    let relayed = SignInResponse {
        browser_origin: Some("https://id.contoso.test.relay.example".into()),
        ..r.clone()
    };
    assert_eq!(
        check_browser_binding(&stored, &relayed).unwrap(),
        BrowserCheck::OtherOrigin
    );
    let unseen = SignInResponse {
        browser_origin: None,
        ..r
    };
    assert_eq!(
        check_browser_binding(&stored, &unseen).unwrap(),
        BrowserCheck::NotSeen
    );
}

/// The refusal vectors (PROTOCOL.md §5.6 step 3, issue 20 finding 4) through the server's
/// check: each body is `invalid_request`, whether its signature covers the digits a trimming
/// reader would see (`" 42"` signed as `"42"`: it used to be approved) or the text as sent
/// (`" 42"` signed as `" 42"`: it used to be `bad_signature`).
#[test]
fn refused_typed_numbers_are_invalid_request_whatever_their_signature_covers() {
    let v = Vectors::load();
    let stored = v.stored_request();
    let keys = v.keys();
    let refusals = v.doc["refusals"]["typed_number"].as_array().unwrap();
    assert_eq!(refusals.len(), 7);
    for r in refusals {
        let name = r["name"].as_str().unwrap();
        let body: ResponseBody = serde_json::from_value(r["body"].clone()).unwrap();
        assert_eq!(body.typed_number.as_deref(), r["typed_number"].as_str());
        // The signature is good over the bytes it covers…
        let signature = Signature::from_b64("s", r["signature"].as_str().unwrap()).unwrap();
        v.key("passwordless")
            .verify(&bytes(r), &signature)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // …and the body is refused for its text all the same.
        match verify_response(&stored, &keys, &body) {
            Err(AppError::InvalidRequest(m)) => assert!(m.contains("typed_number"), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// The device-auth headers whose time is spelt another way do not parse: the extractor answers
/// `unauthorized` before it looks up the account.
#[test]
fn refused_device_auth_headers_do_not_parse() {
    let v = Vectors::load();
    let headers = v.doc["refusals"]["device_auth_header"].as_array().unwrap();
    assert!(!headers.is_empty());
    for h in headers {
        let header = h["header"].as_str().unwrap();
        assert!(DeviceAuth::parse_header(header).is_err(), "{header}");
        assert_eq!(h["server"], "unauthorized");
    }
}

#[test]
fn a_push_registration_through_the_server_check() {
    let v = Vectors::load();
    let x = v.vector("push-registration");
    let body = authenticator_protocol::push_registration::PushRegistrationRequest {
        account_id: AccountId::parse(&s(x, "account_id")).unwrap(),
        push: authenticator_protocol::wire::PushChannel {
            kind: s(x, "push_kind"),
            token: s(x, "push_token"),
        },
        timestamp: ms(x, "timestamp"),
        signature: sig(x),
    };
    assert_eq!(body.update().signed_bytes(), bytes(x));
    verify_push_registration(&body, &v.key("device")).unwrap();
    // Another device's key, or a changed token, does not verify.
    assert!(matches!(
        verify_push_registration(&body, &v.key("other_device")),
        Err(AppError::BadSignature)
    ));
    let mut changed = body.clone();
    changed.push.token.push('x');
    assert!(matches!(
        verify_push_registration(&changed, &v.key("device")),
        Err(AppError::BadSignature)
    ));
}

#[test]
fn move_vouches_through_the_server_check() {
    let v = Vectors::load();
    for name in ["move-vouch", "move-vouch/no-totp"] {
        let x = v.vector(name);
        let vouch = authenticator_protocol::moving::MoveVouch {
            account_id: AccountId::parse(&s(x, "account_id")).unwrap(),
            totp_blob_sha256: x["inputs"]["totp_blob_sha256"]
                .as_str()
                .map(|h| unb64_fixed::<32>("h", h).unwrap()),
            timestamp: ms(x, "timestamp"),
        };
        assert_eq!(vouch.signed_bytes(), bytes(x), "{name}");
        verify_move_vouch(&vouch, &sig(x), &v.key("device")).unwrap();
        assert!(
            matches!(
                verify_move_vouch(&vouch, &sig(x), &v.key("other_device")),
                Err(AppError::BadSignature)
            ),
            "{name}"
        );
        // Another blob (or none instead of one) is another message.
        let other = authenticator_protocol::moving::MoveVouch {
            totp_blob_sha256: match vouch.totp_blob_sha256 {
                Some(_) => None,
                None => Some([7; 32]),
            },
            ..vouch.clone()
        };
        assert!(
            matches!(
                verify_move_vouch(&other, &sig(x), &v.key("device")),
                Err(AppError::BadSignature)
            ),
            "{name}"
        );
    }
}
