//! TOTP accounts through the public API (issue 11, offline fallback): the secret an
//! enrollment brings, `otpauth://` imports, codes per RFC 6238, removal, secrets sealed at rest
//! by the `SecretStore`, and typed errors.
use std::sync::Arc;

use authenticator_core::testing::{
    AlwaysVerified, FakeNetwork, FakeServer, MemoryKeyStore, FAKE_TOTP_SECRET,
};
use authenticator_core::{
    Authenticator, AuthenticatorError, PlatformError, PushKind, PushRegistration, SecretStore,
    SoftwareKeyStore, WrappingKeySource,
};
use totp_rs::{Algorithm, TOTP};

/// `JBSWY3DPEHPK3PXP…`: 160 bits, base32.
const SECRET_B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn longpoll() -> PushRegistration {
    PushRegistration {
        kind: PushKind::LongPoll,
        token: String::new(),
    }
}

struct Phone {
    auth: Arc<Authenticator>,
    dir: tempfile::TempDir,
}

fn phone(server: &Arc<FakeServer>, secrets: Option<Arc<dyn SecretStore>>) -> Phone {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(MemoryKeyStore::with_verifier(Arc::new(AlwaysVerified)));
    let network = FakeNetwork::new(std::slice::from_ref(server));
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let auth = match secrets {
        Some(s) => Authenticator::with_secret_store_and_transport(data, keys, s, network),
        None => Authenticator::with_transport(data, keys, network),
    }
    .unwrap();
    Phone { auth, dir }
}

fn software_secrets(dir: &std::path::Path) -> Arc<dyn SecretStore> {
    Arc::new(
        SoftwareKeyStore::open(
            dir.join("secrets"),
            WrappingKeySource::Memory,
            Arc::new(AlwaysVerified),
        )
        .unwrap(),
    )
}

/// The code a correct RFC 6238 implementation shows at `secs` (one of the accepted ones when
/// the step changes between the phone's clock read and ours).
fn expected(secret: &[u8], alg: Algorithm, digits: usize, period: u64, secs: u64) -> [String; 2] {
    let t = TOTP::new_unchecked(alg, digits, 0, period, secret.to_vec(), None, String::new());
    [t.generate(secs), t.generate(secs + period)]
}

/// Every file under `dir`, as bytes.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn an_enrollment_brings_its_offline_fallback_totp_which_goes_with_the_account() {
    let server = FakeServer::new("contoso", "http://127.0.0.1:7001/contoso/");
    let tmp = tempfile::tempdir().unwrap();
    let p = phone(&server, Some(software_secrets(tmp.path())));
    let account = p
        .auth
        .enroll(
            server.enrollment_url("bobby@contoso.test", "Bobby"),
            "Pixel".into(),
            longpoll(),
        )
        .await
        .unwrap();
    let totps = p.auth.totp_accounts().await.unwrap();
    assert_eq!(totps.len(), 1, "{totps:?}");
    let t = &totps[0];
    assert_eq!(t.account_id.as_deref(), Some(account.account_id.as_str()));
    assert_eq!(
        (t.issuer.as_str(), t.account_name.as_str()),
        ("Fake Server", account.account_id.as_str())
    );
    assert_eq!((t.algorithm.as_str(), t.digits, t.period), ("SHA1", 6, 30));
    let before = now();
    let code = p.auth.totp_code(t.totp_id.clone()).await.unwrap();
    assert!(
        expected(FAKE_TOTP_SECRET, Algorithm::SHA1, 6, 30, before).contains(&code.code),
        "{}",
        code.code
    );
    assert!((1..=30).contains(&code.seconds_remaining));
    assert_eq!(code.period, 30);
    // The secret is nowhere in the phone's files in the clear.
    let files = all_bytes(p.dir.path());
    assert!(!files.windows(20).any(|w| w == FAKE_TOTP_SECRET));

    p.auth.remove_account(account.account_id).await.unwrap();
    assert!(p.auth.totp_accounts().await.unwrap().is_empty());
    assert_eq!(
        p.auth.totp_code(t.totp_id.clone()).await.unwrap_err(),
        AuthenticatorError::UnknownTotpAccount
    );
}

#[tokio::test]
async fn imported_otpauth_accounts_show_rfc_6238_codes_until_removed() {
    let server = FakeServer::new("contoso", "http://127.0.0.1:7002/contoso/");
    let tmp = tempfile::tempdir().unwrap();
    let p = phone(&server, Some(software_secrets(tmp.path())));
    let github = p
        .auth
        .add_totp_account(format!(
            "otpauth://totp/GitHub:bobby?secret={SECRET_B32}&issuer=GitHub"
        ))
        .await
        .unwrap();
    let bank = p
        .auth
        .add_totp_account(format!(
            "otpauth://totp/Bank:b%40x.test?secret={SECRET_B32}&issuer=Bank&algorithm=SHA256&digits=8&period=60"
        ))
        .await
        .unwrap();
    assert_eq!(
        (github.issuer.as_str(), github.account_name.as_str()),
        ("GitHub", "bobby")
    );
    assert_eq!(github.account_id, None);
    assert_eq!(
        (bank.algorithm.as_str(), bank.digits, bank.period),
        ("SHA256", 8, 60)
    );
    assert_eq!(bank.account_name, "b@x.test");
    // Both (added within one millisecond, their order is not defined: compared as a set).
    let mut listed = p.auth.totp_accounts().await.unwrap();
    listed.sort_by(|a, b| a.totp_id.cmp(&b.totp_id));
    let mut expected_list = vec![github.clone(), bank.clone()];
    expected_list.sort_by(|a, b| a.totp_id.cmp(&b.totp_id));
    assert_eq!(listed, expected_list);

    let secret = totp_rs::Secret::Encoded(SECRET_B32.into())
        .to_bytes()
        .unwrap();
    let t = now();
    let code = p.auth.totp_code(github.totp_id.clone()).await.unwrap();
    assert!(expected(&secret, Algorithm::SHA1, 6, 30, t).contains(&code.code));
    let code = p.auth.totp_code(bank.totp_id.clone()).await.unwrap();
    assert_eq!(code.code.len(), 8);
    assert!(expected(&secret, Algorithm::SHA256, 8, 60, t).contains(&code.code));
    assert!((1..=60).contains(&code.seconds_remaining));

    p.auth
        .remove_totp_account(github.totp_id.clone())
        .await
        .unwrap();
    assert_eq!(p.auth.totp_accounts().await.unwrap(), vec![bank]);
    assert_eq!(
        p.auth
            .remove_totp_account(github.totp_id)
            .await
            .unwrap_err(),
        AuthenticatorError::UnknownTotpAccount
    );
    assert!(!all_bytes(p.dir.path())
        .windows(20)
        .any(|w| w == secret.as_slice()));
}

#[tokio::test]
async fn bad_uris_and_missing_or_failing_secret_stores_are_typed_errors() {
    let server = FakeServer::new("contoso", "http://127.0.0.1:7003/contoso/");
    let tmp = tempfile::tempdir().unwrap();
    let p = phone(&server, Some(software_secrets(tmp.path())));
    for uri in [
        "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=0".to_owned(),
        "otpauth://totp/x".to_owned(),
        format!("otpauth://totp/x?secret={SECRET_B32}&digits=12"),
        String::new(),
    ] {
        match p.auth.add_totp_account(uri.clone()).await {
            Err(AuthenticatorError::InvalidTotpUri { reason }) => {
                assert!(!reason.contains("JBSWY3DP"), "{reason}")
            }
            other => panic!("{uri}: {other:?}"),
        }
    }
    assert!(p.auth.totp_accounts().await.unwrap().is_empty());
    assert_eq!(
        p.auth.totp_code("psi.nope.totp".into()).await.unwrap_err(),
        AuthenticatorError::UnknownTotpAccount
    );

    // No secret store: nothing can be kept, and an enrollment still succeeds (without TOTP).
    let bare = phone(&server, None);
    assert_eq!(
        bare.auth
            .add_totp_account(format!("otpauth://totp/x?secret={SECRET_B32}"))
            .await
            .unwrap_err(),
        AuthenticatorError::SecretStoreUnavailable
    );
    bare.auth
        .enroll(
            server.enrollment_url("carol@contoso.test", "Carol"),
            "Pixel".into(),
            longpoll(),
        )
        .await
        .unwrap();
    assert!(bare.auth.totp_accounts().await.unwrap().is_empty());

    // A secret store that fails: a key-store error, nothing stored.
    struct Failing;
    #[async_trait::async_trait]
    impl SecretStore for Failing {
        async fn seal(&self, _: String, _: Vec<u8>) -> Result<Vec<u8>, PlatformError> {
            Err(PlatformError::NotAvailable)
        }
        async fn unseal(&self, _: String, _: Vec<u8>) -> Result<Vec<u8>, PlatformError> {
            Err(PlatformError::NotAvailable)
        }
    }
    let failing = phone(&server, Some(Arc::new(Failing)));
    let e = failing
        .auth
        .add_totp_account(format!("otpauth://totp/x?secret={SECRET_B32}"))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthenticatorError::KeyStore { .. }), "{e:?}");
    assert!(failing.auth.totp_accounts().await.unwrap().is_empty());
}

/// Hostile `otpauth://` input: every call returns an account or a typed `InvalidTotpUri`
/// (never a panic, never another error), accepted labels are plain text, and the store still
/// answers afterwards.
#[tokio::test]
async fn hostile_totp_uris_are_accepted_or_typed_errors_never_panics() {
    let server = FakeServer::new("contoso", "http://127.0.0.1:7004/contoso/");
    let tmp = tempfile::tempdir().unwrap();
    let p = phone(&server, Some(software_secrets(tmp.path())));
    let s = SECRET_B32;
    let mut hostile: Vec<String> = vec![
        String::new(),
        " ".into(),
        "\0".into(),
        "otpauth://".into(),
        "otpauth://totp".into(),
        "otpauth://totp/".into(),
        format!("otpauth://totp/?secret={s}"),
        format!("OTPAUTH://TOTP/X?secret={s}"),
        format!("otpauth://totp/x?secret={}", s.to_lowercase()),
        format!("otpauth://totp/x?secret={s}===="),
        format!("otpauth://totp/x?secret={s}&secret=AAAA"),
        format!("otpauth://totp/x?secret={s}&digits=-1"),
        format!("otpauth://totp/x?secret={s}&digits=99999999999999999999999"),
        format!("otpauth://totp/x?secret={s}&period=99999999999999999999999"),
        format!("otpauth://totp/x?secret={s}&algorithm=MD5"),
        format!("otpauth://totp/A:x?secret={s}&issuer=B"),
        format!("otpauth://totp/%FF%FE?secret={s}"),
        format!("otpauth://totp/a%00b?secret={s}"),
        format!("otpauth://totp/%E2%80%AEevil?secret={s}"),
        format!("otpauth://totp/x?secret={s}&issuer=%0D%0AInjected"),
        format!("otpauth://totp/{}?secret={s}", "é".repeat(200)),
        format!("otpauth://totp/x?secret={}", "A".repeat(3000)),
        format!("otpauth://totp/x?secret={s}#fragment"),
        format!("otpauth://totp/x@evil.example:443/..%2F..%2Fetc?secret={s}"),
        format!("otpauth://steam/x?secret={s}"),
        "javascript:alert(1)".into(),
        "otpauth://totp/x?secret=💥".into(),
        "x".repeat(1 << 20),
    ];
    hostile.push(format!(
        "otpauth://totp/x?secret={s}&{}",
        "p=1&".repeat(2000)
    ));
    let mut accepted = 0;
    for uri in &hostile {
        match p.auth.add_totp_account(uri.clone()).await {
            Ok(t) => {
                accepted += 1;
                for text in [&t.issuer, &t.account_name] {
                    assert!(
                        !text
                            .chars()
                            .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
                        "{uri:.80}: {text:?}"
                    );
                }
                let code = p.auth.totp_code(t.totp_id.clone()).await.unwrap();
                assert!(code.code.bytes().all(|b| b.is_ascii_digit()));
            }
            Err(AuthenticatorError::InvalidTotpUri { reason }) => {
                assert!(!reason.contains(s), "{reason}");
            }
            Err(other) => panic!("{uri:.80}: {other:?}"),
        }
    }
    assert_eq!(p.auth.totp_accounts().await.unwrap().len(), accepted);
    for id in [
        "",
        "\0",
        "../../etc/passwd",
        "' OR 1=1 --",
        &"x".repeat(100_000),
    ] {
        assert_eq!(
            p.auth.totp_code(id.to_owned()).await.unwrap_err(),
            AuthenticatorError::UnknownTotpAccount
        );
        assert_eq!(
            p.auth.remove_totp_account(id.to_owned()).await.unwrap_err(),
            AuthenticatorError::UnknownTotpAccount
        );
    }
}
