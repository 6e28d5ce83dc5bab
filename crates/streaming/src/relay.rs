//! Any client, any instance: the fleet side of the camera hub. [`Fleet`] is the hub's
//! [`FleetLink`]: it knows every camera of the fleet (the whole definitions topic, read by
//! [`run_catalog`]), declares the cameras clients ask for, and says in Redis which cameras this
//! instance's clients watch ([`run_watch_registry`]). The instance that runs a camera watched
//! elsewhere sends the camera's messages to the `live-results` topic
//! ([`crate::fleet::forward_live`]); every instance reads that topic from its end
//! ([`run_relay`]: no old results after a restart) and hands each message to its own watchers
//! of the camera, if it has any and does not run the camera itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

use crate::dependencies::Dependencies;
use crate::fleet::{Definitions, FleetStats};
use crate::kafka::{BrokerError, reader};
use crate::ownership::CameraDefinition;
use crate::settings::Connection;
use crate::shared::Shared;
use camera::hub::{CameraHub, FleetLink};
use protocol::{CameraId, ServerMessage};
use retry::sleep_or_cancelled;

/// How long an instance's word that it watches a camera holds without renewal.
pub const WATCH_TTL: Duration = Duration::from_secs(10);
/// How often an instance renews it.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// This instance's view of the fleet's cameras, and its clients' interest in them.
#[derive(Debug)]
pub struct Fleet {
    /// This instance.
    pub instance_id: String,
    /// Where declarations and client requests are written.
    pub definitions: Arc<Definitions>,
    /// Every camera of the fleet, from the definitions topic.
    catalog: RwLock<BTreeMap<CameraId, CameraDefinition>>,
    /// Cameras this instance's clients watch.
    watched: Mutex<BTreeSet<CameraId>>,
    changed: tokio::sync::Notify,
}

impl Fleet {
    /// The fleet as seen from instance `instance_id`.
    pub fn new(instance_id: &str, definitions: Arc<Definitions>) -> Self {
        Self {
            instance_id: instance_id.to_string(),
            definitions,
            catalog: RwLock::default(),
            watched: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<FleetStats> {
        &self.definitions.stats
    }

    /// Camera `id`'s definition, as the topic has it now.
    pub fn definition(&self, id: CameraId) -> Option<CameraDefinition> {
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        catalog.get(&id).cloned()
    }

    fn set(&self, id: CameraId, definition: Option<CameraDefinition>) {
        let mut catalog = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        match definition {
            Some(d) => catalog.insert(id, d),
            None => catalog.remove(&id),
        };
    }

    fn watched(&self) -> BTreeSet<CameraId> {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl FleetLink for Fleet {
    fn request(&self, id: CameraId, url: &str) -> Result<(), String> {
        match self.definition(id) {
            Some(d) if d.enabled && !d.client && d.url != url => Err(format!(
                "camera {id} is declared in the configuration; subscribe to it"
            )),
            // Running on this URL already (declared, or asked for by another client).
            Some(d) if d.enabled && d.url == url => Ok(()),
            _ => self.definitions.request(id, url),
        }
    }

    fn knows(&self, id: CameraId) -> bool {
        self.definition(id).is_some_and(|d| d.enabled)
    }

    fn watching(&self, id: CameraId, watched: bool) {
        let mut set = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        let changed = if watched {
            set.insert(id)
        } else {
            set.remove(&id)
        };
        if changed {
            self.changed.notify_one();
        }
    }
}

/// The partitions of `topic`, from the cluster; a topic created a moment ago may take a few
/// seconds to show on every broker, so it is asked for up to ten times.
async fn partitions(conn: &Connection, topic: &str) -> Result<i32, BrokerError> {
    let mut attempt = 0;
    loop {
        let (c, t) = (conn.clone(), topic.to_string());
        let found = tokio::task::spawn_blocking(move || crate::kafka::partition_count(&c, &t))
            .await
            .map_err(|_| BrokerError {
                what: "the partition count lookup stopped".into(),
                source: rdkafka::error::KafkaError::Canceled,
            })?;
        attempt += 1;
        match found {
            Err(_) if attempt < 10 => tokio::time::sleep(Duration::from_millis(500)).await,
            other => return other,
        }
    }
}

/// The offset after the last record of each partition of `topic` now.
async fn ends(consumer: &Arc<StreamConsumer>, topic: &str, count: i32) -> Vec<i64> {
    let (consumer, topic) = (Arc::clone(consumer), topic.to_string());
    tokio::task::spawn_blocking(move || {
        (0..count)
            .map(|p| {
                consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(5))
                    .map_or(0, |(low, high)| if high > low { high } else { 0 })
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Whether `consumer` has read every partition of `topic` up to `ends`.
fn read_to(consumer: &StreamConsumer, topic: &str, ends: &[i64]) -> bool {
    let Ok(list) = consumer.position() else {
        return false;
    };
    ends.iter().enumerate().all(|(p, end)| {
        *end == 0
            || list
                .find_partition(topic, p as i32)
                .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *end))
    })
}

/// Keeps the catalog in line with the definitions topic (read from its beginning) until
/// shutdown, or a broker error for the caller to restart it; `dependencies` hears when it has
/// been read up to where it ended at the start.
pub async fn run_catalog(
    fleet: Arc<Fleet>,
    dependencies: Arc<Dependencies>,
    conn: Connection,
    topic: String,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let count = partitions(&conn, &topic).await?;
    let consumer = Arc::new(reader(&conn, &topic, count, Offset::Beginning)?);
    let ends = ends(&consumer, &topic, count).await;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut loaded = false;
    loop {
        let received = tokio::select! {
            r = consumer.recv() => r,
            () = shutdown.cancelled() => return Ok(()),
            _ = tick.tick(), if !loaded => {
                if read_to(&consumer, &topic, &ends) {
                    loaded = true;
                    dependencies.set_catalog_ready();
                }
                continue;
            }
        };
        let msg = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "camera catalog: receive failed");
                sleep_or_cancelled(Duration::from_millis(500), &shutdown).await;
                continue;
            }
        };
        let Some(id) = msg
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse::<CameraId>().ok())
        else {
            continue;
        };
        match msg
            .payload()
            .map(serde_json::from_slice::<CameraDefinition>)
        {
            None => fleet.set(id, None),
            Some(Ok(d)) if d.camera_id == id => fleet.set(id, Some(d)),
            Some(_) => tracing::warn!(camera = id, "unreadable camera definition; ignored"),
        }
    }
}

/// Says in Redis which cameras this instance's clients watch, renewed every second (and at
/// once on a change), until shutdown; the word lapses [`WATCH_TTL`] after the last renewal.
pub async fn run_watch_registry(fleet: Arc<Fleet>, shared: Shared, shutdown: CancellationToken) {
    let mut said: BTreeSet<CameraId> = BTreeSet::new();
    loop {
        let now = fleet.watched();
        for gone in said.difference(&now) {
            if let Err(e) = shared.unwatch(*gone, &fleet.instance_id).await {
                tracing::debug!(camera = gone, error = %e, "watch not withdrawn; it lapses");
            }
        }
        for id in &now {
            if let Err(e) = shared.watch(*id, &fleet.instance_id, WATCH_TTL).await {
                tracing::warn!(camera = id, error = %e, "watch not registered");
            }
        }
        said = now;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = fleet.changed.notified() => {}
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
    }
    for id in &said {
        let _ = shared.unwatch(*id, &fleet.instance_id).await;
    }
}

/// Hands the live messages of cameras running elsewhere to this instance's watchers of them,
/// from the topic's end (a restarted instance gets no old results), until shutdown.
pub async fn run_relay(
    hub: Arc<CameraHub>,
    stats: Arc<FleetStats>,
    conn: Connection,
    topic: String,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let count = partitions(&conn, &topic).await?;
    let consumer: StreamConsumer = reader(&conn, &topic, count, Offset::End)?;
    loop {
        let received = tokio::select! {
            r = consumer.recv() => r,
            () = shutdown.cancelled() => return Ok(()),
        };
        let msg = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "live results: receive failed");
                sleep_or_cancelled(Duration::from_millis(500), &shutdown).await;
                continue;
            }
        };
        let id = msg
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse::<CameraId>().ok());
        let message = msg
            .payload()
            .and_then(|p| serde_json::from_slice::<ServerMessage>(p).ok());
        if let (Some(id), Some(message)) = (id, message)
            && hub.relay(id, message)
        {
            stats.live_relayed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
