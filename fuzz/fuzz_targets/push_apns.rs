//! APNs `userInfo` JSON (or a bare envelope) as the phone receives it (PROTOCOL.md §6.1): any
//! text is an envelope or a typed error; an envelope's own APNs form parses back to it.
#![no_main]
use authenticator_protocol::push::PushEnvelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(envelope) = PushEnvelope::from_json(text) {
        let again = PushEnvelope::from_json(&envelope.to_apns_json().to_string())
            .expect("an envelope's APNs payload parses");
        assert_eq!(again, envelope);
    }
});
