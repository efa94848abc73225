//! The guard for outbound requests to URLs that come from outside (image links in upstream
//! answers, clients' callback hooks): public addresses only, unless configuration or the
//! channel allows private ones. It applies to the URL before the request, to every address a
//! name resolves to (the clients' resolver, which also defeats DNS rebinding), and to every
//! redirect hop, so that no step can lead into the local network.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long a check waits for a name to resolve.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `ip` is an ordinary address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let first = ip.segments()[0];
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)) // documentation
}

/// The IP address a URL's host is written as, if it is one.
pub fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Refuses a URL that is not http(s) or whose host is a non-public address.
pub fn check_url(url: &reqwest::Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{url}: only http and https are allowed"));
    }
    match url.host_str() {
        None => Err(format!("{url}: no host")),
        Some(_) => literal_ip(url).map_or(Ok(()), refuse_private),
    }
}

/// Refuses a URL whose host is, or resolves to, a non-public address. A name that does not
/// resolve now is let through: the [`PublicOnly`] resolver of the client that sends refuses
/// it later if it then resolves into a private network.
pub async fn check_public(url: &reqwest::Url) -> Result<(), String> {
    check_url(url)?;
    let Some(host) = url.host_str() else {
        return Err("has no host".to_string());
    };
    if literal_ip(url).is_some() {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)));
    match lookup.await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).try_for_each(refuse_private),
        Ok(Err(e)) => {
            tracing::debug!(%host, error = %e, "host does not resolve");
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

fn refuse_private(ip: IpAddr) -> Result<(), String> {
    if is_public(ip) {
        Ok(())
    } else {
        Err(format!(
            "points into a private or loopback network ({ip}), which is not allowed"
        ))
    }
}

/// A DNS resolver that hands out public addresses only, so that the HTTP client cannot be
/// led into a private network by a name whatever it resolves to at the time of sending.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves only to private or loopback addresses, which are not allowed"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Redirects for guarded fetches: a few hops, each checked like the first URL.
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        match check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(reason) => attempt.error(format!("redirect refused: {reason}")),
        }
    })
}

/// Redirect hops followed when fetching a file.
pub const MAX_REDIRECTS: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn literal_and_named_loopback_hosts_are_refused() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]/hook",
            "http://localhost:8080/hook",
        ] {
            let url = reqwest::Url::parse(url).unwrap();
            assert!(check_public(&url).await.is_err(), "{url}");
        }
        let public = reqwest::Url::parse("https://93.184.216.34/hook").unwrap();
        assert!(check_public(&public).await.is_ok());
    }

    #[test]
    fn urls_are_checked_by_scheme_and_literal_host() {
        let check = |u: &str| check_url(&reqwest::Url::parse(u).unwrap());
        assert!(check("https://cdn.discordapp.com/a.png").is_ok());
        assert!(check("http://127.0.0.1:8080/a.png").is_err());
        assert!(check("http://[::1]/a.png").is_err());
        assert!(check("file:///etc/passwd").is_err());
    }
}
