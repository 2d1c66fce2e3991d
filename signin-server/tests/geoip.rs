//! GeoIP: a small `.mmdb` built by the test, read through the server's locator and shown on
//! the phone; `X-Forwarded-For` believed only from a configured proxy.
mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use ipnet::IpNet;
use serde::Serialize;
use serde_json::json;
use signin_domain::rules::geoip::MaxMindLocator;
use signin_domain::rules::location::{Locator, UNKNOWN_LOCATION};
use support::*;

#[derive(Serialize)]
struct Names {
    names: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iso_code: Option<String>,
}

#[derive(Serialize)]
struct CityRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<Names>,
    country: Names,
}

fn names(en: &str, iso: Option<&str>) -> Names {
    Names {
        names: [
            ("en".to_owned(), en.to_owned()),
            ("de".to_owned(), format!("{en} (de)")),
        ]
        .into(),
        iso_code: iso.map(str::to_owned),
    }
}

/// A GeoIP2-City-shaped database with a few documentation/test networks.
fn build_mmdb(path: &std::path::Path) {
    let mut w = mmdb_writer::Writer::new("GeoIP2-City");
    w.insert(
        "81.2.69.0/24".parse::<IpNet>().unwrap(),
        &CityRecord {
            city: Some(names("London", None)),
            country: names("United Kingdom", Some("GB")),
        },
    )
    .unwrap();
    w.insert(
        "89.160.20.0/24".parse::<IpNet>().unwrap(),
        &CityRecord {
            city: None,
            country: names("Sweden", Some("SE")),
        },
    )
    .unwrap();
    w.insert(
        "2001:480::/32".parse::<IpNet>().unwrap(),
        &CityRecord {
            city: Some(names("San Diego", None)),
            country: names("United States", Some("US")),
        },
    )
    .unwrap();
    std::fs::write(path, w.to_bytes().unwrap()).unwrap();
}

#[test]
fn locations_come_from_the_mmdb_and_unknowns_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    build_mmdb(&path);
    let geo = MaxMindLocator::open(&path).unwrap();
    let at = |ip: &str| geo.locate(Some(ip.parse::<IpAddr>().unwrap()));
    assert_eq!(at("81.2.69.160"), "London, United Kingdom");
    assert_eq!(at("89.160.20.112"), "Sweden");
    assert_eq!(at("2001:480::1"), "San Diego, United States");
    assert_eq!(at("::ffff:81.2.69.160"), "London, United Kingdom");
    // Not in the database, loopback, private, link-local, none at all.
    for ip in [
        "8.8.8.8",
        "127.0.0.1",
        "10.1.2.3",
        "192.168.1.1",
        "::1",
        "fe80::1",
        "fd00::1",
    ] {
        assert_eq!(at(ip), UNKNOWN_LOCATION, "{ip}");
    }
    assert_eq!(geo.locate(None), UNKNOWN_LOCATION);
    // A missing or corrupt database is a start-up error, not a lookup error.
    assert!(MaxMindLocator::open(&dir.path().join("missing.mmdb")).is_err());
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, b"not a database").unwrap();
    assert!(MaxMindLocator::open(&junk).is_err());
}

async fn signin_from(h: &Harness, peer: &str, xff: Option<&str>) -> String {
    let mut req = Request::post("/api/v1/signin")
        .header("content-type", "application/json")
        .header("authorization", &h.app_auth)
        .body(Body::from(json!({"upn": "geo@contoso.com"}).to_string()))
        .unwrap();
    if let Some(x) = xff {
        req.headers_mut()
            .insert("x-forwarded-for", x.parse().unwrap());
    }
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    let r = h.send(req).await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_phone_sees_the_city_and_proxies_are_trusted_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    build_mmdb(&path);
    let geo: Arc<dyn Locator> = Arc::new(MaxMindLocator::open(&path).unwrap());
    let h = harness_with_state(90, move |s| {
        s.with_locator(geo)
            .with_trusted_proxies(vec!["10.0.0.0/8".parse().unwrap()])
    })
    .await;
    let phone = h.ready_phone("geo@contoso.com").await;
    let location = |id: String| {
        let phone = &phone;
        let h = &h;
        async move {
            let f = phone
                .fetch(h, &id)
                .await
                .unwrap_or_else(|r| panic!("{:?}", r.body));
            let details: serde_json::Value = serde_json::from_str(&f.signed.details).unwrap();
            details["location"].as_str().unwrap().to_owned()
        }
    };
    // A direct client.
    let id = signin_from(&h, "81.2.69.160:50000", None).await;
    assert_eq!(location(id).await, "London, United Kingdom");
    // A direct client cannot claim another address.
    let id = signin_from(&h, "81.2.69.160:50000", Some("89.160.20.112")).await;
    assert_eq!(location(id).await, "London, United Kingdom");
    // Through the trusted proxy: the forwarded client address.
    let id = signin_from(&h, "10.0.0.2:443", Some("89.160.20.112")).await;
    assert_eq!(location(id).await, "Sweden");
    // A private client address: unknown, no error.
    let id = signin_from(&h, "10.0.0.2:443", Some("192.168.7.7")).await;
    assert_eq!(location(id).await, UNKNOWN_LOCATION);
    let id = signin_from(&h, "127.0.0.1:1234", None).await;
    assert_eq!(location(id).await, UNKNOWN_LOCATION);
}
