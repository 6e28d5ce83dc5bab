//! Black-box tests of the service's HTTP API (`traffic-algo serve` on loopback, no camera): every
//! answer in the `{code, msg, data}` envelope, the health check's fields, 404, 405, a plain
//! HTTP request to `/ws`, an empty camera list, and CORS.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use serde_json::{Value, json};
use support::{Service, http};

#[test]
fn http_answers_in_the_envelope() {
    let service = Service::start(&[]);
    let (status, head, body) = http(&service.addr, "GET", "/api/health/health_check", &[]);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 200);
    assert_eq!(v["msg"], "OK");
    assert_eq!(v["data"]["status"], "UP");
    assert_eq!(v["data"]["service"], "algo");
    assert_eq!(v["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["data"]["activeStreams"], 0);
    assert_eq!(v["data"]["llmEnabled"], false);
    assert_eq!(v["data"]["mode"], "standalone");
    assert!(v["data"]["uptimeSeconds"].is_u64());
    assert!(head.contains("content-type: application/json"), "{head}");

    let (status, _, body) = http(&service.addr, "GET", "/no/such/path", &[]);
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["code"].as_u64(), v["data"].is_null()), (Some(404), true));

    let (status, _, body) = http(&service.addr, "POST", "/api/health/health_check", &[]);
    assert_eq!(status, 405);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], 405);

    // `/ws` asked for by plain HTTP: the envelope too, not the framework's text.
    let (status, _, body) = http(&service.addr, "GET", "/ws", &[]);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(v["code"], status, "{body}");
    assert!(v["msg"].as_str().unwrap().contains("WebSocket"), "{body}");

    let (status, _, body) = http(&service.addr, "GET", "/api/cameras", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["data"],
        json!([])
    );

    let (_, head, _) = http(
        &service.addr,
        "GET",
        "/api/health/health_check",
        &[("Origin", "http://dashboard.example")],
    );
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
}
