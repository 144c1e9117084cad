//! The threads that run a stage's partition workers: a few per stage (one
//! per core), each taking turns over the workers it was given, instead of
//! a thread per partition, so that a host with a thousand partitions runs
//! a handful of threads.
//!
//! A worker never waits inside its turn ([`Worker::turn`]): it reads what
//! has arrived, runs its batch when it is due, serves acknowledgements and
//! commits, and says when it wants its next turn. A pool thread gives each
//! of its workers a turn in round, and sleeps until the earliest of them
//! is due or something wakes it: records arriving on a worker's queue, an
//! acknowledgement, a stop. A new partition goes to the thread with the
//! fewest workers. What blocks a turn blocks the other workers of its
//! thread for that long: a processor call (at most its CPU deadline), a
//! synchronous commit when the partition stops.
//!
//! Starting a worker waits on the disk and the broker (its state store
//! opened, restored from the changelog; under exactly-once, its
//! transactional producer registered), so it is done on a few starter
//! threads ([`STARTERS`] at most, ended after a while without work), many
//! partitions at once, and the started worker is handed to its pool
//! thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerContext;

use super::StageFailure;
use super::worker::{self, Turn, Worker, WorkerSetup};

/// The longest a pool thread sleeps between two rounds.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// The most threads starting workers at once.
pub(crate) const STARTERS: usize = 8;
/// How long a starter thread waits for work before it ends.
const STARTER_IDLE: Duration = Duration::from_secs(2);

/// A stage's worker threads; see the module docs.
pub(crate) struct Pool<C: ConsumerContext + 'static> {
    stage: String,
    size: usize,
    members: Mutex<Vec<Member<C>>>,
    /// Workers to start, for the starter threads.
    starts: Mutex<Option<mpsc::Sender<Start<C>>>>,
    waiting: Arc<Mutex<mpsc::Receiver<Start<C>>>>,
    starters: Mutex<Vec<JoinHandle<()>>>,
}

/// One thread of the pool.
struct Member<C: ConsumerContext + 'static> {
    thread: JoinHandle<()>,
    inbox: Arc<Inbox<C>>,
}

/// What a pool thread is given, and how busy it is.
struct Inbox<C: ConsumerContext + 'static> {
    /// Workers started for it, to run.
    started: Mutex<Vec<Running<C>>>,
    /// Workers it runs or is about to start.
    load: AtomicUsize,
    /// Set when the pool is dropped: stop every worker, then end.
    closed: AtomicBool,
}

/// A worker to start, the pool thread it goes to, and where to say it
/// has ended.
struct Start<C: ConsumerContext + 'static> {
    setup: WorkerSetup<C>,
    inbox: Arc<Inbox<C>>,
    thread: Thread,
    done: mpsc::Sender<()>,
}

/// A worker given to the pool.
pub(crate) struct Ticket {
    stop: Arc<AtomicBool>,
    thread: Thread,
    done: mpsc::Receiver<()>,
}

impl Ticket {
    /// Asks the worker to stop at its next batch boundary.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Relaxed);
        self.thread.unpark();
    }

    /// Waits until the worker has ended (committed, or failed).
    pub(crate) fn wait(self) {
        // An error means the pool thread is gone: the worker too.
        let _ = self.done.recv();
    }
}

impl<C: ConsumerContext + 'static> Pool<C> {
    /// A pool for `stage` of at most `size` threads, started as needed.
    pub(crate) fn new(stage: &str, size: usize) -> Pool<C> {
        let (starts, waiting) = mpsc::channel();
        Pool {
            stage: stage.to_string(),
            size: size.max(1),
            members: Mutex::new(Vec::new()),
            starts: Mutex::new(Some(starts)),
            waiting: Arc::new(Mutex::new(waiting)),
            starters: Mutex::new(Vec::new()),
        }
    }

    /// Gives the worker of `setup` to the thread with the fewest workers
    /// (a new one while the pool has fewer than its size), once a starter
    /// thread has started it.
    pub(crate) fn run(&self, setup: WorkerSetup<C>) -> std::io::Result<Ticket> {
        self.starter()?;
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let least = members
            .iter()
            .enumerate()
            .min_by_key(|(_, m)| m.inbox.load.load(Relaxed))
            .map(|(i, m)| (i, m.inbox.load.load(Relaxed)));
        let index = match least {
            Some((i, 0)) => i,
            Some((i, _)) if members.len() >= self.size => i,
            _ => {
                let inbox = Arc::new(Inbox {
                    started: Mutex::new(Vec::new()),
                    load: AtomicUsize::new(0),
                    closed: AtomicBool::new(false),
                });
                let served = inbox.clone();
                let thread = thread::Builder::new()
                    .name(format!("{}-w{}", self.stage, members.len()))
                    .spawn(move || serve(&served))?;
                members.push(Member { thread, inbox });
                members.len() - 1
            }
        };
        let member = &members[index];
        let (done, ended) = mpsc::channel();
        let ticket = Ticket {
            stop: setup.stop.clone(),
            thread: member.thread.thread().clone(),
            done: ended,
        };
        member.inbox.load.fetch_add(1, Relaxed);
        let start = Start {
            setup,
            inbox: member.inbox.clone(),
            thread: member.thread.thread().clone(),
            done,
        };
        drop(members);
        let starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(starts) = starts.as_ref() {
            // The receiver lives as long as the pool.
            let _ = starts.send(start);
        }
        Ok(ticket)
    }

    /// Starts one more starter thread, unless [`STARTERS`] are running.
    fn starter(&self) -> std::io::Result<()> {
        let mut starters = self.starters.lock().unwrap_or_else(|e| e.into_inner());
        starters.retain(|t| !t.is_finished());
        if starters.len() >= STARTERS {
            return Ok(());
        }
        let waiting = self.waiting.clone();
        let thread = thread::Builder::new()
            .name(format!("{}-start", self.stage))
            .spawn(move || start_workers(&waiting))?;
        starters.push(thread);
        Ok(())
    }
}

impl<C: ConsumerContext + 'static> Drop for Pool<C> {
    fn drop(&mut self) {
        // The starters finish what they were given, then end.
        drop(
            self.starts
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let starters = std::mem::take(self.starters.get_mut().unwrap_or_else(|e| e.into_inner()));
        for t in starters {
            if t.thread().id() != thread::current().id() {
                let _ = t.join();
            }
        }
        let members = std::mem::take(self.members.get_mut().unwrap_or_else(|e| e.into_inner()));
        for m in &members {
            m.inbox.closed.store(true, Relaxed);
            m.thread.thread().unpark();
        }
        for m in members {
            if m.thread.thread().id() == thread::current().id() {
                continue;
            }
            if m.thread.join().is_err() {
                tracing::error!("stage \"{}\": a worker thread panicked", self.stage);
            }
        }
    }
}

/// A worker on a pool thread, and where to say it has ended.
struct Running<C: ConsumerContext + 'static> {
    worker: Worker<C>,
    done: mpsc::Sender<()>,
    /// When it wants its next turn, unless woken before.
    due: Instant,
}

/// A pool thread: starts the workers it is given, gives each a turn when
/// it is due, sleeps in between.
fn serve<C: ConsumerContext + 'static>(inbox: &Inbox<C>) {
    let mut running: Vec<Running<C>> = Vec::new();
    loop {
        let started = std::mem::take(&mut *inbox.started.lock().unwrap_or_else(|e| e.into_inner()));
        for mut r in started {
            r.worker.attach();
            running.push(r);
        }
        let closed = inbox.closed.load(Relaxed);
        if closed && running.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut next = now + MAX_SLEEP;
        let mut i = 0;
        while i < running.len() {
            let r = &mut running[i];
            if closed {
                r.worker.ask_to_stop();
            }
            // A turn when due, or woken (records arrived, a batch was
            // acknowledged, a stop was asked): idle workers cost nothing
            // while the others are busy.
            if !closed && r.due > now && !r.worker.take_woken() {
                next = next.min(r.due);
                i += 1;
                continue;
            }
            match turn(&mut r.worker) {
                Turn::Busy => {
                    r.due = now;
                    next = now;
                }
                Turn::Idle(at) => {
                    r.due = at;
                    next = next.min(at);
                }
                Turn::Done | Turn::Failed(_) => {
                    // Dropped before it is reported: the worker may hold
                    // the last reference to the consumer, whose drop must
                    // not wait here for this very thread.
                    let Running { worker, done, .. } = running.swap_remove(i);
                    drop(worker);
                    inbox.load.fetch_sub(1, Relaxed);
                    let _ = done.send(());
                    continue;
                }
            }
            i += 1;
        }
        let sleep = next.saturating_duration_since(Instant::now());
        if !sleep.is_zero() {
            thread::park_timeout(sleep);
        }
    }
}

/// A starter thread: starts the workers it is given and hands each to its
/// pool thread; ends once none came for [`STARTER_IDLE`], or the pool is
/// gone.
fn start_workers<C: ConsumerContext + 'static>(waiting: &Mutex<mpsc::Receiver<Start<C>>>) {
    loop {
        let next = waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv_timeout(STARTER_IDLE);
        let Ok(Start {
            setup,
            inbox,
            thread,
            done,
        }) = next
        else {
            return;
        };
        match start(setup) {
            Some(worker) => {
                inbox
                    .started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Running {
                        worker,
                        done,
                        due: Instant::now(),
                    });
                thread.unpark();
            }
            None => {
                inbox.load.fetch_sub(1, Relaxed);
                let _ = done.send(());
            }
        }
    }
}

/// Starts a worker, reporting a failure (or a panic) to the run.
fn start<C: ConsumerContext + 'static>(setup: WorkerSetup<C>) -> Option<Worker<C>> {
    let (shared, partition) = (setup.shared.clone(), setup.partition);
    let started = catch_unwind(AssertUnwindSafe(move || worker::start(setup)));
    let failure = match started {
        Ok(Ok(worker)) => return Some(worker),
        Ok(Err(failure)) => failure,
        Err(panic) => StageFailure::Panicked(panic_text(&*panic)),
    };
    shared
        .control
        .fail(&shared.config.name, Some(partition), failure);
    None
}

/// One turn of `worker`; a failure or a panic ends it and is reported to
/// the run.
fn turn<C: ConsumerContext + 'static>(worker: &mut Worker<C>) -> Turn {
    let (stage, partition) = (worker.stage().to_string(), worker.partition());
    match catch_unwind(AssertUnwindSafe(|| worker.turn())) {
        Ok(Turn::Failed(failure)) => {
            worker.control().fail(&stage, Some(partition), failure);
            Turn::Done
        }
        Ok(turn) => turn,
        Err(panic) => {
            worker.ask_to_stop();
            let failure = StageFailure::Panicked(panic_text(&*panic));
            worker.control().fail(&stage, Some(partition), failure);
            Turn::Done
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
        .to_string()
}
