//! The labels file of `traffic-algo eval`: clips, each with its scene, the spans where nothing
//! dangerous happens, the real events seen by eye, hand-measured speeds, and an optional
//! transform that makes a metamorphic variant of the clip (faster, a time-reversed segment, a
//! frozen segment). Paths are relative to the labels file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// The clips.
    pub clips: Vec<Clip>,
}

/// One labelled clip.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clip {
    /// Unique name.
    pub name: String,
    /// The video (H.264 MP4).
    pub video: PathBuf,
    /// Its scene file.
    #[serde(default)]
    pub scene: Option<PathBuf>,
    /// Spans `[from, to]` of stream time (s) with no danger: an alert there is false.
    #[serde(default)]
    pub normal: Vec<[f64; 2]>,
    /// Real dangerous events.
    #[serde(default)]
    pub events: Vec<Event>,
    /// Hand-measured speeds.
    #[serde(default)]
    pub speeds: Vec<SpeedLabel>,
    /// Vehicles and people crossing the scene's count lines, counted by eye.
    #[serde(default)]
    pub counts: Vec<CountLabel>,
    /// A metamorphic variant of the clip.
    #[serde(default)]
    pub transform: Option<Transform>,
    /// Stop at this video time (s); the whole clip without.
    #[serde(default)]
    pub until: Option<f64>,
}

/// A real event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The alert `type` it should raise.
    #[serde(rename = "type")]
    pub kind: String,
    /// Start, stream seconds.
    pub from: f64,
    /// End, stream seconds.
    pub to: f64,
}

/// A speed measured by hand: at `at`, the vehicle whose foot point is nearest `near` moves at
/// `kmh`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedLabel {
    /// Stream seconds.
    pub at: f64,
    /// Pixel of the vehicle's foot point (bottom centre of its box).
    pub near: [f64; 2],
    /// Its speed.
    pub kmh: f64,
}

/// The crossings of one count line over the whole clip (every class), by eye.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountLabel {
    /// The line's name in the scene.
    pub line: String,
    /// Crossings from the left of its arrow to the right.
    #[serde(rename = "in")]
    pub in_: u64,
    /// Crossings the other way.
    pub out: u64,
}

/// How to play the clip.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// Play this many times faster (stream time = video time / speed).
    #[serde(default)]
    pub speed: Option<f64>,
    /// Play the video's `[from, to]` backwards, in place.
    #[serde(default)]
    pub reverse: Option<[f64; 2]>,
    /// Show the picture at `from` until `to` (a frozen encoder).
    #[serde(default)]
    pub freeze: Option<[f64; 2]>,
    /// Play the whole clip this many times, stream time starting over on each pass (a looping
    /// file camera).
    #[serde(default)]
    pub loops: Option<u32>,
}

impl Labels {
    /// Reads a labels file; relative paths in it become relative to its folder.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut labels: Self = crate::config::yaml::parse(&text, "labels file")
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for clip in &mut labels.clips {
            clip.video = base.join(&clip.video);
            if let Some(scene) = &mut clip.scene {
                *scene = base.join(&*scene);
            }
            for span in &clip.normal {
                anyhow::ensure!(
                    span[0] <= span[1],
                    "clip {}: span {span:?} ends before it starts",
                    clip.name
                );
            }
        }
        Ok(labels)
    }
}
