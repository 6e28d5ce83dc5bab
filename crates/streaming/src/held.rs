//! The LLM findings of streaming mode kept on a camera's later results, as standalone mode
//! keeps its answers (pure): a merged result's fresh LLM alerts are held for the hold time
//! (`stream.alert_pause`) and attached, marked stale, to each later result of the camera, on
//! the group they name when it is still in the frame.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use llm::advisor::attach_alert;
use protocol::detection::{AlertSource, DangerAlert};
use protocol::{CameraId, DetectionResult};

/// The held findings of every camera.
#[derive(Debug)]
pub struct HeldAlerts {
    hold: Duration,
    cameras: HashMap<CameraId, (Vec<DangerAlert>, Instant)>,
}

impl HeldAlerts {
    /// Findings are held for `hold` after their merged result arrived.
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            cameras: HashMap::new(),
        }
    }

    /// Holds the fresh LLM findings of `merged` (camera `camera`'s merged result, arrived at
    /// `now`) in place of the camera's earlier ones; a merged result without findings leaves
    /// the earlier ones as they are.
    pub fn keep(&mut self, camera: CameraId, merged: &DetectionResult, now: Instant) {
        let fresh: Vec<DangerAlert> = (merged.dangerous_driving_results.iter())
            .filter(|a| a.source == AlertSource::Llm && !a.is_stale)
            .cloned()
            .collect();
        if !fresh.is_empty() {
            self.cameras.insert(camera, (fresh, now));
        }
    }

    /// Attaches camera `camera`'s held findings, stale, to `result` (judged at `now`); those
    /// past the hold are dropped.
    pub fn apply(&mut self, camera: CameraId, result: &mut DetectionResult, now: Instant) {
        let Some((alerts, arrived)) = self.cameras.get(&camera) else {
            return;
        };
        if now.duration_since(*arrived) > self.hold {
            self.cameras.remove(&camera);
            return;
        }
        for alert in alerts {
            attach_alert(
                result,
                DangerAlert {
                    is_stale: true,
                    group_index: None,
                    ..alert.clone()
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::RiskLevel;
    use protocol::detection::TrafficGroup;

    fn alert(source: AlertSource, group: u64, stale: bool) -> DangerAlert {
        DangerAlert {
            kind: "tailgating".into(),
            description: "close".into(),
            risk_level: RiskLevel::High,
            confidence: 0.9,
            group_index: Some(1),
            group_id: Some(group),
            risk_types: vec!["tailgating".into()],
            trigger_object_ids: vec![],
            source,
            started_at: "2026-12-03T10:00:00.000Z".into(),
            is_stale: stale,
            measures: Default::default(),
            llm_verdict: None,
        }
    }

    fn frame(groups: &[u64]) -> DetectionResult {
        DetectionResult {
            traffic_groups: (groups.iter().enumerate())
                .map(|(i, id)| TrafficGroup {
                    group_index: i + 1,
                    group_id: *id,
                    object_count: 2,
                    bbox: Default::default(),
                    classes: vec!["car".into()],
                    average_confidence: 0.5,
                    risk_level: RiskLevel::None,
                    member_track_ids: vec![],
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn findings_show_stale_on_later_frames_for_the_hold_then_go() {
        let t0 = Instant::now();
        let mut held = HeldAlerts::new(Duration::from_secs(10));
        let merged = DetectionResult {
            dangerous_driving_results: vec![
                alert(AlertSource::Llm, 7, false),
                alert(AlertSource::Rules, 7, false),
                alert(AlertSource::Llm, 8, true),
            ],
            ..Default::default()
        };
        held.keep(3, &merged, t0);

        // Group 7 is still in the frame, now its second group.
        let mut later = frame(&[9, 7]);
        held.apply(3, &mut later, t0 + Duration::from_secs(4));
        let alerts = &later.dangerous_driving_results;
        assert_eq!(alerts.len(), 1, "only the fresh LLM finding is held");
        assert!(alerts[0].is_stale);
        assert_eq!(alerts[0].group_index, Some(2));
        assert_eq!(later.traffic_groups[1].risk_level, RiskLevel::High);
        assert!(later.has_dangerous_driving && later.max_risk_level == RiskLevel::High);

        // Another camera has none; past the hold, neither has this one.
        let mut other = frame(&[7]);
        held.apply(4, &mut other, t0 + Duration::from_secs(4));
        assert!(other.dangerous_driving_results.is_empty());
        let mut late = frame(&[7]);
        held.apply(3, &mut late, t0 + Duration::from_secs(11));
        assert!(late.dangerous_driving_results.is_empty());
    }

    #[test]
    fn a_merged_result_without_findings_keeps_the_held_ones() {
        let t0 = Instant::now();
        let mut held = HeldAlerts::new(Duration::from_secs(10));
        let first = DetectionResult {
            dangerous_driving_results: vec![alert(AlertSource::Llm, 7, false)],
            ..Default::default()
        };
        held.keep(3, &first, t0);
        held.keep(3, &DetectionResult::default(), t0 + Duration::from_secs(2));
        let mut later = frame(&[7]);
        held.apply(3, &mut later, t0 + Duration::from_secs(3));
        assert_eq!(later.dangerous_driving_results.len(), 1);
    }
}
