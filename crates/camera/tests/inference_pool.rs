//! The inference pool with the real model: several sessions take frames from one queue at the
//! same time, each gives the same detections as a lone detector, and every queued frame is
//! answered.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use vision::Detector;
use vision::worker::InferenceWorker;

mod support;
use support::{detector, shared};

/// Counts jobs that have started; each waits (at most 10 s) until `want` of them have.
#[derive(Default)]
struct Rendezvous {
    started: Mutex<usize>,
    all_in: Condvar,
}

impl Rendezvous {
    /// Whether `want` jobs were running at once.
    fn arrive(&self, want: usize) -> bool {
        let mut n = self.started.lock().unwrap();
        *n += 1;
        self.all_in.notify_all();
        let (n, _) = self
            .all_in
            .wait_timeout_while(n, Duration::from_secs(10), |n| *n < want)
            .unwrap();
        *n >= want
    }
}

#[test]
fn sessions_run_frames_side_by_side_and_agree() {
    let frame = imaging::read::read_rgb(&shared("media/bus.jpg")).unwrap();
    let lone = detector().detect(frame.view()).unwrap().detections;
    assert!(lone.len() >= 4, "bus.jpg: {} detections", lone.len());

    let pool = InferenceWorker::spawn_pool(vec![detector(), detector()], 4).unwrap();
    assert_eq!(pool.sessions(), 2);

    // Two jobs meet inside the pool: only possible when both sessions run at once.
    let meeting = Arc::new(Rendezvous::default());
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..2 {
        let (meeting, tx) = (Arc::clone(&meeting), tx.clone());
        let thread_name = move |_: &mut Detector| {
            let met = meeting.arrive(2);
            let name = std::thread::current().name().unwrap_or("").to_string();
            tx.send((met, name)).unwrap();
        };
        pool.submit(Box::new(thread_name)).unwrap();
    }
    let mut names = Vec::new();
    for _ in 0..2 {
        let (met, name) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(met, "the second job did not start while the first ran");
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["inference-0", "inference-1"]);

    // Four callers at once, more frames than sessions and queue: every one answered, each
    // like the lone detector.
    let frame = Arc::new(frame);
    let callers: Vec<Vec<Vec<vision::Detection>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (pool, frame) = (&pool, Arc::clone(&frame));
                scope.spawn(move || {
                    (0..3)
                        .map(|_| {
                            let frame = Arc::clone(&frame);
                            pool.run(move |d| d.detect(frame.view()).unwrap().detections)
                                .unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for answers in callers {
        for detections in answers {
            assert_eq!(detections.len(), lone.len());
            for (a, b) in detections.iter().zip(&lone) {
                assert_eq!(a.class_id, b.class_id);
                assert!((a.confidence - b.confidence).abs() < 1e-4);
            }
        }
    }
}
