//! The built-in conditions by name, made from the configuration's settings, and what each
//! does at each event.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::builtin::remote_network::RemoteNetwork;
use super::builtin::restrict_accounts::{RestrictAccounts, RestrictState};
use super::builtin::s25r::{HostMatcher, S25r};
use super::builtin::trust::{Trust, TRUSTED_DOMAIN_MACRO, TRUSTED_VALUE};
use super::builtin::{dnsbl, sendmail_compatible, stress};
use super::connect_gate::DnsblVerdict;
use super::dnsbl_lookup::DnsblSetup;
use super::inputs::ConditionInputs;
use super::script::ScriptFn;
use super::set::{ConditionError, SessionCount};
use crate::engine::{Context, Event, MacroList};

/// Every built-in condition: its name and what it does.
pub const CATALOG: [(&str, &str); 11] = [
    ("S25R", "Selective SMTP Rejection: only clients whose host name looks dynamic"),
    ("Remote Network", "Only clients outside the local network"),
    ("Authenticated", "Only senders who authenticated (SMTP AUTH)"),
    ("Unauthenticated", "Only senders who did not authenticate"),
    ("Sendmail Compatible", "Gives Postfix sessions the macros Sendmail-only milters need"),
    ("Stress Notify", "Sets {stress}=yes when the manager is stressed"),
    ("No Stress", "Only when the manager is not stressed"),
    ("Trust", "Sets {trusted_domain}=yes for senders of trusted domains"),
    ("DNSBL Listed", "Only clients that a DNS blocklist of [dnsbl] lists"),
    ("Not DNSBL Listed", "Only clients that no DNS blocklist of [dnsbl] lists"),
    ("Restrict Accounts", "Only mail whose recipients are all in restrict_accounts.accounts"),
];

/// Other names of built-in conditions: the manual writes "Authentication" and
/// "Unauthentication" where the original's code defines "Authenticated" and
/// "Unauthenticated"; configurations written after either must work.
pub const ALIASES: [(&str, &str); 2] =
    [("Authentication", "Authenticated"), ("Unauthentication", "Unauthenticated")];

/// The built-in condition `name` stands for, by its name or an alias.
pub fn builtin_name(name: &str) -> Option<&'static str> {
    CATALOG
        .iter()
        .map(|(builtin, _)| *builtin)
        .find(|builtin| *builtin == name)
        .or_else(|| ALIASES.iter().find(|(alias, _)| *alias == name).map(|(_, builtin)| *builtin))
}

/// A built-in condition with its settings.
pub(super) enum Shipped {
    S25r(S25r),
    RemoteNetwork(RemoteNetwork),
    Authentication,
    Unauthentication,
    SendmailCompatible,
    /// With the number of sessions from which the manager is stressed (0: never).
    StressNotify(u32),
    NoStress(u32),
    Trust(Trust),
    /// The lookups are made by the connect gate, which sets the session's verdict.
    DnsblListed,
    NotDnsblListed,
    RestrictAccounts(RestrictAccounts),
}

/// Per child and session: what a built-in must remember between events.
#[derive(Debug, Clone, Default)]
pub(super) struct ShippedState {
    restrict: RestrictState,
}

fn error(inputs: &ConditionInputs<'_>, key: &str, message: impl ToString) -> ConditionError {
    let message = message.to_string();
    ConditionError { origin: (inputs.origin_of)(key), key: key.to_string(), message }
}

/// A Rhai host matcher: an error counts as "no match", and is logged.
fn script_matcher(function: &ScriptFn, list: &'static str) -> HostMatcher {
    let function = function.clone();
    HostMatcher::Custom(Rc::new(move |host: &str| {
        function.call_bool((host.to_string(),)).unwrap_or_else(|e| {
            log::warn!("[condition][error] S25R {list} function ({}): {e}", function.origin());
            false
        })
    }))
}

fn s25r(inputs: &ConditionInputs<'_>) -> Result<S25r, ConditionError> {
    let settings = inputs.s25r;
    let mut s25r = S25r::new();
    if !settings.default_whitelist {
        s25r.clear_whitelist();
    }
    s25r.set_check_only_ipv4(settings.check_only_ipv4);
    for entry in &settings.whitelist {
        s25r.add_whitelist(
            HostMatcher::parse(entry).map_err(|e| error(inputs, "s25r.whitelist", e))?,
        );
    }
    for entry in &settings.blacklist {
        s25r.add_blacklist(
            HostMatcher::parse(entry).map_err(|e| error(inputs, "s25r.blacklist", e))?,
        );
    }
    for function in &settings.whitelist_functions {
        s25r.add_whitelist(script_matcher(function, "whitelist"));
    }
    for function in &settings.blacklist_functions {
        s25r.add_blacklist(script_matcher(function, "blacklist"));
    }
    Ok(s25r)
}

fn remote_network(inputs: &ConditionInputs<'_>) -> Result<RemoteNetwork, ConditionError> {
    let settings = inputs.remote_network;
    let mut network = RemoteNetwork::new();
    for address in &settings.local_addresses {
        network
            .add_local_address(address)
            .map_err(|e| error(inputs, "remote_network.local_addresses", e))?;
    }
    for address in &settings.remote_addresses {
        network
            .add_remote_address(address)
            .map_err(|e| error(inputs, "remote_network.remote_addresses", e))?;
    }
    Ok(network)
}

fn trust(inputs: &ConditionInputs<'_>) -> Result<Trust, ConditionError> {
    let settings = inputs.trust;
    let mut trust = Trust::new();
    if !settings.default_envelope_from_domains {
        trust.clear();
    }
    for domain in &settings.envelope_from_domains {
        trust
            .add_envelope_from_domain(domain)
            .map_err(|e| error(inputs, "trust.envelope_from_domains", e))?;
    }
    for file in &settings.envelope_from_domain_files {
        trust
            .load_envelope_from_domains_file(inputs.files, Path::new(file))
            .map_err(|e| error(inputs, "trust.envelope_from_domain_files", e))?;
    }
    Ok(trust)
}

/// The configured threshold, or 3/4 of Postfix's smtpd limit, or 0 (never stressed).
fn stress_threshold(inputs: &ConditionInputs<'_>) -> u32 {
    if let Some(threshold) = inputs.stress.threshold_n_connections {
        return threshold;
    }
    let root = &inputs.root;
    match stress::detect_threshold(inputs.files, root) {
        Some(threshold) => {
            log::debug!("stress threshold {threshold}: 3/4 of Postfix's smtpd process limit");
            threshold
        }
        None => {
            log::debug!(
                "no Postfix configuration under {}: the stress conditions need \
                 stress.threshold_n_connections and count as never stressed",
                root.display()
            );
            0
        }
    }
}

/// The services, name servers and timeout of `[dnsbl]`; the name servers of
/// `/etc/resolv.conf` (under the package root) when none are configured.
pub(super) fn dnsbl_setup(inputs: &ConditionInputs<'_>) -> Result<DnsblSetup, ConditionError> {
    let settings = inputs.dnsbl;
    let mut services = if settings.default_services { dnsbl::default_services() } else { vec![] };
    for entry in &settings.services {
        let service =
            dnsbl::parse_service_entry(entry).map_err(|e| error(inputs, "dnsbl.services", e))?;
        services.retain(|s| s.zone != service.zone);
        services.push(service);
    }
    let mut name_servers = Vec::new();
    for entry in &settings.name_servers {
        name_servers.push(
            dnsbl::parse_name_server(entry).map_err(|e| error(inputs, "dnsbl.name_servers", e))?,
        );
    }
    if name_servers.is_empty() {
        let path = inputs.root.join("etc/resolv.conf");
        match inputs.files.read_to_string(&path) {
            Ok(text) => {
                name_servers = dnsbl::parse_resolv_conf(&text)
                    .into_iter()
                    .map(|ip| std::net::SocketAddr::new(ip, dnsbl::DNS_PORT))
                    .collect();
            }
            Err(e) => log::warn!("[dnsbl] cannot read {}: {e}", path.display()),
        }
    }
    if name_servers.is_empty() && !services.is_empty() {
        log::warn!(
            "[dnsbl] no name server in dnsbl.name_servers or resolv.conf: no client is \
             looked up, every client counts as not listed"
        );
    }
    let timeout = Duration::from_secs_f64(settings.timeout);
    Ok(DnsblSetup { services, name_servers, timeout })
}

fn restrict_accounts(inputs: &ConditionInputs<'_>) -> Result<RestrictAccounts, ConditionError> {
    let accounts = inputs.restrict_accounts.accounts.iter().map(String::as_str);
    RestrictAccounts::parse(accounts).map_err(|e| error(inputs, "restrict_accounts.accounts", e))
}

impl Shipped {
    /// Every built-in condition that some enabled milter uses, set up from `inputs` (the
    /// others are named, so a milter may name them, but not built).
    pub(super) fn used(
        inputs: &ConditionInputs<'_>,
    ) -> Result<Vec<(&'static str, Option<Self>)>, ConditionError> {
        // Used by a name no script redefines: its own or an alias.
        let used = |name: &str| {
            inputs.milters.iter().any(|m| {
                m.applicable_conditions.iter().any(|used| {
                    builtin_name(used) == Some(name)
                        && !inputs.scripts.iter().any(|c| c.name == *used)
                })
            })
        };
        // Read from Postfix's files once, for both stress conditions.
        let mut threshold = None;
        let mut all = Vec::new();
        for (name, _) in CATALOG {
            if !used(name) {
                all.push((name, None));
                continue;
            }
            let mut stress = || *threshold.get_or_insert_with(|| stress_threshold(inputs));
            let shipped = match name {
                "S25R" => Self::S25r(s25r(inputs)?),
                "Remote Network" => Self::RemoteNetwork(remote_network(inputs)?),
                "Authenticated" => Self::Authentication,
                "Unauthenticated" => Self::Unauthentication,
                "Sendmail Compatible" => Self::SendmailCompatible,
                "Stress Notify" => Self::StressNotify(stress()),
                "No Stress" => Self::NoStress(stress()),
                "Trust" => Self::Trust(trust(inputs)?),
                "DNSBL Listed" => Self::DnsblListed,
                "Not DNSBL Listed" => Self::NotDnsblListed,
                "Restrict Accounts" => Self::RestrictAccounts(restrict_accounts(inputs)?),
                other => unreachable!("{other:?} is in CATALOG but not built"),
            };
            all.push((name, Some(shipped)));
        }
        Ok(all)
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::S25r(_) => "S25R",
            Self::RemoteNetwork(_) => "Remote Network",
            Self::Authentication => "Authenticated",
            Self::Unauthentication => "Unauthenticated",
            Self::SendmailCompatible => "Sendmail Compatible",
            Self::StressNotify(_) => "Stress Notify",
            Self::NoStress(_) => "No Stress",
            Self::Trust(_) => "Trust",
            Self::DnsblListed => "DNSBL Listed",
            Self::NotDnsblListed => "Not DNSBL Listed",
            Self::RestrictAccounts(_) => "Restrict Accounts",
        }
    }

    /// Whether the child stops applying at `event`; macros to give it go to `macros`.
    pub(super) fn stop(
        &self,
        state: &mut ShippedState,
        event: &Event<'_>,
        context: &Context<'_>,
        sessions: &dyn SessionCount,
        dnsbl: &DnsblVerdict,
        macros: &mut MacroList,
    ) -> bool {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let lookup = |name: &str| context.macro_value(name).map(<[u8]>::to_vec);
        match (self, event) {
            (Self::S25r(s25r), Event::Connect { host, address }) => {
                !s25r.applies(&text(host), address)
            }
            (Self::RemoteNetwork(network), Event::Connect { address, .. }) => {
                !network.applies(address)
            }
            (Self::Authentication, Event::EnvelopeFrom { .. }) => !context.is_authenticated(),
            (Self::Unauthentication, Event::EnvelopeFrom { .. }) => context.is_authenticated(),
            (Self::SendmailCompatible, Event::Connect { address, .. }) => {
                if context.is_postfix() {
                    macros.extend(sendmail_compatible::connect_macros(&lookup, address));
                }
                false
            }
            (Self::SendmailCompatible, Event::EnvelopeFrom { .. }) => {
                if context.is_postfix() {
                    macros.extend(sendmail_compatible::envelope_from_macros(&lookup));
                }
                false
            }
            (Self::StressNotify(threshold), Event::Connect { .. }) => {
                if stress::is_stressed(sessions.n_sessions(), *threshold) {
                    macros.push((stress::STRESS_MACRO.into(), stress::STRESS_VALUE.into()));
                }
                false
            }
            (Self::NoStress(threshold), Event::Connect { .. }) => {
                stress::is_stressed(sessions.n_sessions(), *threshold)
            }
            (Self::Trust(trust), Event::EnvelopeFrom { address }) => {
                if trust.is_trusted(&text(address)) {
                    macros.push((TRUSTED_DOMAIN_MACRO.into(), TRUSTED_VALUE.into()));
                }
                false
            }
            (Self::DnsblListed, Event::Connect { .. }) => !dnsbl.is_listed(),
            (Self::NotDnsblListed, Event::Connect { .. }) => dnsbl.is_listed(),
            (Self::RestrictAccounts(_), Event::EnvelopeFrom { .. }) => {
                state.restrict.reset();
                false
            }
            (Self::RestrictAccounts(accounts), Event::EnvelopeRecipient { address }) => {
                state.restrict.on_recipient(accounts, &text(address))
            }
            (Self::RestrictAccounts(_), Event::Data) => state.restrict.on_data(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::files::MemoryFiles;
    use crate::conditions::inputs::testing::OwnedInputs;

    #[test]
    fn dnsbl_setup_from_the_defaults_and_resolv_conf() {
        let mut owned = OwnedInputs::under("/fake");
        let text = "nameserver 192.0.2.53\nnameserver 2001:db8::53\n";
        owned.files = owned.files.with("/fake/etc/resolv.conf", text);
        let setup = dnsbl_setup(&owned.inputs()).unwrap();
        let zones: Vec<&str> = setup.services.iter().map(|s| s.zone.as_str()).collect();
        assert_eq!(
            zones,
            ["zen.spamhaus.org", "dnsbl.sorbs.net", "bl.spamcop.net", "b.barracudacentral.org"]
        );
        let servers: Vec<String> = setup.name_servers.iter().map(|s| s.to_string()).collect();
        assert_eq!(servers, ["192.0.2.53:53", "[2001:db8::53]:53"]);
        assert_eq!(setup.timeout, Duration::from_secs(5));
    }

    #[test]
    fn dnsbl_setup_from_the_settings() {
        let mut owned = OwnedInputs::under("/fake");
        owned.dnsbl.services = vec!["bl.example=127.0.0.2".into(), "zen.spamhaus.org".into()];
        owned.dnsbl.name_servers = vec!["127.0.0.1:5353".into()];
        owned.dnsbl.timeout = 1.5;
        let setup = dnsbl_setup(&owned.inputs()).unwrap();
        let zones: Vec<&str> = setup.services.iter().map(|s| s.zone.as_str()).collect();
        // A configured zone replaces the default one of the same name.
        assert_eq!(
            zones,
            [
                "dnsbl.sorbs.net",
                "bl.spamcop.net",
                "b.barracudacentral.org",
                "bl.example",
                "zen.spamhaus.org"
            ]
        );
        assert_eq!(setup.services[4].expected, None);
        assert_eq!(setup.name_servers, ["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(setup.timeout, Duration::from_millis(1500));

        owned.dnsbl.default_services = false;
        owned.dnsbl.name_servers.clear();
        let setup = dnsbl_setup(&owned.inputs()).unwrap();
        assert_eq!(setup.services.len(), 2);
        assert!(setup.name_servers.is_empty(), "no resolv.conf under the root");
    }

    #[test]
    fn stress_threshold_from_postfix_under_the_root() {
        let mut owned = OwnedInputs::under("/fake");
        owned.milters = vec![("a".into(), vec!["No Stress".into()])];
        owned.files =
            owned.files.with("/fake/etc/postfix/master.cf", "smtp inet n - y - 8 smtpd\n");
        let used = Shipped::used(&owned.inputs()).unwrap();
        let no_stress = used.iter().find_map(|(name, shipped)| match shipped {
            Some(Shipped::NoStress(threshold)) if *name == "No Stress" => Some(*threshold),
            _ => None,
        });
        assert_eq!(no_stress, Some(6));
    }

    #[test]
    fn trust_lists_are_read_through_the_reader_and_errors_name_the_setting() {
        let mut owned = OwnedInputs::under("/fake");
        owned.milters = vec![("a".into(), vec!["Trust".into()])];
        owned.trust.envelope_from_domain_files = vec!["/lists/trusted".into()];
        owned.files = owned.files.with("/lists/trusted", "example.jp\n");
        owned.origin = Some("/conf/milter-manager.toml:7".into());
        let used = Shipped::used(&owned.inputs()).unwrap();
        let trusted = used.iter().any(|(_, shipped)| {
            matches!(shipped, Some(Shipped::Trust(trust)) if trust.is_trusted("<a@example.jp>"))
        });
        assert!(trusted);

        owned.files = MemoryFiles::new();
        let error = Shipped::used(&owned.inputs()).err().unwrap();
        assert_eq!(
            error.to_string(),
            "/conf/milter-manager.toml:7: trust.envelope_from_domain_files: cannot read \
             trusted domain list /lists/trusted: entity not found"
        );
    }
}
