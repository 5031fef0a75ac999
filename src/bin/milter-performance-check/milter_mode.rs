//! Milter mode: each session is one connection to the milter, driven through a whole
//! Postfix-like SMTP session by the test server's session logic.

use std::time::{Duration, Instant};

use milter_manager::spec::Spec;
use milter_manager::tools::performance::{
    milter_outcome, milter_script, ErrorKind, Failure, Mail, Outcome,
};
use milter_manager::tools::test_server::{Script, TestServerSession};

use crate::failure::kind_of;
use milter_manager::program::milter_connection::{drive, Connection, DriveError};
use milter_manager::program::ResolveError;

/// A milter and the sessions to run against it.
pub(crate) struct MilterTarget {
    spec: Spec,
    /// The spec's addresses, looked up once rather than per session.
    endpoints: Vec<workers::Endpoint>,
    /// One script per mail, used in turn.
    scripts: Vec<Script>,
    timeout: Duration,
}

impl MilterTarget {
    /// Looks up `spec`'s addresses; an error says why they cannot be found.
    pub(crate) fn new(
        spec: Spec,
        mails: &[Mail],
        helo_fqdn: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, ResolveError> {
        let endpoints = milter_manager::program::endpoints(&spec)?;
        let hostname = milter_manager::program::hostname();
        let scripts = mails
            .iter()
            .map(|mail| {
                let mut script = milter_script(mail, timeout, &hostname);
                if let Some(helo) = helo_fqdn {
                    script.helo_fqdn = Some(helo.as_bytes().to_vec());
                }
                script
            })
            .collect();
        Ok(Self { spec, endpoints, scripts, timeout })
    }

    pub(crate) fn description(&self) -> String {
        self.spec.to_string()
    }

    /// Session number `index`: connect, run the session, read how it ended.
    pub(crate) fn run_session(&self, index: usize) -> Result<Outcome, Failure> {
        let script = self.scripts[index % self.scripts.len()].clone();
        let mut connection = Connection::open_endpoints(&self.spec, &self.endpoints, self.timeout)
            .map_err(|error| Failure::new(ErrorKind::Connect, error.to_string()))?;
        connection
            .set_write_timeout(self.timeout)
            .map_err(|error| Failure::new(ErrorKind::Io, error.to_string()))?;
        let mut session = TestServerSession::new(script, Instant::now());
        // The readable reply log is for milter-test-server --verbose; drop it as it grows.
        drive(&mut session, &mut connection, |session| drop(session.take_log())).map_err(
            |error| match &error {
                DriveError::Write(io) | DriveError::Read(io) => {
                    Failure::new(kind_of(io), error.message_at(&self.spec))
                }
                DriveError::NoDeadline => {
                    Failure::new(ErrorKind::Protocol, error.message_at(&self.spec))
                }
            },
        )?;
        milter_outcome(&session)
    }
}
