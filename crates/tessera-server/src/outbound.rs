//! The outbound-URL guard: Tessera fetches URLs its customers give it (file imports now,
//! callbacks later). Unless the operator allows private targets, requests to loopback,
//! private, link-local and other non-public addresses are refused — checked on the URL and
//! again on every DNS answer at connect time, so DNS rebinding cannot slip through.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// True for addresses on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated, still routed by some stacks)
        || (first == 0x2001 && second == 0x0db8) // documentation
        // Translation ranges reach IPv4 space (possibly private) through a gateway: NAT64
        // 64:ff9b::/96 and the local-use 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32.
        || (first == 0x0064 && second == 0xff9b)
        || (first == 0x0064 && second == 0xff9b && ip.segments()[2] == 0x0001)
        || first == 0x2002
        || (first == 0x2001 && second == 0x0000)
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

/// Checks a URL before any request: http(s), a host, and — unless private targets are
/// allowed — not a literal non-public IP (names are checked when they resolve).
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|_| format!("\"{raw}\" is not a valid URL."))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("Only http:// and https:// URLs can be fetched.".into());
    }
    let refused = |ip: IpAddr| {
        (!allow_private && !is_public(ip))
            .then(|| format!("Refused: {ip} is not a public address."))
    };
    match url.host() {
        None => return Err("The URL has no host.".into()),
        Some(Host::Ipv4(ip)) => {
            if let Some(e) = refused(IpAddr::V4(ip)) {
                return Err(e);
            }
        }
        Some(Host::Ipv6(ip)) => {
            if let Some(e) = refused(IpAddr::V6(ip)) {
                return Err(e);
            }
        }
        Some(Host::Domain(_)) => {}
    }
    Ok(url)
}

/// A DNS resolver that drops non-public answers (unless allowed), so the address actually
/// connected to is the one that was checked.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    format!("refused: {host} resolves only to non-public addresses").into(),
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client for customer-supplied URLs: guarded DNS, no redirects, a total timeout,
/// and no proxy — reqwest would otherwise honour `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`, and
/// a proxy resolves the target itself, past the guard.
pub fn client(allow_private: bool, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .user_agent(concat!("Tessera/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client configuration is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for private in [
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
            "240.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "fec0::1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn checks_urls() {
        assert!(check_url("http://127.0.0.1:8080/x", false).is_err());
        assert!(check_url("http://[::1]/x", false).is_err());
        assert!(check_url("http://127.0.0.1:8080/x", true).is_ok());
        assert!(check_url("ftp://example.com/x", false).is_err());
        assert!(check_url("https://example.com/x", false).is_ok());
        assert!(check_url("not a url", true).is_err());
    }

    /// An HTTP proxy in the environment must not carry requests past the guard: the client
    /// connects to the target itself (and refuses it), never to the proxy. The variables are
    /// set for a child process of this test binary, not in this multi-threaded one.
    #[tokio::test]
    async fn environment_proxies_are_ignored() {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = reached.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = proxy.accept().await {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
                use tokio::io::AsyncWriteExt;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
                    .await;
            }
        });
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap());
        child.args([
            "outbound::tests::request_through_the_environment",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ]);
        for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"] {
            child.env(var, &proxy_url);
        }
        let out = child.output().await.unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{printed}");
        assert!(printed.contains("1 passed"), "{printed}");
        assert!(
            !reached.load(std::sync::atomic::Ordering::SeqCst),
            "the proxy was used"
        );
    }

    /// Run by `environment_proxies_are_ignored` with proxy variables set.
    #[tokio::test]
    #[ignore = "run by environment_proxies_are_ignored in a child process"]
    async fn request_through_the_environment() {
        assert!(
            std::env::var("HTTP_PROXY").is_ok(),
            "run without the proxy variables"
        );
        let result = client(false, Duration::from_secs(2))
            .get("http://internal.invalid/")
            .send()
            .await;
        assert!(result.is_err(), "{result:?}");
    }

    #[tokio::test]
    async fn resolver_refuses_names_of_private_addresses() {
        let client = client(false, Duration::from_secs(2));
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        assert!(format!("{err:?}").contains("non-public"), "{err:?}");
    }
}
