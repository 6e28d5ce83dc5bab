//! The rows waiting for the writer's next flush, one per primary key: a row submitted again
//! replaces the waiting one (rows are absolute values), so an outage holds one row per key
//! however long it lasts, and the number of keys is capped.

use std::collections::HashMap;

use crate::rows::{Batch, CountRow, Direction, EventRow, MovementRow, SpeedRow};

/// A row's primary key, without the run (the same for all rows of one store).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Count(i64, i64, String, Direction, String),
    Movement(i64, i64, String, String, String),
    Speed(i64, i64, String, String),
    Event(String),
}

/// A row of any kind.
#[derive(Debug, Clone)]
enum Row {
    Count(CountRow),
    Movement(MovementRow),
    Speed(SpeedRow),
    Event(EventRow),
}

impl Row {
    fn key(&self) -> Key {
        match self {
            Self::Count(r) => Key::Count(
                r.camera_id,
                r.bin_start,
                r.line.clone(),
                r.direction,
                r.class.clone(),
            ),
            Self::Movement(r) => Key::Movement(
                r.camera_id,
                r.bin_start,
                r.from.clone(),
                r.to.clone(),
                r.class.clone(),
            ),
            Self::Speed(r) => Key::Speed(r.camera_id, r.bin_start, r.lane.clone(), r.class.clone()),
            Self::Event(r) => Key::Event(r.uid.clone()),
        }
    }
}

/// The rows of a batch, in order.
fn rows(batch: Batch) -> impl Iterator<Item = Row> {
    let Batch {
        counts,
        movements,
        speeds,
        events,
    } = batch;
    counts
        .into_iter()
        .map(Row::Count)
        .chain(movements.into_iter().map(Row::Movement))
        .chain(speeds.into_iter().map(Row::Speed))
        .chain(events.into_iter().map(Row::Event))
}

/// Rows waiting, at most `capacity` keys.
#[derive(Debug)]
pub(crate) struct Pending {
    rows: HashMap<Key, Row>,
    capacity: usize,
}

impl Pending {
    /// An empty map holding up to `capacity` keys.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            rows: HashMap::new(),
            capacity,
        }
    }

    /// How many rows wait.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Adds a submitted batch: each row replaces the waiting row of its key; a new key finds
    /// room or is dropped. The number dropped.
    pub(crate) fn submit(&mut self, batch: Batch) -> u64 {
        let mut dropped = 0;
        for row in rows(batch) {
            let key = row.key();
            if self.rows.len() < self.capacity || self.rows.contains_key(&key) {
                self.rows.insert(key, row);
            } else {
                dropped += 1;
            }
        }
        dropped
    }

    /// Puts back the rows of a flush that failed, except where a newer row of the same key
    /// arrived meanwhile. The number dropped for want of room.
    pub(crate) fn restore(&mut self, batch: Batch) -> u64 {
        let mut dropped = 0;
        for row in rows(batch) {
            let key = row.key();
            if self.rows.contains_key(&key) {
                continue;
            }
            if self.rows.len() < self.capacity {
                self.rows.insert(key, row);
            } else {
                dropped += 1;
            }
        }
        dropped
    }

    /// Takes all waiting rows, as one batch.
    pub(crate) fn take(&mut self) -> Batch {
        let mut batch = Batch::default();
        for (_, row) in self.rows.drain() {
            match row {
                Row::Count(r) => batch.counts.push(r),
                Row::Movement(r) => batch.movements.push(r),
                Row::Speed(r) => batch.speeds.push(r),
                Row::Event(r) => batch.events.push(r),
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(line: &str, n: u64) -> CountRow {
        CountRow {
            camera_id: 1,
            bin_start: 900,
            line: line.into(),
            direction: Direction::In,
            class: "car".into(),
            count: n,
        }
    }

    fn batch(counts: Vec<CountRow>) -> Batch {
        Batch {
            counts,
            ..Batch::default()
        }
    }

    #[test]
    fn a_later_row_replaces_the_waiting_one_and_new_keys_beyond_capacity_drop() {
        let mut p = Pending::new(2);
        assert_eq!(p.submit(batch(vec![count("a", 1), count("b", 1)])), 0);
        assert_eq!(p.submit(batch(vec![count("a", 5), count("c", 1)])), 1);
        assert_eq!(p.len(), 2);
        let mut taken = p.take().counts;
        taken.sort_by(|x, y| x.line.cmp(&y.line));
        assert_eq!(taken, vec![count("a", 5), count("b", 1)]);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn restoring_a_failed_flush_keeps_rows_that_arrived_meanwhile() {
        let mut p = Pending::new(10);
        p.submit(batch(vec![count("a", 1), count("b", 1)]));
        let failed = p.take();
        p.submit(batch(vec![count("a", 7)]));
        assert_eq!(p.restore(failed), 0);
        let mut rows = p.take().counts;
        rows.sort_by(|x, y| x.line.cmp(&y.line));
        assert_eq!(rows, vec![count("a", 7), count("b", 1)]);
    }
}
