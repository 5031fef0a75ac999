//! Holds the MTA's CONNECT back from the engine while the client is looked up in the
//! DNSBLs, so that "DNSBL Listed" and "Not DNSBL Listed" know the answer when the engine
//! asks them at connect, and no worker ever waits for DNS.
//!
//! The gate sits between the MTA's bytes and the engine. It follows the milter frames
//! without decoding them (only their lengths and command bytes), passes everything on at
//! once up to a CONNECT, and holds that frame and whatever follows it until the lookups are
//! done or their deadline passed. Then it sets the session's [`DnsblVerdict`] and lets the
//! held bytes through unchanged. Clients without an IPv4 address are not looked up.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use super::builtin::dnsbl::lookup_address;
use super::dnsbl_lookup::{DnsblSetup, Lookup, LookupAction};
use crate::protocol::{Command, DEFAULT_MAX_FRAME_DATA};

/// Whether a DNSBL lists the session's client: set by the gate before the engine sees
/// CONNECT, read by the DNSBL conditions. Not listed until a lookup says so.
#[derive(Debug, Clone, Default)]
pub struct DnsblVerdict(Rc<Cell<bool>>);

impl DnsblVerdict {
    pub fn is_listed(&self) -> bool {
        self.0.get()
    }

    pub fn set(&self, listed: bool) {
        self.0.set(listed);
    }
}

const HEADER_LEN: usize = 5;
const CONNECT: u8 = b'C';

/// Where the gate stands in the MTA's stream.
enum Scan {
    /// Reading a frame's length and command byte.
    Header(Vec<u8>),
    /// Passing on the rest of a frame.
    Data(usize),
    /// A CONNECT frame of this many bytes (header included) starts `held`.
    Holding(usize),
    /// The stream cannot be framed (a length of 0 or too large): everything goes on to
    /// the engine, which reports it.
    Off,
}

/// The gate of one session.
pub struct ConnectGate {
    setup: Rc<DnsblSetup>,
    verdict: DnsblVerdict,
    tag: u64,
    next_id: u16,
    scan: Scan,
    held: Vec<u8>,
    lookup: Option<Lookup>,
    to_engine: Vec<u8>,
    actions: VecDeque<LookupAction>,
}

impl ConnectGate {
    /// A gate writing to `verdict`; `tag` names the session in logs, `first_id` is the
    /// first DNS query id.
    pub fn new(setup: Rc<DnsblSetup>, verdict: DnsblVerdict, tag: u64, first_id: u16) -> Self {
        Self {
            setup,
            verdict,
            tag,
            next_id: first_id,
            scan: Scan::Header(Vec::new()),
            held: Vec::new(),
            lookup: None,
            to_engine: Vec::new(),
            actions: VecDeque::new(),
        }
    }

    /// Bytes from the MTA.
    pub fn push_mta(&mut self, mut bytes: &[u8], now: Instant) {
        while !bytes.is_empty() {
            match &mut self.scan {
                Scan::Off => {
                    self.to_engine.extend_from_slice(bytes);
                    return;
                }
                Scan::Holding(_) => {
                    self.held.extend_from_slice(bytes);
                    self.check_held(now);
                    return;
                }
                Scan::Data(remaining) => {
                    let n = (*remaining).min(bytes.len());
                    self.to_engine.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    *remaining -= n;
                    if *remaining == 0 {
                        self.scan = Scan::Header(Vec::new());
                    }
                }
                Scan::Header(header) => {
                    let n = (HEADER_LEN - header.len()).min(bytes.len());
                    header.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if header.len() == HEADER_LEN {
                        let header = std::mem::take(header);
                        self.on_header(header);
                    }
                }
            }
        }
    }

    fn on_header(&mut self, header: Vec<u8>) {
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if length == 0 || length - 1 > DEFAULT_MAX_FRAME_DATA {
            self.to_engine.extend(header);
            self.scan = Scan::Off;
        } else if header[4] == CONNECT {
            self.held = header;
            self.scan = Scan::Holding(4 + length);
        } else {
            self.to_engine.extend(header);
            self.scan = if length == 1 { Scan::Header(Vec::new()) } else { Scan::Data(length - 1) };
        }
    }

    /// With the whole CONNECT held: starts its lookups, or lets it through when there is
    /// nothing to look up or the lookups are done.
    fn check_held(&mut self, now: Instant) {
        let Scan::Holding(frame_len) = self.scan else { return };
        if self.held.len() < frame_len {
            return;
        }
        if self.lookup.is_none() {
            let client = match Command::decode(CONNECT, &self.held[HEADER_LEN..frame_len]) {
                Ok(Command::Connect { address, .. }) => lookup_address(&address),
                // The engine reports a broken CONNECT.
                _ => None,
            };
            let Some(client) = client else {
                log::debug!("[{}] [dnsbl] no IPv4 client to look up: not listed", self.tag);
                return self.release(false, now);
            };
            let lookup = Lookup::start(&self.setup, client, self.next_id, now);
            // Ids only tell this session's queries apart: they wrap.
            let used = u16::try_from(self.setup.services.len()).unwrap_or(u16::MAX);
            self.next_id = self.next_id.wrapping_add(used);
            self.lookup = Some(lookup);
            self.take_actions();
        }
        let Some(lookup) = &self.lookup else { return };
        if lookup.is_done() {
            let listed = lookup.is_listed();
            self.report();
            self.release(listed, now);
        }
    }

    /// Logs what the lookups found: a listing, and failures once per session.
    fn report(&self) {
        let Some(lookup) = &self.lookup else { return };
        let (tag, client) = (self.tag, lookup.client());
        let listed_by = lookup.listed_by();
        if !listed_by.is_empty() {
            log::info!("[{tag}] [dnsbl] {client} is listed by {}", listed_by.join(", "));
        } else if let Some(failures) = lookup.failures() {
            log::warn!("[{tag}] [dnsbl] {client} counts as not listed by {failures}");
        } else {
            log::debug!("[{tag}] [dnsbl] {client} is not listed");
        }
    }

    /// Sets the verdict and lets the CONNECT through, then goes on with what followed it.
    fn release(&mut self, listed: bool, now: Instant) {
        let Scan::Holding(frame_len) = self.scan else { return };
        self.verdict.set(listed);
        self.lookup = None;
        let held = std::mem::take(&mut self.held);
        self.to_engine.extend_from_slice(&held[..frame_len]);
        self.scan = Scan::Header(Vec::new());
        self.push_mta(&held[frame_len..], now);
    }

    fn take_actions(&mut self) {
        if let Some(lookup) = &mut self.lookup {
            self.actions.extend(std::iter::from_fn(|| lookup.poll_action()));
        }
    }

    /// Runs `work` on the running lookup, then releases the CONNECT if it is done.
    fn with_lookup(&mut self, now: Instant, work: impl FnOnce(&mut Lookup)) {
        if let Some(lookup) = &mut self.lookup {
            work(lookup);
            self.take_actions();
            self.check_held(now);
        }
    }

    /// The connection to the name server is established or failed.
    pub fn handle_dns_connected(&mut self, result: std::io::Result<()>, now: Instant) {
        self.with_lookup(now, |lookup| lookup.handle_connected(result));
    }

    /// Bytes from the name server.
    pub fn handle_dns_data(&mut self, bytes: &[u8], now: Instant) {
        self.with_lookup(now, |lookup| lookup.handle_data(bytes));
    }

    /// The name server's connection closed or failed.
    pub fn handle_dns_closed(&mut self, error: Option<String>, now: Instant) {
        self.with_lookup(now, |lookup| lookup.handle_closed(error));
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.with_lookup(now, |lookup| lookup.handle_timeout(now));
    }

    /// The MTA left: what is held will never be needed.
    pub fn handle_mta_closed(&mut self) {
        if let Some(lookup) = &mut self.lookup {
            lookup.abandon();
        }
        self.take_actions();
        self.lookup = None;
        self.held.clear();
        self.scan = Scan::Off;
    }

    /// The MTA's bytes held back while its client is looked up.
    pub fn held_bytes(&self) -> usize {
        self.held.len()
    }

    /// Bytes the engine may have now.
    pub fn take_for_engine(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.to_engine)
    }

    /// What the name server connection needs.
    pub fn poll_action(&mut self) -> Option<LookupAction> {
        self.actions.pop_front()
    }

    /// When the running lookups give up.
    pub fn deadline(&self) -> Option<Instant> {
        self.lookup.as_ref().and_then(Lookup::deadline)
    }

    /// Whether a CONNECT is held back.
    pub fn is_holding(&self) -> bool {
        matches!(self.scan, Scan::Holding(_))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::conditions::builtin::dnsbl::DnsblService;
    use crate::conditions::dns_test_support;
    use crate::protocol::{encode_frame, ConnectAddress};

    const SERVER: &str = "192.0.2.53:53";

    fn gate() -> (ConnectGate, DnsblVerdict) {
        let setup = DnsblSetup {
            services: vec![DnsblService::parse("bl.example", None).unwrap()],
            name_servers: vec![SERVER.parse::<SocketAddr>().unwrap()],
            timeout: Duration::from_secs(5),
        };
        let verdict = DnsblVerdict::default();
        (ConnectGate::new(Rc::new(setup), verdict.clone(), 1, 40), verdict)
    }

    fn frame(code: u8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, code, |d| d.extend_from_slice(data));
        out
    }

    fn connect(address: ConnectAddress) -> Vec<u8> {
        let command = Command::Connect { hostname: b"client.example".to_vec(), address };
        let mut out = Vec::new();
        command.encode(&mut out);
        out
    }

    fn inet(text: &str) -> ConnectAddress {
        ConnectAddress::Inet { port: 25, address: text.as_bytes().to_vec() }
    }

    /// The framed DNS answer to the framed query in `sent`: 127.0.0.2, or NXDOMAIN.
    fn answer(sent: &[u8], listed: bool) -> Vec<u8> {
        let addresses: &[[u8; 4]] = if listed { &[dns_test_support::LISTED] } else { &[] };
        dns_test_support::answer(&sent[2..], addresses)
    }

    fn actions(gate: &mut ConnectGate) -> Vec<LookupAction> {
        std::iter::from_fn(|| gate.poll_action()).collect()
    }

    fn sent(actions: &[LookupAction]) -> Vec<u8> {
        match actions {
            [LookupAction::Connect(server), LookupAction::Send(bytes)] => {
                assert_eq!(*server, SERVER.parse::<SocketAddr>().unwrap());
                bytes.clone()
            }
            other => panic!("expected a connect and a send, got {other:?}"),
        }
    }

    #[test]
    fn connect_is_held_until_the_answer_and_then_passed_unchanged() {
        let (mut gate, verdict) = gate();
        let now = Instant::now();
        let negotiate = frame(b'O', &[0, 0, 0, 6, 0, 0, 0, 0x7f, 0, 0, 0, 0]);
        let macros = frame(b'D', b"C{daemon_name}\0mx\0");
        let connect = connect(inet("192.0.2.2"));
        let helo = frame(b'H', b"client.example\0");
        gate.push_mta(&negotiate, now);
        assert_eq!(gate.take_for_engine(), negotiate);
        // Macros and CONNECT in one read, then HELO piece by piece.
        gate.push_mta(&[macros.clone(), connect.clone()].concat(), now);
        assert_eq!(gate.take_for_engine(), macros);
        assert!(gate.is_holding());
        let query = sent(&actions(&mut gate));
        assert_eq!(&query[2..4], &40u16.to_be_bytes());
        assert!(query.windows(11).any(|w| w == b"\x02bl\x07example"), "{query:?}");
        for byte in &helo {
            gate.push_mta(&[*byte], now);
        }
        assert_eq!(gate.take_for_engine(), b"");
        assert_eq!(gate.deadline(), Some(now + Duration::from_secs(5)));
        gate.handle_dns_connected(Ok(()), now);
        let reply = answer(&query, true);
        gate.handle_dns_data(&reply[..3], now);
        assert!(gate.is_holding());
        gate.handle_dns_data(&reply[3..], now);
        assert!(!gate.is_holding() && verdict.is_listed());
        assert_eq!(gate.take_for_engine(), [connect, helo].concat());
        assert_eq!(actions(&mut gate), [LookupAction::Close]);
        assert_eq!(gate.deadline(), None);
        // Later frames pass at once.
        let mail = frame(b'M', b"<a@example.org>\0");
        gate.push_mta(&mail, now);
        assert_eq!(gate.take_for_engine(), mail);
    }

    #[test]
    fn a_timeout_lets_connect_through_as_not_listed() {
        let (mut gate, verdict) = gate();
        let now = Instant::now();
        verdict.set(true); // from an earlier connection of the same session
        let connect = connect(inet("192.0.2.9"));
        gate.push_mta(&connect, now);
        sent(&actions(&mut gate));
        gate.handle_timeout(now + Duration::from_secs(1));
        assert!(gate.is_holding());
        gate.handle_timeout(now + Duration::from_secs(5));
        assert!(!gate.is_holding() && !verdict.is_listed());
        assert_eq!(gate.take_for_engine(), connect);
        assert_eq!(actions(&mut gate), [LookupAction::Close]);
    }

    #[test]
    fn clients_without_an_ipv4_address_are_not_looked_up() {
        let now = Instant::now();
        for address in [
            inet("2001:db8::1"),
            ConnectAddress::Inet6 { port: 25, address: b"2001:db8::1".to_vec() },
            ConnectAddress::Unix { port: 0, path: b"/run/smtpd".to_vec() },
            ConnectAddress::Unknown,
            inet("not an address"),
        ] {
            let (mut gate, verdict) = gate();
            verdict.set(true);
            let connect = connect(address.clone());
            gate.push_mta(&connect, now);
            assert_eq!(gate.take_for_engine(), connect, "{address:?}");
            assert!(actions(&mut gate).is_empty() && !verdict.is_listed());
        }
    }

    #[test]
    fn a_second_connect_after_quit_new_connection_is_looked_up_again() {
        let (mut gate, verdict) = gate();
        let now = Instant::now();
        let first = connect(inet("192.0.2.2"));
        let quit_nc = frame(b'K', b"");
        let second = connect(inet("192.0.2.3"));
        gate.push_mta(&first, now);
        let query = sent(&actions(&mut gate));
        gate.push_mta(&[quit_nc.clone(), second.clone()].concat(), now);
        gate.handle_dns_data(&answer(&query, true), now);
        assert!(verdict.is_listed());
        assert_eq!(gate.take_for_engine(), [first, quit_nc].concat());
        let out = actions(&mut gate);
        assert_eq!(out[0], LookupAction::Close);
        let query = sent(&out[1..]);
        assert_eq!(&query[2..4], &41u16.to_be_bytes(), "a fresh id");
        gate.handle_dns_data(&answer(&query, false), now);
        assert!(!verdict.is_listed());
        assert_eq!(gate.take_for_engine(), second);
    }

    #[test]
    fn a_broken_stream_goes_to_the_engine_unchanged() {
        let now = Instant::now();
        for bytes in [vec![0, 0, 0, 0, b'C', 1, 2], vec![0x7f, 0, 0, 0, b'C'], frame(b'C', b"x")] {
            let (mut gate, _) = gate();
            gate.push_mta(&bytes, now);
            assert_eq!(gate.take_for_engine(), bytes);
            assert!(actions(&mut gate).is_empty());
        }
    }

    #[test]
    fn the_mta_leaving_drops_what_is_held_and_closes_the_lookup() {
        let (mut gate, _) = gate();
        let now = Instant::now();
        gate.push_mta(&connect(inet("192.0.2.2")), now);
        sent(&actions(&mut gate));
        gate.handle_mta_closed();
        assert_eq!(actions(&mut gate), [LookupAction::Close]);
        assert_eq!(gate.take_for_engine(), b"");
        assert_eq!(gate.deadline(), None);
    }
}
