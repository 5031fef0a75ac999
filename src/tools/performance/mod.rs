//! The pure parts of `milter-performance-check`: the mails it sends, how a session's end
//! is classified, the statistics over many sessions and the report. The binary does the
//! sockets and the threads.

mod mail;
mod milter;
mod outcome;
mod report;
mod smtp;
mod statistics;

pub use mail::{angle_address, generated_mail, mail_from_file, Envelope, Mail};
pub use milter::{milter_outcome, milter_script};
pub use outcome::{ErrorKind, Failure, Outcome, SessionRecord};
pub use report::{json_report, text_report, RunInfo};
pub use smtp::{dot_stuffed_data, status_of_code, ReplyAssembler, SmtpReply, SmtpReplyError};
pub use statistics::{ErrorCount, Latencies, StatusCount, Summary};
