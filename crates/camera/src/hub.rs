//! The camera hub: cameras belong to the service, not to a socket. A camera runs while at least
//! one connection that started or subscribed to it is open; the last one leaving stops it.
//! Starting a running id with a new URL restarts it for all its watchers. The number of cameras
//! is capped by `stream.max_concurrent_streams`. The hub also keeps each camera's scene
//! geometry, running or not, and hands changes to the running camera live.
//!
//! In a fleet ([`FleetLink`], streaming mode with the detector role) a camera runs on the one
//! instance Kafka gives it to: a client's `start_stream` declares it to the fleet instead of
//! starting it here, and a camera watched here but running elsewhere is a relay: an entry
//! without a task whose messages come from the instance that runs it. A relay becomes a running
//! camera when the fleet gives the camera to this instance ([`CameraHub::pin`]), and a running
//! camera with watchers becomes a relay when it goes elsewhere ([`CameraHub::release`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use protocol::api::CameraInfo;
use protocol::server::CameraStatus;
use protocol::{CameraId, ErrorCode, ProtocolError, ServerMessage};

use vision::scene::layout::Layout;

use crate::broadcast::Broadcast;
use crate::layout::LayoutSlot;
use crate::pipeline::{CameraTask, Pipeline, run};
use crate::sink::CameraEvent;
use crate::source::{SourceError, SourcePolicy, check_policy, guards_resolution, redact};

/// Identifies one client connection.
pub type ConnId = u64;

/// The watcher that holds declared cameras: the service itself (client ids start at 1).
pub const SERVICE: ConnId = 0;

/// Messages buffered per camera for slow watchers before they start losing (and counting) them.
const EVENT_CAPACITY: usize = 16;

struct Camera {
    /// Whether its task runs here (false: a relay of a camera running on another instance).
    running: bool,
    url: String,
    info: Arc<Mutex<CameraInfo>>,
    events: broadcast::Sender<Broadcast>,
    cancel: CancellationToken,
    watchers: HashSet<ConnId>,
    /// Set by the task when it ended on its own (a file played out, analysis impossible).
    ended: Arc<AtomicBool>,
    id: CameraId,
    layout: Arc<LayoutSlot>,
}

impl Camera {
    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

/// A watcher's handle on a camera.
#[derive(Debug)]
pub struct Subscription {
    /// Camera id.
    pub camera_id: CameraId,
    /// The camera's messages from now on.
    pub events: broadcast::Receiver<Broadcast>,
    /// The current `camera_status` message, to send first.
    pub status: ServerMessage,
}

/// How the hub reaches the rest of a fleet.
pub trait FleetLink: Send + Sync {
    /// A client asks for camera `id` on `url` (policy-checked): declare it to the fleet.
    fn request(&self, id: CameraId, url: &str) -> Result<(), String>;
    /// Whether the fleet has camera `id`.
    fn knows(&self, id: CameraId) -> bool;
    /// Clients of this instance now watch camera `id` (`true`), or no longer do.
    fn watching(&self, id: CameraId, watched: bool);
}

/// All running cameras.
pub struct CameraHub {
    fleet: std::sync::OnceLock<Arc<dyn FleetLink>>,
    cameras: Mutex<HashMap<CameraId, Camera>>,
    layouts: Mutex<HashMap<CameraId, Arc<Layout>>>,
    pipeline: Arc<Pipeline>,
    interval: Duration,
    max_cameras: usize,
    policy: SourcePolicy,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for CameraHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraHub")
            .field("max_cameras", &self.max_cameras)
            .finish_non_exhaustive()
    }
}

impl CameraHub {
    /// A hub whose camera tasks are children of `shutdown` and tracked by `tracker`.
    pub fn new(
        pipeline: Arc<Pipeline>,
        interval: Duration,
        max_cameras: usize,
        policy: SourcePolicy,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            fleet: std::sync::OnceLock::new(),
            cameras: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
            pipeline,
            interval,
            max_cameras,
            policy,
            shutdown,
            tracker,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CameraId, Camera>> {
        self.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes this hub part of a fleet (once, before clients come).
    pub fn join_fleet(&self, link: Arc<dyn FleetLink>) {
        let _ = self.fleet.set(link);
    }

    /// The fleet's `start_stream`: declares the camera to the fleet and watches it here (it
    /// runs here if the fleet gives it to this instance, else it is relayed).
    fn fleet_start(
        &self,
        fleet: &Arc<dyn FleetLink>,
        conn: ConnId,
        id: CameraId,
        url: &str,
    ) -> Result<Subscription, ProtocolError> {
        let mut cameras = self.lock();
        fleet
            .request(id, url)
            .map_err(|e| ProtocolError::new(ErrorCode::InvalidField, e).for_camera(id))?;
        Ok(self.watch_relay(&mut cameras, fleet, conn, id, url))
    }

    /// Adds `conn` as a watcher of camera `id`, as a relay entry when it does not run here.
    fn watch_relay(
        &self,
        cameras: &mut HashMap<CameraId, Camera>,
        fleet: &Arc<dyn FleetLink>,
        conn: ConnId,
        id: CameraId,
        url: &str,
    ) -> Subscription {
        let cam = cameras.entry(id).or_insert_with(|| {
            let (events, _) = broadcast::channel(EVENT_CAPACITY);
            let mut info = CameraInfo::new(id, redact(url));
            info.message = "runs on another instance of the fleet".into();
            Camera {
                running: false,
                url: url.to_string(),
                info: Arc::new(Mutex::new(info)),
                events,
                cancel: self.shutdown.child_token(),
                watchers: HashSet::new(),
                ended: Arc::default(),
                id,
                layout: Arc::new(LayoutSlot::new(self.layout(id).unwrap_or_default())),
            }
        });
        cam.watchers.insert(conn);
        fleet.watching(id, true);
        Self::subscription(id, cam)
    }

    /// Starts camera `id` on `url` (or restarts it when the URL changed) and adds `conn` as a
    /// watcher.
    pub fn start(
        &self,
        conn: ConnId,
        id: CameraId,
        url: &str,
    ) -> Result<Subscription, ProtocolError> {
        let parsed = check_policy(url, &self.policy).map_err(|e| {
            let code = match e {
                SourceError::NotAllowed(_) => ErrorCode::SourceNotAllowed,
                _ => ErrorCode::InvalidField,
            };
            ProtocolError::new(code, e.to_string()).for_camera(id)
        })?;
        if let Some(fleet) = self.fleet.get() {
            return self.fleet_start(fleet, conn, id, url);
        }
        let guard = guards_resolution(&parsed, &self.policy);
        let mut cameras = self.lock();
        if let Some(cam) = cameras.get_mut(&id) {
            if cam.url != url && cam.watchers.contains(&SERVICE) {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidField,
                    format!("camera {id} is declared in the configuration; subscribe to it"),
                )
                .for_camera(id));
            }
            if cam.url != url || cam.ended() {
                // Same id, new URL, or a camera whose source ended: (re)start it for everyone
                // watching.
                cam.cancel.cancel();
                cam.url = url.to_string();
                cam.cancel = self.shutdown.child_token();
                cam.ended = Arc::default();
                // A fresh state: the old task may still write its final state into its own.
                let pinned = cam.info.lock().unwrap_or_else(|e| e.into_inner()).pinned;
                let mut info = CameraInfo::new(id, redact(url));
                info.pinned = pinned;
                cam.info = Arc::new(Mutex::new(info));
                self.spawn(id, parsed, guard, cam);
            }
            cam.watchers.insert(conn);
            return Ok(Self::subscription(id, cam));
        }
        // Client cameras whose source ended give their places up (their watchers were told).
        cameras.retain(|_, cam| {
            let gone = cam.ended() && !cam.watchers.contains(&SERVICE);
            if gone {
                self.pipeline.event(cam.id, CameraEvent::Removed);
            }
            !gone
        });
        if cameras.len() >= self.max_cameras {
            return Err(ProtocolError::new(
                ErrorCode::TooManyStreams,
                format!(
                    "{} cameras already running (stream.max_concurrent_streams)",
                    cameras.len()
                ),
            )
            .for_camera(id));
        }
        let mut cam = self.add(id, url, conn);
        self.spawn(id, parsed, guard, &mut cam);
        let sub = Self::subscription(id, &cam);
        cameras.insert(id, cam);
        Ok(sub)
    }

    /// Starts a camera declared by the operator; it runs until shutdown. The source policy is
    /// for client requests and does not apply here; the cap on running cameras
    /// (`stream.max_concurrent_streams`) does.
    pub fn pin(&self, id: CameraId, url: &str) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
        let mut cameras = self.lock();
        let running = cameras.values().filter(|c| c.running).count();
        if running >= self.max_cameras && !cameras.get(&id).is_some_and(|c| c.running) {
            return Err(format!(
                "{running} cameras already running (stream.max_concurrent_streams)"
            ));
        }
        if let Some(cam) = cameras.get_mut(&id) {
            if !cam.running {
                // A relay: the fleet gave the camera to this instance; it runs here now.
                cam.running = true;
                cam.url = url.to_string();
                cam.cancel = self.shutdown.child_token();
                cam.ended = Arc::default();
                let mut info = CameraInfo::new(id, redact(url));
                info.pinned = true;
                cam.info = Arc::new(Mutex::new(info));
                cam.watchers.insert(SERVICE);
                self.pipeline.event(id, CameraEvent::Added);
                self.spawn(id, parsed, false, cam);
                return Ok(());
            }
            if cam.url == url {
                cam.watchers.insert(SERVICE);
                cam.info.lock().unwrap_or_else(|e| e.into_inner()).pinned = true;
                return Ok(());
            }
            return Err(format!("camera {id} is already running another source"));
        }
        let mut cam = self.add(id, url, SERVICE);
        self.spawn(id, parsed, false, &mut cam);
        cameras.insert(id, cam);
        Ok(())
    }

    /// Releases a declared camera: it stops unless clients still watch it.
    pub fn unpin(&self, id: CameraId) {
        let _ = self.leave(SERVICE, id);
    }

    /// A new camera on `url` watched by `watcher` (pinned when that is the service itself);
    /// the sinks hear it was added.
    fn add(&self, id: CameraId, url: &str, watcher: ConnId) -> Camera {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let mut info = CameraInfo::new(id, redact(url));
        info.pinned = watcher == SERVICE;
        self.pipeline.event(id, CameraEvent::Added);
        let layout = self.layout(id).unwrap_or_default();
        Camera {
            running: true,
            url: url.to_string(),
            info: Arc::new(Mutex::new(info)),
            events,
            cancel: self.shutdown.child_token(),
            watchers: HashSet::from([watcher]),
            ended: Arc::default(),
            id,
            layout: Arc::new(LayoutSlot::new(layout)),
        }
    }

    /// Sets camera `id`'s scene geometry (`None`: none), applied live when it runs and kept for
    /// when it starts.
    pub fn set_layout(&self, id: CameraId, layout: Option<Arc<Layout>>) {
        // Locks in the order `add` takes them (cameras, then layouts), so that a camera being
        // added reads the new layout or gets it here.
        let cameras = self.lock();
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        let live = layout.clone().unwrap_or_default();
        match layout {
            Some(l) => layouts.insert(id, l),
            None => layouts.remove(&id),
        };
        if let Some(cam) = cameras.get(&id) {
            cam.layout.set(live);
        }
    }

    /// Camera `id`'s scene geometry, if it has one.
    pub fn layout(&self, id: CameraId) -> Option<Arc<Layout>> {
        let layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        layouts.get(&id).cloned()
    }

    /// Starts the camera's task; `guard`: its host name must not resolve to a link-local or
    /// metadata address.
    fn spawn(&self, id: CameraId, url: url::Url, guard: bool, cam: &mut Camera) {
        tracing::info!(camera = id, url = %redact(url.as_str()), "camera started");
        let task = CameraTask {
            id,
            url,
            guard_resolution: guard,
            interval: self.interval,
            layout: Arc::clone(&cam.layout),
            info: Arc::clone(&cam.info),
            events: cam.events.clone(),
            cancel: cam.cancel.clone(),
            ended: Arc::clone(&cam.ended),
            pipeline: Arc::clone(&self.pipeline),
        };
        self.tracker.spawn(run(task));
    }

    fn subscription(id: CameraId, cam: &Camera) -> Subscription {
        let status = {
            let info = cam.info.lock().unwrap_or_else(|e| e.into_inner());
            ServerMessage::CameraStatus(CameraStatus::new(id, info.state, &info.message))
        };
        Subscription {
            camera_id: id,
            events: cam.events.subscribe(),
            status,
        }
    }

    /// Adds `conn` as a watcher of a running camera.
    pub fn subscribe(&self, conn: ConnId, id: CameraId) -> Result<Subscription, ProtocolError> {
        let mut cameras = self.lock();
        if let Some(fleet) = self.fleet.get() {
            if let Some(cam) = cameras.get_mut(&id) {
                cam.watchers.insert(conn);
                fleet.watching(id, true);
                return Ok(Self::subscription(id, cam));
            }
            if fleet.knows(id) {
                return Ok(self.watch_relay(&mut cameras, fleet, conn, id, ""));
            }
        }
        let cam = cameras.get_mut(&id).ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::UnknownCamera,
                format!("camera {id} is not running"),
            )
            .for_camera(id)
        })?;
        cam.watchers.insert(conn);
        Ok(Self::subscription(id, cam))
    }

    /// Removes `conn` from camera `id`; stops the camera when nobody is left. Returns `None`
    /// when `conn` was not watching it, else whether the camera stopped.
    pub fn leave(&self, conn: ConnId, id: CameraId) -> Option<bool> {
        let mut cameras = self.lock();
        let cam = cameras.get_mut(&id)?;
        let was_watching = cam.watchers.remove(&conn);
        if let Some(fleet) = self.fleet.get() {
            // In a fleet the instance that runs a client's camera stops it once no instance
            // has a watcher left; here only this instance's interest ends.
            if !cam.watchers.iter().any(|w| *w != SERVICE) {
                fleet.watching(id, false);
            }
            if cam.watchers.is_empty() {
                if cam.running {
                    cam.cancel.cancel();
                    self.pipeline.event(id, CameraEvent::Removed);
                }
                cameras.remove(&id);
            }
            return was_watching.then_some(false);
        }
        let stopped = cam.watchers.is_empty();
        if stopped {
            cam.cancel.cancel();
            cameras.remove(&id);
            self.pipeline.event(id, CameraEvent::Removed);
            tracing::info!(camera = id, "last watcher left; camera stopped");
        }
        was_watching.then_some(stopped)
    }

    /// Removes `conn` from every camera (the connection closed).
    pub fn leave_all(&self, conn: ConnId) {
        let ids: Vec<CameraId> = self.lock().keys().copied().collect();
        for id in ids {
            let _ = self.leave(conn, id);
        }
    }

    /// The fleet moved camera `id` to another instance (or removed it): it stops running here;
    /// clients of this instance that watch it keep watching it as a relay.
    pub fn release(&self, id: CameraId) {
        let mut cameras = self.lock();
        let Some(cam) = cameras.get_mut(&id) else {
            return;
        };
        cam.watchers.remove(&SERVICE);
        if cam.running {
            cam.running = false;
            cam.cancel.cancel();
            self.pipeline.event(id, CameraEvent::Removed);
            tracing::info!(camera = id, "camera released to the fleet");
        }
        if cam.watchers.is_empty() {
            cameras.remove(&id);
        } else {
            let mut info = cam.info.lock().unwrap_or_else(|e| e.into_inner());
            info.pinned = false;
            info.message = "runs on another instance of the fleet".into();
        }
    }

    /// The messages of camera `id` while it runs here (for the watchers of other instances),
    /// without becoming one of its watchers.
    pub fn tap(&self, id: CameraId) -> Option<broadcast::Receiver<Broadcast>> {
        let cameras = self.lock();
        cameras
            .get(&id)
            .filter(|c| c.running)
            .map(|c| c.events.subscribe())
    }

    /// Sends `message`, from the instance that runs camera `id`, to this instance's watchers
    /// of it; false when it is not relayed here (not watched, or running here).
    pub fn relay(&self, id: CameraId, message: ServerMessage) -> bool {
        let cameras = self.lock();
        let Some(cam) = cameras.get(&id).filter(|c| !c.running) else {
            return false;
        };
        if let ServerMessage::CameraStatus(status) = &message {
            let mut info = cam.info.lock().unwrap_or_else(|e| e.into_inner());
            info.state = status.state;
            info.message = status.message.clone();
        }
        let _ = cam.events.send(Broadcast::new(message));
        true
    }

    /// Clients of this instance watching camera `id` (the service itself not counted).
    pub fn client_watchers(&self, id: CameraId) -> usize {
        let cameras = self.lock();
        cameras
            .get(&id)
            .map_or(0, |c| c.watchers.iter().filter(|w| **w != SERVICE).count())
    }

    /// Every camera's state, by id.
    pub fn cameras(&self) -> Vec<CameraInfo> {
        let cameras = self.lock();
        let mut list: Vec<CameraInfo> = cameras
            .values()
            .map(|c| {
                let mut info = c.info.lock().unwrap_or_else(|e| e.into_inner()).clone();
                info.watchers = c.watchers.iter().filter(|w| **w != SERVICE).count();
                info
            })
            .collect();
        list.sort_by_key(|c| c.camera_id);
        list
    }

    /// Sends `message` to the watchers of camera `id`; false when the camera is not running
    /// here.
    pub fn deliver(&self, id: CameraId, message: ServerMessage) -> bool {
        match self.lock().get(&id) {
            Some(cam) => {
                let _ = cam.events.send(Broadcast::new(message));
                true
            }
            None => false,
        }
    }

    /// Number of cameras running here (relays of other instances' cameras not counted).
    pub fn active(&self) -> usize {
        self.lock().values().filter(|c| c.running).count()
    }

    /// Stops every camera (shutdown).
    pub fn stop_all(&self) {
        let mut cameras = self.lock();
        for (id, cam) in cameras.drain() {
            cam.cancel.cancel();
            self.pipeline.event(id, CameraEvent::Removed);
        }
    }
}
