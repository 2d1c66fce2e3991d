//! GeoIP location from a MaxMind `.mmdb` database (GeoIP2/GeoLite2 City or Country, or any
//! database with the same `city.names` / `country.names` / `country.iso_code` layout).
//! Shown as "City, Country"; unknown, loopback and private addresses are "Unknown location",
//! and a lookup failure is never an error.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::rules::location::{is_local, Locator, UNKNOWN_LOCATION};

pub struct MaxMindLocator {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for MaxMindLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaxMindLocator")
            .field("database_type", &self.reader.metadata.database_type)
            .finish()
    }
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow, default)]
    names: Option<BTreeMap<&'a str, &'a str>>,
    #[serde(default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    city: Option<Names<'a>>,
    #[serde(borrow, default)]
    country: Option<Names<'a>>,
}

fn english<'a>(n: &Option<Names<'a>>) -> Option<&'a str> {
    n.as_ref()
        .and_then(|n| n.names.as_ref())
        .and_then(|m| m.get("en").copied())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        // Shown on the phone like a name: a database entry that fails the one gate for names
        // is no location (the phone would refuse the whole request).
        .filter(|s| authenticator_protocol::text::check_plain(s).is_ok())
}

impl MaxMindLocator {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let reader = maxminddb::Reader::open_readfile(path)
            .with_context(|| format!("could not open the GeoIP database {}", path.display()))?;
        Ok(MaxMindLocator { reader })
    }

    fn lookup(&self, ip: IpAddr) -> Option<String> {
        let record: Record = match self.reader.lookup(ip) {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "GeoIP lookup failed");
                return None;
            }
        };
        let city = english(&record.city);
        let country =
            english(&record.country).or_else(|| record.country.as_ref().and_then(|c| c.iso_code));
        match (city, country) {
            (Some(c), Some(k)) => Some(format!("{c}, {k}")),
            (None, Some(k)) => Some(k.to_owned()),
            (Some(c), None) => Some(c.to_owned()),
            (None, None) => None,
        }
    }
}

impl Locator for MaxMindLocator {
    fn locate(&self, ip: Option<IpAddr>) -> String {
        match ip {
            Some(ip) if !is_local(&ip) => self
                .lookup(ip)
                .unwrap_or_else(|| UNKNOWN_LOCATION.to_owned()),
            _ => UNKNOWN_LOCATION.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20, finding 5: a location is shown on the phone like a name; a database name that
    /// fails the one gate for names is no name (the phone would refuse the whole request).
    #[test]
    fn a_database_name_that_fails_the_name_gate_is_no_name() {
        let names = |en: &'static str| {
            Some(Names {
                names: Some(BTreeMap::from([("en", en)])),
                iso_code: None,
            })
        };
        assert_eq!(english(&names(" Zürich ")), Some("Zürich"));
        for bad in [
            "Seat\u{200B}tle",
            "Seattle\u{E000}",
            "Seattle\nUS",
            "\u{FEFF}",
        ] {
            assert_eq!(english(&names(bad)), None, "{bad:?}");
        }
    }
}
