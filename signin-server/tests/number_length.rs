//! The sign-in number's length: the policy's (2 to 6 digits), raised when the user's risk is
//! elevated (a recent "this wasn't me" report: at least 4; two: 6; a burst of starts refused by
//! the rate limit: at least 4). The signed details tell the phone how many digits to ask.
mod support;

use authenticator_protocol::sign_in::{Decision, RequestDetails};
use axum::http::StatusCode;
use serde_json::json;
use signin_domain::rules::policy::PolicyUpdate;
use signin_domain::rules::risk::{self, RiskConfig};
use signin_domain::{accounts, AppState};
use support::{harness, harness_with_state, respond_uri, Harness, Phone};

const BOB: &str = "bob@contoso.test";

/// Starts a sign-in; returns (id, number, the digits the signed details announce).
async fn start(h: &Harness, phone: &Phone) -> (String, String, u8) {
    let r = h.start_signin(BOB).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let f = phone.fetch(h, &id).await.unwrap();
    let details: RequestDetails = serde_json::from_str(&f.signed.details).unwrap();
    (id, number, details.number_length)
}

async fn set_length(h: &Harness, digits: u8) {
    accounts::set_policy(
        &h.state.pool,
        &PolicyUpdate {
            number_length: Some(digits),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_number_has_the_policys_length_and_the_phone_types_it_whole() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    let (_, number, digits) = start(&h, &phone).await;
    assert_eq!((number.len(), digits), (2, 2), "the default: two digits");
    for want in [4u8, 6, 3] {
        set_length(&h, want).await;
        let (id, number, digits) = start(&h, &phone).await;
        assert_eq!(number.len(), usize::from(want));
        assert_eq!(digits, want);
        assert!(!number.starts_with('0'), "no leading zero: {number}");
        let f = phone.fetch(&h, &id).await.unwrap();
        // The first two digits are a wrong number, not an approval.
        let r = h
            .post(
                &respond_uri(&id),
                phone.answer(&f, Decision::Approve, Some(&number[..2])),
            )
            .await;
        assert_eq!(r.error(), "wrong_number");
        let r = h
            .post(
                &respond_uri(&id),
                phone.answer(&f, Decision::Approve, Some(&number)),
            )
            .await;
        assert_eq!(r.body, json!({"status": "approved"}), "{want} digits");
    }
    // Out of range: refused, the policy unchanged.
    for bad in [1u8, 7] {
        let refused = accounts::set_policy(
            &h.state.pool,
            &PolicyUpdate {
                number_length: Some(bad),
                ..Default::default()
            },
        )
        .await;
        assert!(refused.is_err(), "{bad}");
    }
    assert_eq!(start(&h, &phone).await.2, 3);
}

/// "This wasn't me", then the admin resumes the user: their next sign-ins have longer numbers.
async fn report_and_resume(h: &Harness, phone: &Phone) {
    let (id, _, _) = start(h, phone).await;
    let f = phone.fetch(h, &id).await.unwrap();
    let r = h
        .post(&respond_uri(&id), phone.answer(&f, Decision::Report, None))
        .await;
    assert_eq!(r.body, json!({"status": "reported"}));
    assert!(risk::resume(&h.state.pool, BOB).await.unwrap());
}

#[tokio::test]
async fn a_recent_report_raises_the_number_to_four_digits_and_two_reports_to_six() {
    let h = harness().await;
    let phone = h.ready_phone(BOB).await;
    assert_eq!(start(&h, &phone).await.2, 2);
    report_and_resume(&h, &phone).await;
    let (_, number, digits) = start(&h, &phone).await;
    assert_eq!((number.len(), digits), (4, 4));
    // A policy longer than the raise keeps its own length.
    set_length(&h, 5).await;
    assert_eq!(start(&h, &phone).await.2, 5);
    set_length(&h, 2).await;
    report_and_resume(&h, &phone).await;
    let (_, number, digits) = start(&h, &phone).await;
    assert_eq!((number.len(), digits), (6, 6));
}

#[tokio::test]
async fn a_burst_of_refused_starts_raises_the_number_to_four_digits() {
    let h = harness_with_state(90, |s: AppState| {
        s.with_risk(RiskConfig {
            burst: 1,
            refill_secs: 1,
            cooldown_secs: 1,
            ..RiskConfig::default()
        })
    })
    .await;
    let phone = h.ready_phone(BOB).await;
    assert_eq!(start(&h, &phone).await.2, 2);
    // The second start at once is refused: a strike, a one-second cool-down.
    assert_eq!(h.start_signin(BOB).await.error(), "rate_limited");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (_, number, digits) = start(&h, &phone).await;
    assert_eq!((number.len(), digits), (4, 4));
}

#[test]
fn elevation_sets_the_least_length_and_never_lowers_the_policys() {
    use risk::Elevation;
    for policy in 2..=6u8 {
        assert_eq!(Elevation::Normal.number_digits(policy), policy);
        assert_eq!(Elevation::Elevated.number_digits(policy), policy.max(4));
        assert_eq!(Elevation::High.number_digits(policy), 6);
    }
}
