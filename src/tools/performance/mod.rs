//! The pure parts of `milter-performance-check`: the mails it sends, how a session's end
//! is classified, the statistics over many sessions and the report. The binary does the
//! sockets and the threads.

mod auth;
mod mail;
mod milter;
mod outcome;
mod pace;
mod report;
mod smtp;
mod statistics;

pub use auth::{
    base64, choose_mechanism, cram_md5_response, offered_mechanisms, plain_response, AuthMap,
    AuthMapError, AuthMechanism, BadChallenge, Credentials, MechanismError,
};
pub use mail::{
    angle_address, generated_mail, mail_from_file, Envelope, EnvelopeOptions, Mail, ADDITIONAL_LINE,
};
pub use milter::{milter_outcome, milter_script};
pub use outcome::{ErrorKind, Failure, Outcome, SessionRecord};
pub use pace::{
    parse_period, statistics_data_line, utc_timestamp, NotADuration, Pace, STATISTICS_DATA_HEADER,
};
pub use report::{json_report, periodic_header, periodic_line, text_report, RunInfo};
pub use smtp::{
    dot_stuffed_data, offers, status_of_code, xclient_command, ReplyAssembler, SmtpReply,
    SmtpReplyError,
};
pub use statistics::{ErrorCount, FailureResponse, Latencies, StatusCount, Summary};
