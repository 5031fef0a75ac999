//! The integration tests of milter-manager: one test binary, one module per area, all
//! running the real programs. Shared helpers (processes, temp dirs, waiting, the peers'
//! harnesses, the scenario runner) live in `support`.

mod support;

mod controller_launcher;
mod debian_package;
mod engine_scenarios;
mod log_analyzer;
mod man_pages;
mod manager_cli;
mod manager_disconnect;
mod manager_dnsbl;
mod manager_maintenance;
mod manager_memory;
mod metrics;
mod migrate;
mod peer_miltertest;
mod peer_pipeline;
mod peer_postfix_manager;
mod peer_pymilter;
mod peer_reuse;
mod peer_reuse_packaged;
mod performance_check;
mod postfix_fixtures;
mod process_model;
mod rc_scripts;
mod rpm_package;
mod test_client_cli;
mod tools_session;
