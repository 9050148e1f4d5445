//! Calls out of Tutti to addresses a requester chose (model services,
//! webhooks, a run's announcement), kept away from the server's own
//! network.
//!
//! A requester's URL must not reach loopback, private, link-local or other
//! internal addresses (the server itself, its database, a cloud's metadata
//! service) unless the operator allows them: `--allow-private-urls` for all,
//! or an allow-list of hosts. The check is made where it cannot be
//! sidestepped: literal addresses are checked before the call, and names
//! are checked as the client resolves them (so a name that resolves to
//! `127.0.0.1`, or changes its answer between a check and the call, is
//! refused). The client follows no redirects, and answers are read against
//! a size cap ([`read_capped`]).

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Where calls out may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbound {
    /// Allow every address, internal ones included (an operator's choice
    /// for a trusted deployment, and for tests with local services).
    pub allow_private: bool,
    /// Hosts allowed even when they are internal, by name or address
    /// (`models.internal`, `10.0.0.7`).
    pub allowed_hosts: Vec<String>,
}

impl Outbound {
    /// Every address allowed.
    pub fn open() -> Self {
        Self {
            allow_private: true,
            allowed_hosts: Vec::new(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether `url` may be called: http(s) only, and not to an internal
    /// address unless allowed. Names are checked again as they resolve.
    pub fn check(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        }
        let Some(host) = parsed.host() else {
            return Err(format!("{url:?} names no host"));
        };
        if self.allow_private || self.host_allowed(&host.to_string()) {
            return Ok(());
        }
        let literal = match host {
            url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
            url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
            url::Host::Domain(d)
                if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") =>
            {
                Some(IpAddr::from([127, 0, 0, 1]))
            }
            url::Host::Domain(_) => None,
        };
        match literal {
            Some(ip) if internal(ip) => Err(format!(
                "{url:?} points at an internal address ({ip}); the server's operator can allow it \
                 with --allow-private-urls or --allow-host"
            )),
            _ => Ok(()),
        }
    }

    /// A client for calls out: no redirects, names resolved under this
    /// policy, `timeout` for the whole call.
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if !self.allow_private {
            b = b.dns_resolver(Arc::new(Guarded(self.clone())));
        }
        b.build().unwrap_or_default()
    }
}

/// Whether `ip` is internal: loopback, private, link-local, shared
/// (carrier-grade NAT), unspecified, broadcast, multicast or documentation
/// space, in IPv4 or IPv6 (an IPv4-mapped address counts as its IPv4).
pub fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let s = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b)
        }
    }
}

/// A resolver that drops internal addresses of names not allowed.
struct Guarded(Outbound);

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.host_allowed(&host) {
                return Ok(Box::new(found.into_iter()) as Addrs);
            }
            let outside: Vec<SocketAddr> =
                found.into_iter().filter(|a| !internal(a.ip())).collect();
            if outside.is_empty() {
                return Err(format!(
                    "{host} resolves only to internal addresses; the server's operator can allow it"
                )
                .into());
            }
            Ok(Box::new(outside.into_iter()) as Addrs)
        })
    }
}

/// The body of `resp`, read chunk by chunk and refused past `cap` bytes.
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(format!("the answer is larger than {cap} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| "the answer broke off".to_owned())?
    {
        if body.len() + chunk.len() > cap {
            return Err(format!("the answer is larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_told_apart_from_public_ones() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_to_internal_addresses_are_refused_unless_allowed() {
        let closed = Outbound::default();
        for url in [
            "http://127.0.0.1:18433/internal/admin",
            "http://localhost/x",
            "http://[::1]:80/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.7/",
        ] {
            assert!(closed.check(url).is_err(), "{url}");
        }
        assert!(closed.check("https://models.example.org/predict").is_ok());
        assert!(closed.check("file:///etc/passwd").is_err());
        assert!(closed.check("gopher://x/").is_err());
        assert!(Outbound::open().check("http://127.0.0.1:1/").is_ok());
        let listed = Outbound {
            allow_private: false,
            allowed_hosts: vec!["10.0.0.7".into()],
        };
        assert!(listed.check("http://10.0.0.7/").is_ok());
        assert!(listed.check("http://10.0.0.8/").is_err());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_when_called() {
        let client = Outbound::default().client(Duration::from_secs(5));
        let e = client.get("http://localhost:9/").send().await.unwrap_err();
        let mut chain = format!("{e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(chain.contains("internal addresses"), "{chain}");
    }
}
