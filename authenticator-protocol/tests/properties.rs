//! Property tests (issue 9) of the canonical signed bytes (docs/PROTOCOL.md §2) and of signature
//! binding.
//!
//! The crate only encodes canonical messages, so this file has the decoder that §2 implies
//! (`u32_be(len) || bytes`, repeated) and writes each message's field list down again from the §2
//! table, independently of the crate. For every signed message type:
//! - round trip: the crate's bytes decode back to exactly the §2 field list (tag first), so the
//!   encoding is self-delimiting and, the decoder being a function, injective;
//! - injectivity, checked directly: two values give the same bytes exactly when they are equal,
//!   over pairs that differ in few fields and pairs whose adjacent text fields hold the same
//!   concatenation cut elsewhere, with adversarial text (empty, separators, NUL, quotes,
//!   frame-header-like prefixes, long);
//! - binding: a signature over a value fails for the value with any one signed field changed
//!   (every field, every case), and fails under any other key.
use std::fmt::Debug;
use std::sync::OnceLock;

use authenticator_protocol::canonical::Canonical;
use authenticator_protocol::encoding::{b64, unb64_fixed};
use authenticator_protocol::enroll::{EnrollChallenge, EnrollProof, PasswordlessKeyRegistration};
use authenticator_protocol::sign_in::{
    request_details_signed_bytes, BrowserBinding, Decision, DeviceAuth, RequestDetails,
    RequestKind, SignInResponse, SignedRequestDetails,
};
use authenticator_protocol::{
    AccountId, EcdsaSigner, ProtocolError, PublicKey, RequestId, TypedNumber, UnixMillis,
};
use proptest::prelude::*;
use proptest::sample::Index;
use sha2::Digest;

// ---------------------------------------------------------------------------------------------
// §2 written down again: the tags, the decoder and each message's field list.

const ENROLL_CHALLENGE_TAG: &[u8] = b"phonesignin/v1/enroll-challenge";
const ENROLL_TAG: &[u8] = b"phonesignin/v1/enroll";
const PASSWORDLESS_KEY_TAG: &[u8] = b"phonesignin/v1/passwordless-key";
const REQUEST_DETAILS_TAG: &[u8] = b"phonesignin/v1/request-details";
const RESPONSE_TAG: &[u8] = b"phonesignin/v1/response";
const BOUND_RESPONSE_TAG: &[u8] = b"phonesignin/v1/response-bound";
const DEVICE_AUTH_TAG: &[u8] = b"phonesignin/v1/device-auth";

/// `message = frame(f_1) || … || frame(f_n)`, `frame(x) = u32_be(len(x)) || x`, read back.
fn decode_frames(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or("truncated length prefix")?;
        let len = usize::try_from(u32::from_be_bytes(*len)).expect("usize holds u32");
        if rest.len() < len {
            return Err("truncated field");
        }
        let (field, rest) = rest.split_at(len);
        fields.push(field.to_vec());
        bytes = rest;
    }
    Ok(fields)
}

fn encode_frames(tag: &[u8], fields: &[Vec<u8>]) -> Vec<u8> {
    fields
        .iter()
        .fold(Canonical::new(tag), |c, f| c.field(f))
        .finish()
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn int(t: UnixMillis) -> Vec<u8> {
    t.millis().to_be_bytes().to_vec()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(bytes).to_vec()
}

/// `approve` = 1, `deny` = 2, `report` = 3.
fn decision_byte(d: Decision) -> Vec<u8> {
    vec![match d {
        Decision::Approve => 1,
        Decision::Deny => 2,
        Decision::Report => 3,
    }]
}

// ---------------------------------------------------------------------------------------------
// The signed message types, seen uniformly.

/// A signed message type: its canonical bytes (the crate's), its §2 field list (this file's),
/// and field-wise operations the strategies use.
trait Message: Clone + PartialEq + Debug {
    /// The signed fields, in §2 order (the tag aside).
    const FIELDS: &'static [&'static str];
    /// The bytes the crate signs.
    fn canonical(&self) -> Vec<u8>;
    /// The §2 field list, tag first, built from the table without the crate.
    fn spec_fields(&self) -> Vec<Vec<u8>>;
    /// Field `i` from `a` when bit `i` of `keep` is set, else from `b`.
    fn mix(a: &Self, b: &Self, keep: u32) -> Self;
    /// `self` with field `i` set to `other`'s value, or to another value when they are equal:
    /// the result always differs from `self` in that one field.
    fn with_changed(&self, i: usize, other: &Self) -> Self;
    /// Text fields that sit next to each other in the message, for boundary-shift pairs.
    fn adjacent_texts(&mut self) -> Vec<&mut String> {
        Vec::new()
    }
}

macro_rules! field_ops {
    ($($f:ident),+ $(,)?) => {
        const FIELDS: &'static [&'static str] = &[$(stringify!($f)),+];

        fn mix(a: &Self, b: &Self, keep: u32) -> Self {
            let mut out = a.clone();
            let mut i = 0u32;
            $(
                if keep & (1 << i) == 0 {
                    out.$f = b.$f.clone();
                }
                i += 1;
            )+
            let _ = i;
            out
        }

        fn with_changed(&self, field: usize, other: &Self) -> Self {
            let mut out = self.clone();
            let mut i = 0usize;
            $(
                if i == field {
                    out.$f = differ(&self.$f, &other.$f);
                }
                i += 1;
            )+
            let _ = i;
            out
        }
    };
}

/// The enrollment challenge together with the code whose hash it signs.
#[derive(Debug, Clone, PartialEq)]
struct CodedChallenge {
    code: String,
    challenge: [u8; 32],
    upn: String,
    display_name: String,
    server_name: String,
    expires_at: UnixMillis,
}

impl CodedChallenge {
    fn message(&self) -> EnrollChallenge {
        EnrollChallenge {
            challenge: self.challenge,
            upn: self.upn.clone(),
            display_name: self.display_name.clone(),
            server_name: self.server_name.clone(),
            expires_at: self.expires_at,
        }
    }
}

impl Message for CodedChallenge {
    field_ops!(code, challenge, upn, display_name, server_name, expires_at);
    fn canonical(&self) -> Vec<u8> {
        self.message().signed_bytes(&self.code)
    }
    fn spec_fields(&self) -> Vec<Vec<u8>> {
        vec![
            ENROLL_CHALLENGE_TAG.to_vec(),
            sha256(self.code.as_bytes()),
            self.challenge.to_vec(),
            text(&self.upn),
            text(&self.display_name),
            text(&self.server_name),
            int(self.expires_at),
        ]
    }
    fn adjacent_texts(&mut self) -> Vec<&mut String> {
        vec![&mut self.upn, &mut self.display_name, &mut self.server_name]
    }
}

impl Message for EnrollProof {
    field_ops!(
        challenge,
        device_public_key,
        push_kind,
        push_token,
        device_name,
        timestamp
    );
    fn canonical(&self) -> Vec<u8> {
        self.signed_bytes()
    }
    fn spec_fields(&self) -> Vec<Vec<u8>> {
        vec![
            ENROLL_TAG.to_vec(),
            self.challenge.to_vec(),
            self.device_public_key.as_bytes().to_vec(),
            text(&self.push_kind),
            text(&self.push_token),
            text(&self.device_name),
            int(self.timestamp),
        ]
    }
    fn adjacent_texts(&mut self) -> Vec<&mut String> {
        vec![
            &mut self.push_kind,
            &mut self.push_token,
            &mut self.device_name,
        ]
    }
}

impl Message for PasswordlessKeyRegistration {
    field_ops!(account_id, passwordless_public_key, timestamp);
    fn canonical(&self) -> Vec<u8> {
        self.signed_bytes()
    }
    fn spec_fields(&self) -> Vec<Vec<u8>> {
        vec![
            PASSWORDLESS_KEY_TAG.to_vec(),
            text(self.account_id.as_str()),
            self.passwordless_public_key.as_bytes().to_vec(),
            int(self.timestamp),
        ]
    }
}

/// The details are signed as the exact JSON text the server sends; the value is what that text
/// says.
impl Message for RequestDetails {
    field_ops!(
        v,
        request_id,
        account_id,
        kind,
        upn,
        server_name,
        app_name,
        location,
        device_name,
        number_matching,
        number_length,
        nonce,
        created_at,
        expires_at,
        browser
    );
    fn canonical(&self) -> Vec<u8> {
        request_details_signed_bytes(&json(self))
    }
    fn spec_fields(&self) -> Vec<Vec<u8>> {
        vec![REQUEST_DETAILS_TAG.to_vec(), text(&json(self))]
    }
    fn adjacent_texts(&mut self) -> Vec<&mut String> {
        vec![&mut self.upn, &mut self.server_name]
    }
}

fn json(details: &RequestDetails) -> String {
    serde_json::to_string(details).expect("details serialize")
}

impl Message for SignInResponse {
    field_ops!(
        request_id,
        account_id,
        nonce,
        decision,
        typed_number,
        context_sha256,
        timestamp,
        browser_origin
    );
    fn canonical(&self) -> Vec<u8> {
        self.signed_bytes()
    }
    /// §6.2: the `response` layout, or with a browser origin the `response-bound` one (its
    /// own tag, the same fields, then the origin).
    fn spec_fields(&self) -> Vec<Vec<u8>> {
        let tag = match self.browser_origin {
            None => RESPONSE_TAG,
            Some(_) => BOUND_RESPONSE_TAG,
        };
        let mut fields = vec![
            tag.to_vec(),
            text(self.request_id.as_str()),
            text(self.account_id.as_str()),
            self.nonce.to_vec(),
            decision_byte(self.decision),
            text(self.typed_number.as_ref().map_or("", |n| n.as_str())),
            self.context_sha256.to_vec(),
            int(self.timestamp),
        ];
        if let Some(origin) = &self.browser_origin {
            fields.push(text(origin));
        }
        fields
    }
}

/// What `DeviceAuth::signed_bytes` signs.
#[derive(Debug, Clone, PartialEq)]
struct DeviceAuthInput {
    method: String,
    path_and_query: String,
    account_id: AccountId,
    timestamp: UnixMillis,
}

impl Message for DeviceAuthInput {
    field_ops!(method, path_and_query, account_id, timestamp);
    fn canonical(&self) -> Vec<u8> {
        DeviceAuth::signed_bytes(
            &self.method,
            &self.path_and_query,
            &self.account_id,
            self.timestamp,
        )
    }
    fn spec_fields(&self) -> Vec<Vec<u8>> {
        vec![
            DEVICE_AUTH_TAG.to_vec(),
            text(&self.method),
            text(&self.path_and_query),
            text(self.account_id.as_str()),
            int(self.timestamp),
        ]
    }
    fn adjacent_texts(&mut self) -> Vec<&mut String> {
        vec![&mut self.method, &mut self.path_and_query]
    }
}

// ---------------------------------------------------------------------------------------------
// "Another value" for each field type.

trait Tweak: Clone + PartialEq {
    /// A value different from `self`.
    fn tweaked(&self) -> Self;
}

/// `b` when it differs from `a`, else a tweak of `a`: always different from `a`.
fn differ<T: Tweak>(a: &T, b: &T) -> T {
    if a != b {
        b.clone()
    } else {
        a.tweaked()
    }
}

impl Tweak for String {
    fn tweaked(&self) -> Self {
        format!("{self}x")
    }
}
impl Tweak for Option<String> {
    fn tweaked(&self) -> Self {
        match self {
            None => Some(String::new()),
            Some(_) => None,
        }
    }
}
impl Tweak for Option<BrowserBinding> {
    fn tweaked(&self) -> Self {
        match self {
            None => Some(BrowserBinding {
                challenge: b64(&[0u8; 16]),
                origin: "https://id.contoso.test".into(),
            }),
            Some(_) => None,
        }
    }
}
impl Tweak for [u8; 32] {
    fn tweaked(&self) -> Self {
        let mut out = *self;
        out[31] ^= 1;
        out
    }
}
impl Tweak for u32 {
    fn tweaked(&self) -> Self {
        self.wrapping_add(1)
    }
}
/// A number length is 2 to 6: the tweak stays in range.
impl Tweak for u8 {
    fn tweaked(&self) -> Self {
        if *self >= 6 {
            2
        } else {
            self + 1
        }
    }
}
impl Tweak for bool {
    fn tweaked(&self) -> Self {
        !self
    }
}
impl Tweak for UnixMillis {
    fn tweaked(&self) -> Self {
        UnixMillis(self.0 ^ 1)
    }
}
impl Tweak for AccountId {
    fn tweaked(&self) -> Self {
        AccountId::parse(&flip_id(self.as_str())).unwrap()
    }
}
impl Tweak for RequestId {
    fn tweaked(&self) -> Self {
        RequestId::parse(&flip_id(self.as_str())).unwrap()
    }
}
impl Tweak for PublicKey {
    fn tweaked(&self) -> Self {
        let keys = pool_keys();
        let at = keys.iter().position(|k| k == self).unwrap_or(0);
        keys[(at + 1) % keys.len()].clone()
    }
}
impl Tweak for Decision {
    fn tweaked(&self) -> Self {
        match self {
            Decision::Approve => Decision::Deny,
            Decision::Deny => Decision::Report,
            Decision::Report => Decision::Approve,
        }
    }
}
impl Tweak for RequestKind {
    fn tweaked(&self) -> Self {
        match self {
            RequestKind::Passwordless => RequestKind::Push,
            RequestKind::Push => RequestKind::NewDevice,
            RequestKind::NewDevice => RequestKind::Passwordless,
        }
    }
}
impl Tweak for Option<TypedNumber> {
    fn tweaked(&self) -> Self {
        match self {
            None => Some(TypedNumber::parse("00").unwrap()),
            Some(_) => None,
        }
    }
}

fn flip_id(id: &str) -> String {
    let mut bytes = unb64_fixed::<16>("id", id).unwrap();
    bytes[0] ^= 1;
    b64(&bytes)
}

// ---------------------------------------------------------------------------------------------
// Keys: a small pool, so that generated values often share a key.

const POOL: usize = 4;

fn signers() -> &'static [EcdsaSigner] {
    static SIGNERS: OnceLock<Vec<EcdsaSigner>> = OnceLock::new();
    SIGNERS.get_or_init(|| {
        (0..POOL)
            .map(|_| EcdsaSigner::generate().unwrap().0)
            .collect()
    })
}

fn pool_keys() -> &'static [PublicKey] {
    static KEYS: OnceLock<Vec<PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| signers().iter().map(EcdsaSigner::public_key).collect())
}

/// Two different signers of the pool: (the signer, another key).
fn signer_pair() -> impl Strategy<Value = (usize, usize)> {
    (0..POOL, 1..POOL).prop_map(|(i, d)| (i, (i + d) % POOL))
}

// ---------------------------------------------------------------------------------------------
// Strategies.

/// Text chosen to break framing: empty, separators and NUL, JSON-significant characters,
/// strings that begin with something that reads as a frame header (`00 00 00 n`), arbitrary
/// Unicode, and long strings (lengths past one and two bytes).
fn adversarial_text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just(String::new()),
        5 => "[ab\\x00\\x01\\x04\\x08/.:|=&?\"\\\\]{0,4}",
        2 => (0u8..0x80, "[a-z\\x00]{0,8}")
            .prop_map(|(n, s)| format!("\0\0\0{}{s}", char::from(n))),
        2 => any::<String>(),
        1 => "[ab\\x00]{250,300}",
        1 => (65_530usize..65_545).prop_map(|n| "\0".repeat(n)),
    ]
    .boxed()
}

fn bytes32() -> impl Strategy<Value = [u8; 32]> {
    prop_oneof![Just([0u8; 32]), Just([1u8; 32]), any::<[u8; 32]>()]
}

fn millis() -> impl Strategy<Value = UnixMillis> {
    prop_oneof![Just(0), Just(u64::MAX), 0u64..4, any::<u64>()].prop_map(UnixMillis)
}

fn id_bytes() -> impl Strategy<Value = [u8; 16]> {
    prop_oneof![Just([0u8; 16]), Just([0xffu8; 16]), any::<[u8; 16]>()]
}

fn account_id() -> impl Strategy<Value = AccountId> {
    id_bytes().prop_map(|b| AccountId::parse(&b64(&b)).unwrap())
}

fn request_id() -> impl Strategy<Value = RequestId> {
    id_bytes().prop_map(|b| RequestId::parse(&b64(&b)).unwrap())
}

fn public_key() -> impl Strategy<Value = PublicKey> {
    (0..POOL).prop_map(|i| pool_keys()[i].clone())
}

fn typed_number() -> impl Strategy<Value = Option<TypedNumber>> {
    prop::option::of((0u8..100).prop_map(|n| TypedNumber::parse(&format!("{n:02}")).unwrap()))
}

fn code() -> impl Strategy<Value = String> {
    prop_oneof![any::<[u8; 16]>().prop_map(|b| b64(&b)), adversarial_text()]
}

fn coded_challenge() -> BoxedStrategy<CodedChallenge> {
    (
        code(),
        bytes32(),
        adversarial_text(),
        adversarial_text(),
        adversarial_text(),
        millis(),
    )
        .prop_map(
            |(code, challenge, upn, display_name, server_name, expires_at)| CodedChallenge {
                code,
                challenge,
                upn,
                display_name,
                server_name,
                expires_at,
            },
        )
        .boxed()
}

fn enroll_proof() -> BoxedStrategy<EnrollProof> {
    (
        bytes32(),
        public_key(),
        prop_oneof![
            Just("longpoll".to_owned()),
            Just("apns".to_owned()),
            Just("fcm".to_owned()),
            adversarial_text()
        ],
        adversarial_text(),
        adversarial_text(),
        millis(),
    )
        .prop_map(
            |(challenge, device_public_key, push_kind, push_token, device_name, timestamp)| {
                EnrollProof {
                    challenge,
                    device_public_key,
                    push_kind,
                    push_token,
                    device_name,
                    timestamp,
                }
            },
        )
        .boxed()
}

fn passwordless_key_registration() -> BoxedStrategy<PasswordlessKeyRegistration> {
    (account_id(), public_key(), millis())
        .prop_map(
            |(account_id, passwordless_public_key, timestamp)| PasswordlessKeyRegistration {
                account_id,
                passwordless_public_key,
                timestamp,
            },
        )
        .boxed()
}

fn request_details() -> BoxedStrategy<RequestDetails> {
    (
        (
            request_id(),
            account_id(),
            prop::sample::select(RequestKind::ALL.to_vec()),
            adversarial_text(),
            adversarial_text(),
            prop::option::of(adversarial_text()),
            prop::option::of(adversarial_text()),
            prop::option::of(adversarial_text()),
        ),
        (
            any::<bool>(),
            2u8..=6,
            bytes32(),
            millis(),
            millis(),
            prop::option::of(browser_binding()),
        ),
    )
        .prop_map(
            |(
                (request_id, account_id, kind, upn, server_name, app_name, location, device_name),
                (number_matching, number_length, nonce, created_at, expires_at, browser),
            )| RequestDetails {
                v: 1,
                request_id,
                account_id,
                kind,
                upn,
                server_name,
                app_name,
                location,
                device_name,
                number_matching,
                number_length,
                nonce: b64(&nonce),
                created_at,
                expires_at,
                browser,
            },
        )
        .boxed()
}

/// A valid binding (the details must verify): any challenge, an https origin with any host
/// label and port.
fn browser_binding() -> BoxedStrategy<BrowserBinding> {
    (
        any::<[u8; 16]>(),
        "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        prop::option::of(1u16..),
    )
        .prop_map(|(challenge, host, port)| BrowserBinding {
            challenge: b64(&challenge),
            origin: match port {
                Some(port) if port != 443 => format!("https://{host}.test:{port}"),
                _ => format!("https://{host}.test"),
            },
        })
        .boxed()
}

fn sign_in_response() -> BoxedStrategy<SignInResponse> {
    (
        request_id(),
        account_id(),
        bytes32(),
        prop::sample::select(Decision::ALL.to_vec()),
        typed_number(),
        bytes32(),
        millis(),
        prop::option::of(adversarial_text()),
    )
        .prop_map(
            |(
                request_id,
                account_id,
                nonce,
                decision,
                typed_number,
                context_sha256,
                timestamp,
                browser_origin,
            )| {
                SignInResponse {
                    request_id,
                    account_id,
                    nonce,
                    decision,
                    typed_number,
                    context_sha256,
                    timestamp,
                    browser_origin,
                }
            },
        )
        .boxed()
}

fn device_auth_input() -> BoxedStrategy<DeviceAuthInput> {
    (
        prop_oneof![
            Just("GET".to_owned()),
            Just("POST".to_owned()),
            adversarial_text()
        ],
        prop_oneof![
            Just("/api/v1/device/poll?wait=5".to_owned()),
            adversarial_text()
        ],
        account_id(),
        millis(),
    )
        .prop_map(
            |(method, path_and_query, account_id, timestamp)| DeviceAuthInput {
                method,
                path_and_query,
                account_id,
                timestamp,
            },
        )
        .boxed()
}

/// Pairs worth comparing: equal, differing in exactly one field, differing in a random subset of
/// fields, or holding the same concatenation of adjacent text fields cut at other places.
fn pairs<T: Message + 'static>(values: BoxedStrategy<T>) -> BoxedStrategy<(T, T)> {
    let n = u32::try_from(T::FIELDS.len()).unwrap();
    let all = (1u32 << n) - 1;
    let keep = prop_oneof![
        1 => Just(all),
        3 => (0..n).prop_map(move |i| all & !(1 << i)),
        2 => any::<u32>(),
    ];
    let mixed = (values.clone(), values.clone(), keep).prop_map(|(a, b, keep)| {
        let b = T::mix(&a, &b, keep);
        (a, b)
    });
    let shifted = (values, prop::collection::vec(any::<Index>(), 2)).prop_map(|(a, cuts)| {
        let b = resplit(&a, &cuts);
        (a, b)
    });
    prop_oneof![3 => mixed, 2 => shifted].boxed()
}

/// `a` with its adjacent text fields re-cut: same concatenation, other boundaries.
fn resplit<T: Message>(a: &T, cuts: &[Index]) -> T {
    let mut b = a.clone();
    let texts = b.adjacent_texts();
    if texts.len() < 2 {
        return b;
    }
    let joined: String = texts.iter().map(|s| s.as_str()).collect();
    let bounds: Vec<usize> = joined
        .char_indices()
        .map(|(i, _)| i)
        .chain([joined.len()])
        .collect();
    let mut at: Vec<usize> = cuts[..texts.len() - 1]
        .iter()
        .map(|ix| bounds[ix.index(bounds.len())])
        .collect();
    at.push(joined.len());
    at.sort_unstable();
    let mut start = 0;
    for (t, end) in texts.into_iter().zip(at) {
        *t = joined[start..end].to_owned();
        start = end;
    }
    b
}

// ---------------------------------------------------------------------------------------------
// The checks, shared by every message type.

/// The crate's bytes decode to exactly the §2 field list.
fn check_round_trip<T: Message>(value: &T) -> Result<(), TestCaseError> {
    let bytes = value.canonical();
    let decoded = decode_frames(&bytes);
    prop_assert_eq!(decoded, Ok(value.spec_fields()));
    Ok(())
}

/// Same bytes exactly when the values are equal.
fn check_injective<T: Message>(a: &T, b: &T) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        a == b,
        a.canonical() == b.canonical(),
        "a = {:?}\nb = {:?}",
        a,
        b
    );
    Ok(())
}

/// A signature over `a` by `signer` verifies for `a` only: not under `other`, and not for `a`
/// with any one field changed.
fn check_binding<T: Message>(
    a: &T,
    b: &T,
    signer: &EcdsaSigner,
    other: &PublicKey,
) -> Result<(), TestCaseError> {
    let key = signer.public_key();
    let sig = signer.sign(&a.canonical());
    prop_assert_eq!(key.verify(&a.canonical(), &sig), Ok(()));
    prop_assert_eq!(
        other.verify(&a.canonical(), &sig),
        Err(ProtocolError::BadSignature)
    );
    for (i, name) in T::FIELDS.iter().enumerate() {
        let changed = a.with_changed(i, b);
        prop_assert_ne!(&changed, a, "{} was not changed", name);
        prop_assert_eq!(
            key.verify(&changed.canonical(), &sig),
            Err(ProtocolError::BadSignature),
            "the signature still verifies with {} changed",
            name
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1 and 2: framing, round trip and injectivity (no signing: many cases).

/// Field lists over a tiny alphabet, so that different lists often share a concatenation.
fn small_fields() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop::collection::vec(prop::sample::select(vec![0u8, 1, 4, b'a']), 0..4),
        0..5,
    )
}

fn any_fields() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::collection::vec(any::<u8>(), 0..40),
            1 => prop::collection::vec(any::<u8>(), 250..300),
            1 => (65_530usize..65_545).prop_map(|n| vec![0u8; n]),
        ],
        0..8,
    )
}

proptest! {
    #[test]
    fn any_field_list_decodes_back_from_its_canonical_bytes(
        tag in prop::collection::vec(any::<u8>(), 0..40),
        fields in any_fields(),
    ) {
        let bytes = encode_frames(&tag, &fields);
        let mut expected = vec![tag.clone()];
        expected.extend(fields.iter().cloned());
        let total: usize = expected.iter().map(|f| 4 + f.len()).sum();
        prop_assert_eq!(bytes.len(), total);
        prop_assert_eq!(decode_frames(&bytes), Ok(expected));
    }

    #[test]
    fn str_and_u64_frames_are_the_utf8_bytes_and_eight_big_endian_bytes(
        s in adversarial_text(),
        n in any::<u64>(),
    ) {
        prop_assert_eq!(
            Canonical::new(b"t").str(&s).u64(n).finish(),
            Canonical::new(b"t").field(s.as_bytes()).field(&n.to_be_bytes()).finish()
        );
        prop_assert_eq!(
            decode_frames(&Canonical::new(b"t").str(&s).u64(n).finish()),
            Ok(vec![b"t".to_vec(), s.into_bytes(), n.to_be_bytes().to_vec()])
        );
    }

    #[test]
    fn distinct_field_lists_never_encode_to_the_same_bytes(
        tag_a in small_fields(), a in small_fields(),
        tag_b in small_fields(), b in small_fields(),
    ) {
        let (tag_a, tag_b) = (tag_a.concat(), tag_b.concat());
        prop_assert_eq!(
            (&tag_a, &a) == (&tag_b, &b),
            encode_frames(&tag_a, &a) == encode_frames(&tag_b, &b)
        );
    }

    #[test]
    fn moving_bytes_between_fields_always_changes_the_encoding(
        fields in small_fields(),
        cuts_a in prop::collection::vec(any::<Index>(), 4),
        cuts_b in prop::collection::vec(any::<Index>(), 4),
    ) {
        // Two ways of cutting one byte string into five fields.
        let joined = fields.concat();
        let cut = |cuts: &[Index]| {
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(joined.len() + 1)).collect();
            at.sort_unstable();
            let mut out = Vec::new();
            let mut start = 0;
            for end in at.into_iter().chain([joined.len()]) {
                out.push(joined[start..end].to_vec());
                start = end;
            }
            out
        };
        let (a, b) = (cut(&cuts_a), cut(&cuts_b));
        prop_assert_eq!(a == b, encode_frames(b"t", &a) == encode_frames(b"t", &b));
    }

    #[test]
    fn canonical_bytes_are_self_delimiting(
        a in any_fields(),
        b in any_fields(),
        cut in any::<Index>(),
    ) {
        // Messages laid end to end decode to both field lists, in order...
        let joined = [encode_frames(b"a", &a), encode_frames(b"b", &b)].concat();
        let mut expected = vec![b"a".to_vec()];
        expected.extend(a.iter().cloned());
        expected.push(b"b".to_vec());
        expected.extend(b.iter().cloned());
        prop_assert_eq!(decode_frames(&joined), Ok(expected));
        // ...and no strict prefix of a message decodes to as many fields as the message.
        let bytes = encode_frames(b"a", &a);
        let prefix = &bytes[..cut.index(bytes.len())];
        if let Ok(fields) = decode_frames(prefix) {
            prop_assert!(fields.len() < a.len() + 1);
        }
    }

    #[test]
    fn enroll_challenge_bytes_decode_to_the_section_2_field_list(v in coded_challenge()) {
        check_round_trip(&v)?;
    }

    #[test]
    fn enroll_proof_bytes_decode_to_the_section_2_field_list(v in enroll_proof()) {
        check_round_trip(&v)?;
    }

    #[test]
    fn passwordless_key_bytes_decode_to_the_section_2_field_list(
        v in passwordless_key_registration(),
    ) {
        check_round_trip(&v)?;
    }

    #[test]
    fn request_details_bytes_decode_to_the_section_2_field_list(v in request_details()) {
        check_round_trip(&v)?;
    }

    #[test]
    fn request_details_bytes_frame_any_details_text_exactly(t in adversarial_text()) {
        prop_assert_eq!(
            decode_frames(&request_details_signed_bytes(&t)),
            Ok(vec![REQUEST_DETAILS_TAG.to_vec(), t.into_bytes()])
        );
    }

    #[test]
    fn response_bytes_decode_to_the_section_2_field_list(v in sign_in_response()) {
        check_round_trip(&v)?;
    }

    #[test]
    fn device_auth_bytes_decode_to_the_section_2_field_list(v in device_auth_input()) {
        check_round_trip(&v)?;
    }

    #[test]
    fn distinct_enroll_challenges_have_distinct_bytes(
        (a, b) in pairs(coded_challenge()),
    ) {
        check_injective(&a, &b)?;
    }

    #[test]
    fn distinct_enroll_proofs_have_distinct_bytes((a, b) in pairs(enroll_proof())) {
        check_injective(&a, &b)?;
    }

    #[test]
    fn distinct_passwordless_key_registrations_have_distinct_bytes(
        (a, b) in pairs(passwordless_key_registration()),
    ) {
        check_injective(&a, &b)?;
    }

    #[test]
    fn distinct_request_details_have_distinct_bytes((a, b) in pairs(request_details())) {
        check_injective(&a, &b)?;
    }

    #[test]
    fn distinct_details_texts_have_distinct_bytes(
        a in adversarial_text(),
        b in adversarial_text(),
    ) {
        prop_assert_eq!(
            a == b,
            request_details_signed_bytes(&a) == request_details_signed_bytes(&b)
        );
    }

    #[test]
    fn distinct_responses_have_distinct_bytes((a, b) in pairs(sign_in_response())) {
        check_injective(&a, &b)?;
    }

    #[test]
    fn distinct_device_auth_inputs_have_distinct_bytes((a, b) in pairs(device_auth_input())) {
        check_injective(&a, &b)?;
    }

    #[test]
    fn messages_of_different_types_never_share_bytes(
        challenge in coded_challenge(),
        proof in enroll_proof(),
        registration in passwordless_key_registration(),
        details in request_details(),
        response in sign_in_response(),
        device_auth in device_auth_input(),
    ) {
        let all = [
            challenge.canonical(),
            proof.canonical(),
            registration.canonical(),
            details.canonical(),
            response.canonical(),
            device_auth.canonical(),
        ];
        let tags = [
            ENROLL_CHALLENGE_TAG,
            ENROLL_TAG,
            PASSWORDLESS_KEY_TAG,
            REQUEST_DETAILS_TAG,
            if response.browser_origin.is_some() { BOUND_RESPONSE_TAG } else { RESPONSE_TAG },
            DEVICE_AUTH_TAG,
        ];
        for (i, bytes) in all.iter().enumerate() {
            prop_assert_eq!(&decode_frames(bytes).unwrap()[0], tags[i]);
            for other in &all[i + 1..] {
                prop_assert_ne!(bytes, other);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1 and 3 with signatures: decoders the crate has, and binding (ECDSA: fewer cases).

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn signed_details_verify_back_to_the_same_details_and_hash_the_sent_text(
        details in request_details(),
        (s, o) in signer_pair(),
    ) {
        let signed = SignedRequestDetails::sign(&details, &signers()[s]);
        prop_assert_eq!(&signed.details, &json(&details));
        // Validly signed details come back whole, unless a name fails the one gate for names
        // (issue 20, finding 5): then they are refused with that field, never shown.
        prop_assert_eq!(
            signed.verify(&pool_keys()[s]),
            details.check_text().map(|()| details.clone())
        );
        prop_assert_eq!(signed.context_sha256().to_vec(), sha256(signed.details.as_bytes()));
        prop_assert_eq!(signed.verify(&pool_keys()[o]), Err(ProtocolError::BadSignature));
    }

    #[test]
    fn device_auth_header_parses_back_to_the_same_auth(
        v in device_auth_input(),
        s in 0..POOL,
    ) {
        let auth = DeviceAuth {
            account_id: v.account_id.clone(),
            timestamp: v.timestamp,
            signature: signers()[s].sign(&v.canonical()),
        };
        prop_assert_eq!(DeviceAuth::parse_header(&auth.to_header()), Ok(auth));
    }

    #[test]
    fn changing_any_enroll_challenge_field_or_the_code_breaks_the_server_signature(
        (a, b) in (coded_challenge(), coded_challenge()),
        (s, o) in signer_pair(),
    ) {
        check_binding(&a, &b, &signers()[s], &pool_keys()[o])?;
    }

    #[test]
    fn changing_any_enroll_proof_field_breaks_the_device_signature(
        (a, b) in (enroll_proof(), enroll_proof()),
        (s, o) in signer_pair(),
    ) {
        // As enrolled: the proof carries the key that signs it.
        let a = EnrollProof { device_public_key: pool_keys()[s].clone(), ..a };
        check_binding(&a, &b, &signers()[s], &pool_keys()[o])?;
    }

    #[test]
    fn changing_any_passwordless_key_field_breaks_both_signatures(
        (a, b) in (passwordless_key_registration(), passwordless_key_registration()),
        (device, other) in signer_pair(),
        new in 0..POOL,
    ) {
        // Signed by the device key and by the new passwordless key itself.
        let a = PasswordlessKeyRegistration {
            passwordless_public_key: pool_keys()[new].clone(),
            ..a
        };
        check_binding(&a, &b, &signers()[device], &pool_keys()[other])?;
        let not_new = pool_keys()[(new + 1) % POOL].clone();
        check_binding(&a, &b, &signers()[new], &not_new)?;
    }

    #[test]
    fn changing_any_request_details_field_breaks_the_server_signature(
        (a, b) in (request_details(), request_details()),
        (s, o) in signer_pair(),
    ) {
        let signed = SignedRequestDetails::sign(&a, &signers()[s]);
        prop_assert_eq!(signed.verify(&pool_keys()[s]), a.check_text().map(|()| a.clone()));
        prop_assert_eq!(signed.verify(&pool_keys()[o]), Err(ProtocolError::BadSignature));
        for (i, name) in RequestDetails::FIELDS.iter().enumerate() {
            let changed = a.with_changed(i, &b);
            prop_assert_ne!(&changed, &a, "{} was not changed", name);
            let forged = SignedRequestDetails {
                details: json(&changed),
                signature: signed.signature.clone(),
            };
            prop_assert_eq!(
                forged.verify(&pool_keys()[s]),
                Err(ProtocolError::BadSignature),
                "the signature still verifies with {} changed",
                name
            );
        }
    }

    #[test]
    fn any_edit_of_the_details_text_breaks_the_server_signature(
        details in request_details(),
        s in 0..POOL,
        at in any::<Index>(),
        inserted in prop_oneof![Just(' '), Just('\n'), any::<char>()],
    ) {
        let signed = SignedRequestDetails::sign(&details, &signers()[s]);
        // Whitespace around the JSON still parses to the same details: the signature covers
        // the text, so it must not verify either.
        let padded = SignedRequestDetails {
            details: format!(" {}", signed.details),
            signature: signed.signature.clone(),
        };
        prop_assert_eq!(
            serde_json::from_str::<RequestDetails>(&padded.details).ok(),
            Some(details)
        );
        prop_assert_eq!(padded.verify(&pool_keys()[s]), Err(ProtocolError::BadSignature));
        // One character inserted anywhere.
        let bounds: Vec<usize> = signed
            .details
            .char_indices()
            .map(|(i, _)| i)
            .chain([signed.details.len()])
            .collect();
        let mut edited = signed.details.clone();
        edited.insert(bounds[at.index(bounds.len())], inserted);
        let forged = SignedRequestDetails {
            details: edited,
            signature: signed.signature.clone(),
        };
        prop_assert_eq!(forged.verify(&pool_keys()[s]), Err(ProtocolError::BadSignature));
    }

    #[test]
    fn changing_any_response_field_breaks_the_phone_signature(
        (a, b) in (sign_in_response(), sign_in_response()),
        (s, o) in signer_pair(),
    ) {
        check_binding(&a, &b, &signers()[s], &pool_keys()[o])?;
    }

    #[test]
    fn changing_any_device_auth_field_breaks_the_device_signature(
        (a, b) in (device_auth_input(), device_auth_input()),
        (s, o) in signer_pair(),
    ) {
        check_binding(&a, &b, &signers()[s], &pool_keys()[o])?;
    }
}
