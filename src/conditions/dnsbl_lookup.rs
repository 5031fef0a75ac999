//! The DNSBL lookups of one client, without the network: DNS over TCP (RFC 7766) to the
//! configured name servers. Every zone's query goes out at once, pipelined on one
//! connection, and the answers are matched to the queries by id, in whatever order they
//! come. A name server that cannot be reached or hangs up before answering everything
//! hands the unanswered queries to the next one. At the deadline, what has not been
//! answered counts as not listed.
//!
//! TCP rather than UDP: the workers' runtime already opens, writes and times out TCP
//! connections for the child milters, an answer cannot be truncated, and a forged answer
//! would have to join a connection rather than race for a port. On a local resolver the
//! extra round trip of the handshake is negligible next to the lists' own latency.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::builtin::dnsbl::{encode_query, parse_response, query_name, DnsblService, Listing};
use super::DnsError;

/// What the DNSBL conditions of a configuration ask, and whom.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsblSetup {
    pub services: Vec<DnsblService>,
    pub name_servers: Vec<SocketAddr>,
    pub timeout: Duration,
}

/// What a lookup asks the runtime to do with its one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupAction {
    /// Open a TCP connection to this name server (only after the previous one is closed).
    Connect(SocketAddr),
    /// Write these bytes on it (queued until it is established).
    Send(Vec<u8>),
    /// Close it.
    Close,
}

struct Query {
    zone: String,
    id: u16,
    answer: Option<Result<Listing, DnsError>>,
}

/// The lookups of one client address in every zone of a [`DnsblSetup`].
pub struct Lookup {
    client: Ipv4Addr,
    queries: Vec<Query>,
    /// The queries as sent: each with DNS-over-TCP's two-byte length in front.
    packets: Vec<Vec<u8>>,
    services: Vec<DnsblService>,
    servers: Vec<SocketAddr>,
    /// The server being asked, an index into `servers`.
    server: usize,
    timeout: Duration,
    deadline: Instant,
    open: bool,
    /// Bytes read on the connection, not yet a whole message.
    inbox: Vec<u8>,
    actions: VecDeque<LookupAction>,
    /// Why some answers are missing: name servers that failed, the deadline.
    problems: Vec<String>,
    done: bool,
}

impl Lookup {
    /// Starts the lookups of `client`; the queries get ids from `first_id` on.
    pub fn start(setup: &DnsblSetup, client: Ipv4Addr, first_id: u16, now: Instant) -> Self {
        let mut queries = Vec::new();
        let mut packets = Vec::new();
        let mut id = first_id;
        for service in &setup.services {
            let name = query_name(client.into(), &service.zone);
            let answer = match encode_query(id, &name) {
                Ok(packet) => {
                    // A query is at most 12 + 255 + 4 bytes: its length fits.
                    let length = u16::try_from(packet.len()).unwrap_or(u16::MAX);
                    let mut framed = length.to_be_bytes().to_vec();
                    framed.extend(packet);
                    packets.push(framed);
                    None
                }
                Err(error) => {
                    packets.push(Vec::new());
                    Some(Err(error))
                }
            };
            queries.push(Query { zone: service.zone.clone(), id, answer });
            id = id.wrapping_add(1);
        }
        let mut lookup = Self {
            client,
            queries,
            packets,
            services: setup.services.clone(),
            servers: setup.name_servers.clone(),
            server: 0,
            timeout: setup.timeout,
            deadline: now + setup.timeout,
            open: false,
            inbox: Vec::new(),
            actions: VecDeque::new(),
            problems: Vec::new(),
            done: false,
        };
        if lookup.queries.iter().all(|q| q.answer.is_some()) {
            lookup.finish();
        } else if lookup.servers.is_empty() {
            lookup.problems.push("no name server is configured".into());
            lookup.finish();
        } else {
            lookup.ask_current_server();
        }
        lookup
    }

    pub fn client(&self) -> Ipv4Addr {
        self.client
    }

    fn ask_current_server(&mut self) {
        let mut bytes = Vec::new();
        for (query, packet) in self.queries.iter().zip(&self.packets) {
            if query.answer.is_none() {
                bytes.extend_from_slice(packet);
            }
        }
        self.inbox.clear();
        self.open = true;
        self.actions.push_back(LookupAction::Connect(self.servers[self.server]));
        self.actions.push_back(LookupAction::Send(bytes));
    }

    /// The current name server failed: the next one gets the unanswered queries.
    fn server_failed(&mut self, why: String) {
        self.problems.push(format!("name server {}: {why}", self.servers[self.server]));
        self.server += 1;
        if self.server < self.servers.len() {
            self.ask_current_server();
        } else {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if self.open {
            self.open = false;
            self.actions.push_back(LookupAction::Close);
        }
        self.done = true;
    }

    /// Done once every query is answered or one service lists the client: the other
    /// answers cannot change the verdict.
    fn finish_if_decided(&mut self) {
        let answered = self.queries.iter().all(|q| q.answer.is_some());
        if !self.done && (answered || self.is_listed()) {
            self.finish();
        }
    }

    /// The connection to the name server is established or failed.
    pub fn handle_connected(&mut self, result: std::io::Result<()>) {
        if let Err(error) = result {
            if self.open && !self.done {
                self.open = false;
                self.server_failed(format!("cannot connect: {error}"));
            }
        }
    }

    /// Bytes from the name server.
    pub fn handle_data(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        self.inbox.extend_from_slice(bytes);
        while self.inbox.len() >= 2 {
            let length = usize::from(u16::from_be_bytes([self.inbox[0], self.inbox[1]]));
            if self.inbox.len() < 2 + length {
                break;
            }
            let message: Vec<u8> = self.inbox.drain(..2 + length).skip(2).collect();
            self.on_message(&message);
        }
        self.finish_if_decided();
    }

    fn on_message(&mut self, message: &[u8]) {
        let Some(id) = message.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            log::debug!("[dnsbl] a DNS message of {} bytes: ignored", message.len());
            return;
        };
        let Some(query) = self.queries.iter_mut().find(|q| q.id == id && q.answer.is_none()) else {
            // Not ours, or a second answer: the deadline covers whatever stays unanswered.
            log::debug!("[dnsbl] a DNS answer for id {id}, which is not waited for: ignored");
            return;
        };
        query.answer = Some(parse_response(id, message));
    }

    /// The name server closed the connection (`error`: why, if it failed).
    pub fn handle_closed(&mut self, error: Option<String>) {
        if !self.open || self.done {
            return;
        }
        self.open = false;
        let why = match error {
            Some(error) => format!("connection failed: {error}"),
            None => "closed the connection before answering".to_string(),
        };
        self.server_failed(why);
    }

    /// Ends the lookups at their deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.done && now >= self.deadline {
            self.problems.push(format!("no answer within {}", seconds(self.timeout)));
            self.finish();
        }
    }

    /// Ends the lookups before their time (the MTA left).
    pub fn abandon(&mut self) {
        if !self.done {
            self.finish();
        }
    }

    pub fn poll_action(&mut self) -> Option<LookupAction> {
        self.actions.pop_front()
    }

    /// When the lookups give up, while they run.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.done).then_some(self.deadline)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether a service lists the client with one of its expected answers.
    pub fn is_listed(&self) -> bool {
        !self.listed_by().is_empty()
    }

    /// The services that list the client, with their answers: `bl.example (127.0.0.2)`.
    pub fn listed_by(&self) -> Vec<String> {
        let mut listed = Vec::new();
        for (query, service) in self.queries.iter().zip(&self.services) {
            if let Some(Ok(listing @ Listing::Listed(answers))) = &query.answer {
                if listing.is_listed_for(service.expected) {
                    let answers: Vec<String> = answers.iter().map(|a| a.to_string()).collect();
                    listed.push(format!("{} ({})", query.zone, answers.join(", ")));
                }
            }
        }
        listed
    }

    /// Why some services could not say, one line: the zones without a usable answer and
    /// the reasons. `None` when every service answered.
    pub fn failures(&self) -> Option<String> {
        let mut parts = Vec::new();
        let unanswered: Vec<&str> =
            self.queries.iter().filter(|q| q.answer.is_none()).map(|q| q.zone.as_str()).collect();
        if !unanswered.is_empty() {
            parts.push(format!("{}: {}", unanswered.join(", "), self.problems.join("; ")));
        }
        for query in &self.queries {
            if let Some(Err(error)) = &query.answer {
                parts.push(format!("{}: {error}", query.zone));
            }
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::dns_test_support::{answer, messages, question, LISTED};

    fn setup(zones: &[(&str, Option<&str>)], servers: &[&str]) -> DnsblSetup {
        DnsblSetup {
            services: zones.iter().map(|(z, e)| DnsblService::parse(z, *e).unwrap()).collect(),
            name_servers: servers.iter().map(|s| s.parse().unwrap()).collect(),
            timeout: Duration::from_secs(5),
        }
    }

    fn actions(lookup: &mut Lookup) -> Vec<LookupAction> {
        std::iter::from_fn(|| lookup.poll_action()).collect()
    }

    fn sent_queries(actions: &[LookupAction]) -> Vec<Vec<u8>> {
        actions
            .iter()
            .filter_map(|a| match a {
                LookupAction::Send(bytes) => Some(messages(bytes)),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn every_zone_is_asked_at_once_on_one_connection() {
        let setup = setup(&[("a.example", None), ("b.example", None)], &["192.0.2.53:53"]);
        let now = Instant::now();
        let mut lookup = Lookup::start(&setup, [192, 0, 2, 1].into(), 100, now);
        let out = actions(&mut lookup);
        assert_eq!(out[0], LookupAction::Connect("192.0.2.53:53".parse().unwrap()));
        assert_eq!(out.len(), 2, "{out:?}");
        let queries = sent_queries(&out);
        let names: Vec<String> = queries.iter().map(|q| question(q)).collect();
        assert_eq!(names, ["1.2.0.192.a.example", "1.2.0.192.b.example"]);
        assert_eq!(&queries[1][..2], &101u16.to_be_bytes());
        assert_eq!(lookup.deadline(), Some(now + Duration::from_secs(5)));

        // Answers out of order, the second split across reads.
        lookup.handle_connected(Ok(()));
        lookup.handle_data(&answer(&queries[1], &[]));
        assert!(!lookup.is_done());
        let first = answer(&queries[0], &[]);
        lookup.handle_data(&first[..5]);
        assert!(!lookup.is_done());
        lookup.handle_data(&first[5..]);
        assert!(lookup.is_done() && !lookup.is_listed());
        assert_eq!(lookup.failures(), None);
        assert_eq!(actions(&mut lookup), [LookupAction::Close]);
        assert_eq!(lookup.deadline(), None);
    }

    #[test]
    fn one_listing_decides_at_once() {
        let setup = setup(&[("a.example", None), ("b.example", None)], &["192.0.2.53:53"]);
        let mut lookup = Lookup::start(&setup, [192, 0, 2, 2].into(), 7, Instant::now());
        let queries = sent_queries(&actions(&mut lookup));
        lookup.handle_data(&answer(&queries[1], &[LISTED]));
        assert!(lookup.is_done() && lookup.is_listed());
        assert_eq!(lookup.listed_by(), ["b.example (127.0.0.2)"]);
        assert_eq!(actions(&mut lookup), [LookupAction::Close]);
        // A late answer changes nothing.
        lookup.handle_data(&answer(&queries[0], &[]));
        assert_eq!(lookup.listed_by(), ["b.example (127.0.0.2)"]);
    }

    #[test]
    fn an_answer_other_than_the_expected_one_does_not_list() {
        let setup = setup(&[("zen.example", Some("127.0.0.10/31"))], &["192.0.2.53:53"]);
        let mut lookup = Lookup::start(&setup, [192, 0, 2, 2].into(), 7, Instant::now());
        let queries = sent_queries(&actions(&mut lookup));
        lookup.handle_data(&answer(&queries[0], &[LISTED]));
        assert!(lookup.is_done() && !lookup.is_listed());
        assert_eq!(lookup.failures(), None);

        let mut lookup = Lookup::start(&setup, [192, 0, 2, 2].into(), 7, Instant::now());
        let queries = sent_queries(&actions(&mut lookup));
        lookup.handle_data(&answer(&queries[0], &[[127, 0, 0, 11]]));
        assert!(lookup.is_listed());
    }

    #[test]
    fn the_deadline_ends_the_lookups_as_not_listed() {
        let setup = setup(&[("a.example", None), ("b.example", None)], &["192.0.2.53:53"]);
        let now = Instant::now();
        let mut lookup = Lookup::start(&setup, [192, 0, 2, 1].into(), 1, now);
        let queries = sent_queries(&actions(&mut lookup));
        lookup.handle_data(&answer(&queries[0], &[]));
        lookup.handle_timeout(now + Duration::from_secs(4));
        assert!(!lookup.is_done());
        lookup.handle_timeout(now + Duration::from_secs(5));
        assert!(lookup.is_done() && !lookup.is_listed());
        assert_eq!(actions(&mut lookup), [LookupAction::Close]);
        assert_eq!(lookup.failures().unwrap(), "b.example: no answer within 5 s");
    }

    #[test]
    fn a_foreign_id_is_ignored_and_a_garbled_answer_does_not_list() {
        let setup = setup(&[("a.example", None), ("b.example", None)], &["192.0.2.53:53"]);
        let mut lookup = Lookup::start(&setup, [192, 0, 2, 1].into(), 1, Instant::now());
        let queries = sent_queries(&actions(&mut lookup));
        let mut foreign = answer(&queries[0], &[LISTED]);
        foreign[2..4].copy_from_slice(&999u16.to_be_bytes());
        lookup.handle_data(&foreign);
        assert!(!lookup.is_done() && !lookup.is_listed());
        // The first answer cut short inside its record: a framed message, but broken.
        let full = answer(&queries[0], &[LISTED]);
        let mut cut = full[..full.len() - 3].to_vec();
        let length = u16::try_from(cut.len() - 2).unwrap();
        cut[..2].copy_from_slice(&length.to_be_bytes());
        lookup.handle_data(&cut);
        lookup.handle_data(&[0, 1]); // too short even for an id: ignored once complete
        lookup.handle_data(&[9]);
        assert!(!lookup.is_done());
        lookup.handle_data(&answer(&queries[1], &[]));
        assert!(lookup.is_done() && !lookup.is_listed());
        let failures = lookup.failures().unwrap();
        assert!(failures.starts_with("a.example: DNS answer truncated"), "{failures}");
    }

    #[test]
    fn a_failing_name_server_hands_the_unanswered_queries_to_the_next() {
        let setup = setup(
            &[("a.example", None), ("b.example", None)],
            &["192.0.2.53:53", "192.0.2.54:5353"],
        );
        let mut lookup = Lookup::start(&setup, [192, 0, 2, 1].into(), 1, Instant::now());
        let queries = sent_queries(&actions(&mut lookup));
        lookup.handle_connected(Ok(()));
        lookup.handle_data(&answer(&queries[0], &[]));
        lookup.handle_closed(None);
        let out = actions(&mut lookup);
        assert_eq!(out[0], LookupAction::Connect("192.0.2.54:5353".parse().unwrap()));
        let resent = sent_queries(&out);
        assert_eq!(resent, [queries[1].clone()], "only the unanswered query");
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        lookup.handle_connected(Err(refused));
        assert!(lookup.is_done() && !lookup.is_listed());
        assert_eq!(actions(&mut lookup), [], "nothing is open to close");
        let failures = lookup.failures().unwrap();
        assert_eq!(
            failures,
            "b.example: name server 192.0.2.53:53: closed the connection before answering; \
             name server 192.0.2.54:5353: cannot connect: Connection refused"
        );
    }

    #[test]
    fn without_name_servers_or_services_nothing_is_asked() {
        let no_servers = setup(&[("a.example", None)], &[]);
        let mut lookup = Lookup::start(&no_servers, [192, 0, 2, 1].into(), 1, Instant::now());
        assert!(lookup.is_done() && !lookup.is_listed());
        assert_eq!(actions(&mut lookup), []);
        assert_eq!(lookup.failures().unwrap(), "a.example: no name server is configured");

        let no_services = setup(&[], &["192.0.2.53:53"]);
        let mut lookup = Lookup::start(&no_services, [192, 0, 2, 1].into(), 1, Instant::now());
        assert!(lookup.is_done() && !lookup.is_listed());
        assert_eq!(actions(&mut lookup), []);
        assert_eq!(lookup.failures(), None);
    }

    #[test]
    fn abandoning_closes_the_connection() {
        let setup = setup(&[("a.example", None)], &["192.0.2.53:53"]);
        let mut lookup = Lookup::start(&setup, [192, 0, 2, 1].into(), 1, Instant::now());
        actions(&mut lookup);
        lookup.abandon();
        assert!(lookup.is_done());
        assert_eq!(actions(&mut lookup), [LookupAction::Close]);
    }
}
