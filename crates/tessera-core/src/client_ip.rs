//! Which address a request comes from, for per-IP rate limits and the audit log.
//!
//! Behind a load balancer every request arrives from the balancer's address, so per-IP
//! limits would lump all users together. The balancer names the real client in
//! `X-Forwarded-For`, but any client can send that header too, so it is believed only from
//! peers the operator lists as trusted proxies (`--trusted-proxies`), and then only as far
//! as the chain of trusted hops goes: the client is the right-most address in the chain that
//! is not itself a trusted proxy. Anything to the left of it was written by the client and is
//! ignored.
//!
//! CIDRs are parsed by hand (std's `IpAddr` and a prefix length): a dozen lines, where a
//! dependency would add nothing this needs.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr},
    str::FromStr,
};

use crate::Invalid;

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `fd00::/8`; a bare address is a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits cleared), IPv4 kept as IPv4.
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask32(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// The first `prefix` bits of `bits`.
fn mask32(bits: u32, prefix: u8) -> u32 {
    bits & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(bits: u128, prefix: u8) -> u128 {
    bits & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = Invalid;

    fn from_str(raw: &str) -> Result<Self, Invalid> {
        let invalid = || {
            Invalid(format!(
                "\"{raw}\" is not an IP network like 10.0.0.0/8, 192.0.2.7 or fd00::/8."
            ))
        };
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let address: IpAddr = address.parse().map_err(|_| invalid())?;
        let address = address.to_canonical();
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| invalid())?
            }
            Some(_) => return Err(invalid()),
        };
        if prefix > max {
            return Err(Invalid(format!(
                "\"{raw}\": the prefix length must be at most {max}."
            )));
        }
        let network = match address {
            IpAddr::V4(v4) => IpAddr::V4(mask32(u32::from(v4), prefix).into()),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask128(u128::from(v6), prefix))),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed; empty (the default) believes none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client's address: `peer` (the socket's address) unless it is a trusted proxy, in
    /// which case the right-most `X-Forwarded-For` entry that is not a trusted proxy.
    /// `forwarded_for` holds the header's values in the order received (several headers
    /// count as one comma-separated list). When the chain ends in an entry that is not an
    /// address, the last trusted hop before it is the answer; when every entry is trusted,
    /// the left-most.
    pub fn client_ip<'a, I>(&self, peer: IpAddr, forwarded_for: I) -> IpAddr
    where
        I: DoubleEndedIterator<Item = &'a str>,
    {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        for entry in forwarded_for.rev().flat_map(|value| value.rsplit(',')) {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some(hop) = parse_hop(entry) else {
                return client;
            };
            client = hop;
            if !self.contains(hop) {
                return hop;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, or (as some proxies write) an address with a
/// port (`192.0.2.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

impl FromStr for TrustedProxies {
    type Err = Invalid;

    /// A comma-separated list of CIDRs; blanks between commas are skipped.
    fn from_str(raw: &str) -> Result<Self, Invalid> {
        raw.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    fn proxies(raw: &str) -> TrustedProxies {
        raw.parse().unwrap()
    }

    #[test]
    fn parses_ipv4_and_ipv6_networks() {
        let p = proxies(" 10.0.0.0/8, 192.0.2.7 ,fd00::/8,, 2001:db8::1/128,0.0.0.0/0");
        assert_eq!(p.0.len(), 5);
        assert!(p.contains(ip("10.255.1.2")));
        assert!(p.contains(ip("192.0.2.7")));
        assert!(p.contains(ip("fd12::1")));
        assert!(p.contains(ip("2001:db8::1")));
        assert!(!p.contains(ip("2001:db8::2")));
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
        let loopback = proxies("127.0.0.1/32");
        assert!(loopback.contains(ip("127.0.0.1")));
        assert!(!loopback.contains(ip("127.0.0.2")));
        // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6.
        assert!(loopback.contains(ip("::ffff:127.0.0.1")));
        assert!(TrustedProxies::from_str("").unwrap().is_empty());
    }

    #[test]
    fn refuses_malformed_networks() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "example.com",
            "10.0.0.0/08x",
            "/8",
            "10.0.0.0 /8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} accepted");
        }
        let err = TrustedProxies::from_str("10.0.0.0/8,300.1.1.1").unwrap_err();
        assert!(err.0.contains("300.1.1.1"), "{err}");
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), ["203.0.113.9"].into_iter()),
            ip("127.0.0.1")
        );
        let p = proxies("10.0.0.0/8");
        assert_eq!(
            p.client_ip(ip("192.0.2.1"), ["203.0.113.9"].into_iter()),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn takes_the_right_most_untrusted_address() {
        let p = proxies("10.0.0.0/8, fd00::/8");
        let peer = ip("10.0.0.1");
        // The client cannot choose its address by writing one to the left.
        assert_eq!(
            p.client_ip(peer, ["198.51.100.1, 203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
        // Trusted hops are skipped, across several headers and IPv6.
        assert_eq!(
            p.client_ip(
                peer,
                ["1.2.3.4, 2001:db8::7", "fd00::2,10.1.1.1"].into_iter()
            ),
            ip("2001:db8::7")
        );
        // Ports and IPv4-mapped addresses.
        assert_eq!(
            p.client_ip(peer, ["[2001:db8::8]:4711"].into_iter()),
            ip("2001:db8::8")
        );
        assert_eq!(
            p.client_ip(peer, ["203.0.113.5:80"].into_iter()),
            ip("203.0.113.5")
        );
        assert_eq!(
            p.client_ip(ip("::ffff:10.0.0.1"), ["::ffff:203.0.113.5"].into_iter()),
            ip("203.0.113.5")
        );
        // No header, or only trusted hops.
        assert_eq!(p.client_ip(peer, std::iter::empty()), peer);
        assert_eq!(
            p.client_ip(peer, ["10.9.9.9, 10.8.8.8"].into_iter()),
            ip("10.9.9.9")
        );
        // Garbage where an address should be: the last trusted hop answers.
        assert_eq!(
            p.client_ip(peer, ["203.0.113.9, 10.2.2.2, unknown"].into_iter()),
            peer
        );
        assert_eq!(
            p.client_ip(peer, ["unknown, 10.2.2.2"].into_iter()),
            ip("10.2.2.2")
        );
    }
}
