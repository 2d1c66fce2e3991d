//! The exported core API (what Kotlin and Swift call) fed hostile strings and maps, against an
//! in-process fake server (no network): every call returns a value or a typed
//! `AuthenticatorError`, never a panic, and the instance keeps working.
#![no_main]
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use authenticator_core::testing::{FakeNetwork, FakeServer, MemoryKeyStore};
use authenticator_core::{Authenticator, PushKind, PushRegistration};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Call {
    Enroll {
        url: String,
        device_name: String,
        push_kind: u8,
        token: String,
    },
    EnableFor(String),
    Remove(String),
    ParseJson(String),
    ParseData(HashMap<String, String>),
    HandleJson(String),
    HandleData(HashMap<String, String>),
    Fetch(String, String),
    Approve(String, String, String),
    Deny(String, String),
    Report(String, String),
    Pending,
}

struct World {
    runtime: tokio::runtime::Runtime,
    auth: Arc<Authenticator>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = FakeServer::new("fuzz", "http://127.0.0.1:9/fuzz/");
        let auth = Authenticator::with_transport(
            dir.path().to_string_lossy().into_owned(),
            Arc::new(MemoryKeyStore::default()),
            FakeNetwork::new(&[server]),
        )
        .expect("authenticator");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        World {
            runtime,
            auth,
            _dir: dir,
        }
    })
}

fuzz_target!(|calls: Vec<Call>| {
    let w = world();
    let a = &w.auth;
    for call in calls.into_iter().take(8) {
        // Each result is either Ok or a typed error: only a panic fails the target.
        w.runtime.block_on(async {
            match call {
                Call::Enroll {
                    url,
                    device_name,
                    push_kind,
                    token,
                } => {
                    let kind = match push_kind % 3 {
                        0 => PushKind::LongPoll,
                        1 => PushKind::Apns,
                        _ => PushKind::Fcm,
                    };
                    let _ = a
                        .enroll(url, device_name, PushRegistration { kind, token })
                        .await;
                }
                Call::EnableFor(id) => drop(a.enable_phone_sign_in(id).await),
                Call::Remove(id) => drop(a.remove_account(id).await),
                Call::ParseJson(s) => drop(a.parse_push_json(s)),
                Call::ParseData(m) => drop(a.parse_push_data(m)),
                Call::HandleJson(s) => drop(a.handle_push_json(s).await),
                Call::HandleData(m) => drop(a.handle_push_data(m).await),
                Call::Fetch(acc, r) => drop(a.fetch_request(acc, r).await),
                Call::Approve(acc, r, n) => drop(a.approve(acc, r, n).await),
                Call::Deny(acc, r) => drop(a.deny(acc, r).await),
                Call::Report(acc, r) => drop(a.report_fraud(acc, r).await),
                Call::Pending => drop(a.pending_requests().await),
            }
        });
    }
    // Still answers.
    w.runtime
        .block_on(a.accounts())
        .expect("the store still answers after hostile calls");
});
