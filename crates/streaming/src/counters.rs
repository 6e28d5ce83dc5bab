//! The Kafka counters every producer and consumer of the process updates: messages sent, failed
//! and received by topic, and each consumer group's lag. The service registers them under their
//! metric names; labels are topic names from `config/kafka.yaml` and group names, both bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Kafka traffic by topic.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    /// Topic name (from `config/kafka.yaml`).
    pub topic: String,
}

/// Consumer lag by topic and consumer group.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct LagLabel {
    /// Topic name.
    pub topic: String,
    /// Consumer group.
    pub group: String,
}

/// The Kafka families, shared by every producer and consumer of the process.
#[derive(Debug, Default)]
pub struct KafkaMetrics {
    /// Messages the broker acknowledged.
    pub sent: Family<TopicLabel, Counter>,
    /// Messages that could not be sent.
    pub send_errors: Family<TopicLabel, Counter>,
    /// Messages consumed.
    pub received: Family<TopicLabel, Counter>,
    /// Messages behind the end of each topic, per consumer group (from librdkafka's statistics);
    /// shown by the service's collector so the family shows before any consumer runs.
    lag: std::sync::Mutex<std::collections::BTreeMap<LagLabel, i64>>,
}

impl KafkaMetrics {
    /// Shows the topic families at zero for `topics`, before any message.
    pub fn show_topics<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        for topic in topics {
            let label = TopicLabel {
                topic: topic.to_string(),
            };
            let _ = self.sent.get_or_create(&label);
            let _ = self.send_errors.get_or_create(&label);
            let _ = self.received.get_or_create(&label);
        }
    }

    /// Records a consumer group's lag on a topic.
    pub fn set_lag(&self, label: LagLabel, lag: i64) {
        self.lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(label, lag);
    }

    /// Every recorded lag.
    pub fn lags(&self) -> Vec<(LagLabel, i64)> {
        let lags = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        lags.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Counts a message sent to `topic`, or an error.
    pub fn on_send(&self, topic: &str, ok: bool) {
        let family = if ok { &self.sent } else { &self.send_errors };
        family
            .get_or_create(&TopicLabel {
                topic: topic.to_string(),
            })
            .inc();
    }

    /// Counts a message read from `topic`.
    pub fn on_receive(&self, topic: &str) {
        self.received
            .get_or_create(&TopicLabel {
                topic: topic.to_string(),
            })
            .inc();
    }
}
