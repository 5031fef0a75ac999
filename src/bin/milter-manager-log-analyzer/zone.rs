//! Local time as the C library knows it (`TZ`, /etc/localtime): what classic syslog
//! timestamps are written in.

use std::cell::Cell;

use milter_manager::calendar::civil_from_days;
use milter_manager::tools::log_analyzer::LocalZone;

/// Every zone changes its offset on a quarter hour: one `mktime` per quarter hour of log
/// (log lines come in order, so the last one is remembered).
const SLOT: i64 = 900;

#[derive(Default)]
pub(crate) struct SystemZone {
    last: Cell<Option<(i64, i64)>>,
}

impl LocalZone for SystemZone {
    fn offset_at(&self, wall: i64) -> i64 {
        let slot = wall.div_euclid(SLOT);
        match self.last.get() {
            Some((cached, offset)) if cached == slot => offset,
            _ => {
                let offset = offset_of_wall_time(slot * SLOT).unwrap_or(0);
                self.last.set(Some((slot, offset)));
                offset
            }
        }
    }
}

/// The offset in force at local wall-clock time `wall`: `mktime` finds out whether
/// daylight saving time applies then. None for a time it cannot represent.
fn offset_of_wall_time(wall: i64) -> Option<i64> {
    let (year, month, day) = civil_from_days(wall.div_euclid(86_400));
    let seconds = wall.rem_euclid(86_400);
    let field = |value: i64| libc::c_int::try_from(value).ok();
    // SAFETY: all zeroes is a valid `tm` (the fields that matter are set below).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = field(year - 1900)?;
    tm.tm_mon = field(month - 1)?;
    tm.tm_mday = field(day)?;
    tm.tm_hour = field(seconds / 3600)?;
    tm.tm_min = field(seconds / 60 % 60)?;
    tm.tm_sec = field(seconds % 60)?;
    tm.tm_isdst = -1;
    // SAFETY: mktime reads and normalizes `tm`, which outlives the call.
    let time = unsafe { libc::mktime(&mut tm) };
    (time != -1).then_some(wall - time)
}
