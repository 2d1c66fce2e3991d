//! Generates `tests/vectors/v1.json`: fixed private scalars, RFC 6979 (deterministic) signatures,
//! so running it again gives the same file. `cargo run -p authenticator-protocol --example vectors`.
use authenticator_protocol::canonical::{Canonical, RESPONSE_TAG};
use authenticator_protocol::encoding::{b64, sha256, unb64};
use authenticator_protocol::enroll::{EnrollChallenge, EnrollProof, PasswordlessKeyRegistration};
use authenticator_protocol::moving::MoveVouch;
use authenticator_protocol::push::PushChannelKind;
use authenticator_protocol::push_registration::PushRegistrationUpdate;
use authenticator_protocol::sign_in::{
    request_details_signed_bytes, BrowserBinding, Decision, DeviceAuth, RequestDetails,
    RequestKind, SignInResponse,
};
use authenticator_protocol::{AccountId, PublicKey, RequestId, Signature, TypedNumber, UnixMillis};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::SigningKey;
use serde_json::{json, Value};

struct Key {
    name: &'static str,
    signing: SigningKey,
}

impl Key {
    fn new(name: &'static str) -> Self {
        let scalar = sha256(format!("phonesignin test vector key: {name}").as_bytes());
        Key {
            name,
            signing: SigningKey::from_slice(&scalar).expect("scalar below the group order"),
        }
    }
    fn public(&self) -> PublicKey {
        PublicKey::from_platform_bytes(
            self.signing
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes(),
        )
        .unwrap()
    }
    fn sign(&self, msg: &[u8]) -> String {
        let sig: p256::ecdsa::Signature = self.signing.sign(msg);
        b64(&sig.to_bytes())
    }
    fn describe(&self) -> Value {
        json!({
            "private_scalar_hex": hex::encode(self.signing.to_bytes()),
            "public_sec1": self.public().to_b64(),
            "fingerprint": self.public().fingerprint(),
        })
    }
}

/// How the identifier `text` is framed in signed messages: as its 22 characters.
fn id_framing(field: &'static str, text: &str) -> Value {
    let bytes = unb64(field, text).unwrap();
    json!({
        "field": field, "text": text, "bytes_hex": hex::encode(&bytes),
        "framed_hex": hex::encode(Canonical::new(b"").str(text).finish().split_off(4)),
        "wrong_framed_bytes_hex": hex::encode(Canonical::new(b"").field(&bytes).finish().split_off(4)),
    })
}

/// The `response` layout with `typed` framed as it is, whatever it holds: what a signer that
/// signed the body's text as sent would sign. `TypedNumber` refuses such text, so the
/// refusal vectors build the bytes by hand.
fn response_bytes_with_text(r: &SignInResponse, typed: &str) -> Vec<u8> {
    Canonical::new(RESPONSE_TAG)
        .str(r.request_id.as_str())
        .str(r.account_id.as_str())
        .field(&r.nonce)
        .field(&[r.decision.wire_byte()])
        .str(typed)
        .field(&r.context_sha256)
        .u64(r.timestamp.millis())
        .finish()
}

fn vector(name: &str, signer: &Key, inputs: Value, bytes: Vec<u8>) -> Value {
    json!({ "name": name, "signer": signer.name, "inputs": inputs, "bytes_hex": hex::encode(&bytes), "signature": signer.sign(&bytes) })
}

fn main() {
    let server = Key::new("server");
    let device = Key::new("device");
    let passwordless = Key::new("passwordless");
    let other = Key::new("other_device");

    let code = "AAECAwQFBgcICQoLDA0ODw";
    let account_id = AccountId::parse("EBESExQVFhcYGRobHB0eHw").unwrap();
    let request_id = RequestId::parse("ICEiIyQlJicoKSorLC0uLw").unwrap();
    let challenge = [0x11u8; 32];
    let nonce = [0x22u8; 32];
    let t0 = UnixMillis(1_767_225_600_000); // 2026-01-01T00:00:00Z

    let ch = EnrollChallenge {
        challenge,
        upn: "bobby@contoso.test".into(),
        display_name: "Bobby Smith".into(),
        server_name: "Contoso".into(),
        expires_at: t0.plus_secs(600),
    };
    let proof = EnrollProof {
        challenge,
        device_public_key: device.public(),
        push_kind: PushChannelKind::LongPoll.as_str().into(),
        push_token: String::new(),
        device_name: "Test Phone".into(),
        timestamp: t0,
    };
    let reg = PasswordlessKeyRegistration {
        account_id: account_id.clone(),
        passwordless_public_key: passwordless.public(),
        timestamp: t0,
    };
    let details = RequestDetails {
        v: 1,
        request_id: request_id.clone(),
        account_id: account_id.clone(),
        kind: RequestKind::Passwordless,
        upn: "bobby@contoso.test".into(),
        server_name: "Contoso".into(),
        app_name: Some("My Apps".into()),
        location: Some("Seattle, US".into()),
        device_name: None,
        number_matching: true,
        number_length: 2,
        nonce: b64(&nonce),
        created_at: t0,
        expires_at: t0.plus_secs(90),
        browser: None,
    };
    let details_json = serde_json::to_string(&details).unwrap();
    let context = sha256(details_json.as_bytes());
    let response = |decision, number: Option<&str>| SignInResponse {
        request_id: request_id.clone(),
        account_id: account_id.clone(),
        nonce,
        decision,
        typed_number: number.map(|n| TypedNumber::parse(n).unwrap()),
        context_sha256: context,
        timestamp: t0.plus_secs(10),
        browser_origin: None,
    };
    let response_inputs = |r: &SignInResponse| {
        let mut inputs = json!({
            "request_id": r.request_id, "account_id": r.account_id, "nonce": b64(&r.nonce),
            "decision": r.decision, "typed_number": r.typed_number.as_ref().map(|n| n.as_str()),
            "context_sha256": b64(&r.context_sha256), "timestamp": r.timestamp,
        });
        if let Some(origin) = &r.browser_origin {
            inputs["browser_origin"] = json!(origin);
        }
        inputs
    };
    let approve = response(Decision::Approve, Some("42"));
    // A move (§5.11): the device key vouches for account_id, with the hash of the encrypted
    // TOTP blob it leaves with the server.
    let move_blob_hash = sha256(b"nonce and ciphertext of the TOTP accounts");
    let move_vouch = MoveVouch {
        account_id: account_id.clone(),
        totp_blob_sha256: Some(move_blob_hash),
        timestamp: t0,
    };
    // A six-digit number (the longest a policy or an elevated risk asks for): the details
    // carry `number_length`, the approval the six typed digits.
    let six = RequestDetails {
        number_length: 6,
        ..details.clone()
    };
    let six_json = serde_json::to_string(&six).unwrap();
    let six_context = sha256(six_json.as_bytes());
    let six_approve = SignInResponse {
        typed_number: Some(TypedNumber::parse("284193").unwrap()),
        context_sha256: six_context,
        ..approve.clone()
    };
    // A browser-bound request (§5.9, phishing-resistant policy): the details carry the
    // challenge and the origin; the approval the origin the authenticator saw, under the
    // `response-bound` tag.
    let origin = "https://id.contoso.test";
    let bound = RequestDetails {
        browser: Some(BrowserBinding {
            challenge: b64(&[0x33u8; 16]),
            origin: origin.into(),
        }),
        ..details.clone()
    };
    let bound_json = serde_json::to_string(&bound).unwrap();
    let bound_context = sha256(bound_json.as_bytes());
    let bound_approve = SignInResponse {
        context_sha256: bound_context,
        browser_origin: Some(origin.into()),
        ..approve.clone()
    };
    let deny = response(Decision::Deny, None);
    let report = response(Decision::Report, None);
    let poll_path = "/api/v1/device/poll?wait=30";
    // §5.10: the device's new FCM token, a day after enrollment.
    let rotation = PushRegistrationUpdate {
        account_id: account_id.clone(),
        push_kind: PushChannelKind::Fcm.as_str().into(),
        push_token: "fcm-token-after-restore".into(),
        timestamp: t0.plus_secs(86_400),
    };

    let vectors = vec![
        vector(
            "enroll-challenge",
            &server,
            json!({"code": code, "challenge": b64(&challenge), "upn": ch.upn, "display_name": ch.display_name,
                   "server_name": ch.server_name, "expires_at": ch.expires_at}),
            ch.signed_bytes(code),
        ),
        vector(
            "enroll-proof",
            &device,
            json!({"challenge": b64(&challenge), "device_public_key": device.public().to_b64(), "push_kind": proof.push_kind,
                   "push_token": "", "device_name": "Test Phone", "timestamp": t0}),
            proof.signed_bytes(),
        ),
        vector(
            "passwordless-key/device",
            &device,
            json!({"account_id": account_id, "passwordless_public_key": passwordless.public().to_b64(), "timestamp": t0}),
            reg.signed_bytes(),
        ),
        vector(
            "passwordless-key/self",
            &passwordless,
            json!({"account_id": account_id, "passwordless_public_key": passwordless.public().to_b64(), "timestamp": t0}),
            reg.signed_bytes(),
        ),
        {
            let mut v = vector(
                "request-details",
                &server,
                json!({"details": details_json}),
                request_details_signed_bytes(&details_json),
            );
            v["context_sha256"] = json!(b64(&context));
            v
        },
        vector(
            "response/approve",
            &passwordless,
            response_inputs(&approve),
            approve.signed_bytes(),
        ),
        {
            let mut v = vector(
                "request-details/six-digit-number",
                &server,
                json!({"details": six_json}),
                request_details_signed_bytes(&six_json),
            );
            v["context_sha256"] = json!(b64(&six_context));
            v
        },
        vector(
            "response/approve-six-digit-number",
            &passwordless,
            response_inputs(&six_approve),
            six_approve.signed_bytes(),
        ),
        {
            let mut v = vector(
                "request-details/browser-bound",
                &server,
                json!({"details": bound_json}),
                request_details_signed_bytes(&bound_json),
            );
            v["context_sha256"] = json!(b64(&bound_context));
            v
        },
        vector(
            "response/approve-browser-bound",
            &passwordless,
            response_inputs(&bound_approve),
            bound_approve.signed_bytes(),
        ),
        vector(
            "response/deny",
            &device,
            response_inputs(&deny),
            deny.signed_bytes(),
        ),
        vector(
            "response/report",
            &device,
            response_inputs(&report),
            report.signed_bytes(),
        ),
        vector(
            "device-auth",
            &device,
            json!({"method": "GET", "path_and_query": poll_path, "account_id": account_id, "timestamp": t0}),
            DeviceAuth::signed_bytes("GET", poll_path, &account_id, t0),
        ),
        vector(
            "push-registration",
            &device,
            json!({"account_id": account_id, "push_kind": rotation.push_kind, "push_token": rotation.push_token,
                   "timestamp": rotation.timestamp}),
            rotation.signed_bytes(),
        ),
        vector(
            "move-vouch",
            &device,
            json!({"account_id": account_id, "totp_blob_sha256": b64(&move_blob_hash), "timestamp": t0}),
            move_vouch.signed_bytes(),
        ),
        vector(
            "move-vouch/no-totp",
            &device,
            json!({"account_id": account_id, "totp_blob_sha256": null, "timestamp": t0}),
            MoveVouch {
                totp_blob_sha256: None,
                ..move_vouch.clone()
            }
            .signed_bytes(),
        ),
    ];

    // Negative vectors: a message and a signature that must NOT verify under the named key.
    let approve_sig = passwordless.sign(&approve.signed_bytes());
    let mut changed_number = approve.clone();
    changed_number.typed_number = Some(TypedNumber::parse("24").unwrap());
    let mut wrong_tag = approve.signed_bytes();
    wrong_tag[4..4 + 23].copy_from_slice(b"phonesignin/v1/respons_");
    let truncated = approve.signed_bytes()[..approve.signed_bytes().len() - 1].to_vec();
    let mut other_context = approve.clone();
    other_context.context_sha256 = sha256(b"a different screen");
    let bound_sig = passwordless.sign(&bound_approve.signed_bytes());
    let mut proxied = bound_approve.clone();
    proxied.browser_origin = Some("https://id.contoso.test.relay.example".into());
    let mut unbound = bound_approve.clone();
    unbound.browser_origin = None;
    let mut other_blob = move_vouch.clone();
    other_blob.totp_blob_sha256 = Some(sha256(b"another blob"));
    let negative = vec![
        json!({"name": "move-vouch/other-blob", "public_key": "device", "bytes_hex": hex::encode(other_blob.signed_bytes()),
               "signature": device.sign(&move_vouch.signed_bytes()), "error": "BadSignature"}),
        json!({"name": "approve/changed-typed-number", "public_key": "passwordless", "bytes_hex": hex::encode(changed_number.signed_bytes()),
               "signature": approve_sig, "error": "BadSignature"}),
        json!({"name": "approve/wrong-domain-tag", "public_key": "passwordless", "bytes_hex": hex::encode(&wrong_tag),
               "signature": approve_sig, "error": "BadSignature"}),
        json!({"name": "approve/truncated", "public_key": "passwordless", "bytes_hex": hex::encode(&truncated),
               "signature": approve_sig, "error": "BadSignature"}),
        json!({"name": "approve/other-context", "public_key": "passwordless", "bytes_hex": hex::encode(other_context.signed_bytes()),
               "signature": approve_sig, "error": "BadSignature"}),
        json!({"name": "approve/another-accounts-key", "public_key": "passwordless", "bytes_hex": hex::encode(approve.signed_bytes()),
               "signature": other.sign(&approve.signed_bytes()), "error": "BadSignature"}),
        json!({"name": "approve/device-key-for-passwordless", "public_key": "passwordless", "bytes_hex": hex::encode(approve.signed_bytes()),
               "signature": device.sign(&approve.signed_bytes()), "error": "BadSignature"}),
        json!({"name": "approve-browser-bound/other-origin", "public_key": "passwordless", "bytes_hex": hex::encode(proxied.signed_bytes()),
               "signature": bound_sig, "error": "BadSignature"}),
        json!({"name": "approve-browser-bound/unbound-layout", "public_key": "passwordless", "bytes_hex": hex::encode(unbound.signed_bytes()),
               "signature": bound_sig, "error": "BadSignature"}),
        // §5.10: another device's key cannot move this account's pushes.
        json!({"name": "push-registration/another-devices-key", "public_key": "device", "bytes_hex": hex::encode(rotation.signed_bytes()),
               "signature": other.sign(&rotation.signed_bytes()), "error": "BadSignature"}),
        json!({"name": "push-registration/changed-token", "public_key": "device", "bytes_hex": hex::encode(PushRegistrationUpdate { push_token: "attacker-token".into(), ..rotation.clone() }.signed_bytes()),
               "signature": device.sign(&rotation.signed_bytes()), "error": "BadSignature"}),
    ];

    // Refusals (§2, §5.6 step 3): a field is checked as received and verified exactly as
    // received. Each body is the `response/approve` body with `typed_number` changed, signed
    // either over the digits a trimming reader would see (the approve signature) or over the
    // text as sent; both are `invalid_request`, never an approval and never `bad_signature`.
    let approve_body = approve.to_wire(&Signature::from_b64("signature", &approve_sig).unwrap());
    let refusal = |name: &str, typed: &str, signed: &str| {
        let bytes = response_bytes_with_text(&approve, signed);
        let signature = passwordless.sign(&bytes);
        let mut body = serde_json::to_value(&approve_body).unwrap();
        body["typed_number"] = json!(typed);
        body["signature"] = json!(signature);
        json!({"name": name, "typed_number": typed, "signed_typed_number": signed,
               "bytes_hex": hex::encode(&bytes), "signature": signature, "body": body,
               "server": "invalid_request", "phone": "InvalidNumber"})
    };
    let refusals = vec![
        refusal("typed-number/leading-space", " 42", "42"),
        refusal("typed-number/trailing-newline", "42\n", "42"),
        refusal("typed-number/leading-tab", "\t42", "42"),
        refusal("typed-number/trailing-no-break-space", "42\u{a0}", "42"),
        refusal("typed-number/leading-space-signed-as-sent", " 42", " 42"),
        refusal(
            "typed-number/fullwidth-digits-signed-as-sent",
            "４２",
            "４２",
        ),
        refusal(
            "typed-number/arabic-indic-digits-signed-as-sent",
            "٤٢",
            "٤٢",
        ),
    ];
    // Identifiers are their 22 characters exactly: with anything around them they are no id.
    let id_refusals: Vec<Value> = [
        ("account_id", format!(" {account_id}")),
        ("account_id", format!("{account_id}\n")),
        ("request_id", format!("{request_id}\t")),
        ("request_id", format!("\u{a0}{request_id}")),
    ]
    .into_iter()
    .map(|(field, text)| json!({"field": field, "text": text, "server": "invalid_request", "phone": "InvalidInput"}))
    .collect();
    // The device-auth header's time has one spelling (§4): the vector's header with the time
    // written another way is `unauthorized`, though the signature covers the same integer.
    let auth_sig = device.sign(&DeviceAuth::signed_bytes("GET", poll_path, &account_id, t0));
    let header_refusals: Vec<Value> = [
        ("timestamp-with-plus-sign", format!("+{}", t0.millis())),
        ("timestamp-with-leading-zero", format!("0{}", t0.millis())),
    ]
    .into_iter()
    .map(|(name, time)| json!({"name": name, "header": format!("PSI-Device {account_id}.{time}.{auth_sig}"), "server": "unauthorized"}))
    .collect();

    let doc = json!({
        "description": "Phone sign-in protocol v1 test vectors. Deterministic (RFC 6979) signatures from fixed private scalars; production signatures are randomized, so check exact bytes and verification only.",
        "keys": {
            "server": server.describe(), "device": device.describe(),
            "passwordless": passwordless.describe(), "other_device": other.describe(),
        },
        "enrollment_url": {
            "server": "https://id.contoso.test/", "code": code, "fingerprint": server.public().fingerprint(),
            "url": authenticator_protocol::enroll::EnrollmentUrl {
                server: url::Url::parse("https://id.contoso.test/").unwrap(), code: code.into(),
                server_fingerprint: server.public().fingerprint(),
            }.to_url_string(),
        },
        "push": {
            "account_id": account_id, "request_id": request_id,
            "apns": authenticator_protocol::push::PushEnvelope::new(account_id.clone(), request_id.clone()).to_apns_json(),
            "fcm": authenticator_protocol::push::PushEnvelope::new(account_id.clone(), request_id.clone()).to_fcm_data(),
        },
        // §2: identifiers and the code are framed (and hashed) as their text, never as the
        // 16 bytes the text encodes. The `wrong_*` values show the misreading.
        "identifiers": [
            id_framing("account_id", account_id.as_str()),
            id_framing("request_id", request_id.as_str()),
        ],
        "code_hash": {
            "code": code,
            "code_bytes_hex": hex::encode(unb64("code", code).unwrap()),
            "sha256_of_text_hex": hex::encode(sha256(code.as_bytes())),
            "wrong_sha256_of_bytes_hex": hex::encode(sha256(&unb64("code", code).unwrap())),
        },
        "vectors": vectors,
        "negative": negative,
        "refusals": {
            "typed_number": refusals,
            "ids": id_refusals,
            "device_auth_header": header_refusals,
        },
        "canonical_example": { "tag": "t", "fields": ["ab"], "u64": 1, "bytes_hex": hex::encode(Canonical::new(b"t").str("ab").u64(1).finish()) },
    });
    if std::env::args().any(|a| a == "--markdown") {
        print_markdown(&doc);
    } else {
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
    }
}

/// `text` as a quoted string whose white space and invisible characters are visible: `\n`,
/// `\t`, and `\u{a0}` for a no-break space (a plain space stays a space).
fn shown(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' => out.push(' '),
            c if c.is_whitespace() || c.is_control() => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The vectors section of docs/PROTOCOL.md (between the VECTORS markers).
fn print_markdown(doc: &Value) {
    println!("Keys (private scalars are test-only):\n");
    println!("| key | private scalar (hex) | public key (SEC1, base64url) |\n|---|---|---|");
    for name in ["server", "device", "passwordless", "other_device"] {
        let k = &doc["keys"][name];
        println!(
            "| `{name}` | `{}` | `{}` |",
            k["private_scalar_hex"].as_str().unwrap(),
            k["public_sec1"].as_str().unwrap()
        );
    }
    println!(
        "\nServer fingerprint: `{}`\n",
        doc["keys"]["server"]["fingerprint"].as_str().unwrap()
    );
    println!(
        "Enrollment URL: `{}`\n",
        doc["enrollment_url"]["url"].as_str().unwrap()
    );
    println!("APNs payload: `{}`\n", doc["push"]["apns"]);
    println!("FCM data: `{}`\n", doc["push"]["fcm"]);
    println!(
        "Identifiers are framed as their 22-character text, not as the 16 bytes it encodes (§2):\n"
    );
    println!("| field | text | framed (hex) | not: the 16 bytes framed (hex) |\n|---|---|---|---|");
    for id in doc["identifiers"].as_array().unwrap() {
        println!(
            "| `{}` | `{}` | `{}` | `{}` |",
            id["field"].as_str().unwrap(),
            id["text"].as_str().unwrap(),
            id["framed_hex"].as_str().unwrap(),
            id["wrong_framed_bytes_hex"].as_str().unwrap()
        );
    }
    let c = &doc["code_hash"];
    println!(
        "\n`SHA-256(code)` hashes the code's 22-character text: for `{}` it is `{}` (the first field \
         after the tag of `enroll-challenge`), not SHA-256 of its 16 bytes (`{}`), which is `{}`.\n",
        c["code"].as_str().unwrap(),
        c["sha256_of_text_hex"].as_str().unwrap(),
        c["code_bytes_hex"].as_str().unwrap(),
        c["wrong_sha256_of_bytes_hex"].as_str().unwrap()
    );
    for v in doc["vectors"].as_array().unwrap() {
        println!(
            "#### `{}` — signed by `{}`\n",
            v["name"].as_str().unwrap(),
            v["signer"].as_str().unwrap()
        );
        println!(
            "Inputs:\n```json\n{}\n```",
            serde_json::to_string_pretty(&v["inputs"]).unwrap()
        );
        println!(
            "Canonical bytes (hex):\n```\n{}\n```",
            v["bytes_hex"].as_str().unwrap()
        );
        println!(
            "Signature (base64url, r || s): `{}`\n",
            v["signature"].as_str().unwrap()
        );
    }
    println!("#### Negative vectors (each must fail with `BadSignature`)\n");
    println!("| name | key | signature |\n|---|---|---|");
    for v in doc["negative"].as_array().unwrap() {
        println!(
            "| `{}` | `{}` | `{}` |",
            v["name"].as_str().unwrap(),
            v["public_key"].as_str().unwrap(),
            v["signature"].as_str().unwrap()
        );
    }
    println!("\nThe negative vectors' message bytes are in `v1.json`.");

    let r = &doc["refusals"];
    println!("\n#### Refusals: the text as received (§2, §5.6 step 3)\n");
    println!(
        "Each body is the `response/approve` body with `typed_number` (and the signature) changed. \
         The server answers 400 `invalid_request` before any signature check, whatever the \
         signature covers (the digits a trimming reader would see, or the text as sent); the \
         phone refuses to sign such a number (`InvalidNumber`). White space is shown escaped \
         (`\\n`, `\\t`, `\\u{{a0}}` for a no-break space).\n"
    );
    println!("| name | `typed_number` | signature over | signature |\n|---|---|---|---|");
    for v in r["typed_number"].as_array().unwrap() {
        println!(
            "| `{}` | `{}` | `{}` | `{}` |",
            v["name"].as_str().unwrap(),
            shown(v["typed_number"].as_str().unwrap()),
            shown(v["signed_typed_number"].as_str().unwrap()),
            v["signature"].as_str().unwrap()
        );
    }
    println!(
        "\nIdentifiers with anything around them are no identifier: in a body the server answers \
         `invalid_request` (in a path, `unknown_request`), and the phone refuses them as input \
         (`InvalidInput`) and in a push (`InvalidPushPayload`).\n"
    );
    println!("| field | text |\n|---|---|");
    for v in r["ids"].as_array().unwrap() {
        println!(
            "| `{}` | `{}` |",
            v["field"].as_str().unwrap(),
            shown(v["text"].as_str().unwrap())
        );
    }
    println!(
        "\nThe `device-auth` header with its time written another way (the signature is the \
         vector's, over the same integer): 401 `unauthorized`.\n"
    );
    println!("| name | header |\n|---|---|");
    for v in r["device_auth_header"].as_array().unwrap() {
        println!(
            "| `{}` | `{}` |",
            v["name"].as_str().unwrap(),
            v["header"].as_str().unwrap()
        );
    }
}
