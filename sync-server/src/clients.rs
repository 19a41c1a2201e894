//! Client addresses: which address a connection or a request counts against for the per-address
//! limits (connections, enrollments, failed authentications).
//!
//! The server usually sits behind a reverse proxy, so every connection comes from the proxy's
//! address. Requests that arrive from a *trusted proxy* are counted under the address the proxy
//! names in `X-Forwarded-For` (read from the right, skipping further trusted proxies: the entries
//! on the left are whatever the client sent and prove nothing). Connections are counted before
//! any header is read, so a trusted proxy's connections are exempt from the per-address cap
//! instead. IPv6 addresses count by their /64 network: one subscriber usually holds all of it.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// `X-Forwarded-For` entries looked at, from the right: enough for any real chain of proxies,
/// and a bound on the work a long header can cause.
const MAX_FORWARDED_HOPS: usize = 16;

/// An address or a network of addresses, e.g. `127.0.0.1`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in this network (an IPv4 address written as IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr = addr
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("{text:?} is not an IP address or network (e.g. 10.0.0.0/8)"))?
            .to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// The reverse proxies whose `X-Forwarded-For` names the client (and whose connections are not
/// capped per address).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// The default: a proxy on the same machine (the server listens on loopback by default).
    pub fn loopback() -> Self {
        Self(vec![
            Network {
                addr: IpAddr::from([127, 0, 0, 1]),
                prefix: 32,
            },
            Network {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ])
    }

    /// Parses a comma-separated list of addresses and networks; `none` (or nothing) trusts none.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("none") {
            return Ok(Self::default());
        }
        text.split(',')
            .map(str::parse)
            .collect::<Result<Vec<Network>, String>>()
            .map(Self)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

/// The address a request counts against: the peer, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusted.contains(client) {
        return client;
    }
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let hops = values
        .iter()
        .rev()
        .flat_map(|v| v.rsplit(','))
        .take(MAX_FORWARDED_HOPS);
    for hop in hops {
        // An entry that is no address ends the chain: the last trusted hop is the client then.
        let Some(ip) = parse_hop(hop.trim()) else {
            break;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// What an address is counted under: IPv4 addresses as they are, IPv6 addresses by their /64
/// network (otherwise one subscriber could take 2^64 turns).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn networks_parse_and_match() {
        let net: Network = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4 written as IPv6");
        assert!(!net.contains(ip("fd00::1")));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6: Network = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("proxy".parse::<Network>().is_err());
        assert_eq!(
            TrustedProxies::parse("127.0.0.1, 10.0.0.0/8,::1")
                .unwrap()
                .to_string(),
            "127.0.0.1,10.0.0.0/8,::1"
        );
        assert_eq!(TrustedProxies::parse("none").unwrap().to_string(), "none");
        assert_eq!(TrustedProxies::loopback().to_string(), "127.0.0.1,::1");
    }

    #[test]
    fn only_a_trusted_proxy_may_name_the_client_and_only_by_the_entry_it_added() {
        let trusted = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").unwrap();
        // A client connecting directly cannot pick its own address.
        let spoofed = forwarded(&["198.51.100.7"]);
        assert_eq!(
            client_address(ip("203.0.113.5"), &spoofed, &trusted),
            ip("203.0.113.5")
        );
        // Through the proxy: the right-most entry, which the proxy appended; what the client
        // sent on the left is ignored.
        let through = forwarded(&["198.51.100.7, 203.0.113.5"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &through, &trusted),
            ip("203.0.113.5")
        );
        // Two proxies in a row; headers split over several lines; ports.
        let chain = forwarded(&["198.51.100.7", "203.0.113.5:4431, 10.0.0.2"]);
        assert_eq!(
            client_address(ip("::ffff:127.0.0.1"), &chain, &trusted),
            ip("203.0.113.5")
        );
        // A proxy that sends no header, or garbage: the proxy itself.
        assert_eq!(
            client_address(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &forwarded(&["unknown"]), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_network() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff::9")),
            address_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
