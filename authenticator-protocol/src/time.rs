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

    /// Whether something that expires at `self` (a request's or a code's `expires_at`) has
    /// expired at `now`: from its expiry's own millisecond on, `now >= self`. The one expiry
    /// rule of the protocol, which the phone and the server both apply: at `expires_at` a
    /// request can no longer be answered, and one millisecond before it still can.
    pub fn is_expired_at(self, now: UnixMillis) -> bool {
        now >= self
    }

    /// A time written as decimal text (the device-auth header, §4): ASCII digits only, no
    /// sign, no white space, no leading zero (except `0` itself), at most `u64::MAX`. One
    /// value has one spelling, so the text carried is the text signed (`str::parse` would also
    /// take `+1767225600000` and `01767225600000`).
    pub fn parse_decimal(text: &str) -> Option<UnixMillis> {
        let canonical = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        if !canonical {
            return None;
        }
        text.parse().ok().map(UnixMillis)
    }
}

#[cfg(test)]
mod tests {
    use super::UnixMillis;

    #[test]
    fn an_expiry_holds_until_its_own_millisecond_and_not_from_it() {
        let expires_at = UnixMillis(1_700_000_000_000);
        assert!(
            !expires_at.is_expired_at(UnixMillis(1_699_999_999_999)),
            "1 ms before"
        );
        assert!(
            expires_at.is_expired_at(UnixMillis(1_700_000_000_000)),
            "at"
        );
        assert!(
            expires_at.is_expired_at(UnixMillis(1_700_000_000_001)),
            "1 ms after"
        );
    }

    #[test]
    fn decimal_times_have_one_spelling() {
        assert_eq!(
            UnixMillis::parse_decimal("1767225600000"),
            Some(UnixMillis(1_767_225_600_000))
        );
        assert_eq!(UnixMillis::parse_decimal("0"), Some(UnixMillis(0)));
        assert_eq!(
            UnixMillis::parse_decimal("18446744073709551615"),
            Some(UnixMillis(u64::MAX))
        );
        for bad in [
            "",
            "+1767225600000",
            "01767225600000",
            "00",
            " 1767225600000",
            "1767225600000\n",
            "-1",
            "1_000",
            "18446744073709551616",
            "١٧٦٧",
        ] {
            assert_eq!(UnixMillis::parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_ends_of_the_range_follow_the_same_rule() {
        assert!(UnixMillis(0).is_expired_at(UnixMillis(0)));
        assert!(!UnixMillis(u64::MAX).is_expired_at(UnixMillis(u64::MAX - 1)));
        assert!(UnixMillis(u64::MAX).is_expired_at(UnixMillis(u64::MAX)));
    }
}
