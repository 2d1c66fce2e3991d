//! The sign-in lifecycle and the rules beside it: policy, verification, anti-fatigue risk,
//! location.
pub mod geoip;
pub mod location;
pub mod policy;
pub mod risk;
pub mod verify;
