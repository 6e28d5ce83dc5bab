//! The live scene geometry of one camera, shared between whoever changes it (the scene API, a
//! configuration reload) and the camera's two sides that use it: the source side takes its
//! `detect_interval`, the analysis thread judges with its lanes, zones and calibration. A
//! change is seen at the next sample or frame, without restarting the camera.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vision::scene::layout::Layout;

/// A camera's current layout with a generation that moves on every change.
#[derive(Debug, Default)]
pub struct LayoutSlot(Mutex<(u64, Arc<Layout>)>);

impl LayoutSlot {
    /// A slot holding `layout`.
    pub fn new(layout: Arc<Layout>) -> Self {
        Self(Mutex::new((0, layout)))
    }

    /// Replaces the layout.
    pub fn set(&self, layout: Arc<Layout>) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.0 += 1;
        slot.1 = layout;
    }

    /// The generation and the layout.
    pub fn get(&self) -> (u64, Arc<Layout>) {
        let slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (slot.0, Arc::clone(&slot.1))
    }

    /// The layout when its generation is not `seen`, with the new generation.
    pub fn changed(&self, seen: u64) -> Option<(u64, Arc<Layout>)> {
        let slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (slot.0 != seen).then(|| (slot.0, Arc::clone(&slot.1)))
    }
}

/// The time between analysed frames for `layout`: its `detect_interval`, else `default`.
pub fn detect_interval(layout: &Layout, default: Duration) -> Duration {
    layout
        .spec
        .detect_interval
        .map_or(default, Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision::scene::layout::SceneSpec;

    #[test]
    fn changes_are_seen_once_per_generation() {
        let slot = LayoutSlot::new(Arc::default());
        let (seen, layout) = slot.get();
        assert_eq!(
            detect_interval(&layout, Duration::from_secs(2)),
            Duration::from_secs(2)
        );
        assert!(slot.changed(seen).is_none());
        let spec = SceneSpec {
            detect_interval: Some(0.4),
            ..SceneSpec::default()
        };
        slot.set(Arc::new(spec.compile(5.0).unwrap()));
        let (seen, layout) = slot.changed(seen).unwrap();
        assert_eq!(
            detect_interval(&layout, Duration::from_secs(2)),
            Duration::from_millis(400)
        );
        assert!(slot.changed(seen).is_none());
    }
}
