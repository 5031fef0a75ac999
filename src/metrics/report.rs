//! The metrics text: what the shared counters, the running workers and the processes'
//! samples say, in the exposition format.

use std::collections::BTreeMap;

use super::exposition::{Exposition, Kind};
use super::layout::{answer_times, ChildEvent, Counters, ANSWER_BUCKETS_MICROS, FINAL_STATUSES};
use crate::engine::Stage;

/// One worker process: its position, its pid and the generation it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerProcess {
    pub index: u32,
    pub pid: u32,
    pub generation: u64,
}

/// A process's resources, as the system reports them (`None`: could not be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// `None`: the supervisor (or the process serving alone); a worker otherwise.
    pub worker: Option<WorkerProcess>,
    pub resident_bytes: Option<u64>,
    pub open_files: Option<u64>,
}

/// Everything the metrics are made of.
pub struct Snapshot<'a> {
    /// The generation serving new sessions.
    pub generation: u64,
    pub sessions_in_flight: u64,
    pub workers: &'a [WorkerProcess],
    /// The enabled child milters and their counter slots.
    pub children: &'a [(String, Option<usize>)],
    /// Reads a shared counter.
    pub counter: &'a dyn Fn(usize) -> u64,
    pub processes: &'a [ProcessSample],
}

const PREFIX: &str = "milter_manager_";

/// The metrics text of `snapshot`.
pub fn render(snapshot: &Snapshot<'_>) -> String {
    let mut out = Exposition::default();
    let get = snapshot.counter;
    let name = |suffix: &str| format!("{PREFIX}{suffix}");

    out.family(
        &name("sessions_total"),
        Kind::Counter,
        "Sessions ended since the manager started, by the stage they ended at and their final \
         status.",
    );
    for stage in Stage::ALL {
        for status in FINAL_STATUSES {
            let count = Counters::session_end(stage, status).map_or(0, get);
            if count > 0 {
                out.sample(&[("stage", stage.name()), ("status", status)], count);
            }
        }
    }
    out.family(&name("sessions_done_total"), Kind::Counter, "Sessions ended since the start.");
    out.sample(&[], get(Counters::SESSIONS_DONE));
    out.family(&name("sessions_in_flight"), Kind::Gauge, "Sessions running now.");
    out.sample(&[], snapshot.sessions_in_flight);

    out.family(
        &name("generation"),
        Kind::Gauge,
        "The configuration generation serving new sessions.",
    );
    out.sample(&[], snapshot.generation);
    out.family(
        &name("workers"),
        Kind::Gauge,
        "Worker processes running, by the configuration generation they serve.",
    );
    let mut by_generation: BTreeMap<u64, u64> = BTreeMap::new();
    for worker in snapshot.workers {
        *by_generation.entry(worker.generation).or_default() += 1;
    }
    for (generation, count) in by_generation {
        out.sample(&[("generation", &generation.to_string())], count);
    }
    out.family(&name("reloads_total"), Kind::Counter, "Configuration reloads, by result.");
    out.sample(&[("result", "ok")], get(Counters::RELOADS_OK));
    out.sample(&[("result", "failed")], get(Counters::RELOADS_FAILED));
    out.family(
        &name("launcher_starts_total"),
        Kind::Counter,
        "Child milters the privilege-mode launcher started for a session.",
    );
    out.sample(&[], get(Counters::LAUNCHER_STARTS));

    render_children(&mut out, snapshot);
    render_processes(&mut out, snapshot.processes);
    out.finish()
}

fn render_children(out: &mut Exposition, snapshot: &Snapshot<'_>) {
    let get = snapshot.counter;
    let counted = || snapshot.children.iter().filter_map(|(name, slot)| Some((name, (*slot)?)));
    out.family(
        &format!("{PREFIX}milter_sessions_total"),
        Kind::Counter,
        "Sessions of each child milter, by its final status.",
    );
    for (milter, slot) in counted() {
        for status in FINAL_STATUSES {
            let count = Counters::child_status(slot, status).map_or(0, get);
            out.sample(&[("milter", milter), ("status", status)], count);
        }
    }
    let events = [
        (
            ChildEvent::ConnectFailure,
            "milter_connect_failures_total",
            "Connections to each child milter that could not be opened.",
        ),
        (
            ChildEvent::Timeout,
            "milter_timeouts_total",
            "Times each child milter did not connect or answer in time.",
        ),
        (
            ChildEvent::Fallback,
            "milter_fallbacks_total",
            "Times each child milter failed and its fallback status answered for it.",
        ),
        (
            ChildEvent::ReusedConnection,
            "milter_reused_connections_total",
            "Sessions of each child milter served on a connection kept from an earlier one.",
        ),
        (
            ChildEvent::Reconnection,
            "milter_reconnections_total",
            "Kept connections to each child milter found dead on first use and replaced.",
        ),
    ];
    for (event, family, help) in events {
        out.family(&format!("{PREFIX}{family}"), Kind::Counter, help);
        for (milter, slot) in counted() {
            out.sample(&[("milter", milter)], Counters::child_event(slot, event).map_or(0, get));
        }
    }
    out.family(
        &format!("{PREFIX}milter_answer_duration_seconds"),
        Kind::Histogram,
        "Time each child milter took to answer the commands of a stage, added up per session.",
    );
    for (milter, slot) in counted() {
        for stage in Stage::ALL {
            let Some(times) = answer_times(get, slot, stage).filter(|t| t.count > 0) else {
                continue;
            };
            let buckets: Vec<(f64, u64)> = ANSWER_BUCKETS_MICROS
                .iter()
                .zip(times.cumulative)
                .map(|(bound, count)| (*bound as f64 / 1e6, count))
                .collect();
            let labels = [("milter", milter.as_str()), ("stage", stage.name())];
            out.histogram(&labels, &buckets, times.sum_micros as f64 / 1e6, times.count);
        }
    }
}

fn render_processes(out: &mut Exposition, processes: &[ProcessSample]) {
    let labels_of = |sample: &ProcessSample| match sample.worker {
        None => vec![("process", "supervisor".to_string())],
        Some(worker) => vec![
            ("process", "worker".to_string()),
            ("worker", worker.index.to_string()),
            ("generation", worker.generation.to_string()),
        ],
    };
    let families = [
        ("process_resident_memory_bytes", "Resident memory of the manager's processes.", 0),
        (
            "process_open_fds",
            "Open file descriptors of the manager's processes (a worker's only if readable).",
            1,
        ),
    ];
    for (family, help, which) in families {
        out.family(&format!("{PREFIX}{family}"), Kind::Gauge, help);
        for sample in processes {
            let value = if which == 0 { sample.resident_bytes } else { sample.open_files };
            let Some(value) = value else { continue };
            let labels = labels_of(sample);
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            out.sample(&labels, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ChildTally;
    use crate::metrics::layout::{record_session, ChildOutcome};
    use std::collections::HashMap;
    use std::time::Duration;

    #[test]
    fn the_metrics_show_sessions_milters_workers_and_processes() {
        let mut counters: HashMap<usize, u64> = HashMap::new();
        let mut add = |index, amount| *counters.entry(index).or_default() += amount;
        let mut tally = ChildTally::default();
        tally.timeouts = 1;
        tally.fallbacks = 1;
        tally.record_answer(Stage::Connect, Duration::from_millis(20));
        let children = [ChildOutcome { slot: Some(1), status: Some("reject"), tally: &tally }];
        record_session(&mut add, (Stage::Helo, "reject"), children);
        add(Counters::RELOADS_FAILED, 1);
        let get = |index| counters.get(&index).copied().unwrap_or(0);
        let workers = [
            WorkerProcess { index: 0, pid: 10, generation: 2 },
            WorkerProcess { index: 1, pid: 11, generation: 2 },
            WorkerProcess { index: 0, pid: 9, generation: 1 },
        ];
        let processes = [
            ProcessSample { worker: None, resident_bytes: Some(4096), open_files: Some(7) },
            ProcessSample { worker: Some(workers[0]), resident_bytes: None, open_files: Some(9) },
        ];
        let children = [("spam \"a\"".to_string(), Some(1)), ("uncounted".to_string(), None)];
        let text = render(&Snapshot {
            generation: 2,
            sessions_in_flight: 3,
            workers: &workers,
            children: &children,
            counter: &get,
            processes: &processes,
        });
        for line in [
            "milter_manager_sessions_total{stage=\"helo\",status=\"reject\"} 1",
            "milter_manager_sessions_done_total 1",
            "milter_manager_sessions_in_flight 3",
            "milter_manager_workers{generation=\"1\"} 1",
            "milter_manager_workers{generation=\"2\"} 2",
            "milter_manager_reloads_total{result=\"ok\"} 0",
            "milter_manager_reloads_total{result=\"failed\"} 1",
            "milter_manager_milter_sessions_total{milter=\"spam \\\"a\\\"\",status=\"reject\"} 1",
            "milter_manager_milter_sessions_total{milter=\"spam \\\"a\\\"\",status=\"pass\"} 0",
            "milter_manager_milter_timeouts_total{milter=\"spam \\\"a\\\"\"} 1",
            "milter_manager_milter_connect_failures_total{milter=\"spam \\\"a\\\"\"} 0",
            "milter_manager_milter_answer_duration_seconds_bucket{milter=\"spam \\\"a\\\"\",\
             stage=\"connect\",le=\"0.025\"} 1",
            "milter_manager_milter_answer_duration_seconds_bucket{milter=\"spam \\\"a\\\"\",\
             stage=\"connect\",le=\"0.01\"} 0",
            "milter_manager_milter_answer_duration_seconds_sum{milter=\"spam \\\"a\\\"\",\
             stage=\"connect\"} 0.02",
            "milter_manager_process_resident_memory_bytes{process=\"supervisor\"} 4096",
            "milter_manager_process_open_fds{process=\"worker\",worker=\"0\",generation=\"2\"} 9",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("uncounted"), "a milter without a slot has no rows");
        assert!(!text.contains("stage=\"helo\",le"), "no histogram for a stage never answered");
    }
}
