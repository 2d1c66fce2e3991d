//! The QR code's enrollment link (PROTOCOL.md §3): any text parses or is a typed error, and a
//! parsed link prints back to a link that parses to the same value.
#![no_main]
use authenticator_protocol::enroll::EnrollmentUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(url) = EnrollmentUrl::parse(text) {
        let again = EnrollmentUrl::parse(&url.to_url_string()).expect("a printed link parses");
        assert_eq!(again, url);
    }
});
