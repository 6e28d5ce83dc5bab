//! The usual start of a black-box test of a live camera: a real RTSP server streaming
//! `vtest-h264.mp4` (768x576 pedestrians, 10 fps) on loopback, the service, and a WebSocket
//! client that has sent `start_stream` for it. Tests then read the client's messages as they
//! need (`connecting`, `online`, `detection_result`s) and may drop the RTSP server to take the
//! camera down.

use super::ws::{Client, start};
use super::{RtspServer, Service};

/// A camera streaming from a loopback RTSP server through the service to one client. Use the
/// fields in place (`cam.client`, `&cam.service`), or move one out: the others keep running
/// until `cam` goes out of scope.
pub struct LiveCamera {
    /// The RTSP server; its stream /cam0 is the camera.
    pub rtsp: RtspServer,
    /// The service (already started by the caller).
    pub service: Service,
    /// The client that sent `start_stream`; it has read nothing after `connection_ack`.
    pub client: Client,
}

impl LiveCamera {
    /// Starts the RTSP server, connects a client to `service` and asks for camera `camera_id`.
    pub async fn start(camera_id: i64, service: Service) -> Self {
        Self::start_with_query(camera_id, "", service).await
    }

    /// [`LiveCamera::start`] with `query` after the stream's URL (`?transport=udp`).
    pub async fn start_with_query(camera_id: i64, query: &str, service: Service) -> Self {
        let rtsp = RtspServer::vtest();
        let mut client = Client::connect(&service).await;
        client
            .send(start(camera_id, &format!("{}{query}", rtsp.url(0))))
            .await;
        Self {
            rtsp,
            service,
            client,
        }
    }
}
