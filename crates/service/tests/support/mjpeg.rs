//! An HTTP MJPEG camera for the tests: an endless `multipart/x-mixed-replace` stream of two
//! real photos (bus.jpg, 810x1080, and zidane.jpg, 1280x720) at 5 pictures a second, served on
//! loopback. The alternating photos make objects jump, which the rules may call dangerous.

use std::time::Duration;

use axum::body::{Body, Bytes};

use super::{media, serve};

/// Serves an endless MJPEG stream of the two photos, 5 pictures a second; returns its URL.
pub async fn serve_mjpeg() -> String {
    let photos = [
        std::fs::read(media("bus.jpg")).expect("bus.jpg"),
        std::fs::read(media("zidane.jpg")).expect("zidane.jpg"),
    ];
    let app = axum::Router::new().route(
        "/video.mjpg",
        axum::routing::get(move || {
            let photos = photos.clone();
            async move {
                let parts = futures_util::stream::unfold(0usize, move |i| {
                    let photo = photos[i % 2].clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let mut part = format!(
                            "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                            photo.len()
                        )
                        .into_bytes();
                        part.extend_from_slice(&photo);
                        part.extend_from_slice(b"\r\n");
                        Some((Ok::<_, std::io::Error>(Bytes::from(part)), i + 1))
                    }
                });
                (
                    [("content-type", "multipart/x-mixed-replace; boundary=frame")],
                    Body::from_stream(parts),
                )
            }
        }),
    );
    let addr = serve(app).await;
    format!("http://{addr}/video.mjpg")
}
