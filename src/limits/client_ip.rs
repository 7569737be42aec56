//! The client address a request counts against: the socket's peer, or, when the peer is a
//! trusted proxy (`POINTS_TRUSTED_PROXIES`), the nearest address in `X-Forwarded-For` that is not
//! one. IPv6 clients count by their /64, the block one subscriber holds.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed: addresses or CIDR blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR blocks (`10.0.0.0/8, ::1`).
    pub fn parse(raw: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("POINTS_TRUSTED_PROXIES: {item:?} is not an address or a CIDR block")
                })?;
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of `req`, as the key its limits count under.
    pub fn client_of(&self, req: &HttpRequest) -> Option<String> {
        let peer = req.peer_addr()?.ip();
        Some(key_of(self.client(peer, req)))
    }

    fn client(&self, peer: IpAddr, req: &HttpRequest) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Right to left: each hop appended the address it heard from.
        let hops = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// An IPv4 address as is; an IPv6 address as its /64.
fn key_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn client(trusted: &str, peer: &str, forwarded: Option<&str>) -> Option<String> {
        let mut req = TestRequest::default().peer_addr(peer.parse().expect("peer"));
        if let Some(f) = forwarded {
            req = req.insert_header(("X-Forwarded-For", f));
        }
        TrustedProxies::parse(trusted)
            .expect("proxies")
            .client_of(&req.to_http_request())
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        // Not a trusted peer: its header is the client's own words.
        assert_eq!(
            client("", "203.0.113.9:5000", Some("1.2.3.4")).as_deref(),
            Some("203.0.113.9")
        );
        // A trusted proxy: the nearest untrusted hop, whatever the client put before it.
        assert_eq!(
            client(
                "10.0.0.0/8",
                "10.0.0.2:5000",
                Some("6.6.6.6, 198.51.100.7, 10.0.0.3")
            )
            .as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            client("10.0.0.2", "10.0.0.2:5000", None).as_deref(),
            Some("10.0.0.2")
        );
        assert_eq!(
            client("10.0.0.2", "10.0.0.2:5000", Some("garbage")).as_deref(),
            Some("10.0.0.2")
        );
        assert_eq!(
            client("", "[2001:db8:1:2:3:4:5:6]:5000", None).as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert!(TrustedProxies::parse("10.0.0.0/8, nonsense").is_err());
    }
}
