//! The `D` packets: which macros the simulated MTA defines before each event.

use super::TestServerSession;
use crate::protocol::{Command, ConnectAddress, MacroStage};

impl TestServerSession {
    /// Sends the `D` packet for `command`, as Postfix does: before every event, even one
    /// the milter asked not to receive, with only the macros that have a value.
    pub(super) fn send_macros(&mut self, command: &Command) {
        let stage = command.code();
        let mut macros = self.default_macros(command);
        for (extra_stage, name, value) in &self.script.extra_macros {
            if *extra_stage == stage {
                macros.retain(|(n, _)| n != name);
                macros.push((name.clone(), value.clone()));
            }
        }
        if let Some(requested) = self.requested_macros(stage) {
            macros.retain(|(name, _)| requested.iter().any(|r| same_macro(r, name)));
        }
        Command::DefineMacros { stage, macros }.encode(&mut self.output);
    }

    /// The milter's symbol list for the stage of `stage`, if it sent one.
    fn requested_macros(&self, stage: u8) -> Option<Vec<Vec<u8>>> {
        let negotiated = self.negotiated.as_ref()?;
        let stage = MacroStage::ALL.into_iter().find(|s| s.command_code() == stage)?;
        negotiated
            .requested_macros(stage)
            .map(|names| names.into_iter().map(<[u8]>::to_vec).collect())
    }

    fn queue_id(&self) -> Vec<u8> {
        format!("4Q{:08X}", self.messages.len() + 1).into_bytes()
    }

    fn default_macros(&self, command: &Command) -> Vec<(Vec<u8>, Vec<u8>)> {
        let pair = |n: &str, v: &[u8]| (n.as_bytes().to_vec(), v.to_vec());
        let in_message = |m: &mut Vec<(Vec<u8>, Vec<u8>)>| m.push(pair("i", &self.queue_id()));
        let mut macros = Vec::new();
        match command {
            Command::Connect { hostname, address } => {
                macros.push(pair("j", self.script.mta_hostname.as_bytes()));
                macros.push(pair("{daemon_name}", self.script.daemon_name.as_bytes()));
                macros.push(pair("v", b"milter-test-server"));
                let client_address = match address {
                    ConnectAddress::Inet { address, .. }
                    | ConnectAddress::Inet6 { address, .. } => address.clone(),
                    _ => b"unknown".to_vec(),
                };
                let underscore = [hostname.as_slice(), b" [", &client_address, b"]"].concat();
                macros.push(pair("_", &underscore));
            }
            Command::EnvelopeFrom { address, .. } => {
                for (name, value) in [
                    ("{auth_type}", &self.script.auth_type),
                    ("{auth_authen}", &self.script.auth_name),
                    ("{auth_author}", &self.script.auth_author),
                ] {
                    if let Some(value) = value {
                        macros.push(pair(name, value));
                    }
                }
                let bare = strip_angles(address);
                macros.push(pair("{mail_addr}", bare));
            }
            Command::EnvelopeRecipient { address, .. } => {
                in_message(&mut macros);
                let bare = strip_angles(address);
                let host =
                    bare.iter().rposition(|&b| b == b'@').map_or(&b""[..], |at| &bare[at + 1..]);
                macros.push(pair("{rcpt_addr}", bare));
                macros.push(pair("{rcpt_host}", host));
                macros.push(pair("{rcpt_mailer}", b"smtp"));
            }
            Command::Data
            | Command::Header { .. }
            | Command::EndOfHeader
            | Command::Body { .. }
            | Command::EndOfMessage { .. } => in_message(&mut macros),
            _ => {}
        }
        macros
    }
}

fn strip_angles(address: &[u8]) -> &[u8] {
    let address = address.strip_prefix(b"<").unwrap_or(address);
    address.strip_suffix(b">").unwrap_or(address)
}

fn same_macro(a: &[u8], b: &[u8]) -> bool {
    let bare = |x: &[u8]| -> Vec<u8> {
        let x = x.strip_prefix(b"{").unwrap_or(x);
        x.strip_suffix(b"}").unwrap_or(x).to_vec()
    };
    bare(a) == bare(b)
}
