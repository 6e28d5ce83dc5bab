//! Every camera's scene geometry from the sources SPEC section 9 names, later winning: the
//! scenes folder, `scene:` in `cameras.yaml`, the backend's camera list, and the scene API.
//! The book keeps each source's last good scene per camera and hands the winner to the
//! [`CameraHub`], which applies it to the running camera without a restart. A scene that
//! fails its checks changes nothing: the error names the field and the last good one stays.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use camera::hub::CameraHub;
use protocol::CameraId;
use serde::Serialize;
use vision::scene::layout::{Layout, SceneSpec};

use crate::config::{Config, scenes as files};

/// Where a camera's scene came from, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `scenes/<cameraId>.yaml`, read at start-up.
    File,
    /// `scene:` of the camera in `cameras.yaml`.
    CamerasYaml,
    /// The backend's camera list.
    Backend,
    /// `PUT /api/cameras/{id}/scene` (also saved to the scenes folder).
    Api,
}

const SOURCES: usize = 4;

/// Why a scene was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// It failed a check; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// It is valid but could not be saved; nothing changed.
    #[error("cannot save the scene: {0}")]
    Save(#[from] std::io::Error),
}

/// The scene of one camera as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SceneView {
    /// Camera id.
    pub camera_id: CameraId,
    /// Which source it came from.
    pub source: Source,
    /// The scene as written.
    pub scene: SceneSpec,
    /// RMS reprojection error of the calibration, pixels (null: not calibrated).
    pub reprojection_error_px: Option<f64>,
    /// Worst point's reprojection error, pixels.
    pub worst_error_px: Option<f64>,
}

impl SceneView {
    fn new(camera_id: CameraId, source: Source, layout: &Layout) -> Self {
        let cal = layout.calibration.as_ref();
        Self {
            camera_id,
            source,
            scene: layout.spec.clone(),
            reprojection_error_px: cal.map(|c| round(c.reprojection_error_px)),
            worst_error_px: cal.map(|c| round(c.worst_error_px)),
        }
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Each camera's scene per source, and the hub that runs with the winners.
#[derive(Debug)]
pub struct SceneBook {
    dir: PathBuf,
    max_error_px: f64,
    hub: Arc<CameraHub>,
    layers: Mutex<HashMap<CameraId, [Option<Arc<Layout>>; SOURCES]>>,
}

impl SceneBook {
    /// A book seeded with the configuration's scene files and `cameras.yaml` scenes, applied
    /// to `hub`.
    pub fn new(config: &Config, hub: Arc<CameraHub>) -> Self {
        let book = Self {
            dir: config.scenes.dir.clone(),
            max_error_px: config.scenes.max_error_px,
            hub,
            layers: Mutex::default(),
        };
        for (id, file) in &config.scenes.files {
            book.set(*id, Source::File, Some(Arc::clone(&file.layout)));
        }
        for decl in &config.cameras {
            if let Some(layout) = &decl.layout {
                book.set(decl.id, Source::CamerasYaml, Some(Arc::clone(layout)));
            }
        }
        book
    }

    /// Checks a scene against this book's calibration limit.
    pub fn compile(&self, spec: &SceneSpec) -> Result<Layout, SceneError> {
        spec.compile(self.max_error_px)
            .map_err(|e| SceneError::Invalid(e.to_string()))
    }

    /// Sets (or with `None` clears) one source's scene of camera `id` and applies the winner.
    fn set(&self, id: CameraId, source: Source, layout: Option<Arc<Layout>>) {
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let slots = layers.entry(id).or_default();
        slots[source as usize] = layout;
        let winner = slots.iter().rev().flatten().next().cloned();
        if winner.is_none() {
            layers.remove(&id);
        }
        // Under the lock: two changes apply in the order they were made.
        self.hub.set_layout(id, winner);
    }

    /// Camera `id`'s scene and where it came from.
    pub fn get(&self, id: CameraId) -> Option<SceneView> {
        let layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let slots = layers.get(&id)?;
        let (k, layout) = slots
            .iter()
            .enumerate()
            .rev()
            .find_map(|(k, l)| l.as_ref().map(|l| (k, l)))?;
        let source = [
            Source::File,
            Source::CamerasYaml,
            Source::Backend,
            Source::Api,
        ][k];
        Some(SceneView::new(id, source, layout))
    }

    /// The scene API's `PUT`: checks `spec`, saves it to the scenes folder and applies it.
    pub fn put(&self, id: CameraId, spec: &SceneSpec) -> Result<SceneView, SceneError> {
        let layout = Arc::new(self.compile(spec)?);
        let path = files::save(&self.dir, id, spec)?;
        tracing::info!(camera = id, path = %path.display(), "scene saved");
        self.set(id, Source::Api, Some(Arc::clone(&layout)));
        Ok(SceneView::new(id, Source::Api, &layout))
    }

    /// The scene API's `DELETE`: forgets the API's and the folder's scene of camera `id` (the
    /// file is removed); a scene from `cameras.yaml` or the backend then applies again.
    /// Whether there was one.
    pub fn delete(&self, id: CameraId) -> Result<bool, SceneError> {
        let removed = files::remove(&self.dir, id)?;
        let had = {
            let layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
            layers.get(&id).is_some_and(|s| {
                s[Source::Api as usize].is_some() || s[Source::File as usize].is_some()
            })
        };
        self.set(id, Source::Api, None);
        self.set(id, Source::File, None);
        Ok(removed || had)
    }

    /// The backend's scene of camera `id`: `Ok(None)` clears it; an invalid one is refused
    /// and the last good one stays.
    pub fn set_backend(&self, id: CameraId, spec: Option<&SceneSpec>) -> Result<(), SceneError> {
        let layout = spec.map(|s| self.compile(s)).transpose()?;
        let unchanged = {
            let layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
            let current = layers
                .get(&id)
                .and_then(|s| s[Source::Backend as usize].as_deref());
            current.map(|l| &l.spec) == layout.as_ref().map(|l| &l.spec)
        };
        if !unchanged {
            self.set(id, Source::Backend, layout.map(Arc::new));
        }
        Ok(())
    }
}
