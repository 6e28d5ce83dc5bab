//! Where frames come from: RTSP/RTSPS cameras through `retina` (TCP interleaved by default, UDP
//! on request with `?transport=udp`), HTTP MJPEG cameras and MP4 files (`file:///path.mp4`, played in real time,
//! looping with `?loop=1`), all as H.264 in Annex B form ready for the decoder; and the URL
//! policy that decides which sources may be opened at all.

use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat};
use url::Url;

use super::file::FileSource;
use super::mjpeg::MjpegSource;
use super::sampler::EncodedFrame;

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

/// Why a source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The URL cannot be parsed.
    #[error("invalid camera URL: {0}")]
    InvalidUrl(String),
    /// The scheme or host is refused by `security.allowed_source_*`.
    #[error("{0}")]
    NotAllowed(String),
    /// A scheme we cannot open.
    #[error("unsupported source: {0}")]
    Unsupported(String),
    /// Connection or RTSP negotiation failed.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The stream broke after it started.
    #[error("stream error: {0}")]
    Stream(String),
    /// A step did not finish in time.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The source ended (server closed the session, end of file).
    #[error("source ended")]
    Ended,
}

/// Longest error text a camera reports.
pub const MAX_ERROR_CHARS: usize = 200;

/// A library's error text made fit for `camera_status`: its first line, at most
/// [`MAX_ERROR_CHARS`] characters (a framing error from a garbage-spewing server comes with a hex
/// dump of what it sent).
pub fn brief(error: impl std::fmt::Display) -> String {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or("").trim();
    let line = line.strip_suffix("; buffered:").unwrap_or(line);
    match line.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_string(),
    }
}

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

/// Parts of query parameter names that mark a secret (`pwd`, `password`, `token`,
/// `access_token`, `apikey`, `auth`, `signature`, ...), compared in lower case.
const SECRET_PARAMS: [&str; 8] = [
    "pass", "pwd", "token", "secret", "key", "auth", "sig", "cred",
];

/// Whether a query parameter named `name` carries a secret.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|part| name.contains(part))
}

/// The URL with any password replaced, in the user part and in query parameters whose names
/// mark a secret (many cameras take `?user=admin&pwd=...`), for logs, errors and
/// `/api/cameras`.
pub fn redact(url: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        return "<invalid URL>".to_string();
    };
    let mut changed = false;
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
        changed = true;
    }
    if u.query_pairs().any(|(name, _)| is_secret_param(&name)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret_param(&name) {
                    "***".to_string()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        u.to_string()
    } else {
        url.to_string()
    }
}

/// An open source of either kind.
#[derive(Debug)]
pub enum Source {
    /// An RTSP camera.
    Rtsp(RtspSource),
    /// A file played as a camera (boxed: its MP4 index is large).
    File(Box<PacedFile>),
    /// An HTTP MJPEG camera.
    Mjpeg(Box<MjpegSource>),
}

impl Source {
    /// Opens `url` (already policy-checked); with `guard` (see [`guards_resolution`]) its host
    /// name must not resolve to a link-local or metadata address.
    pub async fn open(url: &Url, guard: bool) -> Result<Self, SourceError> {
        match url.scheme() {
            "file" => Ok(Self::File(Box::new(PacedFile::open(url)?))),
            "http" | "https" => Ok(Self::Mjpeg(Box::new(MjpegSource::open(url, guard).await?))),
            _ => Ok(Self::Rtsp(RtspSource::open(url, guard).await?)),
        }
    }

    /// The next frame.
    pub async fn next_frame(&mut self) -> Result<EncodedFrame, SourceError> {
        match self {
            Self::Rtsp(s) => s.next_frame().await,
            Self::File(f) => f.next_frame().await,
            Self::Mjpeg(m) => m.next_frame().await,
        }
    }

    /// Whether the source ends for good when it ends (a file without `loop`).
    pub fn is_finite(&self) -> bool {
        matches!(self, Self::File(f) if !f.looping)
    }
}

/// A file played at its own frame rate, optionally looping.
#[derive(Debug)]
pub struct PacedFile {
    file: FileSource,
    looping: bool,
    started: tokio::time::Instant,
    /// Stream time added to the file's timestamps (grows with each loop).
    offset: Duration,
    last_pts: Duration,
}

impl PacedFile {
    fn open(url: &Url) -> Result<Self, SourceError> {
        let path = url
            .to_file_path()
            .map_err(|()| SourceError::InvalidUrl(format!("`{url}` is not a local file path")))?;
        let looping = url
            .query_pairs()
            .any(|(k, v)| k == "loop" && (v == "1" || v == "true"));
        Ok(Self {
            file: FileSource::open(&path)?,
            looping,
            started: tokio::time::Instant::now(),
            offset: Duration::ZERO,
            last_pts: Duration::ZERO,
        })
    }

    async fn next_frame(&mut self) -> Result<EncodedFrame, SourceError> {
        let mut frame = match self.file.next_frame() {
            Err(SourceError::Ended) if self.looping => {
                // One frame's worth after the last frame, so time keeps increasing.
                self.offset = self.last_pts + Duration::from_millis(40);
                self.file.rewind();
                self.file.next_frame()?
            }
            other => other?,
        };
        frame.pts += self.offset;
        self.last_pts = frame.pts;
        tokio::time::sleep_until(self.started + frame.pts).await;
        Ok(frame)
    }
}

/// An open H.264 stream.
pub struct RtspSource {
    demuxed: Pin<Box<Demuxed>>,
    stream: usize,
    /// Coded picture size announced by the camera, when known.
    pub dimensions: Option<(u32, u32)>,
}

impl std::fmt::Debug for RtspSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSource")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

async fn step<T, E: std::fmt::Display>(
    what: &'static str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(SourceError::Connect(format!("{what}: {}", brief(e)))),
        Err(_) => Err(SourceError::Timeout(what)),
    }
}

impl RtspSource {
    /// Connects: DESCRIBE, SETUP of the first H.264 video stream, PLAY. With `guard`, the host
    /// name is resolved and checked first (retina resolves it again to connect: a name that
    /// changes its answer within that instant is not caught).
    pub async fn open(url: &Url, guard: bool) -> Result<Self, SourceError> {
        let default_port = match url.scheme() {
            "rtsp" => 554,
            "rtsps" => 322,
            other => return Err(SourceError::Unsupported(format!("`{other}` streams"))),
        };
        if let (true, Some(host)) = (guard, url.host_str()) {
            resolve_guarded(host, url.port().unwrap_or(default_port)).await?;
        }
        let mut clean = url.clone();
        let creds = (!url.username().is_empty()).then(|| Credentials {
            username: url.username().to_string(),
            password: url.password().unwrap_or("").to_string(),
        });
        let _ = clean.set_username("");
        let _ = clean.set_password(None);
        let udp = url
            .query_pairs()
            .any(|(k, v)| k == "transport" && v == "udp");
        // `transport` is ours, not the camera's: keep every other query parameter.
        let others: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "transport")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        clean.set_query(None);
        if !others.is_empty() {
            clean.query_pairs_mut().extend_pairs(others);
        }
        let options = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("traffic-algo/{}", env!("CARGO_PKG_VERSION")));
        let mut session = step("DESCRIBE", Session::describe(clean, options)).await?;
        let stream = session
            .streams()
            .iter()
            .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"))
            .ok_or_else(|| {
                let found: Vec<String> = session
                    .streams()
                    .iter()
                    .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                    .collect();
                SourceError::Unsupported(format!(
                    "no H.264 video stream (found: {})",
                    found.join(", ")
                ))
            })?;
        let dimensions = match session.streams()[stream].parameters() {
            Some(retina::codec::ParametersRef::Video(v)) => Some(v.pixel_dimensions()),
            _ => None,
        };
        let transport = if udp {
            Transport::Udp(Default::default())
        } else {
            Transport::Tcp(Default::default())
        };
        let setup = SetupOptions::default()
            .transport(transport)
            .frame_format(FrameFormat::SIMPLE);
        step("SETUP", session.setup(stream, setup)).await?;
        let playing = step("PLAY", session.play(PlayOptions::default())).await?;
        let demuxed = playing
            .demuxed()
            .map_err(|e| SourceError::Connect(brief(e)))?;
        Ok(Self {
            demuxed: Box::pin(demuxed),
            stream,
            dimensions,
        })
    }

    /// The next video frame; [`SourceError::Ended`] when the server ends the session.
    pub async fn next_frame(&mut self) -> Result<EncodedFrame, SourceError> {
        loop {
            match self.demuxed.next().await {
                None => return Err(SourceError::Ended),
                Some(Err(e)) => return Err(SourceError::Stream(brief(e))),
                Some(Ok(CodecItem::VideoFrame(frame))) if frame.stream_id() == self.stream => {
                    let secs = frame.timestamp().elapsed_secs().max(0.0);
                    return Ok(EncodedFrame {
                        keyframe: frame.is_random_access_point(),
                        pts: Duration::from_secs_f64(secs),
                        data: frame.into_data().into(),
                    });
                }
                Some(Ok(_)) => {}
            }
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

    #[test]
    fn error_texts_are_cut_to_their_first_line() {
        let dump = "DESCRIBE: framing error: byte 26; buffered:\n0000: 52 54 53 50\nconn: x";
        assert_eq!(brief(dump), "DESCRIBE: framing error: byte 26");
        let long = "x".repeat(500);
        assert_eq!(brief(&long).len(), MAX_ERROR_CHARS + 3);
        assert_eq!(brief("é".repeat(300)).chars().count(), MAX_ERROR_CHARS + 3);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("rtsp://admin:hunter2@cam/x"),
            "rtsp://admin:***@cam/x"
        );
        assert_eq!(redact("rtsp://cam/x"), "rtsp://cam/x");
        assert_eq!(
            redact("rtsp://cam/x?user=admin&pwd=hunter2&channel=1"),
            "rtsp://cam/x?user=admin&pwd=***&channel=1"
        );
        assert_eq!(
            redact("http://cam/video.cgi?Password=a%20b&access_token=t&resolution=640"),
            "http://cam/video.cgi?Password=***&access_token=***&resolution=640"
        );
        assert_eq!(redact("rtsp://cam/x?loop=1"), "rtsp://cam/x?loop=1");
        assert!(!redact("rtsp://a:b@c d").contains('b'));
    }
}
