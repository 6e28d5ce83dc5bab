//! The camera's dominant flow, learned online: a coarse grid over the frame where each cell keeps
//! the running mean of the unit direction vectors of the vehicles that moved through it. A cell
//! whose vectors agree (a one-way lane) has a long mean; a cell with traffic both ways (or
//! none) has a short one and judges nothing. Wrong-way driving is moving against a confident cell.

/// Grid columns.
const COLS: usize = 16;
/// Grid rows.
const ROWS: usize = 12;
/// Smallest learning rate, so the field follows a change of traffic pattern.
const MIN_RATE: f32 = 0.02;

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    mean: (f32, f32),
    count: u32,
}

/// The learned flow field of one camera.
#[derive(Debug, Clone)]
pub struct FlowField {
    cells: Vec<Cell>,
}

impl Default for FlowField {
    fn default() -> Self {
        Self {
            cells: vec![Cell::default(); COLS * ROWS],
        }
    }
}

/// What the field says about a direction at a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowVerdict {
    /// Cosine between the direction and the cell's dominant direction.
    pub agreement: f32,
    /// Length of the cell's mean vector: 1 = everyone goes the same way.
    pub coherence: f32,
    /// Observations the cell has learned from.
    pub samples: u32,
}

impl FlowField {
    fn cell(&self, x: f32, y: f32, width: u32, height: u32) -> usize {
        let col = ((x / width.max(1) as f32) * COLS as f32).clamp(0.0, (COLS - 1) as f32) as usize;
        let row = ((y / height.max(1) as f32) * ROWS as f32).clamp(0.0, (ROWS - 1) as f32) as usize;
        row * COLS + col
    }

    /// Learns that something moved in unit direction `dir` at `(x, y)`.
    pub fn learn(&mut self, x: f32, y: f32, dir: (f32, f32), width: u32, height: u32) {
        let i = self.cell(x, y, width, height);
        let c = &mut self.cells[i];
        c.count = c.count.saturating_add(1);
        let rate = (1.0 / c.count as f32).max(MIN_RATE);
        c.mean.0 += rate * (dir.0 - c.mean.0);
        c.mean.1 += rate * (dir.1 - c.mean.1);
    }

    /// How unit direction `dir` at `(x, y)` compares with what the field learned there.
    pub fn judge(&self, x: f32, y: f32, dir: (f32, f32), width: u32, height: u32) -> FlowVerdict {
        let c = self.cells[self.cell(x, y, width, height)];
        let coherence = c.mean.0.hypot(c.mean.1);
        let agreement = if coherence > 1e-6 {
            (dir.0 * c.mean.0 + dir.1 * c.mean.1) / coherence
        } else {
            0.0
        };
        FlowVerdict {
            agreement,
            coherence,
            samples: c.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_way_cell_is_coherent_and_a_two_way_cell_is_not() {
        let mut f = FlowField::default();
        for _ in 0..20 {
            f.learn(100.0, 100.0, (1.0, 0.0), 1280, 720);
            f.learn(700.0, 400.0, (1.0, 0.0), 1280, 720);
            f.learn(700.0, 400.0, (-1.0, 0.0), 1280, 720);
        }
        let v = f.judge(100.0, 100.0, (-1.0, 0.0), 1280, 720);
        assert!((v.agreement + 1.0).abs() < 1e-5 && v.coherence > 0.99 && v.samples == 20);
        let v = f.judge(700.0, 400.0, (-1.0, 0.0), 1280, 720);
        assert!(v.coherence < 0.1, "{v:?}");
        // Nothing learned elsewhere.
        assert_eq!(f.judge(1200.0, 700.0, (1.0, 0.0), 1280, 720).samples, 0);
    }
}
