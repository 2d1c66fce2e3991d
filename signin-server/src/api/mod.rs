//! The JSON API (PROTOCOL.md §5, §7): thin handlers over `signin_domain::sign_in` and
//! `signin_domain::accounts`.
pub mod device;
pub mod enroll;
pub mod json;
pub mod moving;
pub mod push;
pub mod signin;

/// `?wait=<seconds>` of the long-poll endpoints (capped at `MAX_WAIT_SECS`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct WaitQuery {
    pub wait: Option<u64>,
}

pub const MAX_WAIT_SECS: u64 = 60;

impl WaitQuery {
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.wait.unwrap_or(0).min(MAX_WAIT_SECS))
    }
}
