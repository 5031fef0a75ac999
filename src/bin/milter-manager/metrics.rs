//! The metrics: the controller's `metrics` request and the page at
//! `controller.metrics_connection_spec` answer the same text, made of the counters the
//! workers share, the running workers, and each process's memory and open files (read
//! from /proc: a few small reads per process and scrape).

use std::cell::RefCell;
use std::rc::Rc;

use milter_manager::config::Config;
use milter_manager::control_protocol::ReloadReport;
use milter_manager::metrics::exposition::CONTENT_TYPE;
use milter_manager::metrics::{render, ProcessSample, Snapshot, WorkerProcess};
use supervisor::{ControlContext, ReloadOutcome, SessionBoard, SharedCounters};

use crate::error::StartError;

/// What the metrics are read from, in the process that answers them.
pub(crate) struct MetricsSource {
    pub board: Rc<SessionBoard>,
    pub counters: Rc<SharedCounters>,
    /// The enabled milters and their counter slots, as of the last reload.
    pub children: RefCell<Vec<(String, Option<usize>)>>,
}

impl MetricsSource {
    pub(crate) fn render(&self, context: &ControlContext) -> String {
        let workers: Vec<WorkerProcess> = context
            .workers
            .iter()
            .map(|w| WorkerProcess { index: w.index, pid: w.pid, generation: w.generation })
            .collect();
        let mut processes = vec![sample(context.supervisor_pid, None)];
        processes.extend(workers.iter().map(|worker| sample(worker.pid, Some(*worker))));
        let children = self.children.borrow();
        let counter = |index| self.counters.get(index);
        render(&Snapshot {
            generation: context.generation,
            sessions_in_flight: self.board.total() as u64,
            workers: &workers,
            children: &children,
            counter: &counter,
            processes: &processes,
        })
    }

    /// A reload that loaded brings its milters.
    pub(crate) fn reloaded(&self, outcome: &ReloadOutcome) {
        if outcome.result.is_err() {
            return;
        }
        if let Some(report) = ReloadReport::decode(&outcome.report) {
            *self.children.borrow_mut() = report.view.children;
        }
    }
}

/// The resident memory and open files of process `pid`.
fn sample(pid: u32, worker: Option<WorkerProcess>) -> ProcessSample {
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok());
    // statm: total program size, then resident pages.
    let resident_bytes = std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse::<u64>().ok())
        .zip(page_size)
        .map(|(pages, size)| pages * size);
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|entries| entries.filter(Result::is_ok).count() as u64);
    ProcessSample { worker, resident_bytes, open_files }
}

/// The page served over HTTP.
struct Page(Rc<MetricsSource>);

impl supervisor::MetricsHandler for Page {
    fn metrics(&mut self, context: &ControlContext) -> (String, String) {
        (CONTENT_TYPE.to_string(), self.0.render(context))
    }

    fn reloaded(&mut self, outcome: &ReloadOutcome) {
        self.0.reloaded(outcome);
    }
}

/// Binds `controller.metrics_connection_spec` (as root, before the privilege drop) and
/// serves the page from `source`. `None` when no page is configured.
pub(crate) fn bind(
    config: &Config,
    source: Rc<MetricsSource>,
) -> Result<Option<supervisor::MetricsSocket>, StartError> {
    let Some(target) = target(config)? else { return Ok(None) };
    let listen = supervisor::ListenOptions::default();
    let bound = supervisor::bind(&target, &listen).map_err(StartError::MetricsBind)?;
    log::info!("metrics page at http://{}/metrics", http_address(&bound));
    supervisor::MetricsSocket::new(bound, Box::new(Page(source)))
        .map(Some)
        .map_err(StartError::MetricsSocket)
}

/// Fails as [`bind`] would on the address, without binding anything.
pub(crate) fn check_bindable(config: &Config) -> Result<(), StartError> {
    let Some(target) = target(config)? else { return Ok(()) };
    supervisor::check_bindable(&target, &supervisor::ListenOptions::default())
        .map_err(StartError::MetricsBind)
}

fn target(config: &Config) -> Result<Option<supervisor::BindTarget>, StartError> {
    // An inet: spec: the configuration refuses others.
    let Some(spec) = &config.controller.metrics_connection_spec else { return Ok(None) };
    milter_manager::program::bind_target(spec).map(Some).map_err(StartError::MetricsAddress)
}

fn http_address(bound: &supervisor::BoundSocket) -> String {
    match bound.tcp_local_addr() {
        Some(address) => address.to_string(),
        None => bound.local_description(),
    }
}
