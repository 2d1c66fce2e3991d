//! The number's length end to end (issue 11): the policy's length reaches the phone in the
//! signed details, the phone asks for that many digits and refuses fewer before anything is
//! signed, and a report raises the next sign-in's number to at least four digits.
use authenticator_core::{AuthenticatorError, Decision};
use e2e::{TestPhone, TestServer};
use signin_domain::accounts;
use signin_domain::rules::policy::PolicyUpdate;

const BOBBY: &str = "bobby@contoso.test";

#[tokio::test]
async fn the_phone_asks_for_as_many_digits_as_the_policy_and_the_risk_say() {
    let server = TestServer::start("Contoso").await.unwrap();
    let link = server.user_with_link(BOBBY, "Bobby Smith").await.unwrap();
    let phone = TestPhone::new().unwrap();
    phone.enroll_passwordless(&link).await.unwrap();
    let pool = server.running.pool();
    accounts::set_policy(
        pool,
        &PolicyUpdate {
            number_length: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let (id, number) = server.start_sign_in(BOBBY).await.unwrap();
    assert_eq!(number.len(), 5);
    let request = phone.core.poll(10).await.unwrap().remove(0);
    assert_eq!(request.number_length, 5);
    assert_eq!(
        phone
            .core
            .approve(
                request.account_id.clone(),
                request.request_id.clone(),
                number[..2].to_owned()
            )
            .await
            .unwrap_err(),
        AuthenticatorError::InvalidNumber
    );
    assert_eq!(server.status(&id).await.unwrap(), "pending");
    assert_eq!(
        phone
            .core
            .approve(request.account_id.clone(), request.request_id, number)
            .await
            .unwrap(),
        Decision::Approved
    );
    assert_eq!(server.status(&id).await.unwrap(), "approved");

    // Back to two digits; then "this wasn't me" and the admin resumes Bobby: four.
    accounts::set_policy(
        pool,
        &PolicyUpdate {
            number_length: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    server.start_sign_in(BOBBY).await.unwrap();
    let request = phone.core.poll(10).await.unwrap().remove(0);
    assert_eq!(request.number_length, 2);
    phone
        .core
        .report_fraud(request.account_id, request.request_id)
        .await
        .unwrap();
    assert!(signin_domain::rules::risk::resume(pool, BOBBY)
        .await
        .unwrap());
    let (_, number) = server.start_sign_in(BOBBY).await.unwrap();
    assert_eq!(number.len(), 4, "a recent report raises the length");
    let request = phone.core.poll(10).await.unwrap().remove(0);
    assert_eq!(request.number_length, 4);
}
