//! Streaming mode on a real Apache Kafka cluster (issue 17): three KRaft brokers started from
//! the jars setup fetched from Maven Central, the topics created with replication factor 3 and
//! `min.insync.replicas` 2 from `kafka.yaml`, an idempotent producer (`producer:` properties),
//! and one broker killed in the middle of a run: every detection with groups still gets its
//! merged result. The fast single-broker lane (Tansu) is `streaming.rs`.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use support::fake_llm::{FakeLlm, Reply};
use support::kafka_cluster::KafkaCluster;
use support::services::Redis;
use support::{RtspServer, Service, dir_with};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const TOPICS: [&str; 7] = [
    "detection-results",
    "assessment-tasks",
    "risk-assessment-results",
    "merged-results",
    "traffic-dead-letter",
    "camera-definitions",
    "live-results",
];

/// Replicas of every partition of `topic`, its `min.insync.replicas` and `cleanup.policy`.
async fn durability(bootstrap: &str, topic: &str) -> (Vec<usize>, String, String) {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    let client: BaseConsumer = config.create().unwrap();
    let meta = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let replicas = meta.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.replicas().len())
        .collect();
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    let value = |name: &str| {
        resource
            .get(name)
            .and_then(|e| e.value.clone())
            .unwrap_or_default()
    };
    (
        replicas,
        value("min.insync.replicas"),
        value("cleanup.policy"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_broker_cluster_loses_no_merged_result_when_a_broker_dies() {
    let mut cluster = KafkaCluster::start(3);
    let redis = Redis::start();
    let rtsp = RtspServer::vtest();
    let answer = r#"{"hasDangerousDriving": false, "maxRiskLevel": "low", "results": [{"groupIndex": 1, "description": "people walking", "riskLevel": "low", "confidence": 0.7, "riskTypes": [], "dangerObjectCount": 0, "triggerObjectIds": []}]}"#;
    let llm = FakeLlm::start(vec![Reply::Text(answer.into(), Duration::from_millis(300))]).await;
    let kafka_yaml = dir_with(
        "kafka.yaml",
        &format!(
            "group_prefix: cluster{}\nreplication_factor: 3\nmin_insync_replicas: 2\n\
             producer:\n  enable.idempotence: true\n",
            std::process::id()
        ),
    );
    let (bootstrap, redis_url, base) = (cluster.bootstrap(), redis.url(), llm.base_url());
    let file = kafka_yaml.path().join("kafka.yaml");
    let service = Service::start(&[
        ("ALGO_ENABLE_KAFKA_STREAMING", "true"),
        ("ALGO_KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("ALGO_KAFKA_CONFIG_FILE", file.to_str().unwrap()),
        ("ALGO_REDIS_URL", &redis_url),
        ("ALGO_LLM_API_KEY", "sk-cluster"),
        ("ALGO_LLM_BASE_URL", &base),
        ("ALGO_AGGREGATION_TIMEOUT_SECONDS", "20"),
        // Every frame with groups goes to the LLM, so every one must get its merged result.
        ("ALGO_LLM_COOLDOWN_SECONDS", "0"),
    ]);
    let (mut ws, _) = tokio_tungstenite::connect_async(service.ws_url())
        .await
        .unwrap();
    let start = json!({"type": "start_stream", "data": {"cameraId": 5, "rtspUrl": rtsp.url(0)}});
    ws.send(WsMessage::Text(start.to_string().into()))
        .await
        .unwrap();

    // detectionId -> (has groups, merged result seen)
    let mut seen: HashMap<String, (bool, bool)> = HashMap::new();
    let started = Instant::now();
    let (mut killed_at, mut follow_until) = (None, None);
    loop {
        let elapsed = started.elapsed();
        let merged_before_kill = seen.values().filter(|(_, m)| *m).count();
        if killed_at.is_none() && merged_before_kill >= 3 {
            // A broker dies (SIGKILL) while results flow: partitions it led move to others.
            cluster.kill(1);
            killed_at = Some(elapsed);
        }
        if killed_at.is_some_and(|k| elapsed > k + Duration::from_secs(25))
            && follow_until.is_none()
        {
            follow_until = Some(seen.len());
        }
        let waiting = seen.values().filter(|(g, m)| *g && !*m).count();
        if elapsed > Duration::from_secs(150) || (follow_until.is_some() && waiting == 0) {
            break;
        }
        let Ok(Some(Ok(WsMessage::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if v["type"] != "detection_result" {
            continue;
        }
        let d = &v["data"];
        let id = d["detectionId"].as_str().unwrap().to_string();
        if d.get("partial").is_some() {
            if let Some(entry) = seen.get_mut(&id) {
                entry.1 = true;
            }
        } else if follow_until.is_none() {
            let groups = !d["groupImages"].as_array().unwrap().is_empty();
            seen.insert(id, (groups, false));
        }
    }
    let killed_at = killed_at.expect("merged results flowed before the broker died");
    let with_groups = seen.values().filter(|(g, _)| *g).count();
    let merged = seen.values().filter(|(g, m)| *g && *m).count();
    eprintln!(
        "{} frames, {with_groups} with groups, {merged} merged; broker killed at {killed_at:?}",
        seen.len()
    );
    assert!(
        with_groups >= 8,
        "too few frames with groups: {with_groups}"
    );
    assert_eq!(merged, with_groups, "a detection lost its merged result");

    // The topics were made as kafka.yaml says: three replicas, two of them in sync to write.
    cluster.restart(1);
    for topic in TOPICS {
        let (replicas, min_isr, cleanup) = durability(&bootstrap, topic).await;
        assert!(
            !replicas.is_empty() && replicas.iter().all(|&r| r == 3),
            "{topic}: {replicas:?}"
        );
        assert_eq!(min_isr, "2", "{topic}");
        // The camera definitions are the fleet's state: the latest of each camera is kept.
        let policy = if topic == "camera-definitions" {
            "compact"
        } else {
            "delete"
        };
        assert_eq!(cleanup, policy, "{topic}");
    }
}
