//! The rules the sign-in lifecycle ([`crate::sign_in`]) and account changes apply:
//! [`policy`] (who may use which mode), [`verify`] (signatures, freshness, number matching),
//! [`risk`] (anti-fatigue limits and pauses) and [`location`] (what the phone shows as
//! "where", [`geoip`] from a MaxMind database); [`push_channel`]: what a push channel a device
//! registers must be (at enrollment and at rotation).
pub mod geoip;
pub mod location;
pub mod policy;
pub mod push_channel;
pub mod risk;
pub mod verify;
