//! Which cameras this instance runs, from the camera definitions of the partitions Kafka's group
//! membership assigned it (pure: the consumer loop in [`crate::fleet`] feeds it). A partition's
//! definitions are read from its beginning on every assignment (the topic is compacted, so that
//! is one record per camera); they are held back until the partition is read up to where it
//! ended when it was assigned, so a replay starts each camera once, with its latest definition,
//! instead of every definition it ever had. After that each new definition applies at once.

use std::collections::{BTreeMap, HashMap};

use protocol::CameraId;
use serde::{Deserialize, Serialize};

/// `camera-definitions`: one camera, keyed by its id; a record without payload (a tombstone)
/// deletes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraDefinition {
    /// The camera.
    pub camera_id: CameraId,
    /// Its source.
    pub url: String,
    /// Whether it should run.
    pub enabled: bool,
    /// Whether a WebSocket client asked for it (it stops when no instance has a watcher left);
    /// declared cameras run until withdrawn.
    #[serde(default)]
    pub client: bool,
}

/// What the instance must do to its cameras.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Run camera `id` on `url` (stopping it first if it runs another URL).
    Start {
        /// The camera.
        id: CameraId,
        /// Its source.
        url: String,
        /// Whether a client asked for it (see [`CameraDefinition::client`]).
        client: bool,
    },
    /// Stop camera `id`: it was deleted, disabled, or its partition went to another instance.
    Stop {
        /// The camera.
        id: CameraId,
    },
}

/// One assigned partition.
#[derive(Debug, Default)]
struct Partition {
    /// The offset after its last record when it was assigned.
    end: i64,
    /// Whether it has been read up to `end`.
    caught_up: bool,
    /// The latest definition of each camera in it (`None`: deleted).
    cameras: BTreeMap<CameraId, Option<CameraDefinition>>,
}

/// The cameras of this instance's partitions.
#[derive(Debug, Default)]
pub struct Ownership {
    partitions: HashMap<i32, Partition>,
    /// Cameras running here: their partition and URL.
    running: BTreeMap<CameraId, (i32, String)>,
}

impl Ownership {
    /// An instance with no partition.
    pub fn new() -> Self {
        Self::default()
    }

    /// `partition` was assigned; it held records up to `end` (exclusive). An empty partition is
    /// read up to its end at once.
    pub fn assign(&mut self, partition: i32, end: i64) {
        self.partitions.insert(
            partition,
            Partition {
                end,
                caught_up: end <= 0,
                cameras: BTreeMap::new(),
            },
        );
    }

    /// `partition` went to another instance: its cameras stop here.
    pub fn revoke(&mut self, partition: i32) -> Vec<Change> {
        self.partitions.remove(&partition);
        let gone: Vec<CameraId> = self
            .running
            .iter()
            .filter(|(_, (p, _))| *p == partition)
            .map(|(id, _)| *id)
            .collect();
        gone.into_iter()
            .map(|id| {
                self.running.remove(&id);
                Change::Stop { id }
            })
            .collect()
    }

    /// Whether `partition` is assigned here.
    pub fn owns(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Partitions assigned and not yet read to their end.
    pub fn catching_up(&self) -> Vec<i32> {
        let mut list: Vec<i32> = (self.partitions.iter())
            .filter(|(_, p)| !p.caught_up)
            .map(|(n, _)| *n)
            .collect();
        list.sort_unstable();
        list
    }

    /// The record at `offset` of `partition`: camera `id`'s definition, or its deletion.
    /// Records of partitions not assigned here are ignored.
    pub fn record(
        &mut self,
        partition: i32,
        offset: i64,
        id: CameraId,
        definition: Option<CameraDefinition>,
    ) -> Vec<Change> {
        let Some(p) = self.partitions.get_mut(&partition) else {
            return Vec::new();
        };
        p.cameras.insert(id, definition);
        if p.caught_up {
            return self.settle(partition, &[id]);
        }
        self.reached(partition, offset + 1)
    }

    /// The consumer's position in `partition` is `position` (the next offset it will read):
    /// once that is the partition's end, its cameras start. A record compacted away at the end
    /// is noticed here.
    pub fn reached(&mut self, partition: i32, position: i64) -> Vec<Change> {
        let Some(p) = self.partitions.get_mut(&partition) else {
            return Vec::new();
        };
        if p.caught_up || position < p.end {
            return Vec::new();
        }
        p.caught_up = true;
        let ids: Vec<CameraId> = p.cameras.keys().copied().collect();
        self.settle(partition, &ids)
    }

    /// The changes that bring cameras `ids` of `partition` in line with their definitions.
    fn settle(&mut self, partition: i32, ids: &[CameraId]) -> Vec<Change> {
        let Some(p) = self.partitions.get(&partition) else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        for id in ids {
            let wanted = p.cameras.get(id).cloned().flatten().filter(|d| d.enabled);
            let running = self.running.get(id).map(|(_, url)| url.clone());
            match (wanted, running) {
                (Some(d), running) if running.as_deref() != Some(d.url.as_str()) => {
                    self.running.insert(*id, (partition, d.url.clone()));
                    changes.push(Change::Start {
                        id: *id,
                        url: d.url,
                        client: d.client,
                    });
                }
                (None, Some(_)) => {
                    self.running.remove(id);
                    changes.push(Change::Stop { id: *id });
                }
                _ => {}
            }
        }
        changes
    }

    /// The cameras running here, by id.
    pub fn running(&self) -> impl Iterator<Item = (CameraId, &str)> {
        self.running
            .iter()
            .map(|(id, (_, url))| (*id, url.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(id: CameraId, url: &str, enabled: bool) -> Option<CameraDefinition> {
        Some(CameraDefinition {
            camera_id: id,
            url: url.into(),
            enabled,
            client: false,
        })
    }

    fn start(id: CameraId, url: &str) -> Change {
        Change::Start {
            id,
            url: url.into(),
            client: false,
        }
    }

    #[test]
    fn a_replayed_partition_starts_each_camera_once_with_its_latest_definition() {
        let mut o = Ownership::new();
        o.assign(3, 5);
        assert_eq!(o.catching_up(), vec![3]);
        assert!(o.record(3, 0, 1, def(1, "rtsp://a/old", true)).is_empty());
        assert!(o.record(3, 1, 2, def(2, "rtsp://b", true)).is_empty());
        assert!(o.record(3, 2, 1, def(1, "rtsp://a/new", true)).is_empty());
        assert!(o.record(3, 3, 4, def(4, "rtsp://d", false)).is_empty());
        // The last record before the end: everything settles at once.
        let changes = o.record(3, 4, 2, None);
        assert_eq!(changes, vec![start(1, "rtsp://a/new")]);
        assert!(o.catching_up().is_empty());
        assert_eq!(o.running().collect::<Vec<_>>(), vec![(1, "rtsp://a/new")]);
    }

    #[test]
    fn after_the_replay_each_definition_applies_at_once() {
        let mut o = Ownership::new();
        o.assign(0, 0);
        assert!(o.catching_up().is_empty(), "an empty partition is read");
        assert_eq!(
            o.record(0, 0, 7, def(7, "rtsp://x", true)),
            vec![start(7, "rtsp://x")]
        );
        // The same definition again (another instance declared it too): nothing to do.
        assert!(o.record(0, 1, 7, def(7, "rtsp://x", true)).is_empty());
        assert_eq!(
            o.record(0, 2, 7, def(7, "rtsp://y", true)),
            vec![start(7, "rtsp://y")]
        );
        assert_eq!(
            o.record(0, 3, 7, def(7, "rtsp://y", false)),
            vec![Change::Stop { id: 7 }]
        );
        assert_eq!(
            o.record(0, 4, 7, def(7, "rtsp://y", true)),
            vec![start(7, "rtsp://y")]
        );
        assert_eq!(o.record(0, 5, 7, None), vec![Change::Stop { id: 7 }]);
        assert!(o.record(0, 6, 7, None).is_empty());
    }

    #[test]
    fn a_revoked_partition_stops_its_cameras_and_no_other() {
        let mut o = Ownership::new();
        o.assign(0, 0);
        o.assign(1, 0);
        o.record(0, 0, 1, def(1, "rtsp://a", true));
        o.record(1, 0, 2, def(2, "rtsp://b", true));
        assert_eq!(o.revoke(0), vec![Change::Stop { id: 1 }]);
        assert!(!o.owns(0) && o.owns(1));
        // A late record of the revoked partition changes nothing.
        assert!(o.record(0, 1, 3, def(3, "rtsp://c", true)).is_empty());
        assert_eq!(o.running().collect::<Vec<_>>(), vec![(2, "rtsp://b")]);
    }

    #[test]
    fn a_partition_whose_last_records_were_compacted_away_settles_on_its_position() {
        let mut o = Ownership::new();
        o.assign(2, 10);
        assert!(o.record(2, 4, 9, def(9, "rtsp://z", true)).is_empty());
        assert!(o.reached(2, 8).is_empty());
        assert_eq!(o.reached(2, 10), vec![start(9, "rtsp://z")]);
        assert!(o.reached(2, 11).is_empty(), "once");
    }
}
