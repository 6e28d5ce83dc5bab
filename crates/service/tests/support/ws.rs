//! A WebSocket client of the service's `/ws` for the black-box tests: connect (checking that
//! `connection_ack` comes first), send, and wait for messages by type or camera state; and the
//! client messages the tests send most (`start_stream`, `subscribe`, `stop_stream`,
//! `check_camera`).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::Service;

/// The client socket type.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of `/ws`.
pub struct Client {
    /// The socket.
    pub ws: Ws,
}

impl Client {
    /// Connects and checks that `connection_ack` comes first.
    pub async fn connect(service: &Service) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(service.ws_url())
            .await
            .unwrap();
        let mut c = Self { ws };
        let ack = c.recv(Duration::from_secs(5)).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        assert_eq!(ack["data"]["message"], "WS connected (pipeline ready)");
        c
    }

    /// Sends `v` as a text message.
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    /// Sends `m` as it is.
    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    /// The next JSON message within `within`.
    pub async fn recv(&mut self, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no message within {within:?}"))
                .expect("connection open")
                .unwrap();
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Close(f) => panic!("closed by server: {f:?}"),
                _ => {}
            }
        }
    }

    /// The next message of type `ty`, skipping others.
    pub async fn recv_type(&mut self, ty: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {ty} within {within:?}");
            let v = self.recv(left).await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// The next `camera_status` with `state`, skipping others.
    pub async fn recv_state(&mut self, state: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no state {state} within {within:?}");
            let v = self.recv_type("camera_status", left).await;
            if v["data"]["state"] == state {
                return v;
            }
        }
    }
}

/// A `start_stream` message.
pub fn start(camera_id: i64, url: &str) -> Value {
    json!({"type": "start_stream", "data": {"cameraId": camera_id, "rtspUrl": url}})
}

/// A `subscribe` message.
pub fn subscribe(camera_id: i64) -> Value {
    json!({"type": "subscribe", "data": {"cameraId": camera_id}})
}

/// A `stop_stream` message.
pub fn stop(camera_id: i64) -> Value {
    json!({"type": "stop_stream", "data": {"cameraId": camera_id}})
}

/// A `check_camera` message.
pub fn check(camera_id: i64, url: &str) -> Value {
    json!({"type": "check_camera", "data": {"cameraId": camera_id, "rtspUrl": url}})
}

/// A WebSocket handshake to the service from loopback address `from` (127.0.0.x).
pub async fn connect_from(
    service: &Service,
    from: [u8; 4],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    connect_from_with(service, from, &[]).await
}

/// A WebSocket handshake from loopback address `from` with extra request `headers`.
pub async fn connect_from_with(
    service: &Service,
    from: [u8; 4],
    headers: &[(&'static str, &str)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let addr: std::net::SocketAddr = service.addr.parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let mut request = service.ws_url().into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(*name, value.parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(ws)
}
