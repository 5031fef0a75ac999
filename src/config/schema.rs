//! Every configuration item, in one table per section: its key, the type its value is read
//! as (whose `Deserialize` holds the checks), and how `--show-config` prints it. Loading,
//! scripts, printing and the "did you mean" hints all walk these tables, so an item added
//! here is known everywhere.

use super::error::ValueError;
use super::model::{
    CommandOptions, Controller, Log, Manager, Milter, Package, Security, MAX_CHUNK_SIZE,
    MAX_WORKERS,
};
use super::values::{self as v, Input, Shown};
use crate::conditions::{
    DnsblSettings, RemoteNetworkSettings, RestrictAccountsSettings, S25rSettings, StressSettings,
    TrustSettings,
};
use crate::spec::Spec;
use crate::status::FallbackStatus;
use std::path::PathBuf;

/// One item of a section whose values live in a `T`.
pub(super) struct Item<T> {
    pub key: &'static str,
    pub set: fn(&mut T, &Input<'_>) -> Result<(), ValueError>,
    pub show: fn(&T) -> Shown,
}

/// `item!(field, Setting, show)`: the key is the field's name, so the TOML key and the Rust
/// field cannot drift apart; the value is read as a `Setting` type.
macro_rules! item {
    ($field:ident, $setting:ty, $show:expr) => {
        Item {
            key: stringify!($field),
            set: |target, input| {
                target.$field = v::decode::<$setting>(input)?;
                Ok(())
            },
            show: |target| ($show)(&target.$field),
        }
    };
}

fn show_bool(value: &bool) -> Shown {
    Shown::Bool(*value)
}
fn show_u32(value: &u32) -> Shown {
    Shown::Int(u64::from(*value))
}
fn show_u64(value: &u64) -> Shown {
    Shown::Int(*value)
}
fn show_mode(value: &u32) -> Shown {
    Shown::Mode(*value)
}
fn show_seconds(value: &f64) -> Shown {
    Shown::Float(*value)
}
fn show_string(value: &str) -> Shown {
    Shown::string(value)
}
fn show_optional_string(value: &Option<String>) -> Shown {
    Shown::optional(value.as_ref(), String::clone)
}
fn show_optional_path(value: &Option<PathBuf>) -> Shown {
    Shown::optional(value.as_ref(), |path| path.display().to_string())
}
fn show_spec(value: &Spec) -> Shown {
    Shown::Str(value.to_string())
}
fn show_optional_spec(value: &Option<Spec>) -> Shown {
    Shown::optional(value.as_ref(), Spec::to_string)
}
fn show_optional_u32(value: &Option<u32>) -> Shown {
    value.map_or(Shown::Unset, |n| Shown::Int(u64::from(n)))
}
fn show_status(value: &FallbackStatus) -> Shown {
    Shown::string(value.name())
}
fn show_names(value: &[String]) -> Shown {
    Shown::List(value.to_vec())
}
fn show_command_options(value: &Option<CommandOptions>) -> Shown {
    match value {
        None => Shown::Unset,
        Some(CommandOptions::Line(line)) => Shown::Str(line.clone()),
        Some(CommandOptions::Arguments(args)) => Shown::List(args.clone()),
    }
}

pub(super) const PACKAGE: &[Item<Package>] = &[
    item!(platform, v::Platform, show_string),
    item!(options, v::Optional<v::PackageOptions>, show_optional_string),
];

pub(super) const SECURITY: &[Item<Security>] = &[
    item!(privilege_mode, v::Flag, show_bool),
    item!(effective_user, v::Optional<v::Text>, show_optional_string),
    item!(effective_group, v::Optional<v::Text>, show_optional_string),
];

pub(super) const MANAGER: &[Item<Manager>] = &[
    item!(connection_spec, Spec, show_spec),
    item!(unix_socket_mode, v::Mode, show_mode),
    item!(unix_socket_group, v::Optional<v::Text>, show_optional_string),
    item!(remove_unix_socket_on_create, v::Flag, show_bool),
    item!(remove_unix_socket_on_close, v::Flag, show_bool),
    item!(daemon, v::Flag, show_bool),
    item!(pid_file, v::Optional<v::FilePath>, show_optional_path),
    item!(maintenance_interval, v::AnyU32, show_u32),
    item!(suspend_time_on_unacceptable, v::AnyU32, show_u32),
    item!(max_connections, v::AnyU32, show_u32),
    item!(negotiation_timeout, v::Seconds, show_seconds),
    item!(max_file_descriptors, v::AnyU64, show_u64),
    item!(custom_configuration_directory, v::Optional<v::FilePath>, show_optional_path),
    item!(fallback_status, FallbackStatus, show_status),
    item!(fallback_status_at_disconnect, FallbackStatus, show_status),
    item!(event_loop_backend, v::EventLoopBackend, show_string),
    item!(n_workers, v::Whole32<0, MAX_WORKERS>, show_u32),
    item!(packet_buffer_size, v::AnyU64, show_u64),
    item!(chunk_size, v::Whole32<1, MAX_CHUNK_SIZE>, show_u32),
    item!(max_pending_finished_sessions, v::AnyU32, show_u32),
    item!(connection_check_interval, v::AnyU32, show_u32),
    item!(report_memory_statistics, v::Flag, show_bool),
    item!(max_body_memory, v::AnyU64, show_u64),
    item!(max_spill_size, v::AnyU64, show_u64),
    item!(max_child_modifications, v::AnyU64, show_u64),
    item!(max_child_modification_bytes, v::AnyU64, show_u64),
    item!(max_idle_child_connections, v::AnyU32, show_u32),
    item!(temporary_directory, v::Optional<v::FilePath>, show_optional_path),
];

pub(super) const CONTROLLER: &[Item<Controller>] = &[
    item!(connection_spec, v::Optional<Spec>, show_optional_spec),
    item!(unix_socket_mode, v::Mode, show_mode),
    item!(unix_socket_group, v::Optional<v::Text>, show_optional_string),
    item!(remove_unix_socket_on_create, v::Flag, show_bool),
    item!(remove_unix_socket_on_close, v::Flag, show_bool),
    item!(metrics_connection_spec, v::Optional<v::InetSpec>, show_optional_spec),
];

pub(super) const LOG: &[Item<Log>] = &[
    item!(level, v::LogLevels, show_string),
    item!(path, v::Optional<v::FilePath>, show_optional_path),
    item!(use_syslog, v::Flag, show_bool),
    item!(syslog_facility, v::SyslogFacility, show_string),
];

pub(super) const S25R: &[Item<S25rSettings>] = &[
    item!(whitelist, v::NamesOrPatterns, show_names),
    item!(blacklist, v::NamesOrPatterns, show_names),
    item!(default_whitelist, v::Flag, show_bool),
    item!(check_only_ipv4, v::Flag, show_bool),
];

pub(super) const REMOTE_NETWORK: &[Item<RemoteNetworkSettings>] = &[
    item!(local_addresses, v::Networks, show_names),
    item!(remote_addresses, v::Networks, show_names),
];

pub(super) const TRUST: &[Item<TrustSettings>] = &[
    item!(envelope_from_domains, v::NamesOrPatterns, show_names),
    item!(default_envelope_from_domains, v::Flag, show_bool),
    item!(envelope_from_domain_files, v::FileNames, show_names),
];

pub(super) const STRESS: &[Item<StressSettings>] =
    &[item!(threshold_n_connections, v::Automatic, show_optional_u32)];

pub(super) const DNSBL: &[Item<DnsblSettings>] = &[
    item!(services, v::DnsblServices, show_names),
    item!(default_services, v::Flag, show_bool),
    item!(name_servers, v::NameServers, show_names),
    item!(timeout, v::DnsblTimeout, show_seconds),
];

pub(super) const RESTRICT_ACCOUNTS: &[Item<RestrictAccountsSettings>] =
    &[item!(accounts, v::Accounts, show_names)];

/// The items of `[milter.NAME]`; the name is the table's.
pub(super) const MILTER: &[Item<Milter>] = &[
    item!(connection_spec, v::Optional<Spec>, show_optional_spec),
    item!(description, v::Optional<v::Text>, show_optional_string),
    item!(enabled, v::Flag, show_bool),
    item!(fallback_status, FallbackStatus, show_status),
    item!(evaluation_mode, v::Flag, show_bool),
    item!(applicable_conditions, v::Names, show_names),
    item!(command, v::Optional<v::Text>, show_optional_string),
    item!(command_options, v::Optional<CommandOptions>, show_command_options),
    item!(user_name, v::Optional<v::Text>, show_optional_string),
    item!(connection_timeout, v::Seconds, show_seconds),
    item!(writing_timeout, v::Seconds, show_seconds),
    item!(reading_timeout, v::Seconds, show_seconds),
    item!(end_of_message_timeout, v::Seconds, show_seconds),
    item!(reuse_connection, v::Flag, show_bool),
    item!(max_idle_connections, v::AnyU32, show_u32),
    item!(idle_connection_timeout, v::Seconds, show_seconds),
];

/// The sections with a fixed set of items, in the order `--show-config` prints them (and
/// the migration writes them).
pub(crate) const SECTIONS: [&str; 11] = [
    "package",
    "security",
    "manager",
    "controller",
    "log",
    "s25r",
    "remote_network",
    "trust",
    "stress",
    "dnsbl",
    "restrict_accounts",
];
/// The table of child milters.
pub(super) const MILTER_TABLE: &str = "milter";
/// Top-level keys that steer loading rather than set an item.
pub(super) const INCLUDE: &str = "include";
pub(super) const INCLUDE_OPTIONAL: &str = "include_optional";
pub(super) const LOAD_DEFAULT: &str = "load_default";
pub(super) const REMOVE_MILTERS: &str = "remove_milters";
pub(super) const DIRECTIVES: [&str; 4] = [INCLUDE, INCLUDE_OPTIONAL, LOAD_DEFAULT, REMOVE_MILTERS];

/// The item keys of a section (`milter` for the child milters' items).
pub(super) fn keys_of(section: &str) -> Vec<&'static str> {
    fn keys<T>(items: &[Item<T>]) -> Vec<&'static str> {
        items.iter().map(|item| item.key).collect()
    }
    match section {
        "package" => keys(PACKAGE),
        "security" => keys(SECURITY),
        "manager" => keys(MANAGER),
        "controller" => keys(CONTROLLER),
        "log" => keys(LOG),
        "s25r" => keys(S25R),
        "remote_network" => keys(REMOTE_NETWORK),
        "trust" => keys(TRUST),
        "stress" => keys(STRESS),
        "dnsbl" => keys(DNSBL),
        "restrict_accounts" => keys(RESTRICT_ACCOUNTS),
        MILTER_TABLE => keys(MILTER),
        _ => Vec::new(),
    }
}

/// The message for an unknown key of `section` (`None`: top level), with a hint when the
/// admin probably meant a known key or put the key in the wrong section.
pub(super) fn unknown_key(section: Option<&str>, key: &str) -> String {
    let known: Vec<&str> = match section {
        Some(section) => keys_of(section),
        None => SECTIONS.iter().chain([&MILTER_TABLE]).chain(DIRECTIVES.iter()).copied().collect(),
    };
    let what = if section.is_some() { "item" } else { "table or key" };
    let mut message = format!("unknown {what} {key:?}");
    if let Some(close) = closest(key, &known) {
        message.push_str(&format!("; did you mean {close:?}?"));
    } else if let Some(home) =
        SECTIONS.iter().chain([&MILTER_TABLE]).find(|s| keys_of(s).contains(&key))
    {
        let table =
            if *home == MILTER_TABLE { "[milter.NAME]".to_string() } else { format!("[{home}]") };
        message.push_str(&format!("; {key} belongs in {table}"));
    } else {
        let list = if section.is_some() { "known items" } else { "known" };
        message.push_str(&format!("; {list}: {}", known.join(", ")));
    }
    message
}

/// The known word nearest to `word`, if it is near enough to be a typo, or the only one
/// containing it (`pid` for `pid_file`).
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase().replace('-', "_");
    let typo = known
        .iter()
        .map(|candidate| (edit_distance(&word, candidate), *candidate))
        .filter(|(distance, candidate)| {
            *distance <= 2.max(candidate.len() / 4) && *distance < candidate.len()
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate);
    typo.or_else(|| {
        let mut containing = known.iter().filter(|k| word.len() >= 3 && k.contains(&word));
        match (containing.next(), containing.next()) {
            (Some(only), None) => Some(*only),
            _ => None,
        }
    })
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_likely_key() {
        assert!(unknown_key(Some("manager"), "n_worker").contains("did you mean \"n_workers\""));
        assert!(unknown_key(Some("manager"), "n-workers").contains("did you mean \"n_workers\""));
        assert!(unknown_key(None, "milters").contains("did you mean \"milter\""));
        assert!(unknown_key(None, "includes").contains("did you mean \"include\""));
        assert!(unknown_key(Some("controller"), "n_workers").contains("belongs in [manager]"));
        assert!(unknown_key(Some("manager"), "enabled").contains("belongs in [milter.NAME]"));
        assert!(unknown_key(Some("manager"), "pid").contains("did you mean \"pid_file\""));
        assert!(unknown_key(Some("log"), "facility").contains("did you mean \"syslog_facility\""));
        let message = unknown_key(Some("log"), "colour");
        assert!(message.contains("known items: level, path"), "{message}");
        let message = unknown_key(None, "x");
        assert!(message.contains("known: package, security"), "{message}");
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
