//! The inference threads. ONNX Runtime sessions are heavy and inference is CPU-bound, so a few
//! dedicated threads each own one [`Detector`] (one session) and take jobs from one shared,
//! bounded queue; callers (threads or async tasks) get their answer through whatever channel
//! the job carries. On small CPUs several single-threaded sessions side by side get more frames
//! through than one session spreading each frame over every core (see docs/benchmarks.md).

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::detector::Detector;

/// A unit of work for an inference thread.
pub type Job = Box<dyn FnOnce(&mut Detector) + Send + 'static>;

/// Why a job was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The worker has stopped.
    #[error("inference worker stopped")]
    Closed,
}

/// Handle to the inference threads; dropping it lets queued jobs finish and joins the threads.
#[derive(Debug)]
pub struct InferenceWorker {
    tx: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

/// Takes the next job; the lock is held only while waiting, never while a job runs.
fn next_job(rx: &Mutex<Receiver<Job>>) -> Option<Job> {
    // A job that panicked on another thread poisons nothing we read: the receiver is intact.
    let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    rx.recv().ok()
}

impl InferenceWorker {
    /// Moves `detector` onto a new thread with a queue of `capacity` jobs.
    pub fn spawn(detector: Detector, capacity: usize) -> std::io::Result<Self> {
        Self::spawn_pool(vec![detector], capacity)
    }

    /// Moves each detector onto a thread of its own; all of them take jobs from one queue of
    /// `capacity` jobs, so whichever session is free runs the next frame.
    pub fn spawn_pool(detectors: Vec<Detector>, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(detectors.len());
        for (i, detector) in detectors.into_iter().enumerate() {
            let rx = Arc::clone(&rx);
            let thread = std::thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || {
                    let mut detector = detector;
                    while let Some(job) = next_job(&rx) {
                        job(&mut detector);
                    }
                })?;
            threads.push(thread);
        }
        Ok(Self {
            tx: Some(tx),
            threads,
        })
    }

    /// How many sessions take jobs.
    pub fn sessions(&self) -> usize {
        self.threads.len()
    }

    /// Queues `job`, waiting while the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let tx = self.tx.as_ref().ok_or(SubmitError::Closed)?;
        tx.send(job).map_err(|_| SubmitError::Closed)
    }

    /// Runs `f` on an inference thread and waits for its result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Detector) -> T + Send + 'static,
    ) -> Result<T, SubmitError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.submit(Box::new(move |d| {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply_tx.send(f(d));
        }))?;
        reply_rx.recv().map_err(|_| SubmitError::Closed)
    }
}

impl Drop for InferenceWorker {
    fn drop(&mut self) {
        self.tx.take();
        for thread in self.threads.drain(..) {
            // A panicking job already reported itself; nothing more to do at teardown.
            let _ = thread.join();
        }
    }
}
