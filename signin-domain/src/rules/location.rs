//! Where a sign-in comes from, as shown on the phone when the policy shows the location.
use std::net::IpAddr;

pub const UNKNOWN_LOCATION: &str = "Unknown location";

pub trait Locator: Send + Sync + 'static {
    /// A short place name ("Seattle, US") for the client address.
    fn locate(&self, ip: Option<IpAddr>) -> String;
}

/// No GeoIP database yet: every address is "Unknown location" (loopback and private addresses
/// will stay so when real GeoIP arrives).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoGeoIp;

impl Locator for NoGeoIp {
    fn locate(&self, _ip: Option<IpAddr>) -> String {
        UNKNOWN_LOCATION.to_owned()
    }
}

/// Loopback, private, link-local and unspecified addresses have no public location.
pub fn is_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_unknown() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_local(&ip), "{ip}");
            assert_eq!(NoGeoIp.locate(Some(ip)), UNKNOWN_LOCATION);
        }
        assert!(!is_local(&"8.8.8.8".parse().unwrap()));
        assert_eq!(NoGeoIp.locate(None), UNKNOWN_LOCATION);
    }
}
