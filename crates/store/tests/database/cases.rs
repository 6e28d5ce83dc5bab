//! The store's cases, written once and run on both backends (see `main.rs`): each takes a fresh
//! [`Db`] and writes and reads through real stores.

use std::sync::{Arc, Barrier};

use store::Direction::{In, Out};
use store::{Batch, CountBin, EventFilter, MovementBin, StoreError};

use crate::support::{Db, count, event, movement, speed};

/// An hour boundary (unix seconds) the rows are written around.
pub(crate) const H: i64 = 1_699_999_200;

fn counts_only(counts: Vec<store::CountRow>) -> Batch {
    Batch {
        counts,
        ..Batch::default()
    }
}

/// The count of camera 1's `stop-n`/in/car in the hour from `H`, at `bin` seconds.
fn stop_line_total(store: &store::Store) -> u64 {
    store
        .counts(1, H, H + 3600, 3600)
        .unwrap()
        .iter()
        .filter(|c| c.line == "stop-n" && c.direction == In && c.class == "car")
        .map(|c| c.count)
        .sum()
}

pub(crate) fn migrations_are_idempotent_on_reopen(db: &Db) {
    let store = db.open();
    store
        .write(&counts_only(vec![count(H, "stop-n", In, "car", 3)]))
        .unwrap();
    drop(store);
    let again = db.open();
    assert_eq!(db.migration_versions(), [1]);
    assert_eq!(stop_line_total(&again), 3);
}

pub(crate) fn concurrent_opens_of_a_fresh_database_both_succeed(db: &Db) {
    let config = db.config();
    let barrier = Arc::new(Barrier::new(2));
    let openers: Vec<_> = (0..2)
        .map(|_| {
            let (config, barrier) = (config.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                store::Store::open(&config)
            })
        })
        .collect();
    let stores: Vec<store::Store> = openers
        .into_iter()
        .map(|t| t.join().unwrap().expect("open"))
        .collect();
    assert_eq!(db.migration_versions(), [1]);
    assert_ne!(stores[0].run(), stores[1].run());
}

pub(crate) fn written_rows_read_back(db: &Db) {
    let store = db.open();
    let e1 = event("e1", 1, "tailgating", "high", H * 1000 + 5_000);
    store
        .write(&Batch {
            counts: vec![
                count(H, "stop-n", In, "car", 3),
                count(H, "stop-n", Out, "car", 1),
                count(H, "a-line", In, "truck", 2),
            ],
            movements: vec![
                movement(H, "north", "south", 4),
                movement(H, "east", "north", 1),
            ],
            speeds: vec![speed(H, &[42.3, 48.0, 55.1])],
            events: vec![e1.clone()],
        })
        .unwrap();
    let bin = |line: &str, direction, class: &str, count| CountBin {
        bin_start: H,
        line: line.into(),
        direction,
        class: class.into(),
        count,
    };
    assert_eq!(
        store.counts(1, H, H + 900, 900).unwrap(),
        [
            bin("a-line", In, "truck", 2),
            bin("stop-n", In, "car", 3),
            bin("stop-n", Out, "car", 1)
        ]
    );
    assert!(store.counts(2, H, H + 900, 900).unwrap().is_empty());
    assert!(store.counts(1, H + 900, H + 1800, 900).unwrap().is_empty());
    let trip = |from: &str, to: &str, count| MovementBin {
        bin_start: H,
        from: from.into(),
        to: to.into(),
        class: "car".into(),
        count,
    };
    assert_eq!(
        store.movements(1, H, H + 900, 900).unwrap(),
        [trip("east", "north", 1), trip("north", "south", 4)]
    );
    let speeds = store.speeds(1, H, H + 900, 900).unwrap();
    assert_eq!(speeds.len(), 1);
    let s = &speeds[0];
    assert_eq!(
        (s.bin_start, s.lane.as_str(), s.class.as_str(), s.count),
        (H, "nb-1", "car", 3)
    );
    assert!(
        (s.mean_kmh - (42.3 + 48.0 + 55.1) / 3.0).abs() < 1e-9,
        "{s:?}"
    );
    assert!((s.over_limit_share - 1.0 / 3.0).abs() < 1e-9, "{s:?}");
    assert!(
        (48.0..49.0).contains(&s.median_kmh) && (53.0..56.0).contains(&s.p85_kmh),
        "{s:?}"
    );
    assert_eq!(store.events(&EventFilter::default()).unwrap(), [e1]);
}

pub(crate) fn writing_again_in_one_run_replaces(db: &Db) {
    let store = db.open();
    let batch = counts_only(vec![count(H, "stop-n", In, "car", 3)]);
    store.write(&batch).unwrap();
    store.write(&batch).unwrap();
    assert_eq!(stop_line_total(&store), 3);
    store
        .write(&counts_only(vec![count(H, "stop-n", In, "car", 5)]))
        .unwrap();
    assert_eq!(stop_line_total(&store), 5);
    // Two rows of one key in one batch: the later wins.
    store
        .write(&counts_only(vec![
            count(H, "stop-n", In, "car", 6),
            count(H, "stop-n", In, "car", 7),
        ]))
        .unwrap();
    assert_eq!(stop_line_total(&store), 7);
}

pub(crate) fn a_new_run_adds(db: &Db) {
    let (first, second) = (db.open(), db.open());
    first
        .write(&counts_only(vec![count(H, "stop-n", In, "car", 3)]))
        .unwrap();
    second
        .write(&counts_only(vec![count(H, "stop-n", In, "car", 4)]))
        .unwrap();
    second
        .write(&counts_only(vec![count(H, "stop-n", In, "car", 4)]))
        .unwrap();
    assert_eq!(stop_line_total(&first), 7);
    assert_eq!(stop_line_total(&second), 7);
}

pub(crate) fn bins_roll_up(db: &Db) {
    let store = db.open();
    let quarters = (0..4).map(|q| count(H + 900 * q, "stop-n", In, "car", 1 + q as u64));
    let mut rows: Vec<_> = quarters.collect();
    rows.push(count(H + 3600, "stop-n", In, "car", 10));
    store
        .write(&Batch {
            counts: rows,
            movements: vec![
                movement(H, "north", "south", 1),
                movement(H + 2700, "north", "south", 2),
            ],
            ..Batch::default()
        })
        .unwrap();
    let totals = |since, until, bin| -> Vec<(i64, u64)> {
        let rows = store.counts(1, since, until, bin).unwrap();
        rows.iter().map(|c| (c.bin_start, c.count)).collect()
    };
    assert_eq!(totals(H, H + 7200, 3600), [(H, 10), (H + 3600, 10)]);
    assert_eq!(
        totals(H, H + 7200, 900),
        [
            (H, 1),
            (H + 900, 2),
            (H + 1800, 3),
            (H + 2700, 4),
            (H + 3600, 10)
        ]
    );
    assert_eq!(totals(H + 900, H + 3600, 3600), [(H, 9)]);
    assert_eq!(totals(H, H + 7200, 86_400), [(H - H % 86_400, 20)]);
    let trips = store.movements(1, H, H + 3600, 3600).unwrap();
    assert_eq!(trips.iter().map(|m| m.count).collect::<Vec<_>>(), [3]);
    assert!(matches!(
        store.counts(1, H, H + 1, 0),
        Err(StoreError::InvalidQuery(_))
    ));
}

pub(crate) fn speeds_merge_over_rows_and_runs(db: &Db) {
    let spread = |from: f64, n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| from + (i as f64 * 0.618_034).fract() * 40.0)
            .collect()
    };
    let (a, b, c) = (spread(30.0, 120), spread(35.0, 80), spread(25.0, 100));
    let (first, second) = (db.open(), db.open());
    first
        .write(&Batch {
            speeds: vec![speed(H, &a), speed(H + 900, &b)],
            ..Batch::default()
        })
        .unwrap();
    second
        .write(&Batch {
            speeds: vec![speed(H + 1800, &c)],
            ..Batch::default()
        })
        .unwrap();
    let mut all: Vec<f64> = [a, b, c].concat();
    all.sort_by(f64::total_cmp);
    let exact_p85 = {
        let pos = 0.85 * (all.len() - 1) as f64;
        let (lo, hi) = (all[pos.floor() as usize], all[pos.ceil() as usize]);
        lo + (hi - lo) * pos.fract()
    };
    let bins = first.speeds(1, H, H + 3600, 3600).unwrap();
    assert_eq!(bins.len(), 1, "{bins:?}");
    let s = &bins[0];
    assert_eq!((s.bin_start, s.count), (H, 300));
    assert!(
        (s.p85_kmh - exact_p85).abs() < 1.0,
        "{} vs {exact_p85}",
        s.p85_kmh
    );
    let mean = all.iter().sum::<f64>() / 300.0;
    assert!((s.mean_kmh - mean).abs() < 1e-9);
    let over = all.iter().filter(|&&v| v > 50.0).count() as f64 / 300.0;
    assert!((s.over_limit_share - over).abs() < 1e-12);
    assert_eq!(first.speeds(1, H, H + 3600, 900).unwrap().len(), 3);
}

pub(crate) fn events_filter_limit_and_order(db: &Db) {
    let store = db.open();
    let at = |s: i64| s * 1000;
    let e1 = event("e1", 1, "tailgating", "high", at(1000));
    let e2 = event("e2", 1, "illegal_stop", "medium", at(2000));
    let e3 = event("e3", 2, "tailgating", "low", at(3000));
    let e4 = event("e4", 1, "tailgating", "medium", at(4000));
    store
        .write(&Batch {
            events: vec![e1.clone(), e2.clone(), e3.clone(), e4.clone()],
            ..Batch::default()
        })
        .unwrap();
    let uids = |filter: EventFilter| -> Vec<String> {
        store
            .events(&filter)
            .unwrap()
            .into_iter()
            .map(|e| e.uid)
            .collect()
    };
    let all = EventFilter::default();
    assert_eq!(uids(all.clone()), ["e4", "e3", "e2", "e1"]);
    assert_eq!(
        uids(EventFilter {
            camera_id: Some(1),
            ..all.clone()
        }),
        ["e4", "e2", "e1"]
    );
    assert_eq!(
        uids(EventFilter {
            kind: Some("tailgating".into()),
            ..all.clone()
        }),
        ["e4", "e3", "e1"]
    );
    assert_eq!(
        uids(EventFilter {
            level: Some("medium".into()),
            ..all.clone()
        }),
        ["e4", "e2"]
    );
    assert_eq!(
        uids(EventFilter {
            since: Some(2000),
            until: Some(4000),
            ..all.clone()
        }),
        ["e3", "e2"]
    );
    assert_eq!(
        uids(EventFilter {
            limit: 2,
            ..all.clone()
        }),
        ["e4", "e3"]
    );
    assert_eq!(
        uids(EventFilter {
            camera_id: Some(1),
            kind: Some("tailgating".into()),
            level: Some("high".into()),
            since: Some(0),
            until: Some(5000),
            limit: 10,
        }),
        ["e1"]
    );
    // Written again (it ended, no snapshot now): replaced whole.
    let ended = store::EventRow {
        ended_at_ms: Some(at(1010)),
        snapshot: None,
        measures: serde_json::json!({"headwaySeconds": 0.4}),
        ..e1
    };
    store
        .write(&Batch {
            events: vec![ended.clone()],
            ..Batch::default()
        })
        .unwrap();
    let listed = store.events(&all).unwrap();
    assert_eq!(listed, [e4, e3, e2, ended]);
}

pub(crate) fn pruning_deletes_what_is_older_than_the_retention(db: &Db) {
    let store = store::Store::open(&store::StoreConfig {
        retention_days: 30,
        ..db.config()
    })
    .unwrap();
    let now = H + 40 * 86_400;
    let recent = now - 86_400;
    store
        .write(&Batch {
            counts: vec![
                count(H, "stop-n", In, "car", 1),
                count(recent, "stop-n", In, "car", 2),
            ],
            movements: vec![
                movement(H, "north", "south", 1),
                movement(recent, "north", "south", 2),
            ],
            speeds: vec![speed(H, &[40.0]), speed(recent, &[41.0])],
            events: vec![
                event("old", 1, "tailgating", "high", H * 1000),
                event("new", 1, "tailgating", "high", recent * 1000),
            ],
        })
        .unwrap();
    assert_eq!(store.prune(now).unwrap(), 4);
    assert_eq!(store.prune(now).unwrap(), 0);
    let (since, until) = (H - 86_400, now);
    let counts = store.counts(1, since, until, 900).unwrap();
    assert_eq!(counts.iter().map(|c| c.count).collect::<Vec<_>>(), [2]);
    assert_eq!(store.movements(1, since, until, 900).unwrap().len(), 1);
    assert_eq!(store.speeds(1, since, until, 900).unwrap().len(), 1);
    let events = store.events(&EventFilter::default()).unwrap();
    assert_eq!(
        events.iter().map(|e| e.uid.as_str()).collect::<Vec<_>>(),
        ["new"]
    );
    assert_eq!(
        db.open().prune(now + 365 * 86_400).unwrap(),
        0,
        "retention 0 keeps all"
    );
}

pub(crate) fn odd_text_is_written(db: &Db) {
    let store = db.open();
    // NUL cannot be stored in PostgreSQL's text: a row with one must not fail its batch.
    let odd = "stop\0n ✓ 'quoted'; DROP TABLE counts; --";
    store
        .write(&counts_only(vec![count(H, odd, In, "car", 2)]))
        .unwrap();
    let rows = store.counts(1, H, H + 3600, 3600).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].line.ends_with(" ✓ 'quoted'; DROP TABLE counts; --"),
        "{rows:?}"
    );
}
