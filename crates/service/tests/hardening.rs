//! Black-box tests of the service against clients it cannot trust: the bearer token, the
//! connection limits (total and per address, from several loopback addresses), the message
//! rate, and a hostile mix (1,000 bad messages, an oversized frame, binary frames, a flood,
//! half-open sockets) while a well-behaved client keeps getting its camera's results on time.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::live_camera::LiveCamera;
use support::ws::{Client, Ws, check, connect_from, connect_from_with, start};
use support::{SECS, Service, http};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The HTTP status a refused handshake got.
fn refused_status(e: &tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

async fn first_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(SECS(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_the_api_and_the_websocket_and_is_never_logged() {
    let token = "s3cret-Token-42";
    let service = Service::start_logging(&[("ALGO_AUTH_TOKEN", token)]);
    let (status, _, _) = http(&service.addr, "GET", "/api/health/health_check", &[]);
    assert_eq!(status, 200, "health stays open");
    let (status, head, body) = http(&service.addr, "GET", "/api/cameras", &[]);
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], 401);
    let wrong = [("Authorization", "Bearer s3cret-Token-43")];
    assert_eq!(http(&service.addr, "GET", "/api/cameras", &wrong).0, 401);
    let right = format!("Bearer {token}");
    let right = [("Authorization", right.as_str())];
    assert_eq!(http(&service.addr, "GET", "/api/cameras", &right).0, 200);

    // Without the token the socket says why and closes.
    let (mut ws, _) = tokio_tungstenite::connect_async(service.ws_url())
        .await
        .unwrap();
    let v = first_json(&mut ws).await;
    assert_eq!(
        (v["type"].as_str(), v["data"]["code"].as_str()),
        (Some("error"), Some("unauthorized")),
        "{v}"
    );
    let closed = tokio::time::timeout(SECS(5), ws.next()).await.unwrap();
    assert!(
        matches!(closed, Some(Ok(Message::Close(_))) | None),
        "{closed:?}"
    );

    // With it, in the query (browsers; SPEC's `token`, or `access_token`) or the header.
    for name in ["token", "access_token"] {
        let url = format!("{}?{name}={token}", service.ws_url());
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(first_json(&mut ws).await["type"], "connection_ack");
    }
    let mut request = service.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", right[0].1.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(first_json(&mut ws).await["type"], "connection_ack");

    assert_eq!(service.metric("auth_failures_total{endpoint=\"api\"}"), 2.0);
    assert_eq!(service.metric("auth_failures_total{endpoint=\"ws\"}"), 1.0);
    let (_, _, metrics) = http(&service.addr, "GET", "/metrics", &[]);
    assert!(!metrics.contains(token));
    assert!(!service.log().contains(token), "{}", service.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_limited_per_address_and_in_total() {
    let service = Service::start(&[
        ("ALGO_MAX_WS_CONNECTIONS", "3"),
        ("ALGO_MAX_WS_CONNECTIONS_PER_IP", "2"),
    ]);
    let a1 = connect_from(&service, [127, 0, 0, 1]).await.unwrap();
    let _a2 = connect_from(&service, [127, 0, 0, 1]).await.unwrap();
    let e = connect_from(&service, [127, 0, 0, 1]).await.unwrap_err();
    assert_eq!(refused_status(&e), 429);
    let _b1 = connect_from(&service, [127, 0, 0, 2]).await.unwrap();
    let e = connect_from(&service, [127, 0, 0, 3]).await.unwrap_err();
    assert_eq!(refused_status(&e), 503);
    // A place frees when a client leaves.
    drop(a1);
    let deadline = Instant::now() + SECS(5);
    loop {
        match connect_from(&service, [127, 0, 0, 3]).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(refused_status(&e), 503);
                assert!(Instant::now() < deadline, "the place was not released");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(service.metric("client_limit_hits_total{limit=\"connections_per_ip\"}") >= 1.0);
    assert!(service.metric("client_limit_hits_total{limit=\"connections\"}") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited_not_the_proxy() {
    // 127.0.0.1 is the reverse proxy; 127.0.0.2 is a client that is not one.
    let service = Service::start(&[
        ("ALGO_MAX_WS_CONNECTIONS_PER_IP", "2"),
        ("ALGO_TRUSTED_PROXIES", "127.0.0.1"),
    ]);
    let via_proxy = |client: &'static str| [("x-forwarded-for", client)];
    let proxy = [127, 0, 0, 1];
    let _a1 = connect_from_with(&service, proxy, &via_proxy("203.0.113.5"))
        .await
        .unwrap();
    let _a2 = connect_from_with(&service, proxy, &via_proxy("198.51.100.1, 203.0.113.5"))
        .await
        .unwrap();
    // The same client a third time is refused, though the proxy carries other clients too.
    let e = connect_from_with(&service, proxy, &via_proxy("203.0.113.5"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(&e), 429);
    let _b1 = connect_from_with(&service, proxy, &via_proxy("203.0.113.6"))
        .await
        .unwrap();
    let _b2 = connect_from_with(&service, proxy, &via_proxy("203.0.113.7"))
        .await
        .unwrap();
    // A client that is not a trusted proxy cannot pick its address with the header.
    let spoofer = [127, 0, 0, 2];
    let mut held = Vec::new();
    for other in ["203.0.113.8", "203.0.113.9"] {
        held.push(
            connect_from_with(&service, spoofer, &via_proxy(other))
                .await
                .unwrap(),
        );
    }
    let e = connect_from_with(&service, spoofer, &via_proxy("203.0.113.10"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(&e), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_beyond_the_rate_are_refused_with_an_error() {
    let service = Service::start(&[("ALGO_WS_MESSAGES_PER_SECOND", "1")]);
    let mut c = Client::connect(&service).await;
    // A burst of two passes; the third is refused and said so.
    for _ in 0..3 {
        c.send(json!({"type": "ping"})).await;
    }
    let answers: Vec<Value> = [
        c.recv(SECS(5)).await,
        c.recv(SECS(5)).await,
        c.recv(SECS(5)).await,
    ]
    .into();
    let types: Vec<&str> = answers
        .iter()
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["pong", "pong", "error"], "{answers:?}");
    assert_eq!(answers[2]["data"]["code"], "rate_limited");
    // A second later there is room again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv(SECS(5)).await["type"], "pong");
    assert_eq!(
        service.metric("client_limit_hits_total{limit=\"message_rate\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_get_errors_or_are_dropped_while_results_keep_flowing() {
    let cam = LiveCamera::start(1, Service::start(&[("ALGO_WS_MESSAGES_PER_SECOND", "200")])).await;
    let service = &cam.service;
    let mut good = cam.client;
    good.recv_type("detection_result", SECS(15)).await;

    // Result timing of the good client, watched in the background.
    let watcher = tokio::spawn(async move {
        let mut times = Vec::new();
        let until = Instant::now() + SECS(14);
        while Instant::now() < until {
            good.recv_type("detection_result", SECS(5)).await;
            times.push(Instant::now());
        }
        (good, times)
    });

    // Half-open sockets: a connection that never speaks, and a handshake cut in the middle.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tokio::net::TcpStream::connect(&service.addr).await.unwrap());
        let mut half = tokio::net::TcpStream::connect(&service.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut half, b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgr")
            .await
            .unwrap();
        idle.push(half);
    }

    // 1,000 bad messages, paced within the rate: each gets its error, the socket stays.
    let mut bad = Client::connect(service).await;
    let kinds = [
        json!("not an object").to_string(),
        "{not json".to_string(),
        json!({"type": "launch_missiles", "data": {}}).to_string(),
        json!({"type": "start_stream", "data": {"cameraId": "x", "rtspUrl": 5}}).to_string(),
        json!({"type": "stop_stream", "data": {"cameraId": 999}}).to_string(),
    ];
    let mut answered = 0;
    for i in 0..1000 {
        bad.send_raw(Message::Text(kinds[i % kinds.len()].clone().into()))
            .await;
        if i % 20 == 19 {
            // 20 in flight at most, about 60 a second: well inside 200.
            for _ in 0..20 {
                let v = bad.recv(SECS(5)).await;
                assert_eq!(v["type"], "error", "{v}");
                answered += 1;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    assert_eq!(answered, 1000);
    // An oversized frame and a binary frame: errors, and the socket still answers.
    bad.send_raw(Message::Text("x".repeat(2 << 20).into()))
        .await;
    assert_eq!(bad.recv(SECS(5)).await["data"]["code"], "invalid_json");
    bad.send_raw(Message::Binary(vec![0u8; 1024].into())).await;
    assert_eq!(bad.recv(SECS(5)).await["data"]["code"], "invalid_json");
    bad.send(json!({"type": "ping"})).await;
    assert_eq!(bad.recv_type("pong", SECS(5)).await["type"], "pong");

    // A flood: dropped (its `rate_limited` error may itself be lost in the flood of pongs).
    let mut flood = Client::connect(service).await;
    let ping = Message::Text(json!({"type": "ping"}).to_string().into());
    let mut sent = 0;
    let dropped = loop {
        if flood.ws.send(ping.clone()).await.is_err() {
            break true;
        }
        sent += 1;
        if sent > 5000 {
            break false;
        }
    };
    let mut closed = dropped;
    while let Ok(Some(msg)) = tokio::time::timeout(SECS(5), flood.ws.next()).await {
        if matches!(msg, Ok(Message::Close(_)) | Err(_)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the flooder was not dropped after {sent} messages");

    let (_good, times) = watcher.await.unwrap();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(times.len() >= 6, "{} results in 14 s", times.len());
    assert!(gaps.iter().all(|g| *g < 2.7), "results delayed: {gaps:?}");
    assert!(service.metric("client_limit_hits_total{limit=\"message_rate\"}") >= 1.0);
    assert!(service.metric("client_limit_hits_total{limit=\"flood\"}") >= 1.0);
    assert!(service.metric("client_limit_hits_total{limit=\"message_size\"}") >= 1.0);
    // Four kinds in five do not parse; the fifth is a stop_stream of a camera never started.
    assert!(service.metric("ws_messages_received_total{type=\"invalid\"}") >= 800.0);
    assert!(service.metric("ws_messages_received_total{type=\"stop_stream\"}") >= 200.0);
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_passwords_never_leave_the_service_and_metadata_hosts_are_refused() {
    let service = Service::start_logging(&[]);
    let mut c = Client::connect(&service).await;
    // A camera that cannot be reached, with credentials in its URL.
    c.send(start(5, "rtsp://admin:Pa55word-xyz@127.0.0.1:9/stream"))
        .await;
    let v = c.recv_state("reconnecting", SECS(10)).await;
    let mut seen = vec![v.to_string()];
    // And one that takes its password as a query parameter, as many cameras do.
    c.send(start(
        8,
        "rtsp://127.0.0.1:9/cam?user=admin&pwd=Pa55word-xyz&channel=1",
    ))
    .await;
    seen.push(c.recv_state("reconnecting", SECS(10)).await.to_string());
    c.send(check(6, "rtsp://admin:Pa55word-xyz@127.0.0.1:9/s"))
        .await;
    seen.push(c.recv_type("camera_status", SECS(10)).await.to_string());
    seen.push(http(&service.addr, "GET", "/api/cameras", &[]).2);
    seen.push(http(&service.addr, "GET", "/metrics", &[]).2);
    seen.push(service.log());
    for text in &seen {
        assert!(!text.contains("Pa55word"), "{text}");
    }
    assert!(
        seen[3].contains("rtsp://admin:***@127.0.0.1:9/stream"),
        "{}",
        seen[3]
    );
    assert!(
        seen[3].contains("rtsp://127.0.0.1:9/cam?user=admin&pwd=***&channel=1"),
        "{}",
        seen[3]
    );

    // The cloud metadata service is not a camera.
    c.send(start(7, "http://169.254.169.254/latest/meta-data/"))
        .await;
    let e = c.recv_type("error", SECS(5)).await;
    assert_eq!(e["data"]["code"], "source_not_allowed", "{e}");
    assert_eq!(e["data"]["cameraId"], 7);
}

/// Reads until the peer closes; false when it is still open after `within`.
async fn closes_within(socket: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    tokio::time::timeout(within, async {
        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_checks_are_capped_per_connection_and_end_with_it() {
    // A "camera" that accepts and never answers: each check runs its full 5 s.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "rtsp://127.0.0.1:{}/stalled",
        listener.local_addr().unwrap().port()
    );
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = accepted_tx.send(socket);
        }
    });
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    // Four at once per connection.
    for id in 1..=5 {
        c.send(check(id, &url)).await;
    }
    let e = c.recv_type("error", SECS(3)).await;
    assert_eq!(e["data"]["code"], "rate_limited", "{e}");
    assert_eq!(e["data"]["cameraId"], 5, "{e}");
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let socket = tokio::time::timeout(SECS(3), accepted.recv()).await;
        sockets.push(socket.expect("the admitted checks connect").unwrap());
    }
    assert!(service.metric("client_limit_hits_total{limit=\"camera_checks\"}") >= 1.0);
    for _ in 0..4 {
        let v = c.recv_type("camera_status", SECS(8)).await;
        assert_eq!(v["data"]["status"], 0, "{v}");
    }
    // Their answers freed the places.
    c.send(check(4, &url)).await;
    let mut fourth = tokio::time::timeout(SECS(3), accepted.recv())
        .await
        .expect("a new check is admitted")
        .unwrap();
    // Closing the connection ends its check at once, not at the check's own 5 s limit.
    drop(c);
    assert!(
        closes_within(&mut fourth, SECS(3)).await,
        "the check outlived its connection"
    );
}
