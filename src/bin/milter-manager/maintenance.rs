//! `manager.maintenance_interval`: every so many ended sessions a worker gives freed memory back
//! to the system, runs the `manager.maintained` callbacks of the Rhai files and, with
//! `manager.report_memory_statistics`, logs how much memory it uses.

use milter_manager::config::{Config, ManagerScripts};

/// The settings of one configuration generation.
#[derive(Debug, Clone)]
pub(crate) struct Maintenance {
    /// Sessions between maintenances; 0: never.
    pub interval: u32,
    pub report_memory: bool,
    /// The `manager.maintained` callbacks are run from here.
    pub scripts: ManagerScripts,
}

impl Maintenance {
    pub(crate) fn of(config: &Config) -> Self {
        Self {
            interval: config.manager.maintenance_interval,
            report_memory: config.manager.report_memory_statistics,
            scripts: config.manager_scripts.clone(),
        }
    }

    /// Called with the worker's count of ended sessions after each one ends; whether the
    /// maintenance ran (and gave memory back).
    pub(crate) fn after_session(&self, sessions: u64) -> bool {
        if self.interval == 0 || sessions % u64::from(self.interval) != 0 {
            return false;
        }
        give_back_free_memory();
        // A failing callback is only logged: maintenance must never stop the worker.
        for failure in self.scripts.run_maintained() {
            log::warn!("[maintain][error] {failure}");
        }
        if self.report_memory {
            log::info!("[maintain][memory] {} after {sessions} sessions", memory_report());
        }
        true
    }
}

/// Free heap memory that makes an idle worker give it back at once rather than at its next
/// maintenance: a worker that is often idle between small sessions keeps its few free
/// pages (giving them back would only have the next session fault them in again).
const IDLE_TRIM_BYTES: usize = 8 * 1024 * 1024;

/// Called when the worker has no session left: memory a large session freed (a child's
/// thousands of header changes, say) goes back to the system now, so one bad session does
/// not leave the worker big.
pub(crate) fn when_idle() {
    if free_heap_bytes() > IDLE_TRIM_BYTES {
        give_back_free_memory();
    }
}

/// Bytes the allocator holds free for this process (glibc's count; 0 where it has none).
/// `mallinfo`, not `mallinfo2`: the latter needs glibc 2.33, which Red Hat 8 lacks. Its
/// `int` fields wrap past 2 GiB; a negative count is as large as it gets.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn free_heap_bytes() -> usize {
    // SAFETY: mallinfo has no preconditions; it reads glibc's own arena statistics.
    let info = unsafe { libc::mallinfo() };
    usize::try_from(info.fordblks).unwrap_or(usize::MAX)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn free_heap_bytes() -> usize {
    0
}

/// Freed heap pages go back to the system: one large session must not keep a worker big.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back_free_memory() {
    // SAFETY: malloc_trim has no preconditions; it only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back_free_memory() {}

/// The process's resident memory now and at its peak, from /proc/self/status.
fn memory_report() -> String {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => status,
        Err(error) => return format!("memory unknown (/proc/self/status: {error})"),
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(|value| value.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    format!(
        "pid {}: resident {}, peak resident {}, virtual {}",
        std::process::id(),
        field("VmRSS"),
        field("VmHWM"),
        field("VmSize")
    )
}
