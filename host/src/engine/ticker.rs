//! The epoch ticker: a thread that advances the engine's epoch at a fixed
//! interval, so that CPU deadlines (counted in epochs) expire in real time.
//!
//! The thread lives as long as the [`Ticker`] value: dropping it wakes the
//! thread at once and joins it, so no thread outlives its engine.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// Owns the ticking thread; dropping it stops and joins the thread.
pub(crate) struct Ticker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts a thread that calls `increment_epoch` on `engine` every `tick`.
    pub(crate) fn start(engine: wasmtime::Engine, tick: Duration) -> std::io::Result<Ticker> {
        let (stop, stopped) = mpsc::channel::<()>();
        let (started, running) = mpsc::sync_channel::<()>(0);
        let thread = std::thread::Builder::new()
            .name("partita-epoch".into())
            .spawn(move || {
                let _ = started.send(());
                // The sender is never used to send: the thread ends when it drops.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })?;
        // Return once the thread runs (and carries its name), so that the
        // engine's deadlines tick from the moment it exists.
        let _ = running.recv();
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
