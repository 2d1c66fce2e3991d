//! The one policy for every URL the server calls on someone else's say-so: the endpoint of a
//! Web Push subscription (chosen by whoever enrolls a phone), the ping endpoint of a CIBA
//! client (registered for an application) and any later webhook. APNs and FCM are not under
//! it: their hosts are the operator's own configuration.
//!
//! - **https only**; plain http only to a loopback address, and only with `allow_http_loopback`
//!   (a development setting: local push services and ping receivers in tests);
//! - **no redirects**: a 3xx is an answer like any other, never followed;
//! - **every address checked**: the host is resolved once and each address it resolves to must
//!   be a public one: loopback, private (RFC 1918), shared (carrier-grade NAT, 100.64.0.0/10),
//!   link-local (169.254.0.0/16, the cloud metadata address among them; fe80::/10),
//!   unique-local (fc00::/7), multicast, unspecified (0.0.0.0, ::), broadcast, documentation,
//!   benchmarking and reserved addresses are refused, also written as IPv6 (IPv4-mapped
//!   `::ffff:127.0.0.1`, IPv4-compatible, NAT64 and 6to4 forms carry the IPv4 address they
//!   embed), unless a network of `allow_networks` holds the address. One refused address
//!   refuses the URL;
//! - **no second lookup**: the request goes to exactly the addresses that were checked (the
//!   client is pinned to them and resolves no other name), so a DNS server that answers the
//!   check with a public address and the connection with an internal one (DNS rebinding) gets
//!   nowhere; no HTTP proxy from the environment is used either (it would resolve the name
//!   itself);
//! - **bounded**: 5 s to connect, 10 s for everything (resolution and answer included), at most
//!   [`DEFAULT_MAX_RESPONSE_BYTES`] of answer read.
//!
//! Registration checks a URL without DNS ([`OutboundPolicy::check_url`]: scheme, user info,
//! and an address literal or `localhost` name in a refused range); every request checks again,
//! with the addresses the name resolves to at that moment ([`OutboundPolicy::send`]), since
//! DNS can change. Errors ([`OutboundError`]) say which rule refused, never the URL (a Web
//! Push endpoint is a capability).
//!
//! The policy also carries the cap on push channels per user, which bounds how many such
//! requests one sign-in can cause (`max_push_channels_per_user`, checked at enrollment).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// Time to connect (each address).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for everything: resolution, connection, request and answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of an answer's body that are read.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024;
/// The most devices with a push channel (APNs, FCM, Web Push) one user may have.
pub const DEFAULT_MAX_PUSH_CHANNELS_PER_USER: u32 = 10;

/// `[outbound]`: what the server may call on someone's say-so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Development only: plain http to a loopback address, and loopback addresses at all.
    pub allow_http_loopback: bool,
    /// Networks whose addresses may be called although they are in a refused range (an
    /// internal push service, say). https still.
    pub allow_networks: Vec<IpNet>,
    /// The most devices with a push channel (not long-poll) one user may have.
    pub max_push_channels_per_user: u32,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            allow_http_loopback: false,
            allow_networks: Vec::new(),
            max_push_channels_per_user: DEFAULT_MAX_PUSH_CHANNELS_PER_USER,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A range of addresses outbound requests do not reach (IANA's special-purpose registries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// 0.0.0.0/8 ("this network"; 0.0.0.0 reaches the server itself), `::`.
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// RFC 1918: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16.
    Private,
    /// RFC 6598 shared address space (carrier-grade NAT): 100.64.0.0/10.
    Shared,
    /// 169.254.0.0/16 (cloud metadata services at 169.254.169.254), fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18.0.0/15, 2001:2::/48.
    Benchmarking,
    /// Everything else that is not a public unicast address: 240.0.0.0/4, 192.0.0.0/24,
    /// 192.88.99.0/24, 100::/64 (discard), 64:ff9b:1::/48 (local NAT64), fec0::/10 (site-local),
    /// IPv4-compatible IPv6 addresses.
    Reserved,
}

impl Range {
    /// The rule's name in logs and audit reasons (`address_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Range::Unspecified => "unspecified",
            Range::Loopback => "loopback",
            Range::Private => "private",
            Range::Shared => "shared",
            Range::LinkLocal => "link_local",
            Range::UniqueLocal => "unique_local",
            Range::Multicast => "multicast",
            Range::Broadcast => "broadcast",
            Range::Documentation => "documentation",
            Range::Benchmarking => "benchmarking",
            Range::Reserved => "reserved",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Range::Unspecified => "the unspecified address (0.0.0.0/8, ::)",
            Range::Loopback => "a loopback address (127.0.0.0/8, ::1)",
            Range::Private => "a private address (RFC 1918)",
            Range::Shared => "a shared carrier-grade NAT address (100.64.0.0/10)",
            Range::LinkLocal => "a link-local address (169.254.0.0/16, fe80::/10)",
            Range::UniqueLocal => "a unique-local address (fc00::/7)",
            Range::Multicast => "a multicast address",
            Range::Broadcast => "the broadcast address",
            Range::Documentation => "a documentation address",
            Range::Benchmarking => "a benchmarking address",
            Range::Reserved => "a reserved address",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Range::Unspecified => "address_unspecified",
            Range::Loopback => "address_loopback",
            Range::Private => "address_private",
            Range::Shared => "address_shared",
            Range::LinkLocal => "address_link_local",
            Range::UniqueLocal => "address_unique_local",
            Range::Multicast => "address_multicast",
            Range::Broadcast => "address_broadcast",
            Range::Documentation => "address_documentation",
            Range::Benchmarking => "address_benchmarking",
            Range::Reserved => "address_reserved",
        }
    }
}

/// Why an outbound request was refused or failed. Messages name the rule, never the URL or
/// the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("the URL is not an absolute http(s) URL with a host")]
    Malformed,
    #[error("the URL must not carry a user name or password")]
    UserInfo,
    #[error(
        "the URL must use https (plain http only to a loopback address, and only with the \
         development setting [outbound] allow_http_loopback)"
    )]
    NotHttps,
    #[error(
        "the host is {}, which the server does not call (a network may be allowed with \
         [outbound] allow_networks)",
        .0.describe()
    )]
    Address(Range),
    #[error("the host name does not resolve")]
    Resolve,
    #[error("no connection to the host")]
    Connect,
    #[error("no answer in time")]
    Timeout,
    #[error("the request failed")]
    Network,
    #[error("the answer is longer than {limit} bytes")]
    ResponseTooLarge { limit: usize },
}

impl OutboundError {
    /// A short fixed name (`not_https`, `address_link_local`, `timeout`…) for logs and the
    /// audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            OutboundError::Malformed => "malformed_url",
            OutboundError::UserInfo => "user_info",
            OutboundError::NotHttps => "not_https",
            OutboundError::Address(r) => r.reason(),
            OutboundError::Resolve => "dns",
            OutboundError::Connect => "connect",
            OutboundError::Timeout => "timeout",
            OutboundError::Network => "network",
            OutboundError::ResponseTooLarge { .. } => "response_too_large",
        }
    }

    /// Whether the policy refused the URL (nothing was sent), rather than the network or
    /// the other side failing.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            OutboundError::Malformed
                | OutboundError::UserInfo
                | OutboundError::NotHttps
                | OutboundError::Address(_)
        )
    }
}

/// IPv4 ranges, first match wins (broadcast before the reserved 240.0.0.0/4 holding it).
const V4_RANGES: [(Ipv4Net, Range); 15] = [
    (v4(0, 0, 0, 0, 8), Range::Unspecified),
    (v4(10, 0, 0, 0, 8), Range::Private),
    (v4(100, 64, 0, 0, 10), Range::Shared),
    (v4(127, 0, 0, 0, 8), Range::Loopback),
    (v4(169, 254, 0, 0, 16), Range::LinkLocal),
    (v4(172, 16, 0, 0, 12), Range::Private),
    (v4(192, 0, 0, 0, 24), Range::Reserved),
    (v4(192, 0, 2, 0, 24), Range::Documentation),
    (v4(192, 88, 99, 0, 24), Range::Reserved),
    (v4(192, 168, 0, 0, 16), Range::Private),
    (v4(198, 18, 0, 0, 15), Range::Benchmarking),
    (v4(198, 51, 100, 0, 24), Range::Documentation),
    (v4(203, 0, 113, 0, 24), Range::Documentation),
    (v4(224, 0, 0, 0, 4), Range::Multicast),
    (v4(255, 255, 255, 255, 32), Range::Broadcast),
];
/// 240.0.0.0/4 (future use), after the broadcast address inside it.
const V4_RESERVED: Ipv4Net = v4(240, 0, 0, 0, 4);

/// IPv6 ranges that embed no IPv4 address.
const V6_RANGES: [(Ipv6Net, Range); 11] = [
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), Range::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Range::Loopback),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), Range::Reserved),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Range::Reserved),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), Range::Benchmarking),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        Range::Documentation,
    ),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), Range::Documentation),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Range::UniqueLocal),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Range::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Range::Reserved),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Range::Multicast),
];
/// IPv4-compatible (deprecated; `::` and `::1` are matched before), NAT64 (RFC 6052) and
/// 6to4 (RFC 3056): the IPv4 address they carry decides.
const V6_COMPATIBLE: Ipv6Net = v6([0, 0, 0, 0, 0, 0, 0, 0], 96);
const V6_NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const V6_6TO4: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
    )
}

/// The refused range `ip` is in, or `None` for a public unicast address.
pub fn classify(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Range> {
    V4_RANGES
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|&(_, range)| range)
        .or_else(|| V4_RESERVED.contains(&ip).then_some(Range::Reserved))
}

fn classify_v6(ip: Ipv6Addr) -> Option<Range> {
    // ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket.
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return classify_v4(mapped);
    }
    if let Some(&(_, range)) = V6_RANGES.iter().find(|(net, _)| net.contains(&ip)) {
        return Some(range);
    }
    let o = ip.octets();
    if V6_COMPATIBLE.contains(&ip) {
        // Deprecated and never public, whatever it embeds.
        let embedded = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
        return Some(classify_v4(embedded).unwrap_or(Range::Reserved));
    }
    if V6_NAT64.contains(&ip) {
        return classify_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if V6_6TO4.contains(&ip) {
        return classify_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// `localhost` and names under it (RFC 6761 §6.3), which resolve to loopback addresses.
fn is_localhost(domain: &str) -> bool {
    let d = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    d == "localhost" || d.ends_with(".localhost")
}

/// What an outbound request got back: the status, the headers and at most
/// `max_response_bytes` of body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// Resolves no name: the outbound client is pinned to the checked addresses of its one host,
/// and any other name (there should be none) fails instead of being looked up.
struct NoLookups;

impl reqwest::dns::Resolve for NoLookups {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(std::future::ready(Err(
            Box::new(OutboundError::Resolve) as Box<dyn std::error::Error + Send + Sync>
        )))
    }
}

impl OutboundPolicy {
    /// Whether `allow_networks` holds `ip` (an IPv4-mapped address as its IPv4 address too).
    fn allows_network(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.allow_networks
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
    }

    /// One address the URL's host is, or resolves to. `http`: the URL is plain http, which
    /// only loopback addresses under the development setting may take.
    pub fn check_address(&self, ip: IpAddr, http: bool) -> Result<(), OutboundError> {
        let range = classify(ip);
        if http {
            return if self.allow_http_loopback && range == Some(Range::Loopback) {
                Ok(())
            } else {
                Err(OutboundError::NotHttps)
            };
        }
        match range {
            None => Ok(()),
            Some(_) if self.allows_network(ip) => Ok(()),
            Some(Range::Loopback) if self.allow_http_loopback => Ok(()),
            Some(range) => Err(OutboundError::Address(range)),
        }
    }

    /// Every address a host resolved to (an empty list resolved to nothing).
    pub fn check_resolved(&self, addrs: &[IpAddr], http: bool) -> Result<(), OutboundError> {
        if addrs.is_empty() {
            return Err(OutboundError::Resolve);
        }
        addrs
            .iter()
            .try_for_each(|&ip| self.check_address(ip, http))
    }

    /// The scheme, user info and host; whether the URL is plain http.
    fn check_form<'u>(&self, url: &'u Url) -> Result<(Host<&'u str>, bool), OutboundError> {
        let host = url.host().ok_or(OutboundError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::UserInfo);
        }
        match url.scheme() {
            "https" => Ok((host, false)),
            "http" if self.allow_http_loopback => Ok((host, true)),
            "http" => Err(OutboundError::NotHttps),
            _ => Err(OutboundError::Malformed),
        }
    }

    /// The check at registration, without DNS: https (http only to a loopback address under
    /// the development setting), no user info, and a host that is neither an address nor a
    /// `localhost` name in a refused range. Names are resolved and checked at every request.
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundError> {
        let (host, http) = self.check_form(url)?;
        match host {
            Host::Ipv4(a) => self.check_address(a.into(), http),
            Host::Ipv6(a) => self.check_address(a.into(), http),
            Host::Domain(d) if is_localhost(d) => {
                self.check_address(Ipv4Addr::LOCALHOST.into(), http)
            }
            Host::Domain(_) if http => Err(OutboundError::NotHttps),
            Host::Domain(_) => Ok(()),
        }
    }

    /// Parses `text` and checks it ([`OutboundPolicy::check_url`]).
    pub fn parse_url(&self, text: &str) -> Result<Url, OutboundError> {
        let url = Url::parse(text).map_err(|_| OutboundError::Malformed)?;
        self.check_url(&url)?;
        Ok(url)
    }

    /// Sends one request to `url` under the policy: the URL checked, its host resolved once and
    /// every address checked, the request sent to exactly those addresses, no redirect
    /// followed, at most `max_response_bytes` of answer read, all within `timeout`. `build`
    /// adds the headers and body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &Url,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer, OutboundError> {
        tokio::time::timeout(self.timeout, self.send_checked(method, url, build))
            .await
            .map_err(|_| OutboundError::Timeout)?
    }

    async fn send_checked(
        &self,
        method: reqwest::Method,
        url: &Url,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer, OutboundError> {
        let (host, http) = self.check_form(url)?;
        let port = url
            .port_or_known_default()
            .ok_or(OutboundError::Malformed)?;
        let mut client = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(NoLookups));
        match host {
            Host::Ipv4(a) => self.check_address(a.into(), http)?,
            Host::Ipv6(a) => self.check_address(a.into(), http)?,
            Host::Domain(name) => {
                let addrs = self.resolve(name, port).await?;
                let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
                self.check_resolved(&ips, http)?;
                client = client.resolve_to_addrs(name, &addrs);
            }
        }
        let client = client.build().map_err(|_| OutboundError::Network)?;
        let mut response = build(client.request(method, url.clone()))
            .send()
            .await
            .map_err(|e| network_error(&e))?;
        let limit = self.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(OutboundError::ResponseTooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| network_error(&e))? {
            if body.len() + chunk.len() > limit {
                return Err(OutboundError::ResponseTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body,
        })
    }

    /// The addresses of `name`, looked up once.
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, OutboundError> {
        let found =
            tokio::time::timeout(self.connect_timeout, tokio::net::lookup_host((name, port)))
                .await
                .map_err(|_| OutboundError::Timeout)?
                .map_err(|_| OutboundError::Resolve)?;
        Ok(found.collect())
    }
}

/// A `reqwest` failure, without its URL.
fn network_error(e: &reqwest::Error) -> OutboundError {
    if e.is_timeout() {
        OutboundError::Timeout
    } else if e.is_connect() {
        OutboundError::Connect
    } else {
        OutboundError::Network
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn dev() -> OutboundPolicy {
        OutboundPolicy {
            allow_http_loopback: true,
            ..Default::default()
        }
    }

    /// Every range, in IPv4 and IPv6 and in the IPv6 forms that embed an IPv4 address, with
    /// the first and last address where the edges matter.
    #[test]
    fn the_classifier_knows_every_refused_range() {
        use Range::*;
        for (text, want) in [
            ("0.0.0.0", Unspecified),
            ("0.255.255.255", Unspecified),
            ("::", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("10.0.0.0", Private),
            ("10.255.255.255", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.0", Shared),
            ("100.127.255.255", Shared),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("255.255.255.255", Broadcast),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.255", Documentation),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("2001:2::1", Benchmarking),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("192.0.0.8", Reserved),
            ("192.88.99.1", Reserved),
            ("100::1", Reserved),
            ("fec0::1", Reserved),
            ("64:ff9b:1::1", Reserved),
            // IPv4-mapped: the IPv4 address it is.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:100.64.1.1", Shared),
            // IPv4-compatible (deprecated): the embedded range, else reserved.
            ("::127.0.0.1", Loopback),
            ("::169.254.169.254", LinkLocal),
            ("::8.8.8.8", Reserved),
            // NAT64 and 6to4 carry the IPv4 address they reach.
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("2002:7f00:1::", Loopback),
            ("2002:c0a8:101::1", Private),
        ] {
            assert_eq!(classify(ip(text)), Some(want), "{text}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "fbff:ffff::1",
        ] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn refused_addresses_name_their_rule_and_allowed_networks_let_them_through() {
        let policy = OutboundPolicy::default();
        assert_eq!(
            policy.check_address(ip("169.254.169.254"), false),
            Err(OutboundError::Address(Range::LinkLocal))
        );
        assert_eq!(
            policy.check_address(ip("::ffff:127.0.0.1"), false),
            Err(OutboundError::Address(Range::Loopback))
        );
        assert_eq!(policy.check_address(ip("8.8.8.8"), false), Ok(()));
        let err = OutboundError::Address(Range::LinkLocal);
        assert_eq!(err.reason(), "address_link_local");
        assert!(err.to_string().contains("link-local"), "{err}");
        assert!(err.is_refusal() && !OutboundError::Timeout.is_refusal());

        let allowing = OutboundPolicy {
            allow_networks: vec!["10.20.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()],
            ..Default::default()
        };
        assert_eq!(allowing.check_address(ip("10.20.1.2"), false), Ok(()));
        // The IPv4-mapped form of an allowed address is allowed too.
        assert_eq!(
            allowing.check_address(ip("::ffff:10.20.1.2"), false),
            Ok(())
        );
        assert_eq!(allowing.check_address(ip("fd00::5"), false), Ok(()));
        assert_eq!(
            allowing.check_address(ip("10.21.0.1"), false),
            Err(OutboundError::Address(Range::Private))
        );
        // An allowed network is still https only.
        assert_eq!(
            allowing.check_address(ip("10.20.1.2"), true),
            Err(OutboundError::NotHttps)
        );
    }

    #[test]
    fn every_resolved_address_must_pass() {
        let policy = OutboundPolicy::default();
        assert_eq!(policy.check_resolved(&[ip("8.8.8.8")], false), Ok(()));
        assert_eq!(
            policy.check_resolved(&[ip("8.8.8.8"), ip("10.0.0.1")], false),
            Err(OutboundError::Address(Range::Private))
        );
        assert_eq!(
            policy.check_resolved(&[ip("2606:4700:4700::1111"), ip("::1")], false),
            Err(OutboundError::Address(Range::Loopback))
        );
        assert_eq!(
            policy.check_resolved(&[], false),
            Err(OutboundError::Resolve)
        );
        // Development: http only when every address is loopback.
        assert_eq!(
            dev().check_resolved(&[ip("127.0.0.1"), ip("::1")], true),
            Ok(())
        );
        assert_eq!(
            dev().check_resolved(&[ip("127.0.0.1"), ip("192.168.0.1")], true),
            Err(OutboundError::NotHttps)
        );
    }

    #[test]
    fn registration_checks_scheme_user_info_and_address_literals() {
        let policy = OutboundPolicy::default();
        for good in [
            "https://push.example.net/wpush/1",
            "https://push.example.net:8443/x?y=1",
            "https://8.8.8.8/x",
            "https://[2606:4700:4700::1111]/x",
        ] {
            assert_eq!(policy.check_url(&url(good)), Ok(()), "{good}");
        }
        use OutboundError::*;
        for (bad, want) in [
            ("http://push.example.net/x", NotHttps),
            ("http://127.0.0.1:8080/x", NotHttps),
            ("http://localhost:8080/x", NotHttps),
            ("ftp://push.example.net/x", Malformed),
            ("https://user:pw@push.example.net/x", UserInfo),
            ("https://0.0.0.0:8443/x", Address(Range::Unspecified)),
            (
                "https://[::ffff:127.0.0.1]:8443/x",
                Address(Range::Loopback),
            ),
            (
                "https://169.254.169.254/latest/meta-data",
                Address(Range::LinkLocal),
            ),
            ("https://127.0.0.1/x", Address(Range::Loopback)),
            ("https://[::1]/x", Address(Range::Loopback)),
            ("https://localhost/x", Address(Range::Loopback)),
            ("https://api.localhost./x", Address(Range::Loopback)),
            ("https://10.0.0.1/x", Address(Range::Private)),
            ("https://[fd00::1]/x", Address(Range::UniqueLocal)),
            ("https://100.64.0.1/x", Address(Range::Shared)),
            ("https://255.255.255.255/x", Address(Range::Broadcast)),
            ("https://224.0.0.1/x", Address(Range::Multicast)),
            // The URL parser reads these as IPv4 addresses (WHATWG): 127.0.0.1, 10.0.0.1.
            ("https://2130706433/x", Address(Range::Loopback)),
            ("https://0x7f.1/x", Address(Range::Loopback)),
            ("https://012.0.0.1/x", Address(Range::Private)),
        ] {
            assert_eq!(policy.check_url(&url(bad)), Err(want), "{bad}");
        }
        assert_eq!(policy.parse_url("not a url"), Err(OutboundError::Malformed));

        // Development: loopback by http or https; other http still refused.
        let dev = dev();
        for good in [
            "http://127.0.0.1:9/ping",
            "http://[::1]:9/ping",
            "http://localhost:9/ping",
            "https://localhost:9/ping",
            "https://127.0.0.1/x",
        ] {
            assert_eq!(dev.check_url(&url(good)), Ok(()), "{good}");
        }
        for bad in [
            "http://push.example.net/x",
            "http://10.0.0.1/x",
            "http://0.0.0.0/x",
        ] {
            assert_eq!(dev.check_url(&url(bad)), Err(NotHttps), "{bad}");
        }
        assert_eq!(
            dev.check_url(&url("https://169.254.169.254/")),
            Err(Address(Range::LinkLocal))
        );
    }

    // ---- sending: a raw HTTP/1.1 server on 127.0.0.1 that counts its connections ----

    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the test server writes after reading a request's head.
    #[derive(Clone, Copy)]
    enum Reply {
        /// These bytes, then close.
        Bytes(&'static [u8]),
        /// A chunked body that never ends.
        Endless,
        /// Nothing, ever.
        Silent,
    }

    async fn server(reply: Reply) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    match reply {
                        Reply::Bytes(bytes) => {
                            let _ = stream.write_all(bytes).await;
                        }
                        Reply::Endless => {
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                                .await;
                            let chunk = format!("2000\r\n{}\r\n", "x".repeat(0x2000));
                            while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                        }
                        Reply::Silent => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                    }
                });
            }
        });
        (port, connections)
    }

    async fn get(policy: &OutboundPolicy, text: &str) -> Result<Answer, OutboundError> {
        policy.send(reqwest::Method::GET, &url(text), |r| r).await
    }

    /// The check happens at every request, on what the name resolves to then: `localhost`
    /// resolves to a loopback address, which is refused before any connection; so are the
    /// address literals the review used. Under the development setting the same name is
    /// resolved, and the request goes to that checked address.
    #[tokio::test]
    async fn internal_addresses_are_refused_at_send_time_before_any_connection() {
        let (port, connections) = server(Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ))
        .await;
        let policy = OutboundPolicy::default();
        for (target, want) in [
            (format!("https://localhost:{port}/"), Range::Loopback),
            (format!("https://127.0.0.1:{port}/"), Range::Loopback),
            (
                format!("https://[::ffff:127.0.0.1]:{port}/"),
                Range::Loopback,
            ),
            (format!("https://0.0.0.0:{port}/"), Range::Unspecified),
            (format!("https://169.254.169.254:{port}/"), Range::LinkLocal),
        ] {
            assert_eq!(
                get(&policy, &target).await.unwrap_err(),
                OutboundError::Address(want),
                "{target}"
            );
        }
        assert_eq!(
            get(&policy, &format!("http://localhost:{port}/"))
                .await
                .unwrap_err(),
            OutboundError::NotHttps
        );
        assert_eq!(
            connections.load(Ordering::SeqCst),
            0,
            "nothing was contacted"
        );

        let answer = get(&dev(), &format!("http://localhost:{port}/"))
            .await
            .unwrap();
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_slice()),
            (200, &b"ok"[..])
        );
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        // An allowed network lets https through to it (here nothing speaks TLS: the
        // handshake is given up on after the connect timeout).
        let allowing = OutboundPolicy {
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            connect_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let err = get(&allowing, &format!("https://localhost:{port}/"))
            .await
            .unwrap_err();
        assert!(!err.is_refusal(), "{err:?}");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    /// A redirect is the answer: its target is never called.
    #[tokio::test]
    async fn redirects_are_answers_and_never_followed() {
        let (inside_port, inside) = server(Reply::Bytes(
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        ))
        .await;
        let location: &'static str = Box::leak(
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{inside_port}/inside\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let (port, _) = server(Reply::Bytes(location.as_bytes())).await;
        let answer = dev()
            .send(
                reqwest::Method::POST,
                &url(&format!("http://127.0.0.1:{port}/ping")),
                |r| r.body("{}"),
            )
            .await
            .unwrap();
        assert_eq!(answer.status.as_u16(), 307);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(inside.load(Ordering::SeqCst), 0);
    }

    /// At most `max_response_bytes` are read: a longer declared length is refused before
    /// reading, an endless body after the bound, and an answer within it is returned whole.
    #[tokio::test]
    async fn answers_are_read_only_up_to_the_bound() {
        let policy = OutboundPolicy {
            max_response_bytes: 1024,
            ..dev()
        };
        let too_large = OutboundError::ResponseTooLarge { limit: 1024 };
        let (port, _) = server(Reply::Endless).await;
        let started = std::time::Instant::now();
        assert_eq!(
            get(&policy, &format!("http://127.0.0.1:{port}/"))
                .await
                .unwrap_err(),
            too_large
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        let (port, _) = server(Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\nxx",
        ))
        .await;
        assert_eq!(
            get(&policy, &format!("http://127.0.0.1:{port}/"))
                .await
                .unwrap_err(),
            too_large
        );
        let body = "y".repeat(1025);
        let close_delimited: &'static str = Box::leak(
            format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{body}").into_boxed_str(),
        );
        let (port, _) = server(Reply::Bytes(close_delimited.as_bytes())).await;
        assert_eq!(
            get(&policy, &format!("http://127.0.0.1:{port}/"))
                .await
                .unwrap_err(),
            too_large
        );
        let exact: &'static str = Box::leak(
            format!(
                "HTTP/1.1 201 Created\r\nConnection: close\r\n\r\n{}",
                &body[..1024]
            )
            .into_boxed_str(),
        );
        let (port, _) = server(Reply::Bytes(exact.as_bytes())).await;
        let answer = get(&policy, &format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap();
        assert_eq!((answer.status.as_u16(), answer.body.len()), (201, 1024));
    }

    /// A server that never answers costs at most the timeout.
    #[tokio::test]
    async fn a_silent_server_is_given_up_on_after_the_timeout() {
        let (port, connections) = server(Reply::Silent).await;
        let policy = OutboundPolicy {
            timeout: Duration::from_millis(300),
            ..dev()
        };
        let started = std::time::Instant::now();
        assert_eq!(
            get(&policy, &format!("http://127.0.0.1:{port}/"))
                .await
                .unwrap_err(),
            OutboundError::Timeout
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }
}
