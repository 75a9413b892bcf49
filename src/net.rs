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

// ---- Outbound targets: where tenure itself may connect ----

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> IpNet {
    IpNet { addr: IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)), prefix }
}

const fn v6(segments: [u16; 8], prefix: u8) -> IpNet {
    let [a, b, c, d, e, f, g, h] = segments;
    IpNet { addr: IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, e, f, g, h)), prefix }
}

/// The special-purpose ranges (IANA registries, RFC 6890 and its updates)
/// an outbound request must not reach unless the operator allows them:
/// the server's own host, private networks, link-local (cloud metadata
/// services at 169.254.169.254 and fd00:ec2::254), and addresses that are
/// not a single public host.
const NON_PUBLIC: [(IpNet, &str); 26] = [
    (v4(0, 0, 0, 0, 8), "an unspecified (\"this network\") address"),
    (v4(10, 0, 0, 0, 8), "a private address (RFC 1918)"),
    (v4(100, 64, 0, 0, 10), "a shared (carrier-grade NAT) address (RFC 6598)"),
    (v4(127, 0, 0, 0, 8), "a loopback address"),
    (v4(169, 254, 0, 0, 16), "a link-local address (cloud metadata services live here)"),
    (v4(172, 16, 0, 0, 12), "a private address (RFC 1918)"),
    (v4(192, 0, 0, 0, 24), "an IETF protocol address (RFC 6890)"),
    (v4(192, 0, 2, 0, 24), "a documentation address (RFC 5737)"),
    (v4(192, 88, 99, 0, 24), "a 6to4 relay address (RFC 7526)"),
    (v4(192, 168, 0, 0, 16), "a private address (RFC 1918)"),
    (v4(198, 18, 0, 0, 15), "a benchmarking address (RFC 2544)"),
    (v4(198, 51, 100, 0, 24), "a documentation address (RFC 5737)"),
    (v4(203, 0, 113, 0, 24), "a documentation address (RFC 5737)"),
    (v4(224, 0, 0, 0, 4), "a multicast address"),
    (v4(240, 0, 0, 0, 4), "a reserved or broadcast address"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "the unspecified address"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "a loopback address"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), "an IPv4-compatible address (deprecated)"),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "a local-use NAT64 address (RFC 8215)"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "a discard-only address (RFC 6666)"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "a Teredo address (RFC 4380)"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "a documentation address (RFC 3849)"),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "a unique local (private) address (RFC 4193)"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "a link-local address"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "a site-local address (deprecated)"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "a multicast address"),
];

/// Why an address is not a public one: the range it is in and what the
/// range is. `None` for a public address. An IPv6 address that carries
/// an IPv4 one (IPv4-mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) is judged by the IPv4 address.
pub fn non_public_range(ip: IpAddr) -> Option<(IpNet, &'static str)> {
    let ip = canonical(ip);
    if let IpAddr::V6(v6) = ip {
        let bits = u128::from(v6);
        let embedded = if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
            Some((bits & 0xffff_ffff) as u32)
        } else if bits >> 112 == 0x2002 {
            Some(((bits >> 80) & 0xffff_ffff) as u32)
        } else {
            None
        };
        if let Some(found) = embedded.and_then(|v4| non_public_range(IpAddr::V4(v4.into()))) {
            return Some(found);
        }
    }
    NON_PUBLIC.iter().find(|(net, _)| net.contains(ip)).copied()
}

/// Where tenure's own outbound requests may go (push delivery of the
/// revocation feed): any public address, and the non-public ranges the
/// operator listed (`feed.allowed_private_networks`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundTargets {
    allowed: Vec<IpNet>,
}

/// An address an outbound request may not reach, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedTarget {
    pub ip: IpAddr,
    pub range: IpNet,
    pub what: &'static str,
}

impl fmt::Display for RefusedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is {} ({})", self.ip, self.what, self.range)
    }
}

impl OutboundTargets {
    /// Public addresses, and these non-public ranges.
    pub fn allowing(allowed: Vec<IpNet>) -> Self {
        OutboundTargets { allowed }
    }

    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether a request may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), RefusedTarget> {
        if self.allowed.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        match non_public_range(ip) {
            None => Ok(()),
            Some((range, what)) => Err(RefusedTarget { ip: canonical(ip), range, what }),
        }
    }
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

    #[test]
    fn outbound_requests_reach_public_addresses_and_only_the_private_ranges_allowed() {
        let strict = OutboundTargets::default();
        for public in ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "172.32.0.1", "100.128.0.1", "::ffff:8.8.8.8"] {
            assert_eq!(strict.check(ip(public)), Ok(()), "{public}");
        }
        for (private, what) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("0.0.0.0", "unspecified"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique local"),
            ("fc00::1", "unique local"),
            ("fe80::1", "link-local"),
            ("fd00:ec2::254", "unique local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
            ("ff02::1", "multicast"),
        ] {
            let refused = strict.check(ip(private)).expect_err(private);
            assert!(refused.to_string().contains(what), "{private}: {refused}");
        }
        let lab =
            OutboundTargets::allowing(vec!["127.0.0.0/8".parse().expect("net"), "10.1.0.0/16".parse().expect("net")]);
        assert_eq!(lab.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(lab.check(ip("10.1.2.3")), Ok(()));
        assert!(lab.check(ip("10.2.0.1")).is_err(), "only the ranges listed");
        assert!(lab.check(ip("169.254.169.254")).is_err());
        assert_eq!(
            strict.check(ip("169.254.169.254")).expect_err("metadata").to_string(),
            "169.254.169.254 is a link-local address (cloud metadata services live here) (169.254.0.0/16)"
        );
    }
}
