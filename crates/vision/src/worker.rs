//! The inference thread. ONNX Runtime sessions are heavy and inference is CPU-bound, so one
//! dedicated thread owns the [`Detector`] and runs jobs sent to it through a bounded channel;
//! callers (threads or async tasks) get their answer through whatever channel the job carries.

use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use crate::detector::Detector;

/// A unit of work for the inference thread.
pub type Job = Box<dyn FnOnce(&mut Detector) + Send + 'static>;

/// Why a job was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The worker has stopped.
    #[error("inference worker stopped")]
    Closed,
}

/// Handle to the inference thread; dropping it lets queued jobs finish and joins the thread.
#[derive(Debug)]
pub struct InferenceWorker {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl InferenceWorker {
    /// Moves `detector` onto a new thread with a queue of `capacity` jobs.
    pub fn spawn(detector: Detector, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity);
        let thread = std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || {
                let mut detector = detector;
                for job in rx {
                    job(&mut detector);
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `job`, waiting while the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let tx = self.tx.as_ref().ok_or(SubmitError::Closed)?;
        tx.send(job).map_err(|_| SubmitError::Closed)
    }

    /// Runs `f` on the inference thread and waits for its result.
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
        if let Some(thread) = self.thread.take() {
            // A panicking job already reported itself; nothing more to do at teardown.
            let _ = thread.join();
        }
    }
}
