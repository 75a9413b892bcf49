//! The client's address behind reverse proxies.
//!
//! `X-Forwarded-For` is honoured only when the peer is one of the operator's
//! `trusted_proxies`: the list is read from the right (the hop nearest to
//! us), skipping trusted proxies, and the first address that is not trusted
//! is the client. Without trusted proxies, or from any other peer, the header
//! is ignored: anyone can write it. Throttles, audit records and the `ip` of
//! sessions all use this address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        let bad = || format!("{s:?} is not an IP address or CIDR range (like 10.0.0.1, 10.0.0.0/8 or fd00::/8)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The operator's reverse proxies (`trusted_proxies`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address for a connection from `peer` carrying these
    /// `X-Forwarded-For` header values (in the order received).
    pub fn client_addr<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.into_iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // Something that is not an address: the hop that wrote it (a
            // trusted proxy) passed on garbage; stop at what we know.
            let Some(ip) = parse_hop(hop) else { return client };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())).map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().expect("net")).collect())
    }

    #[test]
    fn parses_addresses_and_ranges() {
        let net: IpNet = "10.0.0.0/8".parse().expect("v4 range");
        assert!(net.contains(ip("10.1.2.3")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped");
        let one: IpNet = "192.168.1.7".parse().expect("one address");
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let v6: IpNet = "fd00::/8".parse().expect("v6 range");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!("0.0.0.0/0".parse::<IpNet>().expect("all").contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.0/x", "", "::/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(none.client_addr(ip("127.0.0.1"), ["203.0.113.9"]), ip("127.0.0.1"), "no trusted proxies");
        let p = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(p.client_addr(ip("198.51.100.1"), ["203.0.113.9"]), ip("198.51.100.1"), "untrusted peer");
        assert_eq!(p.client_addr(ip("127.0.0.1"), ["203.0.113.9"]), ip("203.0.113.9"));
        assert_eq!(
            p.client_addr(ip("127.0.0.1"), ["1.1.1.1, 203.0.113.9", "10.0.0.5"]),
            ip("203.0.113.9"),
            "a spoofed leftmost entry is not believed"
        );
        assert_eq!(p.client_addr(ip("127.0.0.1"), ["10.0.0.7, 10.0.0.5"]), ip("10.0.0.7"), "all trusted");
        assert_eq!(p.client_addr(ip("127.0.0.1"), []), ip("127.0.0.1"), "no header");
        assert_eq!(p.client_addr(ip("127.0.0.1"), ["garbage, 10.0.0.5"]), ip("10.0.0.5"), "stops at garbage");
        assert_eq!(p.client_addr(ip("127.0.0.1"), ["203.0.113.9:4711"]), ip("203.0.113.9"), "with a port");
    }
}
