//! The built-in conditions' settings as script variables: `s25r`, `remote_network`,
//! `trust`, `stress` and `dnsbl`.

use std::path::Path;
use std::rc::Rc;

use rhai::{Dynamic, Engine, FnPtr, NativeCallContext};

use super::super::condition_inputs::Disk;
use super::super::error::ValueError;
use super::super::schema;
use super::super::values;
use super::super::Config;
use super::error::ScriptError;
use super::item_values::{set_item, shown_value};
use super::{with_state, Fallible, SharedState};
use crate::conditions::builtin::{dnsbl, stress};

/// `s25r`, `remote_network`, `trust`, `stress`, `dnsbl`.
#[derive(Clone, Copy)]
pub(super) struct S25rHandle;
#[derive(Clone, Copy)]
pub(super) struct RemoteNetworkHandle;
#[derive(Clone, Copy)]
pub(super) struct TrustHandle;
#[derive(Clone, Copy)]
pub(super) struct StressHandle;
#[derive(Clone, Copy)]
pub(super) struct DnsblHandle;

/// A list entry of a built-in's settings: checked, then added, with its origin.
fn add_entry(
    state: &SharedState,
    context: &NativeCallContext,
    section: &'static str,
    key: &'static str,
    check: fn(&str) -> Result<(), ValueError>,
    list: fn(&mut Config) -> &mut Vec<String>,
    entry: &str,
) -> Fallible<()> {
    with_state(state, |s| {
        check(entry).map_err(|e| ScriptError::at_item(format!("{section}.{key}"))(e.into()))?;
        let origin = s.origin(context);
        list(&mut s.config).push(entry.to_string());
        s.config.origins.set(section, key, origin);
        Ok(())
    })
}

pub(super) fn register_settings(engine: &mut Engine, state: &SharedState) {
    engine.register_type_with_name::<S25rHandle>("S25R");
    for (method, key) in [("add_whitelist", "whitelist"), ("add_blacklist", "blacklist")] {
        let adding = Rc::clone(state);
        engine.register_fn(
            method,
            move |context: NativeCallContext, _: &mut S25rHandle, matcher: Dynamic| {
                if let Some(function) = matcher.clone().try_cast::<FnPtr>() {
                    return with_state(&adding, |s| {
                        let function = s.script_fn(&context, function);
                        let origin = s.origin(&context);
                        let s25r = &mut s.config.s25r;
                        match key {
                            "whitelist" => s25r.whitelist_functions.push(function),
                            _ => s25r.blacklist_functions.push(function),
                        }
                        s.config.origins.set("s25r", key, origin);
                        Ok(())
                    });
                }
                let text = matcher
                    .into_string()
                    .map_err(|kind| ScriptError::MatcherType { method, kind: kind.to_string() })?;
                let list: fn(&mut Config) -> &mut Vec<String> = match key {
                    "whitelist" => |c| &mut c.s25r.whitelist,
                    _ => |c| &mut c.s25r.blacklist,
                };
                add_entry(&adding, &context, "s25r", key, values::name_or_pattern, list, &text)
            },
        );
    }
    let flag = Rc::clone(state);
    engine.register_fn(
        "set$check_only_ipv4",
        move |context: NativeCallContext, _: &mut S25rHandle, value: bool| {
            with_state(&flag, |s| {
                s.config.s25r.check_only_ipv4 = value;
                let origin = s.origin(&context);
                s.config.origins.set("s25r", "check_only_ipv4", origin);
                Ok(())
            })
        },
    );
    let flag = Rc::clone(state);
    engine.register_fn("get$check_only_ipv4", move |_: &mut S25rHandle| {
        with_state(&flag, |s| Ok(s.config.s25r.check_only_ipv4))
    });

    engine.register_type_with_name::<RemoteNetworkHandle>("RemoteNetwork");
    for (method, key) in
        [("add_local_address", "local_addresses"), ("add_remote_address", "remote_addresses")]
    {
        let adding = Rc::clone(state);
        engine.register_fn(
            method,
            move |context: NativeCallContext, _: &mut RemoteNetworkHandle, address: &str| {
                let list: fn(&mut Config) -> &mut Vec<String> = match key {
                    "local_addresses" => |c| &mut c.remote_network.local_addresses,
                    _ => |c| &mut c.remote_network.remote_addresses,
                };
                let check = values::address_or_network;
                add_entry(&adding, &context, "remote_network", key, check, list, address)
            },
        );
    }

    engine.register_type_with_name::<TrustHandle>("Trust");
    let adding = Rc::clone(state);
    engine.register_fn(
        "add_envelope_from_domain",
        move |context: NativeCallContext, _: &mut TrustHandle, domain: &str| {
            let list: fn(&mut Config) -> &mut Vec<String> = |c| &mut c.trust.envelope_from_domains;
            let key = "envelope_from_domains";
            add_entry(&adding, &context, "trust", key, values::name_or_pattern, list, domain)
        },
    );
    let clearing = Rc::clone(state);
    engine.register_fn("clear", move |context: NativeCallContext, _: &mut TrustHandle| {
        with_state(&clearing, |s| {
            let origin = s.origin(&context);
            let trust = &mut s.config.trust;
            trust.envelope_from_domains.clear();
            trust.envelope_from_domain_files.clear();
            trust.default_envelope_from_domains = false;
            for key in [
                "envelope_from_domains",
                "envelope_from_domain_files",
                "default_envelope_from_domains",
            ] {
                s.config.origins.set("trust", key, origin.clone());
            }
            Ok(())
        })
    });
    let loading = Rc::clone(state);
    engine.register_fn(
        "load_envelope_from_domains",
        move |context: NativeCallContext, _: &mut TrustHandle, file: &str| {
            with_state(&loading, |s| {
                if file.is_empty() {
                    return Err(ScriptError::EmptyFileName);
                }
                // Relative to the script, as include patterns are.
                let base = s.path.parent().unwrap_or(Path::new(""));
                let path = base.join(file).display().to_string();
                let origin = s.origin(&context);
                s.config.trust.envelope_from_domain_files.push(path);
                s.config.origins.set("trust", "envelope_from_domain_files", origin);
                Ok(())
            })
        },
    );

    engine.register_type_with_name::<StressHandle>("Stress");
    let setting = Rc::clone(state);
    engine.register_fn(
        "set$threshold_n_connections",
        move |context: NativeCallContext, _: &mut StressHandle, value: Dynamic| {
            with_state(&setting, |s| {
                let item = &schema::STRESS[0];
                let key = "stress.threshold_n_connections".to_string();
                set_item(&mut s.config.stress, item, &value).map_err(ScriptError::at_item(key))?;
                let origin = s.origin(&context);
                s.config.origins.set("stress", "threshold_n_connections", origin);
                Ok(())
            })
        },
    );
    let getting = Rc::clone(state);
    // The value in use, as the manual shows: when no file set one, what the stress
    // conditions will detect from Postfix's files (0 without Postfix: never stressed).
    engine.register_fn("get$threshold_n_connections", move |_: &mut StressHandle| {
        with_state(&getting, |s| {
            let threshold = s.config.stress.threshold_n_connections.unwrap_or_else(|| {
                stress::detect_threshold(&Disk, &s.config.system_root()).unwrap_or(0)
            });
            Ok(i64::from(threshold))
        })
    });
}

/// `dnsbl.add_service(zone)`, `dnsbl.add_service(zone, answer)`, `dnsbl.clear()` and the
/// items as properties (`dnsbl.name_servers = [...]`, `dnsbl.timeout = 3`).
pub(super) fn register_dnsbl(engine: &mut Engine, state: &SharedState) {
    engine.register_type_with_name::<DnsblHandle>("Dnsbl");
    let add = |state: &SharedState, context: &NativeCallContext, entry: String| {
        let list: fn(&mut Config) -> &mut Vec<String> = |c| &mut c.dnsbl.services;
        let check = |entry: &str| dnsbl::parse_service_entry(entry).map(|_| ()).map_err(Into::into);
        add_entry(state, context, "dnsbl", "services", check, list, &entry)
    };
    let adding = Rc::clone(state);
    engine.register_fn(
        "add_service",
        move |context: NativeCallContext, _: &mut DnsblHandle, zone: &str| {
            add(&adding, &context, zone.to_string())
        },
    );
    let adding = Rc::clone(state);
    engine.register_fn(
        "add_service",
        move |context: NativeCallContext, _: &mut DnsblHandle, zone: &str, answer: &str| {
            add(&adding, &context, format!("{zone}={answer}"))
        },
    );
    let clearing = Rc::clone(state);
    engine.register_fn("clear", move |context: NativeCallContext, _: &mut DnsblHandle| {
        with_state(&clearing, |s| {
            let origin = s.origin(&context);
            s.config.dnsbl.services.clear();
            s.config.dnsbl.default_services = false;
            for key in ["services", "default_services"] {
                s.config.origins.set("dnsbl", key, origin.clone());
            }
            Ok(())
        })
    });
    for item in schema::DNSBL.iter().filter(|item| item.key != "services") {
        let key = item.key;
        let setting = Rc::clone(state);
        engine.register_fn(
            format!("set${key}"),
            move |context: NativeCallContext, _: &mut DnsblHandle, value: Dynamic| {
                with_state(&setting, |s| {
                    let item = schema::DNSBL.iter().find(|i| i.key == key).expect("listed");
                    let item_key = format!("dnsbl.{key}");
                    set_item(&mut s.config.dnsbl, item, &value)
                        .map_err(ScriptError::at_item(item_key))?;
                    let origin = s.origin(&context);
                    s.config.origins.set("dnsbl", key, origin);
                    Ok(())
                })
            },
        );
        let getting = Rc::clone(state);
        engine.register_fn(format!("get${key}"), move |_: &mut DnsblHandle| {
            with_state(&getting, |s| {
                let item = schema::DNSBL.iter().find(|i| i.key == key).expect("listed");
                Ok(shown_value((item.show)(&s.config.dnsbl)))
            })
        });
    }
}
