//! The `signin-server` binary: the CLI interface other tests rely on.
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use authenticator_protocol::enroll::EnrollmentUrl;
use signin_server::store::testing::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_signin-server");

fn cmd(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--database")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

#[test]
fn admin_commands() {
    let test_db = TestDatabase::create_blocking().unwrap();
    let db = test_db.url.clone();
    let add = [
        "admin",
        "user",
        "add",
        "--upn",
        "bob@contoso.test",
        "--name",
        "Bob",
        "--group",
        "pilot",
    ];
    assert!(cmd(&db, &add).status.success());
    let again = cmd(&db, &add);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let bad = cmd(
        &db,
        &[
            "admin",
            "policy",
            "set",
            "--mode",
            "passwordless",
            "--number-matching",
            "off",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("number matching"));
    let set = cmd(
        &db,
        &[
            "admin",
            "policy",
            "set",
            "--target",
            "group:pilot",
            "--show-location",
            "off",
        ],
    );
    assert!(set.status.success());
    let shown = String::from_utf8(cmd(&db, &["admin", "policy", "show"]).stdout).unwrap();
    assert!(shown.contains("target: group:pilot") && shown.contains("show-location: off"));
    assert!(
        shown.contains("mode: any") && shown.contains("enabled: true"),
        "{shown}"
    );

    let link = cmd(
        &db,
        &["admin", "registration-link", "--upn", "bob@contoso.test"],
    );
    assert!(link.status.success());
    let out = String::from_utf8(link.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "only the URL on stdout: {out}");
    let url = EnrollmentUrl::parse(out.trim()).unwrap();
    assert_eq!(url.server.as_str(), "http://127.0.0.1:8080/");
    // Logs never carry the code.
    assert!(!String::from_utf8_lossy(&link.stderr).contains(&url.code));
    // The same server key on every run.
    let out2 = cmd(
        &db,
        &["admin", "registration-link", "--upn", "bob@contoso.test"],
    )
    .stdout;
    let url2 = EnrollmentUrl::parse(String::from_utf8(out2).unwrap().trim()).unwrap();
    assert_eq!(url2.server_fingerprint, url.server_fingerprint);
    assert_ne!(url2.code, url.code);
    assert!(
        !cmd(&db, &["admin", "registration-link", "--upn", "nobody@x"])
            .status
            .success()
    );

    let audit = String::from_utf8(cmd(&db, &["admin", "audit"]).stdout).unwrap();
    assert!(audit.contains("user_added") && audit.contains("registration_link_issued"));
    assert!(!audit.contains(&url.code));
}

#[test]
fn serve_prints_its_address_and_stops_on_sigterm() {
    let test_db = TestDatabase::create_blocking().unwrap();
    let db = test_db.url.clone();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--server-name",
            "Fabrikam",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("signin-server listening on http://")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned();

    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    // `--server-name` was stored.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = rt.block_on(async {
        let pool = signin_server::store::connect(&db).await.unwrap();
        signin_server::store::server_name(&pool).await.unwrap()
    });
    assert_eq!(name, "Fabrikam");
}

#[test]
fn user_show_resume_and_delivery_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let add = [
        "admin",
        "user",
        "add",
        "--upn",
        "eve@contoso.test",
        "--name",
        "Eve",
    ];
    assert!(cmd(&db, &add).status.success());
    let show = cmd(&db, &["admin", "user", "show", "--upn", "eve@contoso.test"]);
    assert!(show.status.success());
    let text = String::from_utf8(show.stdout).unwrap();
    for line in [
        "upn: eve@contoso.test",
        "risk: low (score 0, reports 0)",
        "paused: no",
        "rate limit: ok",
        "devices: none",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    let resume = cmd(
        &db,
        &["admin", "user", "resume", "--upn", "eve@contoso.test"],
    );
    assert!(String::from_utf8_lossy(&resume.stdout).contains("was not paused"));
    let missing = cmd(
        &db,
        &["admin", "user", "show", "--upn", "nobody@contoso.test"],
    );
    assert!(!missing.status.success());

    // Incomplete or unreadable push settings stop `serve` with a clear error.
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let out = cmd(&db, &args);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(serve(&["--apns-key", "/nonexistent/key.p8"]).contains("--apns-key-id"));
    let err = serve(&[
        "--apns-key",
        "/nonexistent/key.p8",
        "--apns-key-id",
        "K",
        "--apns-team-id",
        "T",
        "--apns-topic",
        "com.example",
    ]);
    assert!(err.contains("reading the APNs key"), "{err}");
    assert!(serve(&["--fcm-project-id", "p"]).contains("--fcm-service-account"));
    assert!(serve(&["--trusted-proxy", "not-an-ip"]).contains("not an IP address"));
    let err = serve(&["--geoip", "/nonexistent/city.mmdb"]);
    assert!(err.contains("GeoIP database"), "{err}");
}
