//! A fleet on a real Apache Kafka cluster (issue 17): three service instances (detector role)
//! with the same twelve declared cameras, three KRaft brokers, one Redis. Each camera must be
//! analysed by exactly one instance (measured from every instance's analysed frames); when one
//! instance is killed with SIGKILL its cameras run again on the others within 30 s, and the
//! cameras that did not move go on without a gap. The lease that fences a camera is checked
//! on its own against the real Redis.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::kafka_cluster::KafkaCluster;
use support::services::Redis;
use support::ws::{Client, start, stop, subscribe};
use support::{RtspServer, Service, http, looping};

/// Cameras of the fleet.
const CAMERAS: i64 = 12;

/// `field` (a counter of `/api/cameras`) per camera running on `service`.
fn per_camera(service: &Service, field: &str) -> BTreeMap<i64, u64> {
    service.cameras()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["cameraId"].as_i64().unwrap(), c[field].as_u64().unwrap()))
        .collect()
}

/// Frames analysed so far per camera running on `service`.
fn analysed(service: &Service) -> BTreeMap<i64, u64> {
    per_camera(service, "framesAnalysed")
}

/// Samples dropped so far per camera running on `service` (due, but its analysis was busy).
fn dropped(service: &Service) -> BTreeMap<i64, u64> {
    per_camera(service, "framesDropped")
}

/// One reading of every live instance.
type Reading = Vec<Option<BTreeMap<i64, u64>>>;

fn read(services: &[Option<Service>]) -> Reading {
    services.iter().map(|s| s.as_ref().map(analysed)).collect()
}

/// For each camera, the instances that analysed a frame of it between `before` and `after`.
fn analysed_by(before: &Reading, after: &Reading) -> BTreeMap<i64, BTreeSet<usize>> {
    let mut by: BTreeMap<i64, BTreeSet<usize>> = BTreeMap::new();
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        let (Some(b), Some(a)) = (b, a) else { continue };
        for (camera, frames) in a {
            // A camera that started here in between counts from zero.
            if *frames > b.get(camera).copied().unwrap_or(0) {
                by.entry(*camera).or_default().insert(i);
            }
        }
    }
    by
}

fn owned(services: &[Option<Service>]) -> (f64, f64) {
    services.iter().flatten().fold((0.0, 0.0), |(o, w), s| {
        (
            o + s.metric("fleet_cameras_owned"),
            w + s.metric("fleet_cameras_waiting_lease"),
        )
    })
}

/// Waits until the live instances own all the cameras between them, none waiting for a lease.
fn settled(services: &[Option<Service>], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (owned, waiting) = owned(services);
        if owned == CAMERAS as f64 && waiting == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet did not settle: {owned} cameras owned, {waiting} waiting"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Checks that over `seconds` every camera is analysed, each by exactly one instance.
fn exactly_once(services: &[Option<Service>], seconds: u64) {
    let before = read(services);
    std::thread::sleep(Duration::from_secs(seconds));
    let by = analysed_by(&before, &read(services));
    let twice: Vec<_> = by.iter().filter(|(_, i)| i.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "cameras analysed on two instances: {twice:?}"
    );
    let cameras: BTreeSet<i64> = by.keys().copied().collect();
    assert_eq!(
        cameras,
        (1..=CAMERAS).collect(),
        "cameras not analysed: {by:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_twelve_cameras_take_over_a_dead_ones_and_serve_any_client() {
    let cluster = KafkaCluster::start(3);
    let redis = Redis::start();
    let url = looping("vtest-h264.mp4");
    let mut cameras = String::from("cameras:\n");
    for id in 1..=CAMERAS {
        cameras.push_str(&format!("  - {{id: {id}, url: \"{url}\"}}\n"));
    }
    let dir = support::dir_with("cameras.yaml", &cameras);
    std::fs::write(
        dir.path().join("kafka.yaml"),
        format!(
            "group_prefix: fleet{}\nreplication_factor: 3\nmin_insync_replicas: 2\n\
             producer:\n  enable.idempotence: true\n",
            std::process::id()
        ),
    )
    .unwrap();
    let (bootstrap, redis_url) = (cluster.bootstrap(), redis.url());
    let (cameras_file, kafka_file) = (
        dir.path().join("cameras.yaml"),
        dir.path().join("kafka.yaml"),
    );
    let start_instance = |i: usize| {
        Service::start(&[
            ("ALGO_ENABLE_KAFKA_STREAMING", "true"),
            ("ALGO_KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
            ("ALGO_KAFKA_CONFIG_FILE", kafka_file.to_str().unwrap()),
            ("ALGO_REDIS_URL", &redis_url),
            ("ALGO_STREAMING_ROLES", "detector"),
            ("ALGO_CAMERAS_FILE", cameras_file.to_str().unwrap()),
            ("ALGO_INSTANCE_ID", &format!("node-{i}")),
            ("ALGO_INFERENCE_SESSIONS", "1"),
        ])
    };
    let mut services: Vec<Option<Service>> = (0..3).map(|i| Some(start_instance(i))).collect();

    // Three instances, twelve cameras, each analysed once.
    settled(&services, Duration::from_secs(120));
    exactly_once(&services, 8);
    let share: Vec<usize> = (services.iter().flatten())
        .map(|s| s.metric("fleet_cameras_owned") as usize)
        .collect();
    eprintln!("cameras per instance: {share:?}");

    // The instance with the most cameras dies without a word.
    let victim = (0..3).max_by_key(|i| share[*i]).unwrap();
    let moved: BTreeSet<i64> = analysed(services[victim].as_ref().unwrap())
        .into_keys()
        .collect();
    assert!(!moved.is_empty());
    let before = read(&services);
    let dropped_before: Vec<_> = (services.iter()).map(|s| s.as_ref().map(dropped)).collect();
    let killed = Instant::now();
    {
        let service = services[victim].as_mut().unwrap();
        service.child_mut().kill().unwrap();
        service.child_mut().wait().unwrap();
    }
    services[victim] = None;
    let mut back: BTreeMap<i64, Duration> = BTreeMap::new();
    while back.len() < moved.len() && killed.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        for (camera, _) in analysed_by(&before, &read(&services)) {
            if moved.contains(&camera) {
                back.entry(camera).or_insert_with(|| killed.elapsed());
            }
        }
    }
    eprintln!(
        "{} cameras moved; analysed again after {back:?}",
        moved.len()
    );
    assert_eq!(
        back.len(),
        moved.len(),
        "cameras not taken over: {back:?} of {moved:?}"
    );
    let slowest = back.values().max().unwrap();
    assert!(
        *slowest <= Duration::from_secs(30),
        "took over in {slowest:?}"
    );

    // The cameras that did not move went on where they were, at their pace, with no sample
    // lost.
    let after = read(&services);
    for (i, b) in dropped_before.iter().enumerate() {
        let (Some(b), Some(service)) = (b, services[i].as_ref()) else {
            continue;
        };
        let now = dropped(service);
        for (camera, drops) in b {
            assert_eq!(
                now.get(camera),
                Some(drops),
                "camera {camera} on instance {i} dropped samples"
            );
        }
    }
    let elapsed = killed.elapsed().as_secs_f64();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let (Some(b), Some(a)) = (b, a) else { continue };
        for (camera, frames) in b {
            let now = a.get(camera).copied();
            assert!(now.is_some(), "camera {camera} left instance {i}");
            let gained = now.unwrap() - frames;
            assert!(
                gained as f64 >= 0.7 * elapsed / 1.8 - 1.0,
                "camera {camera} on instance {i}: {gained} frames in {elapsed:.0} s"
            );
        }
    }

    // Two instances, the same twelve cameras, each analysed once.
    settled(&services, Duration::from_secs(30));
    exactly_once(&services, 8);
    let moves: f64 = (services.iter().flatten())
        .map(|s| s.metric("fleet_camera_moves_total{change=\"started\"}"))
        .sum();
    assert!(moves >= CAMERAS as f64, "{moves} camera starts counted");

    // A client on one instance watches a camera that runs on the other.
    let alive: Vec<usize> = (0..3).filter(|i| services[*i].is_some()).collect();
    let (a, b) = (alive[0], alive[1]);
    let on_b = *analysed(services[b].as_ref().unwrap())
        .keys()
        .next()
        .unwrap();
    let mut client = Client::connect(services[a].as_ref().unwrap()).await;
    client.send(subscribe(on_b)).await;
    let result = result_of(&mut client, on_b).await;
    assert!(
        result["data"]["frame"]
            .as_str()
            .unwrap()
            .starts_with("data:image/jpeg;base64,"),
        "a relayed result carries its frame"
    );
    let relayed = services[a]
        .as_ref()
        .unwrap()
        .metric("fleet_live_messages_total{outcome=\"relayed\"}");
    assert!(relayed >= 1.0, "{relayed} relayed");

    // A client's own camera: asked for on one instance, run by exactly one, ended by the fleet
    // once its client stops it.
    let rtsp = RtspServer::vtest();
    client.send(start(50, &rtsp.url(0))).await;
    result_of(&mut client, 50).await;
    let runs = |services: &[Option<Service>]| -> usize {
        (services.iter().flatten())
            .filter(|s| analysed(s).get(&50).is_some_and(|f| *f > 0))
            .count()
    };
    assert_eq!(runs(&services), 1, "camera 50 runs on one instance");
    client.send(stop(50)).await;
    let stopped = Instant::now();
    while (services.iter().flatten()).any(|s| analysed(s).contains_key(&50)) {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "camera 50 still runs 30 s after its only client stopped it"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The dead instance comes back: it takes a share again, and its clients get fresh
    // results only, none of what was published while it was away.
    services[victim] = Some(start_instance(victim));
    // Ready once it has read the fleet's cameras (and Kafka, Redis, the topics answer).
    let restarted = Instant::now();
    while http(
        &services[victim].as_ref().unwrap().addr,
        "GET",
        "/api/health/ready",
        &[],
    )
    .0 != 200
    {
        assert!(
            restarted.elapsed() < Duration::from_secs(60),
            "not ready in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    settled(&services, Duration::from_secs(60));
    let back = services[victim].as_ref().unwrap();
    let elsewhere = (0..3)
        .filter(|i| *i != victim)
        .flat_map(|i| analysed(services[i].as_ref().unwrap()).into_keys())
        .next()
        .unwrap();
    let mut late = Client::connect(back).await;
    late.send(subscribe(elsewhere)).await;
    let joined = chrono::Utc::now();
    for _ in 0..3 {
        let r = result_of(&mut late, elsewhere).await;
        let stamp =
            chrono::DateTime::parse_from_rfc3339(r["data"]["timestamp"].as_str().unwrap()).unwrap();
        let age = joined - stamp.with_timezone(&chrono::Utc);
        assert!(age < chrono::Duration::seconds(5), "an old result: {age}");
    }
    exactly_once(&services, 8);
}

/// The next `detection_result` of camera `id` (within 40 s), skipping other messages.
async fn result_of(client: &mut Client, id: i64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no detection_result of camera {id} within 40 s"
        );
        let r = client.recv_type("detection_result", left).await;
        if r["data"]["cameraId"] == id {
            return r;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_lease_has_one_holder_until_given_up_or_lapsed() {
    use streaming::shared::Shared;
    let redis = Redis::start();
    let shared = Shared::connect(&redis.url(), "lease-test").await.unwrap();
    let ttl = Duration::from_millis(800);
    assert!(shared.hold_lease("camera:1", "a", ttl).await.unwrap());
    assert!(!shared.hold_lease("camera:1", "b", ttl).await.unwrap());
    assert!(
        shared.hold_lease("camera:1", "a", ttl).await.unwrap(),
        "renewed"
    );
    // Another holder cannot give it up.
    shared.drop_lease("camera:1", "b").await.unwrap();
    assert!(!shared.hold_lease("camera:1", "b", ttl).await.unwrap());
    shared.drop_lease("camera:1", "a").await.unwrap();
    assert!(
        shared.hold_lease("camera:1", "b", ttl).await.unwrap(),
        "given up"
    );
    // Renewed, it outlives its first term; left alone, it lapses.
    tokio::time::sleep(ttl / 2).await;
    assert!(shared.hold_lease("camera:1", "b", ttl).await.unwrap());
    tokio::time::sleep(ttl / 2 + Duration::from_millis(100)).await;
    assert!(
        !shared.hold_lease("camera:1", "a", ttl).await.unwrap(),
        "renewed by b"
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(
        shared.hold_lease("camera:1", "a", ttl).await.unwrap(),
        "lapsed"
    );
}
