//! The device-authentication header the server parses on every device call (PROTOCOL.md §4):
//! any text is a header or a typed error, and a parsed header prints back to itself.
#![no_main]
use authenticator_protocol::sign_in::DeviceAuth;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(auth) = DeviceAuth::parse_header(text) {
        let again = DeviceAuth::parse_header(&auth.to_header()).expect("a printed header parses");
        assert_eq!(again.to_header(), auth.to_header());
    }
});
