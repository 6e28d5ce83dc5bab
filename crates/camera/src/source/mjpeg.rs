//! HTTP MJPEG cameras (`multipart/x-mixed-replace` streams of JPEG pictures, what many cheap IP
//! cameras and `/video.mjpg` endpoints serve). Each part is a whole picture, so every frame is a
//! keyframe; the sampler picks the one nearest each due time and only that one is decoded.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::error::{SourceError, brief};
use super::policy::{CONNECT_TIMEOUT, resolve_guarded};
use crate::sampler::EncodedFrame;

/// Largest accepted picture.
pub const MAX_PART_BYTES: usize = 16 << 20;

/// Where the parser is within the current part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Looking for the next `--boundary`.
    Boundary,
    /// Past the boundary at this offset, looking for the blank line ending the headers.
    Headers(usize),
    /// The body starts at this offset; its length when the headers gave one.
    Body(usize, Option<usize>),
}

/// Splits a `multipart/x-mixed-replace` byte stream into its JPEG parts. Every byte is searched
/// once: a search that fails remembers how far it got, so a long part arriving in small chunks
/// costs time in proportion to its size.
#[derive(Debug)]
pub struct PartParser {
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    stage: Stage,
    /// Offset before which the current stage's search found nothing.
    searched: usize,
}

impl PartParser {
    /// A parser for parts separated by `--boundary`.
    pub fn new(boundary: &str) -> Self {
        let boundary = boundary.trim_matches('"').trim_start_matches("--");
        Self {
            delimiter: format!("--{boundary}").into_bytes(),
            buf: Vec::new(),
            stage: Stage::Boundary,
            searched: 0,
        }
    }

    /// Finds `needle` (the delimiter when `None`) at or after the resume point; remembers
    /// where a failed search ended.
    fn search(&mut self, needle: Option<&[u8]>) -> Option<usize> {
        let needle = needle.unwrap_or(&self.delimiter);
        let from = self.searched.min(self.buf.len());
        match find(&self.buf[from..], needle) {
            Some(i) => Some(from + i),
            None => {
                // A needle may straddle the end: resume one needle short of it.
                self.searched = self.buf.len().saturating_sub(needle.len() - 1).max(from);
                None
            }
        }
    }

    /// Moves to `stage`, whose search starts at `at`.
    fn enter(&mut self, stage: Stage, at: usize) {
        self.stage = stage;
        self.searched = at;
    }

    /// Hands out the body `start..end` (when it is a JPEG) and drops everything before `end`.
    /// A body ended by the next boundary (no length given) loses the line break before it.
    fn finish_part(&mut self, start: usize, end: usize, pictures: &mut Vec<Vec<u8>>) {
        let body = &self.buf[start..end];
        let body = match self.stage {
            Stage::Body(_, None) => body.strip_suffix(b"\r\n").unwrap_or(body),
            _ => body,
        };
        if body.starts_with(&[0xFF, 0xD8]) {
            pictures.push(body.to_vec());
        }
        self.buf.drain(..end);
        self.enter(Stage::Boundary, 0);
    }

    /// Adds bytes; returns the complete JPEG pictures found so far.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, SourceError> {
        self.buf.extend_from_slice(bytes);
        let mut pictures = Vec::new();
        loop {
            match self.stage {
                Stage::Boundary => {
                    let Some(start) = self.search(None) else {
                        break;
                    };
                    let after = start + self.delimiter.len();
                    self.enter(Stage::Headers(after), after);
                }
                Stage::Headers(after) => {
                    let Some(blank) = self.search(Some(b"\r\n\r\n")) else {
                        break;
                    };
                    let headers_end = blank + 4;
                    let headers =
                        String::from_utf8_lossy(&self.buf[after..headers_end]).to_ascii_lowercase();
                    let length = headers
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok());
                    if let Some(n) = length.filter(|n| *n > MAX_PART_BYTES) {
                        return Err(SourceError::Stream(format!("MJPEG part of {n} bytes")));
                    }
                    self.enter(Stage::Body(headers_end, length), headers_end);
                }
                Stage::Body(start, Some(n)) => {
                    if self.buf.len() < start + n {
                        break;
                    }
                    self.finish_part(start, start + n, &mut pictures);
                }
                Stage::Body(start, None) => {
                    let Some(end) = self.search(None) else { break };
                    self.finish_part(start, end, &mut pictures);
                }
            }
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
        // Redirects are not followed: the next hop would escape the source policy and the
        // resolution guard, which checked only this URL.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let (true, Some(host), Some(port)) = (guard, url.host_str(), url.port_or_known_default())
        {
            let addrs = resolve_guarded(host, port).await?;
            builder = builder.resolve_to_addrs(host, &addrs);
        }
        let client = builder
            .build()
            .map_err(|e| SourceError::Connect(brief(e)))?;
        let response = tokio::time::timeout(CONNECT_TIMEOUT, client.get(url.clone()).send())
            .await
            .map_err(|_| SourceError::Timeout("connecting"))?
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| SourceError::Connect(brief(e.without_url())))?;
        if response.status().is_redirection() {
            return Err(SourceError::Connect(format!(
                "HTTP {}: redirects are not followed; give the address it points to",
                response.status().as_u16()
            )));
        }
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
                .map_err(|e| SourceError::Stream(brief(e.without_url())))?
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
    fn a_long_part_in_small_chunks_and_garbage_between_parts() {
        // 1 MiB without a length, in 4 KiB chunks: found once the next boundary arrives.
        let mut big = vec![0xFF, 0xD8];
        big.extend((0..(1 << 20)).map(|i| (i % 251) as u8));
        let mut stream = b"preamble junk\r\n".to_vec();
        stream.extend(part(&big, false));
        stream.extend(part(JPEG_B, true));
        stream.extend(b"junk between parts");
        stream.extend(part(JPEG_A, true));
        let mut parser = PartParser::new("frame");
        let mut got = Vec::new();
        for chunk in stream.chunks(4096) {
            got.extend(parser.push(chunk).unwrap());
            // Inside the big body, the next search resumes near the end of what has arrived
            // (at most a delimiter short of it), not at the start.
            if matches!(parser.stage, Stage::Body(_, None)) {
                let resume = parser.buf.len() - parser.searched;
                assert!(
                    resume < parser.delimiter.len(),
                    "resumes {resume} bytes back"
                );
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], big);
        assert_eq!(got[1], JPEG_B);
        assert_eq!(got[2], JPEG_A);
        // A delimiter split over two pushes is still found.
        let mut parser = PartParser::new("frame");
        let one = part(JPEG_A, true);
        assert!(parser.push(&one[..4]).unwrap().is_empty());
        assert_eq!(parser.push(&one[4..]).unwrap(), vec![JPEG_A.to_vec()]);
    }

    proptest::proptest! {
        /// However the stream is cut into chunks, the same pictures come out, in order.
        #[test]
        fn chunking_never_changes_the_pictures(
            bodies in proptest::collection::vec(
                (proptest::collection::vec(proptest::num::u8::ANY, 0..300), proptest::bool::ANY),
                1..6,
            ),
            cuts in proptest::collection::vec(1usize..400, 1..40),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (tail, with_length) in &bodies {
                // A JPEG start, then bytes free of the delimiter's `--`; with a length given,
                // a body may end in a line break of its own.
                let mut jpeg = vec![0xFF, 0xD8];
                jpeg.extend(tail.iter().map(|b| if *b == b'-' { b'+' } else { *b }));
                if *with_length && tail.len() % 2 == 0 {
                    jpeg.extend(b"\r\n");
                }
                stream.extend(part(&jpeg, *with_length));
                expected.push(jpeg);
            }
            // The last part without a length needs a boundary after it to end.
            stream.extend(b"--frame\r\n");
            let mut parser = PartParser::new("frame");
            let mut got = Vec::new();
            let mut rest = stream.as_slice();
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
                got.extend(parser.push(chunk).unwrap());
                rest = tail;
            }
            proptest::prop_assert_eq!(got, expected);
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
