//! Where frames come from: RTSP/RTSPS cameras through `retina` (TCP interleaved by default, UDP
//! on request with `?transport=udp`; RTSPS through a [`tls`] tunnel, TCP only), HTTP MJPEG
//! cameras ([`mjpeg`]) and MP4 files ([`file`], `file:///path.mp4`, played in real time,
//! looping with `?loop=1`), all as H.264 in Annex B form (or JPEG pictures) ready for the
//! decoder; the URL [`policy`] that decides which sources may be opened at all; [`error`]s and
//! [`redact`]ion of secrets in URLs.

pub mod error;
pub mod file;
pub mod mjpeg;
pub mod policy;
pub mod redact;
pub mod tls;

use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat};
use url::Url;

pub use error::{MAX_ERROR_CHARS, SourceError, brief};
use file::FileSource;
use mjpeg::MjpegSource;
pub use policy::{
    CONNECT_TIMEOUT, SourcePolicy, check_policy, guards_resolution, is_metadata_or_link_local,
    resolve_guarded,
};
pub use redact::redact;

use crate::sampler::EncodedFrame;

/// A future a source's methods return (boxed: the trait is used as `dyn`).
pub type SourceFuture<'a, T> =
    Pin<Box<dyn std::future::Future<Output = Result<T, SourceError>> + Send + 'a>>;

/// An open camera stream: encoded frames until it fails or ends. The pipeline reads frames
/// through this seam, so tests can feed it scripted streams on tokio's paused clock.
pub trait FrameSource: Send {
    /// The next frame.
    fn next_frame(&mut self) -> SourceFuture<'_, EncodedFrame>;

    /// Whether the source ends for good when it ends (a file without `loop`).
    fn is_finite(&self) -> bool;
}

/// Opens camera URLs: [`Sources`] in the service, scripted openers in tests.
pub trait SourceOpener: Send + Sync {
    /// Opens `url` (already policy-checked); with `guard`, its host name must not resolve to a
    /// link-local or metadata address.
    fn open<'a>(&'a self, url: &'a Url, guard: bool) -> SourceFuture<'a, Box<dyn FrameSource>>;
}

/// The real sources: RTSP, HTTP MJPEG and MP4 files.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources;

impl SourceOpener for Sources {
    fn open<'a>(&'a self, url: &'a Url, guard: bool) -> SourceFuture<'a, Box<dyn FrameSource>> {
        Box::pin(async move {
            let source = Source::open(url, guard).await?;
            Ok(Box::new(source) as Box<dyn FrameSource>)
        })
    }
}

impl FrameSource for Source {
    fn next_frame(&mut self) -> SourceFuture<'_, EncodedFrame> {
        Box::pin(Source::next_frame(self))
    }

    fn is_finite(&self) -> bool {
        Source::is_finite(self)
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
    /// When the current pass's stream time 0 was (moves on with each loop).
    started: tokio::time::Instant,
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
            last_pts: Duration::ZERO,
        })
    }

    async fn next_frame(&mut self) -> Result<EncodedFrame, SourceError> {
        let frame = match self.file.next_frame() {
            Err(SourceError::Ended) if self.looping => {
                // Each pass is the file again from its start, as an encoder that restarted:
                // stream time starts over (the scene starts over with it, so each pass is
                // tracked and counted as the file alone is), paced from one frame after the
                // last one.
                self.started += self.last_pts + Duration::from_millis(40);
                self.file.rewind();
                self.file.next_frame()?
            }
            other => other?,
        };
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
    /// The TLS connection of an `rtsps://` camera (closed with the source).
    _tunnel: Option<tls::Tunnel>,
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
        let verify = !url
            .query_pairs()
            .any(|(k, v)| k == tls::VERIFY_PARAM && matches!(&*v, "0" | "false" | "no"));
        // `transport` and `tls_verify` are ours, not the camera's: keep every other parameter.
        let others: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "transport" && k != tls::VERIFY_PARAM)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        clean.set_query(None);
        if !others.is_empty() {
            clean.query_pairs_mut().extend_pairs(others);
        }
        let tunnel = if url.scheme() == "rtsps" {
            // (RTSPS over UDP is refused by the policy check.)
            let host = url.host_str().unwrap_or_default();
            let tunnel =
                tls::Tunnel::open(host, url.port().unwrap_or(default_port), verify).await?;
            // retina talks plain RTSP to the tunnel's loopback end.
            let _ = clean.set_scheme("rtsp");
            let _ = clean.set_host(Some("127.0.0.1"));
            let _ = clean.set_port(Some(tunnel.local.port()));
            Some(tunnel)
        } else {
            None
        };
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
            _tunnel: tunnel,
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
