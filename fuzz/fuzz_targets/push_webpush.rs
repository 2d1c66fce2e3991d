//! Web Push subscription tokens (`push.kind = webpush`, PROTOCOL.md §6.1): any text is a
//! subscription or a typed error; an accepted one has an on-curve key, a 16-byte secret and an
//! https (or loopback http) endpoint, and its compact form parses back to it.
#![no_main]
use authenticator_protocol::webpush::WebPushSubscription;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(sub) = WebPushSubscription::parse(text) {
        assert_eq!(sub.p256dh[0], 4);
        let scheme = sub.endpoint.scheme();
        assert!(scheme == "https" || (scheme == "http" && sub.is_insecure_loopback()));
        let again =
            WebPushSubscription::parse(&sub.to_token()).expect("a subscription's token parses");
        assert_eq!(again, sub);
    }
});
