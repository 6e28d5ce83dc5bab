//! A fleet's cameras: each runs on exactly one detector instance. Declared cameras
//! (`cameras.yaml`, the backend) are written as [`CameraDefinition`]s to a compacted topic keyed
//! by camera id ([`Definitions`]); every detector instance joins one consumer group on it
//! (cooperative-sticky assignment, so a rebalance moves only the partitions that must move) and
//! runs the cameras of the partitions it is assigned ([`run_ownership`], with the bookkeeping in
//! [`crate::ownership`]). An instance that dies leaves the group after its session timeout and
//! its partitions go to the others.
//!
//! Fencing: a camera runs only while its instance holds the camera's lease in Redis (taken
//! before the camera starts, renewed every [`RENEW_EVERY`], lapsing [`LEASE_TTL`] after its
//! holder last renewed it, given up when the camera stops here). An instance that was dropped
//! from the group but still runs (paused, cut off from the brokers) keeps its cameras only until
//! it fails to renew; the new owner waits for the lease, so two instances never analyse a camera
//! at once for longer than that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::kafka::{BrokerError, Producer, fleet_consumer};
use crate::ownership::{CameraDefinition, Change, Ownership};
use crate::settings::Connection;
use crate::shared::Shared;
use camera::broadcast::Broadcast;
use camera::hub::CameraHub;
use protocol::CameraId;
use retry::sleep_or_cancelled;

/// How long a camera's lease holds after its holder last renewed it.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the holder renews its leases.
pub const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often the loop looks at partitions still being read, and cameras waiting for a lease.
const TICK: Duration = Duration::from_millis(500);
/// Definitions waiting to be written.
const DEFINITION_QUEUE: usize = 1024;
/// Largest live message sent (under the broker's 1 MiB); larger ones are dropped and counted.
const MAX_LIVE_BYTES: usize = 1_000_000;

/// What the ownership loop does to this instance's cameras (the camera hub, in the service).
pub trait CameraRunner: Send + Sync {
    /// Runs camera `id` on `url` (restarting it when it ran another URL).
    fn run(&self, id: CameraId, url: &str) -> Result<(), String>;
    /// Stops camera `id` here (its watchers here, if any, follow it where it goes).
    fn stop(&self, id: CameraId);
    /// Clients of this instance watching camera `id`.
    fn watchers(&self, id: CameraId) -> usize;
    /// Camera `id`'s messages while it runs here.
    fn tap(&self, id: CameraId) -> Option<broadcast::Receiver<Broadcast>>;
}

impl CameraRunner for CameraHub {
    fn run(&self, id: CameraId, url: &str) -> Result<(), String> {
        if self.pin(id, url).is_ok() {
            return Ok(());
        }
        // Running another URL: restart it on this one.
        self.release(id);
        self.pin(id, url)
    }

    fn stop(&self, id: CameraId) {
        self.release(id);
    }

    fn watchers(&self, id: CameraId) -> usize {
        self.client_watchers(id)
    }

    fn tap(&self, id: CameraId) -> Option<broadcast::Receiver<Broadcast>> {
        CameraHub::tap(self, id)
    }
}

/// The fleet's counters, shown as metrics.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Cameras running here by ownership.
    pub owned: AtomicU64,
    /// Cameras assigned here that wait for their lease.
    pub waiting: AtomicU64,
    /// Rebalances this instance went through (partitions assigned or revoked).
    pub rebalances: AtomicU64,
    /// Cameras started here by a change of ownership or definition.
    pub started: AtomicU64,
    /// Cameras stopped here by a change of ownership or definition, or a lost lease.
    pub stopped: AtomicU64,
    /// Camera definitions written to the topic.
    pub definitions_written: AtomicU64,
    /// Camera definitions that could not be queued (the queue was full).
    pub definitions_dropped: AtomicU64,
    /// Messages of cameras running here sent to the live topic for other instances' watchers.
    pub live_sent: AtomicU64,
    /// Such messages dropped (too large, the broker refused, the forwarder fell behind).
    pub live_dropped: AtomicU64,
    /// Live messages of cameras running elsewhere handed to this instance's watchers.
    pub live_relayed: AtomicU64,
    /// Client cameras ended here because no instance had a watcher left.
    pub idle_ended: AtomicU64,
}

/// A camera declared (its definition) or withdrawn (`None`), on its way to the topic.
pub type Declaration = (CameraId, Option<CameraDefinition>);

/// Writes this instance's declared cameras to the definitions topic: a definition when one is
/// declared or changes, a tombstone when one is withdrawn. Writing is queued (bounded, drops
/// counted) and done by [`write_definitions`] once the topics exist.
#[derive(Debug)]
pub struct Definitions {
    tx: mpsc::Sender<Declaration>,
    rx: Mutex<Option<mpsc::Receiver<Declaration>>>,
    written: Mutex<BTreeMap<CameraId, String>>,
    /// Counters.
    pub stats: Arc<FleetStats>,
}

impl Default for Definitions {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(DEFINITION_QUEUE);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            written: Mutex::default(),
            stats: Arc::default(),
        }
    }
}

impl Definitions {
    /// Declares camera `id` on `url` to the fleet (nothing is written when it was declared so
    /// already).
    pub fn declare(&self, id: CameraId, url: &str) -> Result<(), String> {
        url::Url::parse(url).map_err(|e| format!("bad camera URL: {e}"))?;
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.get(&id).is_some_and(|u| u == url) {
            return Ok(());
        }
        let definition = CameraDefinition {
            camera_id: id,
            url: url.to_string(),
            enabled: true,
            client: false,
        };
        self.queue(id, Some(definition))?;
        written.insert(id, url.to_string());
        Ok(())
    }

    /// Declares camera `id` on `url` for a WebSocket client: it runs while some instance has
    /// a watcher of it.
    pub fn request(&self, id: CameraId, url: &str) -> Result<(), String> {
        let definition = CameraDefinition {
            camera_id: id,
            url: url.to_string(),
            enabled: true,
            client: true,
        };
        self.queue(id, Some(definition))
    }

    /// Removes camera `id` from the fleet (a client camera nobody watches any more).
    pub fn remove(&self, id: CameraId) {
        if let Err(e) = self.queue(id, None) {
            tracing::warn!(camera = id, error = %e, "camera removal not written");
        }
    }

    /// Withdraws camera `id` from the fleet (a tombstone), when this instance declared it.
    pub fn withdraw(&self, id: CameraId) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.remove(&id).is_some()
            && let Err(e) = self.queue(id, None)
        {
            tracing::warn!(camera = id, error = %e, "camera withdrawal not written");
        }
    }

    fn queue(&self, id: CameraId, definition: Option<CameraDefinition>) -> Result<(), String> {
        self.tx.try_send((id, definition)).map_err(|_| {
            self.stats
                .definitions_dropped
                .fetch_add(1, Ordering::Relaxed);
            "the camera definition queue is full".to_string()
        })
    }

    /// Takes the queue's receiving end (once).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Declaration>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Writes queued definitions to `topic` until shutdown, each retried until the broker has it.
pub async fn write_definitions(
    mut rx: mpsc::Receiver<Declaration>,
    producer: Producer,
    topic: String,
    stats: Arc<FleetStats>,
    shutdown: CancellationToken,
) {
    loop {
        let (id, definition) = tokio::select! {
            next = rx.recv() => match next {
                Some(item) => item,
                None => return,
            },
            () = shutdown.cancelled() => return,
        };
        let payload = match &definition {
            Some(d) => match serde_json::to_vec(d) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::error!(camera = id, error = %e, "camera definition not encoded");
                    continue;
                }
            },
            None => None,
        };
        let key = id.to_string();
        loop {
            let sent = match &payload {
                Some(bytes) => producer.send(&topic, &key, bytes).await,
                None => producer.send_tombstone(&topic, &key).await,
            };
            match sent {
                Ok(_) => {
                    stats.definitions_written.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        camera = id,
                        deleted = payload.is_none(),
                        "camera definition written"
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!(camera = id, error = %e, "camera definition not written; retrying");
                    if !sleep_or_cancelled(Duration::from_secs(1), &shutdown).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Sends the messages of camera `id` (running here) to the live topic until `cancel`: results
/// with their frame, states, the end of the stream.
pub async fn forward_live(
    mut rx: broadcast::Receiver<Broadcast>,
    producer: Producer,
    topic: String,
    id: CameraId,
    stats: Arc<FleetStats>,
    cancel: CancellationToken,
) {
    let key = id.to_string();
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return,
            next = rx.recv() => next,
        };
        let b = match next {
            Ok(b) => b,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                stats.live_dropped.fetch_add(n, Ordering::Relaxed);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let bytes = match serde_json::to_vec(&*b.message) {
            Ok(bytes) if bytes.len() <= MAX_LIVE_BYTES => bytes,
            _ => {
                stats.live_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        match producer.send(&topic, &key, &bytes).await {
            Ok(_) => {
                stats.live_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.live_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(camera = id, error = %e, "live message not sent");
            }
        }
    }
}

/// A partition assignment change, as the consumer's rebalance callback saw it.
#[derive(Debug)]
enum Assignment {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// Hands the group's rebalances to the ownership loop (the callback must return quickly).
pub struct FleetContext {
    tx: mpsc::UnboundedSender<Assignment>,
}

impl ClientContext for FleetContext {}

impl ConsumerContext for FleetContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &rdkafka::TopicPartitionList| -> Vec<i32> {
            list.elements().iter().map(|e| e.partition()).collect()
        };
        let event = match rebalance {
            Rebalance::Assign(list) => Assignment::Assigned(partitions(list)),
            Rebalance::Revoke(list) => Assignment::Revoked(partitions(list)),
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "camera ownership: rebalance failed");
                return;
            }
        };
        let _ = self.tx.send(event);
    }
}

/// What the ownership loop works with.
pub struct OwnershipParts {
    /// The cluster.
    pub connection: Connection,
    /// The definitions topic.
    pub topic: String,
    /// The group every detector instance of the fleet joins.
    pub group: String,
    /// This instance (the lease holder's name).
    pub instance_id: String,
    /// The leases.
    pub shared: Shared,
    /// This instance's cameras.
    pub runner: Arc<dyn CameraRunner>,
    /// Where idle client cameras are removed.
    pub definitions: Arc<Definitions>,
    /// Sends the live messages of cameras watched elsewhere.
    pub producer: Producer,
    /// The live topic.
    pub live_topic: String,
    /// Counters.
    pub stats: Arc<FleetStats>,
}

/// Checks of a client camera with no watcher anywhere before it is removed (a client that
/// just asked for it registers its watch within a second).
const IDLE_CHECKS: u32 = 3;

/// The cameras this instance runs by ownership, and those waiting for their lease.
struct Local {
    parts: OwnershipParts,
    ownership: Ownership,
    /// Running here (lease held), with their URL.
    running: BTreeMap<CameraId, String>,
    /// Assigned here, waiting for the previous holder's lease to lapse.
    waiting: BTreeMap<CameraId, String>,
    /// Those of them a client asked for, and how many checks in a row found no watcher.
    clients: BTreeMap<CameraId, u32>,
    /// The live forwarders of cameras running here that other instances watch.
    forwarders: BTreeMap<CameraId, CancellationToken>,
    last_renewal: Instant,
}

impl Local {
    fn lease(id: CameraId) -> String {
        format!("camera:{id}")
    }

    async fn apply(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Start { id, url, client } => {
                    if client {
                        self.clients.entry(id).or_insert(0);
                    } else {
                        self.clients.remove(&id);
                    }
                    if self.running.contains_key(&id) {
                        // A new URL for a camera running here: the lease is ours already.
                        self.start(id, url);
                    } else {
                        self.waiting.insert(id, url);
                    }
                }
                Change::Stop { id } => {
                    self.waiting.remove(&id);
                    self.clients.remove(&id);
                    if let Some(forwarder) = self.forwarders.remove(&id) {
                        forwarder.cancel();
                    }
                    if self.running.remove(&id).is_some() {
                        self.parts.runner.stop(id);
                        self.parts.stats.stopped.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(camera = id, "camera handed over or removed; stopped here");
                        let (shared, holder) = (&self.parts.shared, &self.parts.instance_id);
                        if let Err(e) = shared.drop_lease(&Self::lease(id), holder).await {
                            tracing::warn!(camera = id, error = %e, "camera lease not given up; it lapses by itself");
                        }
                    }
                }
            }
        }
        self.take_leases().await;
    }

    fn start(&mut self, id: CameraId, url: String) {
        match self.parts.runner.run(id, &url) {
            Ok(()) => {
                self.parts.stats.started.fetch_add(1, Ordering::Relaxed);
                tracing::info!(camera = id, "camera owned here; started");
            }
            Err(e) => tracing::error!(camera = id, error = %e, "owned camera not started"),
        }
        self.running.insert(id, url);
    }

    /// Takes or renews camera `id`'s lease for this instance.
    async fn hold(&self, id: CameraId) -> Result<bool, crate::shared::SharedError> {
        let (shared, me) = (&self.parts.shared, &self.parts.instance_id);
        shared.hold_lease(&Self::lease(id), me, LEASE_TTL).await
    }

    /// Starts the waiting cameras whose lease is free now.
    async fn take_leases(&mut self) {
        let waiting: Vec<(CameraId, String)> =
            self.waiting.iter().map(|(i, u)| (*i, u.clone())).collect();
        for (id, url) in waiting {
            let held = self.hold(id).await;
            match held {
                Ok(true) => {
                    self.waiting.remove(&id);
                    self.start(id, url);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(camera = id, error = %e, "camera lease unavailable"),
            }
        }
        self.show();
    }

    /// Renews the leases of the cameras running here; a camera whose lease another instance
    /// holds stops here and waits for it.
    async fn renew(&mut self) {
        self.last_renewal = Instant::now();
        let running: Vec<(CameraId, String)> =
            self.running.iter().map(|(i, u)| (*i, u.clone())).collect();
        for (id, url) in running {
            let held = self.hold(id).await;
            match held {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(
                        camera = id,
                        "camera lease held by another instance; stopped here"
                    );
                    self.running.remove(&id);
                    if let Some(forwarder) = self.forwarders.remove(&id) {
                        forwarder.cancel();
                    }
                    self.parts.runner.stop(id);
                    self.parts.stats.stopped.fetch_add(1, Ordering::Relaxed);
                    self.waiting.insert(id, url);
                }
                // Redis down: the camera goes on (no other instance can take the lease either).
                Err(e) => tracing::warn!(camera = id, error = %e, "camera lease not renewed"),
            }
        }
        self.show();
    }

    /// Ends the client cameras running here that no instance has watched for
    /// [`IDLE_CHECKS`] checks in a row.
    async fn end_idle(&mut self) {
        let clients: Vec<CameraId> = (self.clients.keys())
            .filter(|id| self.running.contains_key(id))
            .copied()
            .collect();
        for id in clients {
            let here = self.parts.runner.watchers(id);
            let elsewhere = if here > 0 {
                0
            } else {
                let (shared, me) = (&self.parts.shared, &self.parts.instance_id);
                // Unknown (Redis down): keep the camera.
                shared.watchers(id, me).await.unwrap_or(1)
            };
            let idle = self.clients.entry(id).or_insert(0);
            *idle = if here + elsewhere == 0 { *idle + 1 } else { 0 };
            if *idle >= IDLE_CHECKS {
                tracing::info!(camera = id, "no watcher left on any instance; camera ends");
                self.parts.stats.idle_ended.fetch_add(1, Ordering::Relaxed);
                self.clients.remove(&id);
                self.parts.definitions.remove(id);
            }
        }
    }

    /// Starts a live forwarder for each camera running here that another instance watches,
    /// and stops those nobody elsewhere watches any more.
    async fn forward_watched(&mut self, shutdown: &CancellationToken) {
        let running: Vec<CameraId> = self.running.keys().copied().collect();
        for id in running {
            let (shared, me) = (&self.parts.shared, &self.parts.instance_id);
            let Ok(elsewhere) = shared.watchers(id, me).await else {
                continue;
            };
            match (elsewhere > 0, self.forwarders.contains_key(&id)) {
                (true, false) => {
                    let Some(rx) = self.parts.runner.tap(id) else {
                        continue;
                    };
                    let cancel = shutdown.child_token();
                    tokio::spawn(forward_live(
                        rx,
                        self.parts.producer.clone(),
                        self.parts.live_topic.clone(),
                        id,
                        Arc::clone(&self.parts.stats),
                        cancel.clone(),
                    ));
                    self.forwarders.insert(id, cancel);
                }
                (false, true) => {
                    if let Some(forwarder) = self.forwarders.remove(&id) {
                        forwarder.cancel();
                    }
                }
                _ => {}
            }
        }
    }

    fn show(&self) {
        let stats = &self.parts.stats;
        stats
            .owned
            .store(self.running.len() as u64, Ordering::Relaxed);
        stats
            .waiting
            .store(self.waiting.len() as u64, Ordering::Relaxed);
    }

    /// Stops every camera here and gives the leases up (shutdown, or the loop restarting).
    async fn release_all(&mut self) {
        for (_, forwarder) in std::mem::take(&mut self.forwarders) {
            forwarder.cancel();
        }
        let ids: Vec<CameraId> = self.running.keys().copied().collect();
        for id in ids {
            self.running.remove(&id);
            self.parts.runner.stop(id);
            let _ = (self.parts.shared)
                .drop_lease(&Self::lease(id), &self.parts.instance_id)
                .await;
        }
        self.waiting.clear();
        self.show();
    }
}

/// Runs the cameras of the partitions this instance is assigned until shutdown (or a broker
/// error, for the caller to restart it).
pub async fn run_ownership(
    parts: OwnershipParts,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumer: Arc<StreamConsumer<FleetContext>> = Arc::new(fleet_consumer(
        &parts.connection,
        &parts.group,
        &parts.topic,
        FleetContext { tx },
    )?);
    let topic = parts.topic.clone();
    let mut local = Local {
        parts,
        ownership: Ownership::new(),
        running: BTreeMap::new(),
        waiting: BTreeMap::new(),
        clients: BTreeMap::new(),
        forwarders: BTreeMap::new(),
        last_renewal: Instant::now(),
    };
    let mut tick = tokio::time::interval(TICK);
    let outcome = loop {
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            _ = tick.tick() => {
                rebalanced(&consumer, &topic, &mut rx, &mut local).await;
                let changes = positions(&consumer, &topic, &mut local.ownership);
                local.apply(changes).await;
                local.forward_watched(&shutdown).await;
                if local.last_renewal.elapsed() >= RENEW_EVERY {
                    local.renew().await;
                    local.end_idle().await;
                }
            }
            received = consumer.recv() => {
                let msg = match received {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "camera definitions: receive failed");
                        continue;
                    }
                };
                let (partition, offset) = (msg.partition(), msg.offset());
                let key = msg.key().and_then(|k| std::str::from_utf8(k).ok()).and_then(|k| k.parse::<CameraId>().ok());
                let definition = msg.payload().map(serde_json::from_slice::<CameraDefinition>);
                drop(msg);
                // The callback may have told of this partition during the receive.
                rebalanced(&consumer, &topic, &mut rx, &mut local).await;
                let Some(id) = key else {
                    tracing::warn!(partition, offset, "camera definition without a camera id key; ignored");
                    continue;
                };
                let definition = match definition {
                    None => None,
                    Some(Ok(d)) if d.camera_id == id => Some(d),
                    Some(Ok(_)) | Some(Err(_)) => {
                        tracing::warn!(camera = id, offset, "unreadable camera definition; ignored");
                        continue;
                    }
                };
                let changes = local.ownership.record(partition, offset, id, definition);
                local.apply(changes).await;
            }
        }
    };
    local.release_all().await;
    outcome
}

/// Takes the rebalances the callback reported: new partitions are read from their beginning up
/// to their current end before their cameras start; revoked ones stop their cameras.
async fn rebalanced(
    consumer: &Arc<StreamConsumer<FleetContext>>,
    topic: &str,
    rx: &mut mpsc::UnboundedReceiver<Assignment>,
    local: &mut Local,
) {
    while let Ok(event) = rx.try_recv() {
        local.parts.stats.rebalances.fetch_add(1, Ordering::Relaxed);
        match event {
            Assignment::Revoked(list) => {
                tracing::info!(partitions = ?list, "camera partitions revoked");
                let mut changes = Vec::new();
                for p in list {
                    changes.extend(local.ownership.revoke(p));
                }
                local.apply(changes).await;
            }
            Assignment::Assigned(list) => {
                tracing::info!(partitions = ?list, "camera partitions assigned");
                for p in list {
                    let end = end_offset(consumer, topic, p).await;
                    local.ownership.assign(p, end);
                }
            }
        }
    }
}

/// The offset after the last record of `partition` now (0 when it cannot be read: the
/// partition then settles as its records come).
async fn end_offset(consumer: &Arc<StreamConsumer<FleetContext>>, topic: &str, p: i32) -> i64 {
    let (consumer, topic) = (Arc::clone(consumer), topic.to_string());
    let fetched = tokio::task::spawn_blocking(move || {
        consumer.fetch_watermarks(&topic, p, Duration::from_secs(5))
    })
    .await;
    match fetched {
        Ok(Ok((low, high))) if high > low => high,
        Ok(Ok(_)) => 0,
        Ok(Err(e)) => {
            tracing::warn!(partition = p, error = %e, "camera partition end unknown");
            0
        }
        Err(_) => 0,
    }
}

/// Settles the partitions still being read whose position reached their end.
fn positions(
    consumer: &StreamConsumer<FleetContext>,
    topic: &str,
    ownership: &mut Ownership,
) -> Vec<Change> {
    let catching_up: BTreeSet<i32> = ownership.catching_up().into_iter().collect();
    if catching_up.is_empty() {
        return Vec::new();
    }
    let Ok(list) = consumer.position() else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    for e in list.elements_for_topic(topic) {
        if let (true, rdkafka::Offset::Offset(position)) =
            (catching_up.contains(&e.partition()), e.offset())
        {
            changes.extend(ownership.reached(e.partition(), position));
        }
    }
    changes
}
