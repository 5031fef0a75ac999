//! Metrics for Prometheus (and munin), without I/O: where each count lives in the counters
//! the workers share ([`layout`]), and the text the controller's `metrics` request and the
//! `/metrics` page answer ([`report`], in the format of [`exposition`]).

pub mod exposition;
pub mod layout;
pub mod report;

pub use layout::{record_session, ChildOutcome, Counters, FINAL_STATUSES};
pub use report::{render, ProcessSample, Snapshot, WorkerProcess};
