use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC. The only time type on the wire of signed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixMillis(d.as_millis() as u64)
    }
    pub fn millis(self) -> u64 {
        self.0
    }
    pub fn plus_secs(self, secs: u64) -> Self {
        UnixMillis(self.0.saturating_add(secs.saturating_mul(1000)))
    }
    /// Absolute distance to `other` in milliseconds.
    pub fn distance(self, other: UnixMillis) -> u64 {
        self.0.abs_diff(other.0)
    }
}
