//! Limits on what clients may take: WebSocket connections at once (in total and per address)
//! and messages per second per connection, and which address a connection counts against when
//! it comes through a trusted reverse proxy. Pure bookkeeping, no I/O; the session and the
//! upgrade handler apply the verdicts and count every refusal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The address a connection counts against: its peer, unless the peer is one of the
/// `trusted` proxies (`server.trusted_proxies`); then the `X-Forwarded-For` chain (all its
/// headers, in order) is read from the right, skipping trusted proxies, and the first address
/// that is not one is the client. An entry that is not an address ends the walk at the last
/// good one, so a client can never pick an address its proxy did not write.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let mut client = peer.to_canonical();
    let hops = forwarded_for.iter().rev().flat_map(|h| h.rsplit(','));
    for hop in hops {
        if !is_trusted(client) {
            break;
        }
        let hop = hop.trim();
        let parsed = hop
            .parse::<IpAddr>()
            .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()));
        match parsed {
            Ok(ip) => client = ip.to_canonical(),
            Err(_) => break,
        }
    }
    client
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The service holds `server.max_ws_connections` already.
    Total,
    /// This address holds `server.max_ws_connections_per_ip` already.
    PerAddress,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "connections",
            Self::PerAddress => "connections_per_ip",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Open WebSocket connections, in total and per address.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_address: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection; releases its place when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    address: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&self.address);
            }
        }
    }
}

impl ConnectionLimiter {
    /// A limiter admitting `max_total` connections, `max_per_address` from one address.
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            max_total,
            max_per_address,
            counts: Arc::default(),
        }
    }

    /// Admits a connection from `address`, or says why not.
    pub fn admit(&self, address: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let n = c.by_address.entry(address).or_insert(0);
        if *n >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnectionPermit {
            address,
            counts: Arc::clone(&self.counts),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// A token bucket: `rate` messages per second, bursts of `2 * rate`.
#[derive(Debug, Clone)]
pub struct MessageRate {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl MessageRate {
    /// A full bucket for `rate` messages per second.
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            capacity: 2.0 * rate,
            tokens: 2.0 * rate,
            last: now,
        }
    }

    /// Whether a message arriving at `now` is within the rate (and takes its token).
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_client_behind_a_trusted_proxy_is_the_first_untrusted_hop_from_the_right() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let nets = |list: &[&str]| -> Vec<ipnet::IpNet> {
            list.iter().map(|n| n.parse().unwrap()).collect()
        };
        let proxy = ip("10.0.0.2");
        let trusted = nets(&["10.0.0.0/24", "::1/128"]);
        // Not through a trusted proxy: the header is ignored.
        assert_eq!(
            client_address(ip("198.51.100.7"), &["203.0.113.5"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(client_address(proxy, &["203.0.113.5"], &[]), proxy);
        // Through one: the address the proxy wrote, not what the client put before it.
        assert_eq!(
            client_address(proxy, &["1.2.3.4, 203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // Chains of trusted proxies, over several headers, with ports and mapped addresses.
        assert_eq!(
            client_address(proxy, &["1.2.3.4, 203.0.113.5", "10.0.0.9"], &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_address(proxy, &["203.0.113.5:4711"], &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_address(proxy, &["[2001:db8::5]:80"], &trusted),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_address(proxy, &["::ffff:203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_address(ip("::1"), &["203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // Garbage or nothing: the last good hop (here the proxy itself).
        assert_eq!(
            client_address(proxy, &["203.0.113.5, junk"], &trusted),
            proxy
        );
        assert_eq!(client_address(proxy, &[""], &trusted), proxy);
        assert_eq!(client_address(proxy, &[], &trusted), proxy);
        // Only trusted hops: the left-most of them.
        assert_eq!(
            client_address(proxy, &["10.0.0.7, 10.0.0.8"], &trusted),
            ip("10.0.0.7")
        );
    }

    #[test]
    fn connections_are_limited_in_total_and_per_address_and_released_on_drop() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let a1 = limiter.admit(a).unwrap();
        let _a2 = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(a).unwrap_err(), Refusal::PerAddress);
        let _b1 = limiter.admit(b).unwrap();
        assert_eq!(limiter.admit(b).unwrap_err(), Refusal::Total);
        assert_eq!(limiter.open(), 3);
        drop(a1);
        assert_eq!(limiter.open(), 2);
        let _a3 = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(b).unwrap_err(), Refusal::Total);
    }

    #[test]
    fn the_message_rate_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = MessageRate::new(10, t0);
        let burst = (0..100).filter(|_| r.allow(t0)).count();
        assert_eq!(burst, 20);
        // One second later: ten more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| r.allow(t1)).count(), 10);
        // Steady at the rate: every message passes.
        let mut t = t1;
        for _ in 0..50 {
            t += Duration::from_millis(100);
            assert!(r.allow(t));
        }
    }
}
