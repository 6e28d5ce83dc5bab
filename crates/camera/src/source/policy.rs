//! Which camera URLs may be opened: the allowed schemes and hosts, link-local and cloud
//! metadata addresses refused unless listed (as written, and for names a client gave, by what
//! they resolve to).

use std::time::Duration;

use url::Url;

use super::error::{SourceError, brief};

/// Which camera URLs clients may open (`security.allowed_source_*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcePolicy {
    /// Allowed URL schemes, lower case (`file` only when listed).
    pub allowed_source_schemes: Vec<String>,
    /// Allowed hosts; empty allows any host except link-local and metadata addresses.
    pub allowed_source_hosts: Vec<String>,
}

/// Limit for each RTSP request during connection set-up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks `url` against the allowed schemes and hosts and returns it parsed.
pub fn check_policy(url: &str, policy: &SourcePolicy) -> Result<Url, SourceError> {
    let parsed = Url::parse(url).map_err(|e| SourceError::InvalidUrl(e.to_string()))?;
    let scheme = parsed.scheme().to_ascii_lowercase();
    if !policy.allowed_source_schemes.contains(&scheme) {
        return Err(SourceError::NotAllowed(format!(
            "scheme `{scheme}` is not allowed (allowed: {})",
            policy.allowed_source_schemes.join(", ")
        )));
    }
    if scheme == "file" {
        return Ok(parsed);
    }
    if scheme == "rtsps"
        && parsed
            .query_pairs()
            .any(|(k, v)| k == "transport" && v == "udp")
    {
        return Err(SourceError::Unsupported(
            "RTSPS over UDP (it needs SRTP): use TCP, the default (drop `transport=udp`)".into(),
        ));
    }
    let host = normalised_host(&parsed);
    let listed = is_listed(&parsed, policy);
    if !policy.allowed_source_hosts.is_empty() && !listed {
        return Err(SourceError::NotAllowed(format!(
            "host `{host}` is not allowed"
        )));
    }
    if !listed && is_metadata_or_link_local(parsed.host().as_ref()) {
        return Err(SourceError::NotAllowed(format!(
            "host `{host}` is link-local or a cloud metadata address; list it in \
             security.allowed_source_hosts to allow it"
        )));
    }
    Ok(parsed)
}

/// The URL's host in lower case, IPv6 without brackets (empty when it has none).
fn normalised_host(parsed: &Url) -> String {
    match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => String::new(),
    }
}

/// Whether the URL's host is in `security.allowed_source_hosts` (as written or normalised).
fn is_listed(parsed: &Url, policy: &SourcePolicy) -> bool {
    let hosts = &policy.allowed_source_hosts;
    let written = parsed.host_str().unwrap_or("").to_ascii_lowercase();
    hosts.contains(&normalised_host(parsed)) || hosts.contains(&written)
}

/// Whether opening a policy-checked `url` must also check the addresses its host name resolves
/// to: a network source named by a host the operator did not list (a name that looks harmless
/// can resolve to 169.254.169.254).
pub fn guards_resolution(url: &Url, policy: &SourcePolicy) -> bool {
    url.scheme() != "file"
        && matches!(url.host(), Some(url::Host::Domain(_)))
        && !is_listed(url, policy)
}

/// Resolves a camera's host and refuses it when any of its addresses is link-local or a cloud
/// metadata service (see [`is_metadata_or_link_local`]); returns the addresses.
pub async fn resolve_guarded(
    host: &str,
    port: u16,
) -> Result<Vec<std::net::SocketAddr>, SourceError> {
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<std::net::SocketAddr> = tokio::time::timeout(CONNECT_TIMEOUT, lookup)
        .await
        .map_err(|_| SourceError::Timeout("resolving the camera's host"))?
        .map_err(|e| SourceError::Connect(format!("cannot resolve `{host}`: {}", brief(e))))?
        .collect();
    refuse_resolved(host, &addrs)?;
    Ok(addrs)
}

/// Refuses `host` when any address it resolved to is link-local or a metadata service.
fn refuse_resolved(host: &str, addrs: &[std::net::SocketAddr]) -> Result<(), SourceError> {
    match addrs.iter().find(|a| is_guarded_ip(a.ip())) {
        Some(a) => Err(SourceError::NotAllowed(format!(
            "host `{host}` resolves to {}, a link-local or cloud metadata address; list it in \
             security.allowed_source_hosts to allow it",
            a.ip()
        ))),
        None => Ok(()),
    }
}

/// An IPv4 address the way the C resolver reads one (`inet_aton`): one to four parts, each
/// decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes; so
/// `2852039166` and `0251.0376.0251.0376` are 169.254.169.254 too.
fn inet_aton(text: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X"))
        {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let v = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(digits, radix).ok()?
        };
        values.push(v);
    }
    let (last, head) = values.split_last()?;
    if head.iter().any(|v| *v > 255) {
        return None;
    }
    let spare = 8 * (4 - head.len() as u32);
    if spare < 32 && *last >> spare != 0 {
        return None;
    }
    let mut n = *last;
    for (i, v) in head.iter().enumerate() {
        n |= v << (24 - 8 * i as u32);
    }
    Some(std::net::Ipv4Addr::from(n))
}

/// Cloud metadata services by name (Google; `metadata` is its short form).
const METADATA_NAMES: [&str; 3] = ["metadata.google.internal", "metadata", "instance-data"];

/// Whether a camera host is a link-local address (169.254.0.0/16, fe80::/10, IPv4-mapped too)
/// or a cloud metadata service (AWS, GCP, Azure at 169.254.169.254; AWS over IPv6 at
/// fd00:ec2::254; Alibaba Cloud at 100.100.100.200): places a camera URL must not reach unless
/// the operator lists them. Names are checked as written here; what a name resolves to is
/// checked when the source is opened ([`resolve_guarded`]).
pub fn is_metadata_or_link_local(host: Option<&url::Host<&str>>) -> bool {
    use std::net::{IpAddr, Ipv6Addr};
    match host {
        Some(url::Host::Ipv4(ip)) => is_guarded_ip(IpAddr::V4(*ip)),
        Some(url::Host::Ipv6(ip)) => is_guarded_ip(IpAddr::V6(*ip)),
        Some(url::Host::Domain(d)) => {
            // Schemes the URL standard does not know (rtsp) keep IP hosts as plain text.
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if let Some(ip) = inet_aton(&d) {
                return is_guarded_ip(IpAddr::V4(ip));
            }
            match d.parse::<Ipv6Addr>() {
                Ok(ip) => is_guarded_ip(IpAddr::V6(ip)),
                Err(_) => METADATA_NAMES.contains(&d.as_str()),
            }
        }
        None => false,
    }
}

/// Whether an address is link-local or a cloud metadata service (see
/// [`is_metadata_or_link_local`]).
fn is_guarded_ip(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let v4 = |ip: Ipv4Addr| ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200);
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            ip.to_ipv4_mapped().is_some_and(v4)
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(schemes: &[&str], hosts: &[&str]) -> SourcePolicy {
        SourcePolicy {
            allowed_source_schemes: schemes.iter().map(|s| s.to_string()).collect(),
            allowed_source_hosts: hosts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn schemes_and_hosts_are_checked() {
        let p = policy(&["rtsp"], &[]);
        assert!(check_policy("rtsp://cam.local/stream", &p).is_ok());
        assert!(matches!(
            check_policy("file:///etc/passwd", &p),
            Err(SourceError::NotAllowed(_))
        ));
        assert!(matches!(
            check_policy("not a url", &p),
            Err(SourceError::InvalidUrl(_))
        ));
        let p = policy(&["rtsp", "file"], &["10.0.0.5"]);
        assert!(check_policy("rtsp://10.0.0.5:554/a", &p).is_ok());
        assert!(matches!(
            check_policy("rtsp://evil/a", &p),
            Err(SourceError::NotAllowed(_))
        ));
        assert!(check_policy("file:///videos/a.mp4", &p).is_ok());
        let p = policy(&["rtsps"], &[]);
        assert!(check_policy("rtsps://cam.local/s?tls_verify=0", &p).is_ok());
        assert!(matches!(
            check_policy("rtsps://cam.local/s?transport=udp", &p),
            Err(SourceError::Unsupported(m)) if m.contains("SRTP")
        ));
    }

    #[test]
    fn link_local_and_metadata_hosts_are_refused_unless_listed() {
        let open = policy(&["rtsp", "http"], &[]);
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "rtsp://169.254.10.20/stream",
            "http://[fe80::1]/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://[fd00:ec2::254]/x",
            "http://100.100.100.200/latest/meta-data",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA./x",
            "rtsp://[fe80::1]/x",
            "rtsp://2852039166/x",
            "rtsp://0251.0376.0251.0376/x",
            "rtsp://0xa9.0xfe.0xa9.0xfe/x",
            "rtsp://169.254.43518/x",
        ] {
            assert!(
                matches!(check_policy(url, &open), Err(SourceError::NotAllowed(_))),
                "{url}"
            );
        }
        for url in [
            "rtsp://127.0.0.1:8554/a",
            "rtsp://10.1.2.3/a",
            "rtsp://[::1]/a",
            "rtsp://cam-7.lan/a",
        ] {
            assert!(check_policy(url, &open).is_ok(), "{url}");
        }
        // A camera that really sits on a link-local address can be listed.
        let listed = policy(&["rtsp"], &["169.254.10.20"]);
        assert!(check_policy("rtsp://169.254.10.20/stream", &listed).is_ok());
    }

    #[test]
    fn unlisted_names_are_checked_by_what_they_resolve_to() {
        let open = policy(&["rtsp", "http", "file"], &[]);
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(guards_resolution(&url("rtsp://cam-7.lan/a"), &open));
        assert!(guards_resolution(&url("http://cam-7.lan/a"), &open));
        assert!(!guards_resolution(&url("http://10.0.0.7/a"), &open));
        assert!(!guards_resolution(&url("file:///videos/a.mp4"), &open));
        let listed = policy(&["rtsp"], &["cam-7.lan"]);
        assert!(!guards_resolution(&url("rtsp://CAM-7.lan/a"), &listed));

        let addr = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
        let rebound = [addr("10.0.0.7:554"), addr("169.254.169.254:554")];
        match refuse_resolved("cam-7.lan", &rebound) {
            Err(SourceError::NotAllowed(msg)) => {
                assert!(
                    msg.contains("cam-7.lan") && msg.contains("169.254.169.254"),
                    "{msg}"
                );
            }
            other => panic!("not refused: {other:?}"),
        }
        assert!(refuse_resolved("x", &[addr("[fe80::1]:80")]).is_err());
        assert!(refuse_resolved("x", &[addr("100.100.100.200:80")]).is_err());
        assert!(refuse_resolved("cam-7.lan", &[addr("10.0.0.7:554"), addr("[::1]:554")]).is_ok());
    }

    #[tokio::test]
    async fn a_real_lookup_passes_the_guard() {
        let addrs = resolve_guarded("localhost", 8554).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8554),
            "{addrs:?}"
        );
        assert!(matches!(
            resolve_guarded("no-such-host.invalid", 554).await,
            Err(SourceError::Connect(_) | SourceError::Timeout(_))
        ));
    }
}
