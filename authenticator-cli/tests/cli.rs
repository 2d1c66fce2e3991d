//! The `authenticator` binary against a real sign-in server on a loopback port: the commands a
//! person or a script types, their output and exit codes.
mod support;

use std::process::Command;

use serde_json::Value;
use support::{json_out, setup, BIN, UPN};

#[tokio::test(flavor = "multi_thread")]
async fn enroll_enable_pending_and_approve_from_the_command_line() {
    let s = setup().await;
    let link = s.link().await;
    let account = json_out(&s.phone(&["enroll", &link]).await);
    assert_eq!(account["upn"], UPN);
    assert_eq!(account["phone_sign_in_enabled"], false);
    let id = account["account_id"].as_str().unwrap().to_owned();

    // The account can be named by UPN.
    let enabled = json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);
    assert_eq!(enabled["phone_sign_in_enabled"], true);
    let accounts = json_out(&s.phone(&["accounts"]).await);
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    assert_eq!(accounts[0]["account_id"], id.as_str());

    let started = s.start_sign_in().await;
    let number = started["number"].as_str().unwrap().to_owned();
    let page = started["id"].as_str().unwrap().to_owned();

    let pending_out = s.phone(&["pending", "--wait", "10"]).await;
    let pending = json_out(&pending_out);
    assert_eq!(pending.as_array().unwrap().len(), 1);
    let request = pending[0]["request_id"].as_str().unwrap().to_owned();
    assert_eq!(pending[0]["app_name"], "My Apps");
    assert_eq!(pending[0]["location"], "Unknown location");
    // The phone never learns or prints the number.
    assert!(pending[0].get("number").is_none());

    let wrong = format!("{:02}", (number.parse::<u32>().unwrap() + 1) % 100);
    let out = s.phone(&["approve", &request, "--number", &wrong]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "wrong number exits 3; stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"], "wrong_number");
    assert_eq!(err["attempts_left"], 2);
    assert_eq!(s.status(&page).await, "pending");

    let out = s.phone(&["approve", &request, "--number", "4"]).await;
    assert!(!out.status.success(), "a malformed number is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("as many digits as the sign-in screen shows"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let approved = json_out(&s.phone(&["approve", &request, "--number", &number]).await);
    assert_eq!(approved["status"], "approved");
    assert_eq!(s.status(&page).await, "approved");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_passcode_does_not_approve() {
    let s = setup().await;
    let link = s.link().await;
    json_out(&s.phone(&["enroll", &link]).await);
    json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);
    let started = s.start_sign_in().await;
    let number = started["number"].as_str().unwrap().to_owned();
    let pending = json_out(&s.phone(&["pending", "--wait", "10"]).await);
    let request = pending[0]["request_id"].as_str().unwrap().to_owned();

    let mut cmd = Command::new(BIN);
    cmd.arg("--home")
        .arg(s.home.path())
        .args(["approve", &request, "--number", &number])
        .env("AUTHENTICATOR_PASSCODE", "not-the-passcode");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(s.status(started["id"].as_str().unwrap()).await, "pending");
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_and_report_from_the_command_line() {
    let s = setup().await;
    json_out(&s.phone(&["enroll", &s.link().await]).await);
    json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);
    for (command, status) in [("deny", "denied"), ("report", "reported")] {
        let started = s.start_sign_in().await;
        // Without `pending` first: the phone fetches what it missed.
        let pending = json_out(&s.phone(&["pending"]).await);
        let request = pending[0]["request_id"].as_str().unwrap().to_owned();
        let out = json_out(&s.phone(&[command, &request]).await);
        assert_eq!(out["status"], status);
        assert_eq!(s.status(started["id"].as_str().unwrap()).await, status);
    }
}

#[test]
fn malformed_registration_links_are_refused_with_a_clear_message() {
    let home = tempfile::tempdir().unwrap();
    for link in [
        "",
        "https://example.com",
        "phonesignin://enroll?v=1",
        "phonesignin://enroll?v=9&server=x&code=y&fp=z",
    ] {
        let out = Command::new(BIN)
            .arg("--home")
            .arg(home.path())
            .args(["enroll", link])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{link}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error:") && !err.contains("panicked"),
            "{link}: {err}"
        );
    }
}

#[test]
fn the_demo_runs_the_whole_ceremony_by_itself() {
    let out = Command::new(BIN).args(["demo", "--auto"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("phonesignin://enroll?v=1"),
        "prints the registration link"
    );
    assert!(
        text.contains("That number doesn't match"),
        "shows the wrong-number refusal"
    );
    assert!(text.contains("Signed in as Bobby Smith"), "ends signed in");
    // The phone shows where the sign-in comes from: the demo's browser address, located by
    // the demo's GeoIP database (issue 23, finding 5).
    assert!(
        text.contains("   Location: Seattle, United States\n"),
        "{text}"
    );
    // The demo's phone keeps the enrollment's TOTP secret: no warning in the transcript.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("WARN"), "{stderr}");

    // The sample application signs in through OpenID Connect: the phone names the
    // registered client, and the app validated the ID token and read userinfo.
    let oidc = text
        .split_once("Admin registers Contoso Notes")
        .map(|(_, rest)| rest)
        .expect("the OpenID Connect section runs");
    assert!(oidc.contains("   App: Contoso Notes\n"), "{oidc}");
    assert!(
        oidc.contains("The phone shows Contoso Notes, the name the admin registered"),
        "{oidc}"
    );
    assert!(
        oidc.contains("✔ ID token valid: signature (RS256, against the JWKS), issuer, audience, expiry, nonce, at_hash"),
        "{oidc}"
    );
    assert!(
        oidc.contains("✔ Contoso Notes signed in Bobby Smith <bobby@contoso.test>:"),
        "{oidc}"
    );
    let claim = |name: &str| {
        oidc.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} line: {oidc}"))
    };
    let sub = claim("sub");
    assert!(
        sub.len() >= 22
            && sub
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "sub is opaque, never the user name: {sub:?}"
    );
    assert_eq!(claim("amr"), "mfa, swk, user");
    assert_eq!(claim("acr"), "urn:phonesignin:acr:mfa");
    assert!(claim("auth_time").starts_with("20"), "{oidc}");
    // Never a token, an authorization code or the client secret (the registration link,
    // earlier, is meant to be shown: it is the QR code's text).
    for secret in ["eyJ", "code=", "client_secret:", "access_token"] {
        assert!(!oidc.contains(secret), "prints {secret:?}: {oidc}");
    }
}

/// The offline fallback from the command line (issue 11): the enrollment's TOTP secret shows a
/// code that signs in on the server's fallback, once; an `otpauth://` import shows RFC 6238
/// codes; `totp list` / `totp remove`.
#[tokio::test(flavor = "multi_thread")]
async fn totp_add_list_code_and_remove_from_the_command_line() {
    use signin_domain::accounts::fallback::{self, Method, Outcome};
    use signin_domain::accounts::totp::Totp;

    let s = setup().await;
    let link = s.link().await;
    let account = json_out(&s.phone(&["enroll", &link]).await);
    let id = account["account_id"].as_str().unwrap().to_owned();
    let list = json_out(&s.phone(&["totp", "list"]).await);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["account_id"], id.as_str());
    assert_eq!(list[0]["account_name"], UPN);

    // The code of the enrollment's secret, named by UPN, signs in on the server once.
    let code = json_out(&s.phone(&["code", UPN]).await);
    let text = code["code"].as_str().unwrap().to_owned();
    assert_eq!(text.len(), 6);
    let left = code["seconds_remaining"].as_u64().unwrap();
    assert!((1..=30).contains(&left), "{code}");
    let pool = s.server.pool();
    fallback::set_enabled(pool, true).await.unwrap();
    assert_eq!(
        fallback::sign_in_with_code(pool, &s.server.state().passwords, UPN, &text, None)
            .await
            .unwrap(),
        Outcome::SignedIn {
            method: Method::Totp,
            device: Some(id.clone()),
        }
    );
    assert_eq!(
        fallback::sign_in_with_code(pool, &s.server.state().passwords, UPN, &text, None)
            .await
            .unwrap(),
        Outcome::Replayed
    );
    // Without --json only the code is on stdout.
    let mut cmd = Command::new(BIN);
    cmd.arg("--home")
        .arg(s.home.path())
        .args(["code", &id])
        .env("AUTHENTICATOR_PASSCODE", "2468-pass");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        printed.len() == 6 && printed.bytes().all(|b| b.is_ascii_digit()),
        "{printed}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid for"));

    // An import: "12345678901234567890" in base32, SHA1, 6 digits, 30 s.
    let uri = "otpauth://totp/GitHub:bobby?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=GitHub";
    let added = json_out(&s.phone(&["totp", "add", uri]).await);
    assert_eq!(added["issuer"], "GitHub");
    assert_eq!(added["account_id"], Value::Null);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = json_out(&s.phone(&["code", "GitHub:bobby"]).await);
    let reference = Totp::new(b"12345678901234567890".to_vec(), "GitHub", "bobby");
    let expected = [reference.code_at(now), reference.code_at(now + 30)];
    assert!(
        expected.contains(&code["code"].as_str().unwrap().to_owned()),
        "{code}"
    );

    // Bad URIs are errors that do not echo the secret; unknown accounts too.
    let out = s
        .phone(&["totp", "add", "otpauth://totp/x?secret=GEZDGNBV&digits=12"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TOTP") && !err.contains("GEZDGNBV"), "{err}");
    assert_eq!(s.phone(&["code", "nobody"]).await.status.code(), Some(1));

    let totp_id = added["totp_id"].as_str().unwrap();
    json_out(&s.phone(&["totp", "remove", totp_id]).await);
    assert_eq!(
        json_out(&s.phone(&["totp", "list"]).await)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Removing the sign-in account removes its TOTP account too.
    json_out(&s.phone(&["remove", &id]).await);
    assert!(json_out(&s.phone(&["totp", "list"]).await)
        .as_array()
        .unwrap()
        .is_empty());
}

/// The JSON error of a failed command: exit 1 and `{"error": code, "message": …}` on stdout.
fn json_error(out: &std::process::Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "the error is not a JSON object: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

/// A wrong, a missing and a never-set passcode are three different errors (issue 23, finding
/// 4), each with its own code; none approves anything.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_missing_and_unset_passcodes_are_told_apart() {
    let s = setup().await;
    json_out(&s.phone(&["enroll", &s.link().await]).await);

    // Never set, and none given (no terminal to choose one on).
    let mut cmd = s.phone_command(&["enable-phone-sign-in", UPN]);
    cmd.env_remove("AUTHENTICATOR_PASSCODE");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(json_error(&out)["error"], "passcode_not_set");
    assert!(!s.home.path().join("passcode.argon2").exists());

    // The first use with a passcode given sets it, and says so.
    let out = s.phone(&["enable-phone-sign-in", UPN]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is now this phone's passcode"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_out(&out);

    let started = s.start_sign_in().await;
    let number = started["number"].as_str().unwrap().to_owned();
    let pending = json_out(&s.phone(&["pending", "--wait", "10"]).await);
    let request = pending[0]["request_id"].as_str().unwrap().to_owned();

    let mut cmd = s.phone_command(&["approve", &request, "--number", &number]);
    cmd.env_remove("AUTHENTICATOR_PASSCODE");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let missing = json_error(&out);
    assert_eq!(missing["error"], "passcode_required", "{missing}");

    let mut cmd = s.phone_command(&["approve", &request, "--number", &number]);
    cmd.env("AUTHENTICATOR_PASSCODE", "not-the-passcode");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let wrong = json_error(&out);
    assert_eq!(wrong["error"], "wrong_passcode", "{wrong}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error: wrong passcode"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(missing["message"], wrong["message"]);
    assert_eq!(s.status(started["id"].as_str().unwrap()).await, "pending");
}

/// A request that expired on the phone says so, not "unknown request"; one that was already
/// answered says that; an id no account has is `unknown_request`.
#[tokio::test(flavor = "multi_thread")]
async fn expired_and_answered_requests_say_so() {
    let s = support::setup_with(signin_server::ServeConfig {
        request_ttl_secs: 3,
        ..Default::default()
    })
    .await;
    json_out(&s.phone(&["enroll", &s.link().await]).await);
    json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);

    s.start_sign_in().await;
    let pending = json_out(&s.phone(&["pending", "--wait", "10"]).await);
    let request = pending[0]["request_id"].as_str().unwrap().to_owned();
    let expires = pending[0]["expires_at_ms"].as_u64().unwrap();
    // Wait until the request's own expiry (the server's signed time) has passed.
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        if now > expires + 100 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(expires + 150 - now)).await;
    }
    let out = s.phone(&["deny", &request]).await;
    let expired = json_error(&out);
    assert_eq!(expired["error"], "request_expired", "{expired}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("this sign-in request expired"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Asked again (the phone has closed it by now): still expired, not "answered".
    let again = json_error(&s.phone(&["approve", &request, "--number", "00"]).await);
    assert_eq!(again["error"], "request_expired", "{again}");

    s.start_sign_in().await;
    let pending = json_out(&s.phone(&["pending", "--wait", "10"]).await);
    let request = pending[0]["request_id"].as_str().unwrap().to_owned();
    json_out(&s.phone(&["deny", &request]).await);
    let again = json_error(&s.phone(&["deny", &request]).await);
    assert_eq!(again["error"], "already_answered", "{again}");

    let unknown = json_error(&s.phone(&["deny", "AAAAAAAAAAAAAAAAAAAAAA"]).await);
    assert_eq!(unknown["error"], "unknown_request", "{unknown}");
}

/// `--json` errors are JSON objects with a stable code, for the phone's own refusals and the
/// core's alike.
#[tokio::test(flavor = "multi_thread")]
async fn json_errors_are_objects_with_a_stable_code() {
    let s = setup().await;
    let bad_link = json_error(&s.phone(&["enroll", "https://example.com"]).await);
    assert_eq!(bad_link["error"], "invalid_enrollment_url");
    let nobody = json_error(&s.phone(&["remove", "nobody@contoso.test"]).await);
    assert_eq!(nobody["error"], "unknown_account");
    let no_code = json_error(&s.phone(&["code", "nobody"]).await);
    assert_eq!(no_code["error"], "unknown_totp_account");
    let bad_uri = json_error(
        &s.phone(&["totp", "add", "otpauth://totp/x?secret=GEZDGNBV&digits=12"])
            .await,
    );
    assert_eq!(bad_uri["error"], "invalid_totp_uri");
    assert!(!bad_uri.to_string().contains("GEZDGNBV"), "{bad_uri}");

    // A usage error (exit 2) under --json too.
    let out = s.phone(&["approve", "some-request"]).await;
    assert_eq!(out.status.code(), Some(2));
    let usage: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(usage["error"], "usage", "{usage}");
    assert!(
        usage["message"].as_str().unwrap().contains("--number"),
        "{usage}"
    );

    // Without --json: stdout stays empty, the message is on stderr.
    let out = Command::new(BIN)
        .arg("--home")
        .arg(s.home.path())
        .args(["remove", "nobody@contoso.test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: no account"));
}

/// `--help` names every required argument and the default home; a first run without `--home`
/// says which folder it made its home.
#[test]
fn help_describes_arguments_and_the_default_home() {
    let help = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&["--help"]);
    assert!(
        top.contains("~/.local/share/phonesignin-authenticator"),
        "{top}"
    );
    assert!(top.contains("AUTHENTICATOR_HOME"), "{top}");
    let approve = help(&["approve", "--help"]);
    assert!(
        approve.contains("<REQUEST>") && approve.contains("The request id"),
        "{approve}"
    );
    assert!(
        approve.contains("--number <DIGITS>") && approve.contains("sign-in screen shows"),
        "{approve}"
    );
    let enroll = help(&["enroll", "--help"]);
    assert!(
        enroll.contains("<LINK>") && enroll.contains("text of the QR code"),
        "{enroll}"
    );

    let fake_home = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(BIN)
            .args(["accounts"])
            .env("HOME", fake_home.path())
            .env_remove("XDG_DATA_HOME")
            .env_remove("AUTHENTICATOR_HOME")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success());
    let home = fake_home
        .path()
        .join(".local/share/phonesignin-authenticator");
    assert!(home.is_dir());
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(said.contains(&home.display().to_string()), "{said}");
    let second = run();
    assert!(second.status.success());
    assert!(
        second.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}
