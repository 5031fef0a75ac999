//! The sans-IO parts of the companion tools (`milter-test-server`, `milter-test-client`,
//! `milter-performance-check`, `milter-manager-log-analyzer`), kept apart from the
//! manager's own modules: the manager never uses them, the tools share the protocol codec
//! with it.

mod ending;
pub mod log_analyzer;
pub mod performance;
pub mod test_client;
pub mod test_server;

pub use ending::Ending;
