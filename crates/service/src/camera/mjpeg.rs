//! HTTP MJPEG cameras (`multipart/x-mixed-replace` streams of JPEG pictures, what many cheap IP
//! cameras and `/video.mjpg` endpoints serve). Each part is a whole picture, so every frame is a
//! keyframe; the sampler picks the one nearest each due time and only that one is decoded.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::sampler::EncodedFrame;
use super::source::{CONNECT_TIMEOUT, SourceError};

/// Largest accepted picture.
pub const MAX_PART_BYTES: usize = 16 << 20;

/// Splits a `multipart/x-mixed-replace` byte stream into its JPEG parts.
#[derive(Debug)]
pub struct PartParser {
    delimiter: Vec<u8>,
    buf: Vec<u8>,
}

impl PartParser {
    /// A parser for parts separated by `--boundary`.
    pub fn new(boundary: &str) -> Self {
        let boundary = boundary.trim_matches('"').trim_start_matches("--");
        Self {
            delimiter: format!("--{boundary}").into_bytes(),
            buf: Vec::new(),
        }
    }

    /// Adds bytes; returns the complete JPEG pictures found so far.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, SourceError> {
        self.buf.extend_from_slice(bytes);
        let mut pictures = Vec::new();
        while let Some(start) = find(&self.buf, &self.delimiter) {
            let after = start + self.delimiter.len();
            let Some(headers_end) = find(&self.buf[after..], b"\r\n\r\n").map(|i| after + i + 4)
            else {
                break;
            };
            let headers =
                String::from_utf8_lossy(&self.buf[after..headers_end]).to_ascii_lowercase();
            let length = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let end = match length {
                Some(n) if n > MAX_PART_BYTES => {
                    return Err(SourceError::Stream(format!("MJPEG part of {n} bytes")));
                }
                Some(n) if self.buf.len() >= headers_end + n => headers_end + n,
                Some(_) => break,
                None => match find(&self.buf[headers_end..], &self.delimiter) {
                    Some(i) => headers_end + i,
                    None => break,
                },
            };
            let body = &self.buf[headers_end..end];
            let body = body.strip_suffix(b"\r\n").unwrap_or(body);
            if body.starts_with(&[0xFF, 0xD8]) {
                pictures.push(body.to_vec());
            }
            self.buf.drain(..end);
        }
        if self.buf.len() > MAX_PART_BYTES + 4096 {
            return Err(SourceError::Stream(
                "no MJPEG boundary in 16 MiB of data".into(),
            ));
        }
        Ok(pictures)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An open MJPEG stream.
#[derive(Debug)]
pub struct MjpegSource {
    response: reqwest::Response,
    parser: PartParser,
    pending: std::collections::VecDeque<Vec<u8>>,
    started: tokio::time::Instant,
}

impl MjpegSource {
    /// Sends the GET and checks that the answer is a multipart stream. With `guard`, the host
    /// name is resolved and checked first, and the connection goes to exactly those addresses.
    pub async fn open(url: &Url, guard: bool) -> Result<Self, SourceError> {
        let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        if let (true, Some(host), Some(port)) = (guard, url.host_str(), url.port_or_known_default())
        {
            let addrs = super::source::resolve_guarded(host, port).await?;
            builder = builder.resolve_to_addrs(host, &addrs);
        }
        let client = builder
            .build()
            .map_err(|e| SourceError::Connect(super::source::brief(e)))?;
        let response = tokio::time::timeout(CONNECT_TIMEOUT, client.get(url.clone()).send())
            .await
            .map_err(|_| SourceError::Timeout("connecting"))?
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| SourceError::Connect(super::source::brief(e.without_url())))?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let boundary = content_type
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .filter(|_| content_type.to_ascii_lowercase().starts_with("multipart/"))
            .ok_or_else(|| {
                SourceError::Unsupported(format!("HTTP source is `{content_type}`, not MJPEG"))
            })?;
        Ok(Self {
            parser: PartParser::new(boundary),
            response,
            pending: Default::default(),
            started: tokio::time::Instant::now(),
        })
    }

    /// The next picture, stamped with its arrival time.
    pub async fn next_frame(&mut self) -> Result<EncodedFrame, SourceError> {
        loop {
            if let Some(jpeg) = self.pending.pop_front() {
                return Ok(EncodedFrame {
                    data: Arc::from(jpeg),
                    keyframe: true,
                    pts: self.started.elapsed().max(Duration::from_nanos(1)),
                });
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|e| SourceError::Stream(super::source::brief(e.without_url())))?
                .ok_or(SourceError::Ended)?;
            self.pending.extend(self.parser.push(&chunk)?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG_A: &[u8] = &[0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9];
    const JPEG_B: &[u8] = &[0xFF, 0xD8, 9, 0xFF, 0xD9];

    fn part(jpeg: &[u8], with_length: bool) -> Vec<u8> {
        let mut p = b"--frame\r\nContent-Type: image/jpeg\r\n".to_vec();
        if with_length {
            p.extend_from_slice(format!("Content-Length: {}\r\n", jpeg.len()).as_bytes());
        }
        p.extend_from_slice(b"\r\n");
        p.extend_from_slice(jpeg);
        p.extend_from_slice(b"\r\n");
        p
    }

    #[test]
    fn parts_with_and_without_length_split_across_chunks() {
        for with_length in [true, false] {
            let mut stream = part(JPEG_A, with_length);
            stream.extend(part(JPEG_B, with_length));
            stream.extend(part(JPEG_A, with_length));
            let mut parser = PartParser::new("frame");
            let mut got = Vec::new();
            for chunk in stream.chunks(3) {
                got.extend(parser.push(chunk).unwrap());
            }
            // Without a length the last part completes only when the next boundary arrives.
            let expected = if with_length { 3 } else { 2 };
            assert_eq!(got.len(), expected, "with_length={with_length}");
            assert_eq!(got[0], JPEG_A);
            assert_eq!(got[1], JPEG_B);
        }
    }

    #[test]
    fn quoted_and_dashed_boundaries_and_oversized_parts() {
        let mut parser = PartParser::new("\"--frame\"");
        assert_eq!(
            parser.push(&part(JPEG_B, true)).unwrap(),
            vec![JPEG_B.to_vec()]
        );
        let mut parser = PartParser::new("frame");
        let huge = format!("--frame\r\nContent-Length: {}\r\n\r\n", MAX_PART_BYTES + 1);
        assert!(parser.push(huge.as_bytes()).is_err());
    }
}
