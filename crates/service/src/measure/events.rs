//! Danger alerts as events for the database (SPEC 9): one event per alert episode (same source,
//! type, start and tracks), written when it starts and again whenever it changes (its level
//! rises, its measures move, the LLM confirms or refutes it) with its end time so far. Rows are
//! absolute, so writing an event again replaces it. Pure.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use protocol::CameraId;
use protocol::detection::{AlertSource, DangerAlert};
use store::EventRow;

/// The live episodes of one camera.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Episodes {
    live: HashMap<String, EventRow>,
}

/// What makes alerts of successive frames one episode: source, type, tracks, and for the
/// LLM's findings the group and the question (its start). A rule alert's start is not part of
/// it: recomputed on each frame from stream time, it moves by milliseconds.
fn episode_key(a: &DangerAlert) -> String {
    let mut ids = a.trigger_object_ids.clone();
    ids.sort_unstable();
    match a.source {
        AlertSource::Rules => format!("rules|{}|{ids:?}", a.kind),
        AlertSource::Llm => format!("llm|{}|{ids:?}|{:?}|{}", a.kind, a.group_id, a.started_at),
    }
}

/// A stable id for an episode: the camera and a hash of its key and start.
fn uid(camera: CameraId, key: &str, started_at_ms: i64) -> String {
    let text = format!("{key}|{started_at_ms}");
    // FNV-1a, 64 bits: stable across runs and builds (std's hasher is not).
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{camera}-{hash:016x}")
}

fn millis(iso: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(iso)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Episodes {
    /// Episodes live now.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Follows the alerts of one frame judged at `now`: returns the events that started or
    /// changed (to write), and whether each of them is new (for its snapshot). Alerts at level
    /// `none` are not events. Episodes no longer shown have ended at their last frame.
    pub fn update(
        &mut self,
        camera: CameraId,
        now: DateTime<Utc>,
        alerts: &[DangerAlert],
    ) -> Vec<(EventRow, bool)> {
        let now_ms = now.timestamp_millis();
        let mut seen = Vec::with_capacity(alerts.len());
        let mut out = Vec::new();
        for a in alerts
            .iter()
            .filter(|a| a.risk_level > protocol::RiskLevel::None)
        {
            let key = episode_key(a);
            seen.push(key.clone());
            let mut measures: serde_json::Map<String, serde_json::Value> = a
                .measures
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect();
            if let Some(verdict) = &a.llm_verdict {
                measures.insert("llmVerdict".into(), verdict.clone().into());
            }
            measures.insert(
                "source".into(),
                match a.source {
                    AlertSource::Rules => "rules",
                    AlertSource::Llm => "llm",
                }
                .into(),
            );
            let mut ids = a.trigger_object_ids.clone();
            ids.sort_unstable();
            match self.live.get_mut(&key) {
                Some(e) => {
                    let level = e.level.clone().max_level(a.risk_level.as_str());
                    let changed = level != e.level
                        || e.measures != serde_json::Value::Object(measures.clone())
                        || e.description != a.description;
                    e.ended_at_ms = Some(now_ms);
                    if changed {
                        e.level = level;
                        e.measures = serde_json::Value::Object(measures);
                        e.description.clone_from(&a.description);
                        out.push((e.clone(), false));
                    }
                }
                None => {
                    let started_at_ms = millis(&a.started_at).unwrap_or(now_ms);
                    let row = EventRow {
                        uid: uid(camera, &key, started_at_ms),
                        camera_id: camera,
                        kind: a.kind.clone(),
                        level: a.risk_level.as_str().to_string(),
                        started_at_ms,
                        ended_at_ms: Some(now_ms),
                        track_ids: ids,
                        measures: serde_json::Value::Object(measures),
                        description: a.description.clone(),
                        snapshot: None,
                    };
                    self.live.insert(key, row.clone());
                    out.push((row, true));
                }
            }
        }
        // Ended episodes: their last write holds their end.
        let ended: Vec<String> = self
            .live
            .keys()
            .filter(|k| !seen.contains(k))
            .cloned()
            .collect();
        for k in ended {
            if let Some(e) = self.live.remove(&k) {
                // The end written last may be older than the last frame it showed on (only
                // changes are written): write it once more, final.
                out.push((e, false));
            }
        }
        out
    }

    /// Sets the snapshot of live event `uid`.
    pub fn set_snapshot(&mut self, uid: &str, snapshot: String) {
        if let Some(e) = self.live.values_mut().find(|e| e.uid == uid) {
            e.snapshot = Some(snapshot);
        }
    }
}

/// The higher of two level names.
trait MaxLevel {
    fn max_level(self, other: &str) -> String;
}

impl MaxLevel for String {
    fn max_level(self, other: &str) -> String {
        let rank = |l: &str| {
            ["none", "low", "medium", "high"]
                .iter()
                .position(|x| *x == l)
        };
        if rank(other) > rank(&self) {
            other.to_string()
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::RiskLevel;

    fn alert(level: RiskLevel, started: &str, ids: &[u64]) -> DangerAlert {
        DangerAlert {
            kind: "tailgating".into(),
            description: "too close".into(),
            risk_level: level,
            confidence: 0.8,
            group_index: Some(1),
            group_id: Some(3),
            risk_types: vec!["tailgating".into()],
            trigger_object_ids: ids.to_vec(),
            source: AlertSource::Rules,
            started_at: started.into(),
            is_stale: false,
            measures: [("headway_s".to_string(), 0.7)].into(),
            llm_verdict: None,
        }
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("valid time")
    }

    #[test]
    fn an_episode_is_one_event_written_when_it_starts_changes_and_ends() {
        let mut e = Episodes::default();
        let start = "2026-12-02T10:00:00.000Z";
        let t0 = millis(start).expect("iso");
        let rows = e.update(5, at(t0), &[alert(RiskLevel::Medium, start, &[2, 1])]);
        assert_eq!(rows.len(), 1);
        let (row, new) = &rows[0];
        assert!(new);
        assert_eq!(row.track_ids, vec![1, 2]);
        assert_eq!((row.started_at_ms, row.ended_at_ms), (t0, Some(t0)));
        assert_eq!(row.measures["headway_s"], 0.7);
        // The same episode on the next frame, unchanged (its start, recomputed, a few
        // milliseconds off): nothing to write.
        let again = "2026-12-02T10:00:00.004Z";
        assert!(
            e.update(5, at(t0 + 300), &[alert(RiskLevel::Medium, again, &[1, 2])])
                .is_empty()
        );
        // Its level rises: written again under the same uid.
        let rows = e.update(5, at(t0 + 600), &[alert(RiskLevel::High, start, &[1, 2])]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0.uid, row.uid);
        assert_eq!(rows[0].0.level, "high");
        assert!(!rows[0].1);
        // Gone: written a last time with the end it had.
        let rows = e.update(5, at(t0 + 900), &[]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0.ended_at_ms, Some(t0 + 600));
        assert_eq!(e.live(), 0);
    }

    #[test]
    fn another_episode_is_another_event_and_uids_are_stable() {
        let a = alert(RiskLevel::Low, "2026-12-02T10:00:00.000Z", &[1]);
        let key = episode_key(&a);
        assert_ne!(uid(1, &key, 0), uid(1, &key, 5000));
        assert_ne!(uid(1, &key, 0), uid(2, &key, 0));
        assert_eq!(uid(1, &key, 0), uid(1, &episode_key(&a.clone()), 0));
        // Ended, then firing again: a new event.
        let mut e = Episodes::default();
        let first = e.update(1, at(0), std::slice::from_ref(&a));
        e.update(1, at(300), &[]);
        let mut b = a.clone();
        b.started_at = "2026-12-02T10:00:05.000Z".into();
        let second = e.update(1, at(5000), &[b]);
        assert_ne!(first[0].0.uid, second[0].0.uid);
    }
}
