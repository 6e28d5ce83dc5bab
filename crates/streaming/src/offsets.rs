//! Which offsets may be committed when messages of one partition are processed concurrently
//! (the llm-worker has many LLM calls in flight): a partition's commit position is its lowest
//! offset still in progress, or one past the highest started when none is, so a crash never
//! skips a message whose output was not produced yet (at-least-once). Pure bookkeeping.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
struct Partition {
    in_flight: BTreeSet<i64>,
    highest: Option<i64>,
    committed: Option<i64>,
}

impl Partition {
    fn position(&self) -> Option<i64> {
        match self.in_flight.first() {
            Some(&low) => Some(low),
            None => self.highest.map(|h| h + 1),
        }
    }
}

/// Offsets in progress per topic partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    parts: HashMap<(String, i32), Partition>,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// A message at `offset` is being processed.
    pub fn start(&mut self, topic: &str, partition: i32, offset: i64) {
        let p = self
            .parts
            .entry((topic.to_string(), partition))
            .or_default();
        p.in_flight.insert(offset);
        p.highest = Some(p.highest.map_or(offset, |h| h.max(offset)));
    }

    /// The message at `offset` is done (its output produced). Returns the new commit position
    /// (the next offset to read) when it moved forward.
    pub fn finish(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.parts.get_mut(&(topic.to_string(), partition))?;
        p.in_flight.remove(&offset);
        let position = p.position()?;
        if p.committed.is_some_and(|c| c >= position) {
            return None;
        }
        p.committed = Some(position);
        Some(position)
    }

    /// Messages in progress over all partitions.
    pub fn in_flight(&self) -> usize {
        self.parts.values().map(|p| p.in_flight.len()).sum()
    }

    /// Forgets a partition this consumer no longer owns.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.parts.remove(&(topic.to_string(), partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_never_pass_a_message_still_in_progress() {
        let mut t = OffsetTracker::new();
        for o in 10..14 {
            t.start("tasks", 0, o);
        }
        t.start("tasks", 1, 5);
        assert_eq!(t.in_flight(), 5);
        assert_eq!(
            t.finish("tasks", 0, 12),
            Some(10),
            "10 and 11 still running"
        );
        assert_eq!(t.finish("tasks", 0, 11), None);
        assert_eq!(t.finish("tasks", 0, 10), Some(13));
        assert_eq!(t.finish("tasks", 0, 13), Some(14));
        assert_eq!(
            t.finish("tasks", 1, 5),
            Some(6),
            "partitions are independent"
        );
        assert_eq!(t.finish("tasks", 2, 1), None, "unknown partition");
        t.start("tasks", 0, 20);
        t.forget("tasks", 0);
        assert_eq!(t.finish("tasks", 0, 20), None);
        assert_eq!(t.in_flight(), 0);
    }
}
