//! What the chaos runs share: how long they go on and their seed, from the
//! environment; a generator that replays a run's choices from its seed; and
//! the records that flow through them the whole time, and their stages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use std::path::Path;

use crate::kafka::{Kafka, Record};
use crate::pipeline::Stage;

/// A small deterministic generator (xorshift), so that a run can be
/// replayed from its seed.
pub struct Random(u64);

impl Random {
    /// A generator started from `seed` (odd, not zero).
    pub fn new(seed: u64) -> Random {
        Random(seed | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Minutes of random disturbances after the planned ones
/// (`PARTITA_CHAOS_MINUTES`, default none) and the seed of their choices
/// (`PARTITA_CHAOS_SEED`, default from the clock).
pub fn settings() -> (f64, u64) {
    let minutes = std::env::var("PARTITA_CHAOS_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0.0);
    let seed = std::env::var("PARTITA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    (minutes, seed)
}

/// Record `i` over `keys` keys: key `k{i % keys}`, value the number `i`
/// (its id, and what `count` adds).
pub fn record(i: u64, keys: u64) -> Record {
    Record::new(&format!("k{}", i % keys), &i.to_string())
}

/// Records `0, 1, 2, ...` ([`record`]) produced to a topic, `chunk` every
/// 100 ms, from [`Flow::start`] to [`Flow::stop`] (the client retries
/// while the broker is down).
pub struct Flow {
    flowing: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<u64>>,
}

impl Flow {
    /// Starts producing to `topic`, over `keys` keys.
    pub fn start(kafka: &Kafka, topic: &str, keys: u64, chunk: u64) -> Flow {
        let flowing = Arc::new(AtomicBool::new(true));
        let (kafka, topic, on) = (kafka.clone(), topic.to_string(), flowing.clone());
        let thread = thread::spawn(move || {
            let mut next = 0;
            while on.load(Ordering::Relaxed) {
                kafka.produce(&topic, (next..next + chunk).map(|i| record(i, keys)))?;
                next += chunk;
                thread::sleep(Duration::from_millis(100));
            }
            Ok(next)
        });
        Flow { flowing, thread }
    }

    /// Stops producing; the number of records produced.
    pub fn stop(self) -> anyhow::Result<u64> {
        self.flowing.store(false, Ordering::Relaxed);
        self.thread.join().expect("the producing thread")
    }
}

/// The stages of the chaos runs, both reading `in`: `pass` (the
/// `passthrough` component `pass`) to `in.out`, and `count` (the `count`
/// component `count`) to `counts`.
pub fn stages<'a>(pass: &'a Path, count: &'a Path) -> [Stage<'a>; 2] {
    [
        Stage {
            name: "pass",
            processor: pass,
            input: "in",
            outputs: &[("default", "in.out")],
            extra: "",
        },
        Stage {
            name: "count",
            processor: count,
            input: "in",
            outputs: &[("default", "counts")],
            extra: "",
        },
    ]
}
