//! Alert persistence (SPEC section 5): an alert lives at least the hold time after it last
//! fired, is carried to later frames marked stale, keeps the time its episode started, and an
//! alert that fires again within the hold continues the same episode.

use std::collections::BTreeMap;

use super::rules::{RuleHit, RuleKind};

/// An alert as the scene reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlert {
    /// The rule's verdict (the latest one that fired).
    pub hit: RuleHit,
    /// Stream time the episode started.
    pub started_at: f64,
    /// Carried from an earlier frame: the rule did not fire on this one.
    pub stale: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    hit: RuleHit,
    started_at: f64,
    last_fired: f64,
}

/// The alerts of one camera.
#[derive(Debug, Clone, Default)]
pub struct AlertBook {
    entries: BTreeMap<(RuleKind, Vec<u64>), Entry>,
    /// Hits at stream times up to this one are dropped ([`AlertBook::hold`]).
    held_until: Option<f64>,
}

impl AlertBook {
    /// Identity of an alert: its rule and tracks (congestion is one alert per camera).
    fn key(hit: &RuleHit) -> (RuleKind, Vec<u64>) {
        let mut ids = if hit.kind == RuleKind::Congestion {
            Vec::new()
        } else {
            hit.track_ids.clone()
        };
        ids.sort_unstable();
        (hit.kind, ids)
    }

    /// Drops every hit at a stream time up to and including `until` (a later call may extend
    /// the hold, never shorten it); alerts already live keep their course.
    pub fn hold(&mut self, until: f64) {
        self.held_until = Some(self.held_until.map_or(until, |h| h.max(until)));
    }

    /// Records this frame's hits at stream time `t` and returns every live alert: fresh ones
    /// and those that fired within `hold` seconds, ordered by rule then tracks.
    pub fn update(&mut self, t: f64, hold: f64, hits: Vec<RuleHit>) -> Vec<ActiveAlert> {
        self.entries.retain(|_, e| t - e.last_fired <= hold);
        let held = self.held_until.is_some_and(|until| t <= until);
        for hit in hits.into_iter().filter(|_| !held) {
            let started_at = self
                .entries
                .get(&Self::key(&hit))
                .map_or(t, |e| e.started_at);
            self.entries.insert(
                Self::key(&hit),
                Entry {
                    hit,
                    started_at,
                    last_fired: t,
                },
            );
        }
        self.entries
            .values()
            .map(|e| ActiveAlert {
                hit: e.hit.clone(),
                started_at: e.started_at,
                stale: e.last_fired < t,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::RiskLevel;

    fn hit(kind: RuleKind, ids: &[u64]) -> RuleHit {
        RuleHit {
            kind,
            level: RiskLevel::High,
            confidence: 0.9,
            track_ids: ids.to_vec(),
            description: String::new(),
            measures: Vec::new(),
        }
    }

    #[test]
    fn alerts_persist_for_the_hold_then_expire() {
        let mut book = AlertBook::default();
        let a = book.update(0.0, 3.0, vec![hit(RuleKind::WrongWay, &[4])]);
        assert_eq!((a.len(), a[0].stale, a[0].started_at), (1, false, 0.0));
        let a = book.update(1.8, 3.0, vec![]);
        assert_eq!((a.len(), a[0].stale, a[0].started_at), (1, true, 0.0));
        assert!(
            book.update(3.6, 3.0, vec![]).is_empty(),
            "3.6 s after it last fired"
        );
    }

    #[test]
    fn held_hits_never_enter_the_book() {
        let mut book = AlertBook::default();
        book.update(0.0, 3.0, vec![hit(RuleKind::WrongWay, &[4])]);
        book.hold(1.0);
        book.hold(0.5); // never shortens
        // Held: the new hit is dropped, the live alert carries on, stale.
        let a = book.update(1.0, 3.0, vec![hit(RuleKind::SuddenStop, &[5])]);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].hit.kind, a[0].stale), (RuleKind::WrongWay, true));
        // After the hold, hits count again.
        let a = book.update(1.5, 3.0, vec![hit(RuleKind::SuddenStop, &[5])]);
        assert!(
            a.iter()
                .any(|a| a.hit.kind == RuleKind::SuddenStop && !a.stale)
        );
    }

    #[test]
    fn a_refired_alert_continues_its_episode() {
        let mut book = AlertBook::default();
        book.update(0.0, 3.0, vec![hit(RuleKind::Tailgating, &[2, 1])]);
        book.update(1.8, 3.0, vec![]);
        let a = book.update(2.9, 3.0, vec![hit(RuleKind::Tailgating, &[1, 2])]);
        assert_eq!((a.len(), a[0].stale, a[0].started_at), (1, false, 0.0));
        // After a gap longer than the hold, a new episode.
        let a = book.update(10.0, 3.0, vec![hit(RuleKind::Tailgating, &[1, 2])]);
        assert_eq!(a[0].started_at, 10.0);
        // Congestion is one alert whatever vehicles are slow.
        book.update(11.0, 3.0, vec![hit(RuleKind::Congestion, &[1, 2, 3])]);
        let a = book.update(12.0, 3.0, vec![hit(RuleKind::Congestion, &[5, 6])]);
        let c: Vec<_> = a
            .iter()
            .filter(|a| a.hit.kind == RuleKind::Congestion)
            .collect();
        assert_eq!(
            (c.len(), c[0].started_at, c[0].hit.track_ids.clone()),
            (1, 11.0, vec![5, 6])
        );
    }
}
