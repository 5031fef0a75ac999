//! One serving process: the event loop with the manager's sessions, sessions counted on
//! the shared board, and `manager.max_connections` checked over every worker.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use milter_manager::config::Config;
use supervisor::{Listener, SessionBoard, SharedCounters, WorkerContext};

use crate::adapter::{Factory, Generation};
use crate::launch_on_demand::LaunchingFactory;

/// What every generation's workers share: the session board, the status counters and the
/// privilege-mode launcher's socket.
#[derive(Clone)]
pub(crate) struct Shared {
    pub board: Rc<SessionBoard>,
    pub counters: Rc<SharedCounters>,
    /// `None`: privilege mode is off.
    pub launcher: Option<Rc<workers::Endpoint>>,
}

/// Test only: a worker started with this variable set to 1 exits at once with code 1, so
/// the tests can watch the supervisor's crash back-off. Read in the worker start path only.
const TEST_CRASH_WORKER: &str = "MILTER_MANAGER_TEST_CRASH_WORKER";

/// What a serving process takes from one configuration. Shared with the in-process reload
/// (`n_workers = 0`), which replaces the parts in place; a worker of a prefork generation
/// keeps its own for life.
pub(crate) struct Plan {
    /// Shared with the session factory: the generation new sessions get.
    pub generation: Rc<RefCell<Rc<Generation>>>,
    /// `manager.max_connections` (None: no limit), counted over every worker.
    pub max_connections: Cell<Option<usize>>,
    /// `manager.suspend_time_on_unacceptable`: how long accepting pauses at the limit.
    pub accept_pause: Duration,
    /// `manager.max_idle_child_connections`. Read when a worker starts: an in-process
    /// reload (`n_workers = 0`) keeps the number it started with.
    pub max_kept_connections: usize,
}

impl Plan {
    pub(crate) fn new(config: &Config, generation: Generation) -> Self {
        let manager = &config.manager;
        Self {
            generation: Rc::new(RefCell::new(Rc::new(generation))),
            max_connections: Cell::new(max_connections(config)),
            accept_pause: Duration::from_secs(manager.suspend_time_on_unacceptable.max(1) as u64),
            max_kept_connections: manager.max_idle_child_connections as usize,
        }
    }
}

pub(crate) fn max_connections(config: &Config) -> Option<usize> {
    let max = config.manager.max_connections;
    (max > 0).then_some(max as usize)
}

/// Takes a place on the board before each accept, so that `max_connections` holds over
/// all workers even when two of them accept at the same moment (see `SessionBoard`).
struct BoardAdmission {
    board: Rc<SessionBoard>,
    worker: usize,
    plan: Rc<Plan>,
    /// Whether the last try was refused, so the limit is logged once per episode.
    refused: bool,
}

impl workers::Admission for BoardAdmission {
    fn try_reserve(&mut self) -> bool {
        let max = self.plan.max_connections.get();
        let admitted = self.board.try_begin(self.worker, max);
        if !admitted && !self.refused {
            log::info!(
                "{} sessions in all workers, the maximum (manager.max_connections); \
                 accepting again in at most {}s",
                self.board.total(),
                self.plan.accept_pause.as_secs()
            );
        }
        self.refused = !admitted;
        admitted
    }

    fn release(&mut self) {
        self.board.end(self.worker);
    }
}

/// Serves `listener` until told to stop; returns the process's exit code.
pub(crate) fn serve(
    plan: Rc<Plan>,
    shared: &Shared,
    listener: Listener,
    context: WorkerContext,
    on_hangup: Option<Box<dyn FnMut()>>,
) -> i32 {
    if std::env::var_os(TEST_CRASH_WORKER).is_some_and(|value| value == "1") {
        log::error!("{TEST_CRASH_WORKER}=1 (test only): this worker exits at start");
        return 1;
    }
    let worker = context.worker_id as usize;
    let board = Rc::clone(&shared.board);
    board.reset(worker);
    let factory = Factory {
        current: Rc::clone(&plan.generation),
        next_tag: 1,
        tables: crate::client_watch::TableCache::shared(),
        counters: Rc::clone(&shared.counters),
        sessions: 0,
        in_flight: 0,
    };
    let factory = LaunchingFactory { inner: factory, launcher: shared.launcher.clone() };
    let admission = BoardAdmission { board, worker, plan: Rc::clone(&plan), refused: false };
    let config = workers::WorkerConfig {
        admission: Some(Box::new(admission)),
        accept_pause: plan.accept_pause,
        parent_watch: context.parent_watch,
        on_hangup,
        on_reopen_logs: Some(Box::new(reopen_logs)),
        max_kept_connections: plan.max_kept_connections,
        ..workers::WorkerConfig::default()
    };
    match workers::run(listener, factory, config) {
        Ok(exit) => {
            log::info!("stopped: {exit:?}");
            0
        }
        Err(error) => {
            log::error!("the event loop failed: {error}");
            1
        }
    }
}

/// SIGUSR1: the log file is opened again (after a rotation).
pub(crate) fn reopen_logs() {
    match milter_manager::program::logger::reopen() {
        Ok(()) => log::info!("SIGUSR1 received: log file reopened (pid {})", std::process::id()),
        Err(error) => {
            // A rotation that moved the file away from a directory the serving user cannot
            // write: the new file must be made for that user.
            let hint = if error.is_permission_denied() {
                format!(
                    "; the processes serve as {}: let the rotation create the new file for \
                     that user (logrotate's \"create MODE USER GROUP\") or copy and truncate \
                     it (\"copytruncate\")",
                    crate::adapter::serving_user_words()
                )
            } else {
                String::new()
            };
            log::error!("SIGUSR1 received: {error}; still logging to the old file{hint}")
        }
    }
}
