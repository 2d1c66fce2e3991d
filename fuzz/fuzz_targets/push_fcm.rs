//! FCM data maps (`RemoteMessage.data`, PROTOCOL.md §6.1): any map of strings is an envelope or
//! a typed error; an envelope's own FCM map parses back to it.
#![no_main]
use std::collections::HashMap;

use authenticator_protocol::push::PushEnvelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: HashMap<String, String>| {
    if let Ok(envelope) = PushEnvelope::from_data_map(&data) {
        let again = PushEnvelope::from_data_map(&envelope.to_fcm_data())
            .expect("an envelope's FCM map parses");
        assert_eq!(again, envelope);
    }
});
