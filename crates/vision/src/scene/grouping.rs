//! Traffic groups: objects whose box centres are chained together within a distance threshold
//! (single-linkage clustering), with a stable id carried from frame to frame by the members'
//! track ids (or, for untracked members, by box overlap).

use crate::geometry::BBox;

/// Grouping parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupingConfig {
    /// Linkage distance in pixels of a 1280-wide frame; scaled to the real width.
    pub distance_threshold: f32,
    /// Fewest members of a group.
    pub min_group_size: usize,
    /// Pixels added around a group's crop.
    pub crop_margin: u32,
}

impl Default for GroupingConfig {
    fn default() -> Self {
        Self {
            distance_threshold: 150.0,
            min_group_size: 2,
            crop_margin: 12,
        }
    }
}

impl GroupingConfig {
    /// The linkage distance for a frame `width` pixels wide.
    pub fn distance_for_width(&self, width: u32) -> f32 {
        self.distance_threshold * width as f32 / 1280.0
    }
}

/// One object given to the grouper.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    /// Box in frame pixels.
    pub bbox: BBox,
    /// Track id, if tracked.
    pub track_id: Option<u64>,
}

/// A group of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Stable id.
    pub id: u64,
    /// Indices of the members in the frame's object list, ascending.
    pub members: Vec<usize>,
    /// Union of the member boxes.
    pub bbox: BBox,
    /// The crop: the union plus the margin, clipped to the frame.
    pub crop: BBox,
}

/// Single-linkage clusters of `points` within `max_distance`, each a sorted index list, ordered
/// by their first index.
pub fn single_linkage(points: &[(f32, f32)], max_distance: f32) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..points.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let limit = max_distance * max_distance;
    for i in 0..points.len() {
        for j in i + 1..points.len() {
            let (dx, dy) = (points[i].0 - points[j].0, points[i].1 - points[j].1);
            if dx * dx + dy * dy <= limit {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    let mut slot = vec![usize::MAX; points.len()];
    for i in 0..points.len() {
        let r = root(&mut parent, i);
        if slot[r] == usize::MAX {
            slot[r] = clusters.len();
            clusters.push(Vec::new());
        }
        clusters[slot[r]].push(i);
    }
    clusters
}

/// Groups objects frame after frame, keeping ids stable.
#[derive(Debug, Clone, Default)]
pub struct Grouper {
    next_id: u64,
    /// The previous frame's groups: id, member track ids, union box.
    previous: Vec<(u64, Vec<u64>, BBox)>,
}

impl Grouper {
    /// A grouper that has seen no frame.
    pub fn new() -> Self {
        Self {
            next_id: 1,
            previous: Vec::new(),
        }
    }

    /// Groups one frame's objects; groups are ordered by id.
    pub fn update(
        &mut self,
        cfg: &GroupingConfig,
        width: u32,
        height: u32,
        objects: &[Member],
    ) -> Vec<Cluster> {
        let centres: Vec<(f32, f32)> = objects.iter().map(|m| m.bbox.center()).collect();
        let clusters: Vec<Vec<usize>> = single_linkage(&centres, cfg.distance_for_width(width))
            .into_iter()
            .filter(|c| c.len() >= cfg.min_group_size.max(1))
            .collect();
        let union = |c: &[usize]| {
            c.iter()
                .map(|&i| objects[i].bbox)
                .reduce(|a, b| a.union(&b))
                .unwrap_or_default()
        };
        let tracks = |c: &[usize]| -> Vec<u64> {
            let mut ids: Vec<u64> = c.iter().filter_map(|&i| objects[i].track_id).collect();
            ids.sort_unstable();
            ids
        };
        let current: Vec<(Vec<u64>, BBox)> =
            clusters.iter().map(|c| (tracks(c), union(c))).collect();

        // Every (current, previous) pair that shares members, or failing that overlaps, best
        // first; each side is used once.
        let mut pairs: Vec<(usize, usize, usize, f32)> = Vec::new();
        for (ci, (ids, bbox)) in current.iter().enumerate() {
            for (pi, (_, prev_ids, prev_box)) in self.previous.iter().enumerate() {
                let shared = ids
                    .iter()
                    .filter(|id| prev_ids.binary_search(id).is_ok())
                    .count();
                let iou = bbox.iou(prev_box);
                if shared > 0 || iou >= 0.3 {
                    pairs.push((ci, pi, shared, iou));
                }
            }
        }
        pairs.sort_by(|a, b| b.2.cmp(&a.2).then(b.3.total_cmp(&a.3)));
        let mut ids: Vec<Option<u64>> = vec![None; current.len()];
        let mut used = vec![false; self.previous.len()];
        for (ci, pi, _, _) in pairs {
            if ids[ci].is_none() && !used[pi] {
                ids[ci] = Some(self.previous[pi].0);
                used[pi] = true;
            }
        }
        let margin = cfg.crop_margin as f32;
        let mut out: Vec<Cluster> = clusters
            .into_iter()
            .zip(current)
            .zip(ids)
            .map(|((members, (_, bbox)), id)| {
                let id = id.unwrap_or_else(|| {
                    self.next_id += 1;
                    self.next_id - 1
                });
                let crop = bbox
                    .expand(margin, margin)
                    .clip(width as f32, height as f32);
                Cluster {
                    id,
                    members,
                    bbox,
                    crop,
                }
            })
            .collect();
        out.sort_by_key(|c| c.id);
        self.previous = out
            .iter()
            .map(|c| (c.id, tracks(&c.members), c.bbox))
            .collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(x: f32, y: f32, id: u64) -> Member {
        Member {
            bbox: BBox::new(x, y, x + 40.0, y + 40.0),
            track_id: Some(id),
        }
    }

    #[test]
    fn single_linkage_chains_neighbours() {
        // 0-1-2 chained by 100 px steps (each pair within 150), 3 far away.
        let points = [(0.0, 0.0), (100.0, 0.0), (200.0, 0.0), (600.0, 0.0)];
        assert_eq!(single_linkage(&points, 150.0), vec![vec![0, 1, 2], vec![3]]);
        assert_eq!(single_linkage(&points, 50.0).len(), 4);
        assert!(single_linkage(&[], 10.0).is_empty());
    }

    #[test]
    fn threshold_scales_with_the_frame_width() {
        let cfg = GroupingConfig::default();
        assert_eq!(cfg.distance_for_width(1280), 150.0);
        assert_eq!(cfg.distance_for_width(640), 75.0);
        // Two objects 100 px apart: one group at 1280 wide, none at 640.
        let objs = [m(0.0, 0.0, 1), m(100.0, 0.0, 2)];
        assert_eq!(Grouper::new().update(&cfg, 1280, 720, &objs).len(), 1);
        assert!(Grouper::new().update(&cfg, 640, 360, &objs).is_empty());
    }

    #[test]
    fn group_boxes_crops_and_minimum_size() {
        let cfg = GroupingConfig {
            min_group_size: 3,
            ..Default::default()
        };
        let objs = [
            m(5.0, 5.0, 1),
            m(60.0, 10.0, 2),
            m(120.0, 0.0, 3),
            m(900.0, 0.0, 4),
        ];
        let groups = Grouper::new().update(&cfg, 1280, 720, &objs);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].members, vec![0, 1, 2]);
        assert_eq!(groups[0].bbox, BBox::new(5.0, 0.0, 160.0, 50.0));
        // The margin of 12 px, clipped at the frame's top-left corner.
        assert_eq!(groups[0].crop, BBox::new(0.0, 0.0, 172.0, 62.0));
    }

    #[test]
    fn ids_are_stable_for_a_slowly_moving_cluster() {
        let cfg = GroupingConfig::default();
        let mut g = Grouper::new();
        let mut first = None;
        for step in 0..10 {
            let dx = 15.0 * step as f32;
            // Two clusters drifting right; the detector lists them in a changing order.
            let mut objs = vec![
                m(dx, 0.0, 1),
                m(dx + 60.0, 0.0, 2),
                m(dx, 400.0, 3),
                m(dx + 50.0, 420.0, 4),
            ];
            if step % 2 == 1 {
                objs.reverse();
            }
            let groups = g.update(&cfg, 1280, 720, &objs);
            let ids: Vec<(u64, Vec<u64>)> = groups
                .iter()
                .map(|c| {
                    let mut t: Vec<u64> =
                        c.members.iter().filter_map(|&i| objs[i].track_id).collect();
                    t.sort_unstable();
                    (c.id, t)
                })
                .collect();
            match &first {
                None => first = Some(ids),
                Some(f) => assert_eq!(&ids, f, "step {step}"),
            }
        }
    }

    #[test]
    fn a_group_keeps_its_id_when_a_member_joins_and_new_groups_get_new_ids() {
        let cfg = GroupingConfig::default();
        let mut g = Grouper::new();
        let a = g.update(&cfg, 1280, 720, &[m(0.0, 0.0, 1), m(50.0, 0.0, 2)]);
        let b = g.update(
            &cfg,
            1280,
            720,
            &[
                m(0.0, 0.0, 1),
                m(50.0, 0.0, 2),
                m(100.0, 0.0, 3),
                m(800.0, 0.0, 7),
                m(850.0, 0.0, 8),
            ],
        );
        assert_eq!(b[0].id, a[0].id);
        assert_eq!(b[0].members, vec![0, 1, 2]);
        assert_ne!(b[1].id, a[0].id);
        // Untracked objects: the id follows the overlapping box.
        let untracked = |x: f32| Member {
            bbox: BBox::new(x, 0.0, x + 40.0, 40.0),
            track_id: None,
        };
        let mut g = Grouper::new();
        let a = g.update(&cfg, 1280, 720, &[untracked(0.0), untracked(50.0)]);
        let b = g.update(&cfg, 1280, 720, &[untracked(4.0), untracked(54.0)]);
        assert_eq!(a[0].id, b[0].id);
    }
}
