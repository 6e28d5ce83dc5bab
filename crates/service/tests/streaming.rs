//! Streaming mode against a real Kafka-protocol broker (Tansu, memory storage) on loopback:
//! topics created once, messages round-trip keyed by camera in order, commits by hand.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use serde_json::json;
use service::config::kafka::KafkaFile;
use service::streaming::kafka::{GroupConsumer, Producer, ensure_topics};
use service::streaming::messages::{DetectionRecord, GroupBrief, decode, encode_detection};
use support::services::Broker;

fn record(n: u64) -> DetectionRecord {
    DetectionRecord {
        message_id: format!("det:7-test-{n}"),
        detection_id: format!("7-test-{n}"),
        camera_id: 7,
        instance_id: "test".into(),
        result: json!({"cameraId": 7, "groupImages": [{"groupId": 3, "imageBase64": "/9j/AA=="}]}),
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
    let created = ensure_topics(&broker.bootstrap(), &topics).await.unwrap();
    assert_eq!(created.len(), 5, "{created:?}");
    let again = ensure_topics(&broker.bootstrap(), &topics).await.unwrap();
    assert!(
        again.is_empty(),
        "existing topics are left alone: {again:?}"
    );

    let topic = file.topics.detection_results.name.as_str();
    let producer = Producer::new(&broker.bootstrap()).unwrap();
    for n in 0..3 {
        producer
            .send(topic, "7", &encode_detection(&record(n)).unwrap())
            .await
            .unwrap();
    }

    // A fresh group per test (see README: Tansu and empty groups).
    let group = format!("test-{}", std::process::id());
    let consumer = GroupConsumer::new(&broker.bootstrap(), &group, &[topic]).unwrap();
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
