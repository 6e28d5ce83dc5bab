//! Stream sanity: whether a camera's picture shows traffic at all before the scene judges it.
//! A picture can stop changing (a frozen encoder or camera repeats one frame), jump to another
//! view (a scene cut: a switched input, a PTZ preset) or move as a whole (a camera on a mast in
//! the wind, a PTZ pan). None of these is traffic, yet to the tracker and the rules they look
//! like every vehicle stopping dead or leaping across the frame. [`PictureWatch`] compares each
//! analysed frame's small grey [`Thumbnail`] with the previous one ([`compare`]) and says, per
//! frame, what the picture did ([`PictureState`]), when a freeze begins and ends, and whether
//! the scene's alerts must be held. Pure and synchronous: the camera pipeline and `analyze`
//! feed it every analysed frame.
//!
//! The measures are made on a thumbnail [`THUMBNAIL_WIDTH`] cells wide, each cell the mean
//! luma of its block of pixels: averaging removes sensor and compression noise (a 10x10 block
//! divides it by ten) while a moving car still changes the cells it covers by tens of grey
//! levels, and a whole-picture shift of one cell is 1.6% of the width.

mod thumbnail;

pub use thumbnail::{Change, THUMBNAIL_WIDTH, Thumbnail, compare};

/// The thresholds of the watch. The defaults were set against real street footage (the shared
/// clips, analysed every 0.3 and 1.8 s, in `crates/camera/tests/picture_sanity.rs`), where no
/// frame is frozen, cut or moved; `docs/scene-and-rules.md` (Stream sanity) gives the figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SanityConfig {
    /// Seconds a picture must stay unchanged before it counts as frozen (default 3): short
    /// enough to be told within a few samples at the default 1.8 s, and longer than the quiet
    /// moments of a real street (the shared street clip has 3 s with nothing but a few
    /// cells changing by 1-2 grey levels at a time).
    pub frozen_after: f64,
    /// Unchanged means a mean cell difference of at most this (grey levels, default 0.25)...
    pub still_mean: f32,
    /// ...and no cell changed by more than this (grey levels, default 1), both from the
    /// previous frame and from the first frame of the unchanged run: a repeated frame differs
    /// by 0, a car moving by a few pixels changes the cells it covers by 5-200, and the
    /// quietest 3 s of the street clip end 2.3 levels away from where they began. (A camera
    /// whose encoder re-encodes its stuck picture at every keyframe with fresh noise may differ
    /// by a little more than 1 at 640x360; larger pictures average it away.)
    pub still_max: f32,
    /// Largest whole-picture shift searched, in cells each way (default 5, 8% of the width).
    pub max_shift: i32,
    /// A shift is taken only if it leaves at most this fraction of the unshifted difference
    /// (default 0.6): moving cars over a still background never explain themselves that way.
    pub shift_gain: f32,
    /// A shift of this many cells or more (either axis) means the camera moved (default 2:
    /// 3% of the width; one cell is within what image noise and thumbnail rounding do).
    pub moved_shift: i32,
    /// A cut needs [`Change::residual_median`] of at least this (grey levels, default 12):
    /// most of the picture changed, beyond a change of exposure. On the shared clips passing
    /// traffic stays under 4 (a bus filling a fifth of the frame and a jump in exposure
    /// included), another street gives 29...
    pub cut_median: f32,
    /// ...and a correlation of the two pictures of at most this (default 0.5): passing
    /// traffic changes parts of a picture that stays the same scene, a cut shows another one
    /// (near 0). Correlation ignores a change of exposure, which moves every cell.
    pub cut_correlation: f32,
    /// After a cut, a camera move or the end of a freeze, alerts stay held for this many more
    /// analysed frames (default 2): the rules need two sightings after the jump before speeds
    /// and the speed before a stop are measured on the new picture alone.
    pub settle_frames: u32,
}

impl Default for SanityConfig {
    fn default() -> Self {
        Self {
            frozen_after: 3.0,
            still_mean: 0.25,
            still_max: 1.0,
            max_shift: 5,
            shift_gain: 0.6,
            moved_shift: 2,
            cut_median: 12.0,
            cut_correlation: 0.5,
            settle_frames: 2,
        }
    }
}

/// What the picture did on one analysed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureState {
    /// It changed the way traffic changes it (or it is the first frame): judge it.
    Normal,
    /// Unchanged since the previous frame, not yet for [`SanityConfig::frozen_after`].
    Still,
    /// Unchanged for at least [`SanityConfig::frozen_after`]: a frozen encoder or camera.
    Frozen,
    /// Another picture altogether (or another resolution): a scene cut.
    Cut,
    /// The whole picture shifted: the camera moved or shook.
    Moved,
    /// Changed normally, within the settle after a cut, a move or a freeze.
    Settling,
}

impl PictureState {
    /// The state's name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Still => "still",
            Self::Frozen => "frozen",
            Self::Cut => "cut",
            Self::Moved => "moved",
            Self::Settling => "settling",
        }
    }
}

/// The watch's word on one analysed frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PictureVerdict {
    /// What the picture did.
    pub state: PictureState,
    /// The picture froze on this frame (the first [`PictureState::Frozen`] of a freeze).
    pub froze: bool,
    /// A freeze ended on this frame: the picture moved again, or the stream started over.
    pub thawed: bool,
    /// How the frame differs from the previous one (`None`: first frame, or a new size).
    pub change: Option<Change>,
}

impl PictureVerdict {
    /// Whether the scene must hold this frame's alerts: on anything but a normal picture. A
    /// repeated picture says nothing new, yet read as traffic it has every vehicle stop dead;
    /// a cut or a move makes every vehicle leap.
    pub fn holds_alerts(&self) -> bool {
        self.state != PictureState::Normal
    }

    /// Whether the scene must start over (its tracks belong to another picture).
    pub fn restarts_scene(&self) -> bool {
        self.state == PictureState::Cut
    }
}

/// One camera's picture over time: feed it every analysed frame with [`PictureWatch::observe`].
#[derive(Debug, Clone)]
pub struct PictureWatch {
    cfg: SanityConfig,
    previous: Option<(f64, Thumbnail)>,
    /// The first frame of the run of unchanged frames, and its stream time.
    still_since: Option<(f64, Thumbnail)>,
    frozen: bool,
    /// Frames still to hold after a cut, a move or a freeze.
    settle: u32,
}

impl Default for PictureWatch {
    fn default() -> Self {
        Self::new(SanityConfig::default())
    }
}

impl PictureWatch {
    /// A watch with no frame seen.
    pub fn new(cfg: SanityConfig) -> Self {
        Self {
            cfg,
            previous: None,
            still_since: None,
            frozen: false,
            settle: 0,
        }
    }

    /// Whether the picture is frozen now.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Judges the frame seen at stream time `t`. Time going backwards (the stream started
    /// over) starts the watch over, ending any freeze.
    pub fn observe(&mut self, t: f64, thumbnail: Thumbnail) -> PictureVerdict {
        let verdict = match self.previous.take() {
            Some((before, previous)) if t > before => {
                let change = self.compare(&previous, &thumbnail);
                let still = self.unchanged(change.as_ref())
                    && self.still_since.as_ref().is_none_or(|(_, first)| {
                        self.unchanged(self.compare(first, &thumbnail).as_ref())
                    });
                if still {
                    self.still_since.get_or_insert((before, previous));
                } else {
                    self.still_since = None;
                }
                self.step(t, still, change)
            }
            _ => {
                let thawed = self.frozen;
                *self = Self::new(self.cfg);
                PictureVerdict {
                    state: PictureState::Normal,
                    froze: false,
                    thawed,
                    change: None,
                }
            }
        };
        self.previous = Some((t, thumbnail));
        verdict
    }

    /// How `after` differs from `before`, with this watch's shift search.
    fn compare(&self, before: &Thumbnail, after: &Thumbnail) -> Option<Change> {
        compare(before, after, self.cfg.max_shift, self.cfg.shift_gain)
    }

    /// Whether `change` leaves the picture as it was.
    fn unchanged(&self, change: Option<&Change>) -> bool {
        change.is_some_and(|c| c.mean <= self.cfg.still_mean && c.max <= self.cfg.still_max)
    }

    /// The state machine: one frame at `t`, `still` (unchanged since the run began) or
    /// differing from the previous one by `change`.
    fn step(&mut self, t: f64, still: bool, change: Option<Change>) -> PictureVerdict {
        let cfg = self.cfg;
        let settling = self.settle > 0;
        self.settle = self.settle.saturating_sub(1);
        let mut verdict = PictureVerdict {
            state: PictureState::Normal,
            froze: false,
            thawed: false,
            change,
        };
        if let Some((since, _)) = self.still_since.as_ref().filter(|_| still) {
            if !self.frozen && t - since >= cfg.frozen_after {
                self.frozen = true;
                verdict.froze = true;
            }
            verdict.state = if self.frozen {
                PictureState::Frozen
            } else {
                PictureState::Still
            };
            return verdict;
        }
        verdict.thawed = std::mem::take(&mut self.frozen);
        let cut = change.is_none_or(|c| {
            c.residual_median >= cfg.cut_median && c.correlation <= cfg.cut_correlation
        });
        let moved = change.is_some_and(|c| c.shift.0.abs().max(c.shift.1.abs()) >= cfg.moved_shift);
        verdict.state = if cut {
            PictureState::Cut
        } else if moved {
            PictureState::Moved
        } else if settling || verdict.thawed {
            PictureState::Settling
        } else {
            PictureState::Normal
        };
        if cut || moved || verdict.thawed {
            self.settle = cfg.settle_frames;
        }
        verdict
    }
}

#[cfg(test)]
mod tests;
