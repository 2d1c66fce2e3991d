//! Checks the protocol test vectors (`tests/vectors/v1.json`, mirrored in docs/PROTOCOL.md §9):
//! every message is rebuilt from its inputs with this crate and must equal the vector's bytes
//! exactly; every signature must verify; every negative vector must fail.
use std::collections::HashMap;

use authenticator_protocol::canonical::{Canonical, ENROLL_CHALLENGE_TAG, RESPONSE_TAG};
use authenticator_protocol::encoding::{sha256, unb64_fixed};
use authenticator_protocol::enroll::{
    EnrollChallenge, EnrollProof, EnrollmentUrl, PasswordlessKeyRegistration,
};
use authenticator_protocol::moving::MoveVouch;
use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::push_registration::PushRegistrationUpdate;
use authenticator_protocol::sign_in::{
    request_details_signed_bytes, Decision, DeviceAuth, SignInResponse, SignedRequestDetails,
};
use authenticator_protocol::{
    AccountId, ProtocolError, PublicKey, RequestId, Signature, TypedNumber, UnixMillis,
};
use serde_json::Value;

const V1: &str = include_str!("vectors/v1.json");
const PROTOCOL_MD: &str = include_str!("../../docs/PROTOCOL.md");

fn doc() -> Value {
    serde_json::from_str(V1).expect("v1.json parses")
}

fn key(doc: &Value, name: &str) -> PublicKey {
    PublicKey::from_b64(
        "public_sec1",
        doc["keys"][name]["public_sec1"].as_str().unwrap(),
    )
    .unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("input {k} is a string"))
}

fn t(v: &Value, k: &str) -> UnixMillis {
    UnixMillis(v[k].as_u64().unwrap())
}

fn rebuild(name: &str, i: &Value) -> Vec<u8> {
    match name {
        "enroll-challenge" => EnrollChallenge {
            challenge: unb64_fixed("challenge", s(i, "challenge")).unwrap(),
            upn: s(i, "upn").into(),
            display_name: s(i, "display_name").into(),
            server_name: s(i, "server_name").into(),
            expires_at: t(i, "expires_at"),
        }
        .signed_bytes(s(i, "code")),
        "enroll-proof" => EnrollProof {
            challenge: unb64_fixed("challenge", s(i, "challenge")).unwrap(),
            device_public_key: PublicKey::from_b64("k", s(i, "device_public_key")).unwrap(),
            push_kind: s(i, "push_kind").into(),
            push_token: s(i, "push_token").into(),
            device_name: s(i, "device_name").into(),
            timestamp: t(i, "timestamp"),
        }
        .signed_bytes(),
        "passwordless-key/device" | "passwordless-key/self" => PasswordlessKeyRegistration {
            account_id: AccountId::parse(s(i, "account_id")).unwrap(),
            passwordless_public_key: PublicKey::from_b64("k", s(i, "passwordless_public_key"))
                .unwrap(),
            timestamp: t(i, "timestamp"),
        }
        .signed_bytes(),
        "request-details"
        | "request-details/six-digit-number"
        | "request-details/browser-bound" => request_details_signed_bytes(s(i, "details")),
        "response/approve"
        | "response/approve-six-digit-number"
        | "response/approve-browser-bound"
        | "response/deny"
        | "response/report" => SignInResponse {
            request_id: RequestId::parse(s(i, "request_id")).unwrap(),
            account_id: AccountId::parse(s(i, "account_id")).unwrap(),
            nonce: unb64_fixed("nonce", s(i, "nonce")).unwrap(),
            decision: serde_json::from_value::<Decision>(i["decision"].clone()).unwrap(),
            typed_number: i["typed_number"]
                .as_str()
                .map(|n| TypedNumber::parse(n).unwrap()),
            context_sha256: unb64_fixed("context_sha256", s(i, "context_sha256")).unwrap(),
            timestamp: t(i, "timestamp"),
            browser_origin: i["browser_origin"].as_str().map(str::to_owned),
        }
        .signed_bytes(),
        "push-registration" => PushRegistrationUpdate {
            account_id: AccountId::parse(s(i, "account_id")).unwrap(),
            push_kind: s(i, "push_kind").into(),
            push_token: s(i, "push_token").into(),
            timestamp: t(i, "timestamp"),
        }
        .signed_bytes(),
        "device-auth" => DeviceAuth::signed_bytes(
            s(i, "method"),
            s(i, "path_and_query"),
            &AccountId::parse(s(i, "account_id")).unwrap(),
            t(i, "timestamp"),
        ),
        "move-vouch" | "move-vouch/no-totp" => MoveVouch {
            account_id: AccountId::parse(s(i, "account_id")).unwrap(),
            totp_blob_sha256: i["totp_blob_sha256"]
                .as_str()
                .map(|h| unb64_fixed("totp_blob_sha256", h).unwrap()),
            timestamp: t(i, "timestamp"),
        }
        .signed_bytes(),
        other => panic!("unknown vector {other}"),
    }
}

#[test]
fn every_vector_rebuilds_to_its_exact_bytes_and_verifies() {
    let doc = doc();
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 16);
    for v in vectors {
        let name = s(v, "name");
        let bytes = rebuild(name, &v["inputs"]);
        assert_eq!(hex::encode(&bytes), s(v, "bytes_hex"), "bytes of {name}");
        let sig = Signature::from_b64("signature", s(v, "signature")).unwrap();
        key(&doc, s(v, "signer"))
            .verify(&bytes, &sig)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // A signature made by any other vector key must not verify.
        for other in ["server", "device", "passwordless", "other_device"]
            .iter()
            .filter(|k| **k != s(v, "signer"))
        {
            assert_eq!(
                key(&doc, other).verify(&bytes, &sig),
                Err(ProtocolError::BadSignature),
                "{name} under {other}"
            );
        }
    }
}

#[test]
fn every_negative_vector_fails_with_bad_signature() {
    let doc = doc();
    let negative = doc["negative"].as_array().unwrap();
    assert_eq!(negative.len(), 11);
    for v in negative {
        let bytes = hex::decode(s(v, "bytes_hex")).unwrap();
        let sig = Signature::from_b64("signature", s(v, "signature")).unwrap();
        assert_eq!(s(v, "error"), "BadSignature");
        assert_eq!(
            key(&doc, s(v, "public_key")).verify(&bytes, &sig),
            Err(ProtocolError::BadSignature),
            "{}",
            s(v, "name")
        );
    }
}

#[test]
fn request_details_vector_verifies_through_signed_details_and_hashes_the_received_text() {
    let doc = doc();
    let v = doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "request-details")
        .unwrap();
    let signed = SignedRequestDetails {
        details: s(&v["inputs"], "details").into(),
        signature: s(v, "signature").into(),
    };
    let details = signed.verify(&key(&doc, "server")).unwrap();
    assert_eq!(details.upn, "bobby@contoso.test");
    assert_eq!(details.app_name.as_deref(), Some("My Apps"));
    assert_eq!(
        authenticator_protocol::encoding::b64(&signed.context_sha256()),
        s(v, "context_sha256")
    );
    assert_eq!(
        signed.context_sha256(),
        sha256(s(&v["inputs"], "details").as_bytes())
    );
    // The approval vector binds exactly this context.
    let approve = doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "response/approve")
        .unwrap();
    assert_eq!(
        s(&approve["inputs"], "context_sha256"),
        s(v, "context_sha256")
    );
}

#[test]
fn enrollment_url_and_push_vectors_parse() {
    let doc = doc();
    let e = &doc["enrollment_url"];
    let url = EnrollmentUrl::parse(s(e, "url")).unwrap();
    assert_eq!(url.code, s(e, "code"));
    assert_eq!(url.server.as_str(), s(e, "server"));
    assert_eq!(url.server_fingerprint, key(&doc, "server").fingerprint());
    assert_eq!(url.server_fingerprint, s(e, "fingerprint"));

    let p = &doc["push"];
    let expected = PushEnvelope::new(
        AccountId::parse(s(p, "account_id")).unwrap(),
        RequestId::parse(s(p, "request_id")).unwrap(),
    );
    assert_eq!(
        PushEnvelope::from_json(&p["apns"].to_string()).unwrap(),
        expected
    );
    let fcm: HashMap<String, String> = serde_json::from_value(p["fcm"].clone()).unwrap();
    assert_eq!(PushEnvelope::from_data_map(&fcm).unwrap(), expected);
}

#[test]
fn canonical_example_matches() {
    let doc = doc();
    let c = &doc["canonical_example"];
    assert_eq!(
        hex::encode(Canonical::new(b"t").str("ab").u64(1).finish()),
        s(c, "bytes_hex")
    );
}

#[test]
fn protocol_md_shows_the_same_vectors_as_the_json_file() {
    let doc = doc();
    for v in doc["vectors"].as_array().unwrap() {
        assert!(
            PROTOCOL_MD.contains(s(v, "bytes_hex")),
            "PROTOCOL.md lacks the bytes of {}",
            s(v, "name")
        );
        assert!(
            PROTOCOL_MD.contains(s(v, "signature")),
            "PROTOCOL.md lacks the signature of {}",
            s(v, "name")
        );
    }
    for name in ["server", "device", "passwordless", "other_device"] {
        assert!(PROTOCOL_MD.contains(doc["keys"][name]["public_sec1"].as_str().unwrap()));
    }
    assert!(PROTOCOL_MD.contains(doc["enrollment_url"]["url"].as_str().unwrap()));
}

fn vector<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("vector {name}"))
}

/// PROTOCOL.md §2: an `account_id` or `request_id` field is `u32_be(22) || <22 ASCII characters>`.
#[test]
fn ids_are_framed_as_their_22_character_text_not_their_16_bytes() {
    let doc = doc();
    let ids = doc["identifiers"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    let mut checked = 0;
    for id in ids {
        let (field, text) = (s(id, "field"), s(id, "text"));
        assert_eq!(text.len(), 22, "{field}");
        let bytes = unb64_fixed::<16>("id", text).unwrap();
        assert_eq!(hex::encode(bytes), s(id, "bytes_hex"));
        let framed = [&22u32.to_be_bytes()[..], text.as_bytes()].concat();
        assert_eq!(hex::encode(&framed), s(id, "framed_hex"));
        let wrong = [&16u32.to_be_bytes()[..], &bytes[..]].concat();
        assert_eq!(hex::encode(&wrong), s(id, "wrong_framed_bytes_hex"));
        // Every signed vector with this id carries the text framing, never the bytes framing.
        for v in doc["vectors"].as_array().unwrap() {
            if v["inputs"][field].as_str() == Some(text) {
                assert!(
                    s(v, "bytes_hex").contains(s(id, "framed_hex")),
                    "{}",
                    s(v, "name")
                );
                assert!(!s(v, "bytes_hex").contains(s(id, "wrong_framed_bytes_hex")));
                checked += 1;
            }
        }
    }
    // account_id: passwordless-key ×2, response ×5, device-auth, push-registration,
    // move-vouch ×2; request_id: response ×5.
    assert_eq!(checked, 16);
    // Position: `response` starts frame(tag) || frame(request_id text) || frame(account_id text).
    let approve = hex::decode(s(vector(&doc, "response/approve"), "bytes_hex")).unwrap();
    let after_tag = &approve[4 + RESPONSE_TAG.len()..];
    let request_id = hex::decode(s(&ids[1], "framed_hex")).unwrap();
    let account_id = hex::decode(s(&ids[0], "framed_hex")).unwrap();
    assert_eq!(&after_tag[..26], &request_id[..]);
    assert_eq!(&after_tag[26..52], &account_id[..]);
}

/// PROTOCOL.md §2: the first field of `enroll-challenge` is SHA-256 of the code's 22-character
/// text (its ASCII bytes), not of the 16 bytes the text encodes.
#[test]
fn code_hash_is_sha256_of_the_22_character_text_not_of_its_16_bytes() {
    let doc = doc();
    let c = &doc["code_hash"];
    let code = s(c, "code");
    assert_eq!(code.len(), 22);
    let text_hash = sha256(code.as_bytes());
    assert_eq!(hex::encode(text_hash), s(c, "sha256_of_text_hex"));
    let raw = unb64_fixed::<16>("code", code).unwrap();
    assert_eq!(hex::encode(raw), s(c, "code_bytes_hex"));
    let raw_hash = sha256(&raw);
    assert_eq!(hex::encode(raw_hash), s(c, "wrong_sha256_of_bytes_hex"));
    assert_ne!(text_hash, raw_hash);

    let v = vector(&doc, "enroll-challenge");
    assert_eq!(s(&v["inputs"], "code"), code);
    let bytes = hex::decode(s(v, "bytes_hex")).unwrap();
    let field = &bytes[4 + ENROLL_CHALLENGE_TAG.len()..];
    assert_eq!(&field[..4], &32u32.to_be_bytes());
    assert_eq!(&field[4..36], &text_hash);
    assert!(!s(v, "bytes_hex").contains(&hex::encode(raw_hash)));
    // The crate hashes the text too: the message built with the raw-bytes hash differs.
    let challenge = EnrollChallenge {
        challenge: unb64_fixed("challenge", s(&v["inputs"], "challenge")).unwrap(),
        upn: s(&v["inputs"], "upn").into(),
        display_name: s(&v["inputs"], "display_name").into(),
        server_name: s(&v["inputs"], "server_name").into(),
        expires_at: t(&v["inputs"], "expires_at"),
    };
    let misread = Canonical::new(ENROLL_CHALLENGE_TAG)
        .field(&raw_hash)
        .field(&challenge.challenge)
        .str(&challenge.upn)
        .str(&challenge.display_name)
        .str(&challenge.server_name)
        .u64(challenge.expires_at.millis())
        .finish();
    assert_eq!(challenge.signed_bytes(code), bytes);
    assert_ne!(misread, bytes);
    // …and the vector's signature does not verify over the misread message.
    let sig = Signature::from_b64("signature", s(v, "signature")).unwrap();
    assert_eq!(
        key(&doc, "server").verify(&misread, &sig),
        Err(ProtocolError::BadSignature)
    );
}

#[test]
fn protocol_md_shows_the_id_framing_and_code_hash_vectors() {
    let doc = doc();
    for id in doc["identifiers"].as_array().unwrap() {
        for k in ["text", "framed_hex", "wrong_framed_bytes_hex"] {
            assert!(
                PROTOCOL_MD.contains(s(id, k)),
                "PROTOCOL.md lacks {k} of {}",
                s(id, "field")
            );
        }
    }
    for k in ["sha256_of_text_hex", "wrong_sha256_of_bytes_hex"] {
        assert!(
            PROTOCOL_MD.contains(s(&doc["code_hash"], k)),
            "PROTOCOL.md lacks {k}"
        );
    }
}

/// The push kind the enrollment proof signs is a `PushChannelKind` wire string.
#[test]
fn enroll_proof_vector_push_kind_is_a_push_channel_kind() {
    use authenticator_protocol::push::PushChannelKind;
    let doc = doc();
    let kind = s(&vector(&doc, "enroll-proof")["inputs"], "push_kind");
    assert_eq!(PushChannelKind::parse(kind), Ok(PushChannelKind::LongPoll));
}

/// The refusal vectors (PROTOCOL.md §2, §5.6 step 3; issue 20, finding 4): each typed number
/// is refused as text, whatever its signature covers. The signatures are good ones — over the
/// digits a trimming reader would see, or over the text as sent — so a reader that refuses
/// them refuses the text, not the signature.
#[test]
fn refused_typed_numbers_are_refused_as_text_though_their_signatures_verify() {
    let doc = doc();
    let approve = vector(&doc, "response/approve");
    let refusals = doc["refusals"]["typed_number"].as_array().unwrap();
    assert_eq!(refusals.len(), 7);
    let mut over_the_approved_bytes = 0;
    for r in refusals {
        let name = s(r, "name");
        let (typed, signed) = (s(r, "typed_number"), s(r, "signed_typed_number"));
        assert_eq!(
            TypedNumber::parse(typed),
            Err(ProtocolError::InvalidNumber),
            "{name}"
        );
        // The body is the approve body with only the typed number and the signature changed.
        let body = &r["body"];
        assert_eq!(body["typed_number"], typed, "{name}");
        assert_eq!(body["signature"], r["signature"], "{name}");
        for k in [
            "account_id",
            "decision",
            "nonce",
            "context_sha256",
            "timestamp",
        ] {
            assert_eq!(body[k], approve["inputs"][k], "{name}: {k}");
        }
        // The signed bytes: the approve layout with `signed` framed as it is.
        let mut bytes = hex::decode(s(approve, "bytes_hex")).unwrap();
        let at = 4 + RESPONSE_TAG.len() + 26 + 26 + 36 + 5;
        assert_eq!(&bytes[at..at + 6], b"\0\0\0\x0242");
        bytes.splice(
            at..at + 6,
            [&(signed.len() as u32).to_be_bytes()[..], signed.as_bytes()].concat(),
        );
        assert_eq!(hex::encode(&bytes), s(r, "bytes_hex"), "{name}");
        let sig = Signature::from_b64("signature", s(r, "signature")).unwrap();
        key(&doc, "passwordless")
            .verify(&bytes, &sig)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if signed == "42" {
            assert_eq!(s(r, "bytes_hex"), s(approve, "bytes_hex"), "{name}");
            over_the_approved_bytes += 1;
        } else {
            assert_eq!(signed, typed, "{name}: signed as sent");
        }
        assert_eq!(s(r, "server"), "invalid_request");
        assert_eq!(s(r, "phone"), "InvalidNumber");
    }
    assert_eq!(over_the_approved_bytes, 4);
}

/// Identifiers with anything around them, and device-auth headers whose time is spelt another
/// way, are refused by the parsers both sides use.
#[test]
fn refused_ids_and_device_auth_headers_do_not_parse() {
    let doc = doc();
    let ids = doc["refusals"]["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 4);
    for id in ids {
        let text = s(id, "text");
        let refused = match s(id, "field") {
            "account_id" => AccountId::parse(text).is_err(),
            "request_id" => RequestId::parse(text).is_err(),
            other => panic!("unknown field {other}"),
        };
        assert!(refused, "{text:?}");
        // …and in a push envelope.
        let env = match s(id, "field") {
            "account_id" => {
                serde_json::json!({"v": 1, "aid": text, "rid": "ICEiIyQlJicoKSorLC0uLw"})
            }
            _ => serde_json::json!({"v": 1, "aid": "EBESExQVFhcYGRobHB0eHw", "rid": text}),
        };
        assert!(
            matches!(
                PushEnvelope::from_json(&env.to_string()),
                Err(ProtocolError::MalformedPush(_))
            ),
            "{text:?}"
        );
    }
    let headers = doc["refusals"]["device_auth_header"].as_array().unwrap();
    assert_eq!(headers.len(), 2);
    let auth = vector(&doc, "device-auth");
    for h in headers {
        let header = s(h, "header");
        assert_eq!(
            DeviceAuth::parse_header(header),
            Err(ProtocolError::MalformedField("authorization")),
            "{}",
            s(h, "name")
        );
        // Only the time's spelling differs from the vector's own header, which parses.
        let good = format!(
            "PSI-Device {}.{}.{}",
            s(&auth["inputs"], "account_id"),
            t(&auth["inputs"], "timestamp").millis(),
            s(auth, "signature")
        );
        assert!(DeviceAuth::parse_header(&good).is_ok());
        let (head, _) = header.split_at(header.rfind('.').unwrap());
        let (good_head, _) = good.split_at(good.rfind('.').unwrap());
        assert_ne!(head, good_head);
        assert!(header.ends_with(s(auth, "signature")));
    }
}

#[test]
fn protocol_md_shows_the_refusal_vectors() {
    let doc = doc();
    for r in doc["refusals"]["typed_number"].as_array().unwrap() {
        assert!(
            PROTOCOL_MD.contains(&format!("`{}`", s(r, "name"))),
            "PROTOCOL.md lacks refusal {}",
            s(r, "name")
        );
        assert!(PROTOCOL_MD.contains(s(r, "signature")));
    }
    for h in doc["refusals"]["device_auth_header"].as_array().unwrap() {
        assert!(PROTOCOL_MD.contains(s(h, "header")));
    }
    for id in doc["refusals"]["ids"].as_array().unwrap() {
        let text = s(id, "text");
        let core = text.trim_matches(|c: char| c.is_whitespace());
        assert_eq!(core.len(), 22);
        // The table shows the white space escaped and the id in full.
        let escaped = text
            .replace('\n', "\\n")
            .replace('\t', "\\t")
            .replace('\u{a0}', "\\u{a0}");
        assert!(
            PROTOCOL_MD.contains(&format!("`\"{escaped}\"`")),
            "PROTOCOL.md lacks the refused id {text:?}"
        );
    }
}
