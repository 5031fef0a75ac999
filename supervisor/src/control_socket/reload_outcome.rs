//! A reload's outcome, and how it travels from the serving process to the control
//! process as one datagram.

/// What became of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// The generation serving new sessions afterwards (the running one when it failed).
    pub generation: u64,
    /// Ok: the new generation's workers that were started, as (index, pid) (none when one
    /// process serves alone); Err: why the running configuration stays.
    pub result: Result<Vec<(u32, u32)>, String>,
    /// How many workers the new generation should have (0: one process serves alone).
    pub workers_wanted: u32,
    /// The reload hook's own report (opaque here), e.g. the items that need a restart.
    pub report: String,
}

impl ReloadOutcome {
    /// One datagram: the generation, then `ok WANTED INDEX:PID...` or `error REASON`, then
    /// the report verbatim.
    pub fn encode(&self) -> Vec<u8> {
        let status = match &self.result {
            Ok(workers) => {
                let pids: Vec<String> = workers.iter().map(|(i, p)| format!(" {i}:{p}")).collect();
                format!("ok {}{}", self.workers_wanted, pids.concat())
            }
            Err(reason) => format!("error {}", reason.replace('\n', " ")),
        };
        format!("{}\n{status}\n{}", self.generation, self.report).into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '\n');
        let generation = parts.next()?.parse().ok()?;
        let status = parts.next()?;
        let report = parts.next().unwrap_or("").to_string();
        let (result, workers_wanted) = match status.split_once(' ') {
            Some(("error", reason)) => (Err(reason.to_string()), 0),
            _ => {
                let mut words = status.split(' ');
                if words.next()? != "ok" {
                    return None;
                }
                let wanted = words.next()?.parse().ok()?;
                let workers = words
                    .map(|word| {
                        let (index, pid) = word.split_once(':')?;
                        Some((index.parse().ok()?, pid.parse().ok()?))
                    })
                    .collect::<Option<Vec<_>>>()?;
                (Ok(workers), wanted)
            }
        };
        Some(Self { generation, result, workers_wanted, report })
    }
}
