//! The demo's GeoIP database, so that the phone shows where a sign-in comes from (step 5 of the
//! seed lab: "notice the extra details"). Everything in the demo runs on loopback, which no
//! GeoIP database locates; so the demo's browser says it comes from [`BROWSER_ADDRESS`], a
//! documentation address (RFC 5737), through `X-Forwarded-For`, which the server believes only
//! from its trusted proxy (here loopback, as behind a reverse proxy on the same machine).
//!
//! The database is built at start from `geoip.json`, in the JSON source format of MaxMind's own
//! test databases (`MaxMind-DB/source-data`: a list of `{network: record}` objects), written as
//! a GeoIP2-City `.mmdb` that the server reads as it reads a real GeoLite2-City file. It holds
//! documentation ranges only (RFC 5737, RFC 3849): it locates no real address.
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ipnet::IpNet;
use serde_json::{Map, Value};

/// The source of the demo's database (MaxMind test-data JSON).
const SOURCE: &str = include_str!("geoip.json");

/// Where the demo's browser says it is (`X-Forwarded-For`): in `203.0.113.0/24`, which the
/// demo's database places in Seattle, United States.
pub const BROWSER_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));

/// The location the phone shows for [`BROWSER_ADDRESS`] ("City, Country").
pub const BROWSER_LOCATION: &str = "Seattle, United States";

/// What the demo's browser adds to every request: the address it says it comes from.
pub fn browser_headers() -> Result<reqwest::header::HeaderMap> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        reqwest::header::HeaderValue::from_str(&BROWSER_ADDRESS.to_string())?,
    );
    Ok(headers)
}

/// Writes the demo's `.mmdb` into `dir`; returns its path.
pub fn write_database(dir: &Path) -> Result<PathBuf> {
    let records: Vec<Map<String, Value>> =
        serde_json::from_str(SOURCE).context("the demo's geoip.json is not a list of objects")?;
    let mut writer = mmdb_writer::Writer::new("GeoIP2-City");
    for record in &records {
        for (network, data) in record {
            let network: IpNet = network
                .parse()
                .with_context(|| format!("geoip.json: {network:?} is not a network"))?;
            writer
                .insert(network, data)
                .with_context(|| format!("geoip.json: cannot add {network}"))?;
        }
    }
    let bytes = writer
        .to_bytes()
        .context("cannot build the demo's GeoIP database")?;
    let path = dir.join("demo-geoip.mmdb");
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use signin_domain::rules::geoip::MaxMindLocator;
    use signin_domain::rules::location::Locator;

    #[test]
    fn the_demo_database_places_the_browser_address_and_nothing_real() {
        let dir = tempfile::tempdir().unwrap();
        let geo = MaxMindLocator::open(&write_database(dir.path()).unwrap()).unwrap();
        assert_eq!(geo.locate(Some(BROWSER_ADDRESS)), BROWSER_LOCATION);
        assert_eq!(
            geo.locate(Some("198.51.100.20".parse().unwrap())),
            "Amsterdam, Netherlands"
        );
        assert_eq!(
            geo.locate(Some("2001:db8::1".parse().unwrap())),
            "Melbourne, Australia"
        );
        assert_eq!(
            browser_headers().unwrap()["x-forwarded-for"],
            BROWSER_ADDRESS.to_string().as_str()
        );
        // A real address is not in it.
        assert_eq!(
            geo.locate(Some("8.8.8.8".parse().unwrap())),
            signin_domain::rules::location::UNKNOWN_LOCATION
        );
    }
}
