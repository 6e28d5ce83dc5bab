//! Streaming mode against a real Kafka-protocol broker (Tansu, memory storage) on loopback:
//! topics created once, messages round-trip keyed by camera in order, commits by hand.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use serde_json::json;
use service::config::kafka::KafkaFile;
use streaming::kafka::{Durability, GroupConsumer, Producer, ensure_topics};
use streaming::messages::{
    AssessmentOutcome, DetectionRecord, FindingRecord, GroupBrief, decode, encode, encode_detection,
};
use streaming::settings::Connection;
use support::services::{Broker, Streaming};

/// A result of camera `camera` with a small crop for each of `groups`.
fn result_with_crops(camera: i64, groups: &[u64]) -> protocol::DetectionResult {
    let image = |id: u64| protocol::detection::GroupImage {
        group_index: id as usize,
        group_id: id,
        image_base64: "/9j/AA==".into(),
        bbox: Default::default(),
        object_count: 2,
        classes: vec!["car".into()],
        image_width: 2,
        image_height: 2,
    };
    protocol::DetectionResult {
        camera_id: camera,
        group_images: groups.iter().map(|&id| image(id)).collect(),
        ..Default::default()
    }
}

fn record(n: u64) -> DetectionRecord {
    DetectionRecord {
        message_id: format!("det:7-test-{n}"),
        detection_id: format!("7-test-{n}"),
        camera_id: 7,
        instance_id: "test".into(),
        result: result_with_crops(7, &[3]),
        groups: vec![GroupBrief {
            group_id: 3,
            group_index: 1,
            summary: "Group 1 (id 3): 2 cars".into(),
            flagged: false,
        }],
    }
}

/// The next message of `consumer` within 20 s, decoded, with its partition and offset.
async fn next(consumer: &GroupConsumer) -> (DetectionRecord, i32, i64) {
    let m = tokio::time::timeout(Duration::from_secs(20), consumer.inner.recv())
        .await
        .expect("a message within 20 s")
        .unwrap();
    assert_eq!(m.key(), Some(&b"7"[..]));
    (
        decode(m.payload().unwrap()).unwrap(),
        m.partition(),
        m.offset(),
    )
}

#[tokio::test]
async fn topics_are_created_once_and_messages_round_trip_with_manual_commits() {
    let broker = Broker::start();
    let file = KafkaFile::default();
    let topics = file.topics.all();
    let created = ensure_topics(
        &Connection::plain(&broker.bootstrap()),
        &topics,
        Durability::default(),
    )
    .await
    .unwrap();
    assert_eq!(created.len(), 7, "{created:?}");
    let again = ensure_topics(
        &Connection::plain(&broker.bootstrap()),
        &topics,
        Durability::default(),
    )
    .await
    .unwrap();
    assert!(
        again.is_empty(),
        "existing topics are left alone: {again:?}"
    );

    let topic = file.topics.detection_results.name.as_str();
    let producer = Producer::new(&Connection::plain(&broker.bootstrap())).unwrap();
    for n in 0..3 {
        producer
            .send(topic, "7", &encode_detection(&record(n)).unwrap())
            .await
            .unwrap();
    }

    // A fresh group per test (see README: Tansu and empty groups).
    let group = format!("test-{}", std::process::id());
    let consumer =
        GroupConsumer::new(&Connection::plain(&broker.bootstrap()), &group, &[topic]).unwrap();
    let (first, partition, offset) = next(&consumer).await;
    assert_eq!(first, record(0));
    consumer.commit(topic, partition, offset + 1).unwrap();
    let (second, _, _) = next(&consumer).await;
    assert_eq!(second, record(1), "one camera's messages stay in order");
    // The group's committed position is after the first message only.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let committed = consumer.inner.committed(Duration::from_secs(5)).unwrap();
        let at = committed
            .find_partition(topic, partition)
            .map(|p| p.offset());
        if at == Some(rdkafka::Offset::Offset(offset + 1)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "committed: {at:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the topics exist (whoever made them: the service or this call).
async fn topics_ready(bootstrap: &str, topics: &service::config::kafka::Topics) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ensure_topics(
        &Connection::plain(bootstrap),
        &topics.all(),
        Durability::default(),
    )
    .await
    .unwrap()
    .len()
        == 5
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the service made no topics"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn two_group_record(n: u64) -> DetectionRecord {
    let brief = |id: u64| GroupBrief {
        group_id: id,
        group_index: id as usize,
        summary: format!("Group 1 (id {id}): 2 cars"),
        flagged: id == 1,
    };
    DetectionRecord {
        message_id: format!("det:9-x-{n}"),
        detection_id: format!("9-x-{n}"),
        camera_id: 9,
        instance_id: "x".into(),
        result: result_with_crops(9, &[1, 2]),
        groups: vec![brief(1), brief(2)],
    }
}

/// The answer to group `group` of `two_group_record(n)`, with `finding`.
fn answer(n: u64, group: u64, finding: FindingRecord) -> AssessmentOutcome {
    AssessmentOutcome {
        message_id: format!("result:9-x-{n}/{group}"),
        task_id: format!("9-x-{n}/{group}"),
        detection_id: format!("9-x-{n}"),
        camera_id: 9,
        instance_id: "x".into(),
        group_id: group,
        ok: true,
        finding: Some(finding),
        raw_text: "{}".into(),
        model: "qwen-vl-plus".into(),
        latency_seconds: 1.3,
        error: None,
    }
}

#[tokio::test]
async fn tasks_and_llm_worker_roles_answer_every_group_once_and_dead_letter_garbage() {
    use support::fake_llm::{FakeLlm, Reply};

    let streaming = Streaming::start("t");
    let answer = r#"{"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [{"groupIndex": 1, "description": "too close", "riskLevel": "high", "confidence": 0.9, "riskTypes": ["tailgating"], "dangerObjectCount": 2, "triggerObjectIds": [4]}]}"#;
    let llm = FakeLlm::start(vec![Reply::Text(answer.into(), Duration::from_millis(200))]).await;
    let (bootstrap, prefix, base) = (
        streaming.broker.bootstrap(),
        &streaming.prefix,
        llm.base_url(),
    );
    let _service = streaming.service(
        "tasks,llm-worker,aggregator",
        &[
            ("ALGO_LLM_API_KEY", "sk-stream"),
            ("ALGO_LLM_BASE_URL", &base),
        ],
    );

    // The service creates the topics; wait for them, then feed it.
    let topics = KafkaFile::default().topics;
    let producer = Producer::new(&Connection::plain(&bootstrap)).unwrap();
    let detections = topics.detection_results.name.as_str();
    topics_ready(&bootstrap, &topics).await;
    for n in 0..3 {
        let payload = encode_detection(&two_group_record(n)).unwrap();
        producer.send(detections, "9", &payload).await.unwrap();
    }
    producer
        .send(detections, "9", b"not json at all")
        .await
        .unwrap();
    let again = encode_detection(&two_group_record(0)).unwrap();
    producer.send(detections, "9", &again).await.unwrap();

    let group = format!("{prefix}-reader");
    let results = topics.risk_assessment_results.name.as_str();
    let dead = topics.dead_letter.name.as_str();
    let merged_topic = topics.merged_results.name.as_str();
    let reader = GroupConsumer::new(
        &Connection::plain(&bootstrap),
        &group,
        &[results, dead, merged_topic],
    )
    .unwrap();
    let mut outcomes = Vec::new();
    let mut dead_letters = Vec::new();
    let mut merged = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while outcomes.len() < 6 || dead_letters.len() < 2 || merged.len() < 3 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let m = tokio::time::timeout(left, reader.inner.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} answers, {} dead letters",
                    outcomes.len(),
                    dead_letters.len()
                )
            })
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        if m.topic() == dead {
            dead_letters.push(body);
        } else if m.topic() == merged_topic {
            merged.push(body);
        } else {
            outcomes.push(decode::<AssessmentOutcome>(m.payload().unwrap()).unwrap());
        }
    }
    // Nothing more comes: the duplicate detection made no second round of tasks.
    let extra = tokio::time::timeout(Duration::from_secs(3), reader.inner.recv()).await;
    assert!(extra.is_err(), "an extra message arrived");

    let mut ids: Vec<&str> = outcomes.iter().map(|o| o.task_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "9-x-0/1", "9-x-0/2", "9-x-1/1", "9-x-1/2", "9-x-2/1", "9-x-2/2"
        ]
    );
    for o in &outcomes {
        assert!(o.ok, "{o:?}");
        let f = o.finding.as_ref().unwrap();
        assert_eq!(
            (f.risk_level.as_str(), f.trigger_object_ids.as_slice()),
            ("high", &[4][..])
        );
        assert_eq!((o.camera_id, o.instance_id.as_str()), (9, "x"));
        assert!(o.latency_seconds >= 0.2);
    }
    // The garbage is dead-lettered by each role that reads detections.
    let mut roles: Vec<&str> = dead_letters
        .iter()
        .map(|d| d["role"].as_str().unwrap())
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["aggregator", "tasks"]);
    assert!(
        dead_letters
            .iter()
            .all(|d| d["payload"] == "not json at all")
    );
    // One merged result per detection, complete, every group's answer on it.
    let mut detections: Vec<&str> = merged
        .iter()
        .map(|m| m["detectionId"].as_str().unwrap())
        .collect();
    detections.sort_unstable();
    assert_eq!(detections, ["9-x-0", "9-x-1", "9-x-2"]);
    for m in &merged {
        assert_eq!(
            (m["partial"].clone(), m["instanceId"].clone()),
            (json!(false), json!("x"))
        );
        let alerts = m["data"]["dangerousDrivingResults"].as_array().unwrap();
        let mut groups: Vec<u64> = alerts
            .iter()
            .map(|a| a["groupId"].as_u64().unwrap())
            .collect();
        groups.sort_unstable();
        assert_eq!(groups, [1, 2]);
        assert!(alerts.iter().all(|a| a["source"] == "llm"));
        assert_eq!(m["data"]["maxRiskLevel"], "high");
    }
    let calls = llm.calls();
    assert_eq!(calls.len(), 6, "one LLM call per group");
    assert_eq!(calls[0].authorization, "Bearer sk-stream");
    let text = calls[0].body["messages"][1]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("Group 1 (id "), "{text}");
}

#[tokio::test]
async fn the_aggregator_merges_answers_in_any_order_and_publishes_partial_after_the_timeout() {
    use redis::AsyncCommands;

    let streaming = Streaming::start("a");
    let (bootstrap, redis_url, prefix) = (
        streaming.broker.bootstrap(),
        streaming.redis.url(),
        &streaming.prefix,
    );
    let _service = streaming.service("aggregator", &[("ALGO_AGGREGATION_TIMEOUT_SECONDS", "2")]);
    let topics = KafkaFile::default().topics;
    topics_ready(&bootstrap, &topics).await;
    let producer = Producer::new(&Connection::plain(&bootstrap)).unwrap();
    let outcome = |n: u64, group: u64| {
        let finding = FindingRecord {
            description: "close".into(),
            risk_level: protocol::RiskLevel::High,
            confidence: 0.9,
            risk_types: vec!["tailgating".into()],
            trigger_object_ids: vec![1],
            rule_verdict: None,
        };
        answer(n, group, finding)
    };
    let (detections, results) = (
        topics.detection_results.name.as_str(),
        topics.risk_assessment_results.name.as_str(),
    );
    let send = |topic: &'static str, bytes: Vec<u8>| {
        let producer = producer.clone();
        async move { producer.send(topic, "9", &bytes).await.unwrap() }
    };
    let detections: &'static str = Box::leak(detections.to_string().into_boxed_str());
    let results: &'static str = Box::leak(results.to_string().into_boxed_str());
    // Detection 0: an answer before its record, then the record, then the other answer.
    send(results, encode(&outcome(0, 1)).unwrap()).await;
    send(detections, encode_detection(&two_group_record(0)).unwrap()).await;
    send(results, encode(&outcome(0, 2)).unwrap()).await;
    // Detection 1: one answer of two, ever.
    send(detections, encode_detection(&two_group_record(1)).unwrap()).await;
    send(results, encode(&outcome(1, 2)).unwrap()).await;
    // An answer whose detection never comes.
    send(results, encode(&outcome(7, 1)).unwrap()).await;

    let reader = GroupConsumer::new(
        &Connection::plain(&bootstrap),
        &format!("{prefix}-reader"),
        &[topics.merged_results.name.as_str()],
    )
    .unwrap();
    let mut merged = Vec::new();
    while merged.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(20), reader.inner.recv())
            .await
            .expect("merged results within 20 s")
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        // When the aggregator sent it (the producer's clock).
        let sent = m.timestamp().to_millis().unwrap();
        merged.push((body, sent));
    }
    let (complete, complete_at) = &merged[0];
    assert_eq!(complete["detectionId"], "9-x-0");
    assert_eq!(complete["partial"], false);
    assert_eq!(
        complete["data"]["dangerousDrivingResults"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (partial, at) = &merged[1];
    assert_eq!(partial["detectionId"], "9-x-1");
    assert_eq!(partial["partial"], true);
    // Detection 1 came in with the answer that completed detection 0: its partial result
    // follows the timeout (2 s) later.
    let waited = (at - complete_at) as f64 / 1000.0;
    assert!(
        (1.5..5.0).contains(&waited),
        "partial {waited} s after the complete one"
    );
    let alerts = partial["data"]["dangerousDrivingResults"]
        .as_array()
        .unwrap();
    assert_eq!((alerts.len(), alerts[0]["groupId"].clone()), (1, json!(2)));

    // Its state is gone, the latest result and the high alerts are kept.
    let mut c = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: bool = c.exists(format!("{prefix}:agg:9-x-1")).await.unwrap();
        let orphan: bool = c.exists(format!("{prefix}:agg:9-x-7")).await.unwrap();
        if !left && !orphan {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "aggregation state left behind"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let latest: String = c.get(format!("{prefix}:latest:9")).await.unwrap();
    assert!(latest.contains("9-x-1"), "{latest}");
    let high: usize = c.llen(format!("{prefix}:alerts:high")).await.unwrap();
    assert_eq!(high, 2);
}

/// A publisher that died between taking the publish lease and sending (the lease is left in
/// Redis, nothing was marked published) costs a delay, not the result: the lease runs out and
/// the sweeper publishes the complete result.
#[tokio::test]
async fn a_publish_lease_left_by_a_dead_aggregator_runs_out_and_the_result_is_published() {
    use redis::AsyncCommands;

    let streaming = Streaming::start("l");
    let (bootstrap, prefix) = (streaming.broker.bootstrap(), streaming.prefix.clone());
    let _service = streaming.service("aggregator", &[("ALGO_AGGREGATION_TIMEOUT_SECONDS", "2")]);
    let topics = KafkaFile::default().topics;
    topics_ready(&bootstrap, &topics).await;
    let mut c = redis::Client::open(streaming.redis.url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // What a publisher that died mid-send leaves: its lease (5 s: the shortest there is).
    let _: () = c
        .set_ex(format!("{prefix}:agg:9-x-5:publishing"), 1, 5)
        .await
        .unwrap();
    let left = std::time::Instant::now();
    let producer = Producer::new(&Connection::plain(&bootstrap)).unwrap();
    let finding = FindingRecord {
        description: "close".into(),
        risk_level: protocol::RiskLevel::Medium,
        confidence: 0.8,
        risk_types: vec!["tailgating".into()],
        trigger_object_ids: vec![1],
        rule_verdict: None,
    };
    let (detections, results) = (
        topics.detection_results.name.as_str(),
        topics.risk_assessment_results.name.as_str(),
    );
    let record = encode_detection(&two_group_record(5)).unwrap();
    producer.send(detections, "9", &record).await.unwrap();
    for group in [1, 2] {
        let bytes = encode(&answer(5, group, finding.clone())).unwrap();
        producer.send(results, "9", &bytes).await.unwrap();
    }
    let reader = GroupConsumer::new(
        &Connection::plain(&bootstrap),
        &format!("{prefix}-reader"),
        &[topics.merged_results.name.as_str()],
    )
    .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(20), reader.inner.recv())
        .await
        .expect("the merged result within 20 s")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
    assert_eq!(body["detectionId"], "9-x-5");
    assert_eq!(body["partial"], false, "every answer was in: {body}");
    assert!(
        left.elapsed() >= Duration::from_secs(4),
        "published after {:?}, while the dead publisher's lease held",
        left.elapsed()
    );
    // Exactly once.
    let again = tokio::time::timeout(Duration::from_secs(3), reader.inner.recv()).await;
    assert!(again.is_err(), "published twice");
}

#[tokio::test]
async fn three_processes_give_every_detection_its_merged_result_even_when_a_worker_dies() {
    use futures_util::StreamExt;
    use std::collections::HashMap;
    use support::fake_llm::{FakeLlm, Reply};
    use support::{RtspServer, Service};
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    let streaming = Streaming::start("e");
    let rtsp = RtspServer::vtest();
    let answer = r#"{"hasDangerousDriving": true, "maxRiskLevel": "medium", "results": [{"groupIndex": 1, "description": "people close to the kerb", "riskLevel": "medium", "confidence": 0.7, "riskTypes": ["pedestrian_risk"], "dangerObjectCount": 2, "triggerObjectIds": []}]}"#;
    let llm = FakeLlm::start(vec![Reply::Text(
        answer.into(),
        Duration::from_millis(1300),
    )])
    .await;
    let base = llm.base_url();
    let start = |roles: &str, instance: &str, key: &str| {
        streaming.service(
            roles,
            &[
                ("ALGO_LLM_API_KEY", key),
                ("ALGO_LLM_BASE_URL", &base),
                ("ALGO_INSTANCE_ID", instance),
                ("ALGO_AGGREGATION_TIMEOUT_SECONDS", "20"),
            ],
        )
    };
    let front = start("detector,tasks,aggregator", "front", "sk-front");
    // Each worker has its own key, so the fake LLM tells who does the work.
    let mut workers: HashMap<&str, Service> = HashMap::from([
        ("Bearer sk-a", start("llm-worker", "worker-a", "sk-a")),
        ("Bearer sk-b", start("llm-worker", "worker-b", "sk-b")),
    ]);

    let (mut ws, _) = tokio_tungstenite::connect_async(front.ws_url())
        .await
        .unwrap();
    let start_msg =
        json!({"type": "start_stream", "data": {"cameraId": 3, "rtspUrl": rtsp.url(0)}});
    futures_util::SinkExt::send(&mut ws, WsMessage::Text(start_msg.to_string().into()))
        .await
        .unwrap();

    // detectionId -> (has groups, merged result seen, partial)
    let mut seen: HashMap<String, (bool, Option<bool>)> = HashMap::new();
    let started = std::time::Instant::now();
    let mut asked_until = None;
    let mut killed: Option<(String, usize)> = None;
    loop {
        let elapsed = started.elapsed();
        if elapsed > Duration::from_secs(12) && killed.is_none() {
            // Kill the worker doing the work, mid-run.
            let calls = llm.calls();
            if let Some(last) = calls.last() {
                let who = last.authorization.clone();
                drop(workers.remove(who.as_str()));
                killed = Some((who, calls.len()));
            }
        }
        if elapsed > Duration::from_secs(30) && asked_until.is_none() {
            asked_until = Some(seen.len());
        }
        let waiting = seen
            .values()
            .filter(|(groups, merged)| *groups && merged.is_none())
            .count();
        if elapsed > Duration::from_secs(70) || (asked_until.is_some() && waiting == 0) {
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
        let id = d["detectionId"]
            .as_str()
            .expect("detectionId in streaming mode")
            .to_string();
        if d.get("partial").is_some() {
            // Frames detected after the first 30 s are not followed; their merged results may
            // still arrive while earlier ones are awaited.
            if asked_until.is_some() && !seen.contains_key(&id) {
                continue;
            }
            let entry = seen
                .get_mut(&id)
                .expect("merged result of a frame seen first");
            entry.1 = Some(d["partial"].as_bool().unwrap());
            assert!(d["frame"].is_null(), "merged results carry no frame");
            if !d["partial"].as_bool().unwrap() {
                assert!(
                    d["dangerousDrivingResults"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|a| a["source"] == "llm"),
                    "{d}"
                );
            }
        } else if asked_until.is_none() {
            let groups = !d["groupImages"].as_array().unwrap().is_empty();
            seen.insert(id, (groups, None));
        }
    }
    let with_groups: Vec<_> = seen.values().filter(|(g, _)| *g).collect();
    let merged = with_groups.iter().filter(|(_, m)| m.is_some()).count();
    let partial = with_groups.iter().filter(|(_, m)| *m == Some(true)).count();
    eprintln!(
        "{} frames, {} with groups, {merged} merged ({partial} partial), LLM calls {}",
        seen.len(),
        with_groups.len(),
        llm.calls().len()
    );
    assert!(
        with_groups.len() >= 5,
        "too few frames with groups: {}",
        with_groups.len()
    );
    assert_eq!(
        merged,
        with_groups.len(),
        "a detection lost its merged result"
    );

    // Each process's metrics tell its part: the front sent detections and tasks, read them back
    // and merged; the surviving worker processed tasks; consumers report their lag.
    let (_, _, text) = support::http(&front.addr, "GET", "/metrics", &[]);
    let m = support::metric_samples(&text);
    let value = |m: &HashMap<String, f64>, series: &str| m.get(series).copied().unwrap_or(0.0);
    for series in [
        "kafka_messages_sent_total{topic=\"detection-results\"}",
        "kafka_messages_sent_total{topic=\"assessment-tasks\"}",
        "kafka_messages_received_total{topic=\"detection-results\"}",
        "kafka_messages_received_total{topic=\"risk-assessment-results\"}",
        "tasks_generated_total",
        "aggregations_total{outcome=\"complete\"}",
    ] {
        assert!(value(&m, series) > 0.0, "{series} in\n{text}");
    }
    assert!(
        m.keys()
            .any(|s| s.starts_with("kafka_consumer_lag{topic=\"detection-results\"")),
        "{text}"
    );
    let complaints = support::promtool_check(&text);
    assert!(complaints.is_empty(), "promtool: {complaints}");
    let survivor = workers.values().next().expect("one worker left");
    let (_, _, text) = support::http(&survivor.addr, "GET", "/metrics", &[]);
    let m = support::metric_samples(&text);
    assert!(
        value(&m, "tasks_processed_total{outcome=\"done\"}") > 0.0,
        "{text}"
    );
    assert!(
        value(&m, "llm_requests_total{status=\"success\"}") > 0.0,
        "{text}"
    );
}

#[tokio::test]
async fn the_aggregator_rides_out_a_redis_restart_without_dead_letters() {
    let mut streaming = Streaming::start("r");
    let (bootstrap, prefix) = (streaming.broker.bootstrap(), streaming.prefix.clone());
    let _service = streaming.service("aggregator", &[("ALGO_AGGREGATION_TIMEOUT_SECONDS", "30")]);
    let topics = KafkaFile::default().topics;
    topics_ready(&bootstrap, &topics).await;
    let producer = Producer::new(&Connection::plain(&bootstrap)).unwrap();
    let detections = topics.detection_results.name.clone();
    let results = topics.risk_assessment_results.name.clone();
    let feed = |n: u64| {
        let (producer, detections, results) =
            (producer.clone(), detections.clone(), results.clone());
        async move {
            let record = encode_detection(&two_group_record(n)).unwrap();
            producer.send(&detections, "9", &record).await.unwrap();
            for group in [1, 2] {
                let finding = FindingRecord {
                    description: "close".into(),
                    risk_level: protocol::RiskLevel::Medium,
                    confidence: 0.7,
                    risk_types: vec![],
                    trigger_object_ids: vec![],
                    rule_verdict: None,
                };
                let outcome = answer(n, group, finding);
                producer
                    .send(&results, "9", &encode(&outcome).unwrap())
                    .await
                    .unwrap();
            }
        }
    };
    let reader = GroupConsumer::new(
        &Connection::plain(&bootstrap),
        &format!("{prefix}-reader"),
        &[
            topics.merged_results.name.as_str(),
            topics.dead_letter.name.as_str(),
        ],
    )
    .unwrap();
    let next = || async {
        let m = tokio::time::timeout(Duration::from_secs(40), reader.inner.recv())
            .await
            .expect("a message within 40 s")
            .unwrap();
        assert_eq!(
            m.topic(),
            topics.merged_results.name,
            "nothing is dead-lettered"
        );
        serde_json::from_slice::<serde_json::Value>(m.payload().unwrap()).unwrap()
    };
    feed(0).await;
    assert_eq!(next().await["detectionId"], "9-x-0");

    // Redis goes away while detection 1 arrives, and comes back empty.
    streaming.redis.stop();
    feed(1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    streaming.redis.restart();
    let merged = next().await;
    assert_eq!(
        (merged["detectionId"].clone(), merged["partial"].clone()),
        (json!("9-x-1"), json!(false))
    );
    let extra = tokio::time::timeout(Duration::from_secs(3), reader.inner.recv()).await;
    assert!(extra.is_err(), "an extra message (a dead letter?) arrived");
}

/// Health and readiness follow Kafka and Redis: `dependencies` says each is `UP` or `DOWN`,
/// `status` is `DEGRADED` and `/api/health/ready` answers 503 naming the missing one while one
/// is down, and both recover by themselves; standalone mode is ready, with only its database.
#[tokio::test]
async fn health_and_readiness_follow_kafka_and_redis() {
    use support::{Service, http};

    let health = |s: &Service| -> serde_json::Value {
        let (status, _, body) = http(&s.addr, "GET", "/api/health/health_check", &[]);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"].clone()
    };
    let ready = |s: &Service| -> (u16, serde_json::Value) {
        let (status, _, body) = http(&s.addr, "GET", "/api/health/ready", &[]);
        (status, serde_json::from_str(&body).unwrap())
    };
    let until = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "not within 20 s: {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    let standalone = Service::start(&[]);
    assert_eq!(ready(&standalone).0, 200);
    let h = health(&standalone);
    assert!(h["dependencies"].get("kafka").is_none(), "{h}");
    assert_eq!(h["dependencies"]["database"], "UP", "{h}");
    drop(standalone);

    let mut streaming = Streaming::start("h");
    let service = streaming.service("aggregator", &[]);
    until("ready", &|| ready(&service).0 == 200);
    let h = health(&service);
    assert_eq!(h["status"], "UP", "{h}");
    assert_eq!(
        h["dependencies"],
        json!({"kafka": "UP", "redis": "UP", "database": "UP"}),
        "{h}"
    );
    assert_eq!(
        service.metric("streaming_dependency_up{dependency=\"redis\"}"),
        1.0
    );

    streaming.redis.stop();
    until("redis DOWN", &|| {
        health(&service)["dependencies"]["redis"] == "DOWN"
    });
    assert_eq!(health(&service)["status"], "DEGRADED");
    let (status, body) = ready(&service);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["msg"].as_str().unwrap().contains("redis DOWN"),
        "{body}"
    );
    assert_eq!(
        service.metric("streaming_dependency_up{dependency=\"redis\"}"),
        0.0
    );
    streaming.redis.restart();
    until("redis UP again", &|| ready(&service).0 == 200);

    drop(streaming.broker);
    until("kafka DOWN", &|| {
        health(&service)["dependencies"]["kafka"] == "DOWN"
    });
    let (status, body) = ready(&service);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["msg"].as_str().unwrap().contains("kafka DOWN"),
        "{body}"
    );
    assert_eq!(health(&service)["status"], "DEGRADED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_asks_the_llm_once_per_cooldown_and_its_findings_stay_on_later_results() {
    use support::RtspServer;
    use support::fake_llm::{FakeLlm, Reply};
    use support::ws::{Client, start};

    let streaming = Streaming::start("h");
    let rtsp = RtspServer::vtest();
    let answer = r#"{"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [{"groupIndex": 1, "description": "a pedestrian steps out", "riskLevel": "high", "confidence": 0.9, "riskTypes": ["pedestrian_risk"], "dangerObjectCount": 1, "triggerObjectIds": []}]}"#;
    let llm = FakeLlm::start(vec![Reply::text(answer)]).await;
    let base = llm.base_url();
    let service = streaming.service(
        "detector,tasks,llm-worker,aggregator",
        &[
            ("ALGO_LLM_API_KEY", "sk-hold"),
            ("ALGO_LLM_BASE_URL", &base),
            ("ALGO_LLM_COOLDOWN_SECONDS", "6"),
            ("ALGO_ALERT_PAUSE_SECONDS", "30"),
        ],
    );
    let mut c = Client::connect(&service).await;
    c.send(start(4, &rtsp.url(0))).await;

    let mut merged_at: Vec<chrono::DateTime<chrono::FixedOffset>> = Vec::new();
    let (mut held, mut plain) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while merged_at.len() < 3 || held < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} merged results, {held} later results with held findings",
            merged_at.len()
        );
        let r = c
            .recv_type("detection_result", Duration::from_secs(30))
            .await;
        let d = &r["data"];
        let stamp = chrono::DateTime::parse_from_rfc3339(d["timestamp"].as_str().unwrap()).unwrap();
        let llm_alerts: Vec<&serde_json::Value> = (d["dangerousDrivingResults"].as_array())
            .unwrap()
            .iter()
            .filter(|a| a["source"] == "llm")
            .collect();
        if d.get("partial").is_some() {
            merged_at.push(stamp);
        } else if !merged_at.is_empty() {
            plain += 1;
            // A frame after a merged result: the finding shows, stale, for the hold.
            if !llm_alerts.is_empty() {
                assert!(llm_alerts.iter().all(|a| a["isStale"] == true), "{d}");
                held += 1;
            }
        }
    }
    // The merged results are of frames at least the cooldown apart.
    for pair in merged_at.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!(
            gap >= 5_500,
            "two frames asked {gap} ms apart: {merged_at:?}"
        );
    }
    assert!(held >= 3 && plain >= held);
    // Each asked frame asks about at most 4 groups.
    let calls = llm.calls().len();
    assert!(
        calls <= 4 * (merged_at.len() + 1),
        "{calls} LLM calls for {} merged results",
        merged_at.len()
    );
    assert!(service.metric("llm_cooldown_skipped_total") >= 1.0);
}
