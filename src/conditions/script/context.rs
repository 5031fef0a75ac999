//! What a stopper script sees: the context object (macros, verdicts of the children) and
//! socket addresses. Scripts need owned values, so each call gets a snapshot of the
//! engine's context; macros the script sets are collected for the caller.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;

use rhai::{Dynamic, Engine, ImmutableString};

use crate::conditions::builtin::ip_of;
use crate::conditions::builtin::remote_network::RemoteNetwork;
use crate::engine::{ChildView, Context, Status};
use crate::protocol::ConnectAddress;

/// The session as one stopper call sees it.
struct Snapshot {
    /// Macro names without braces and their values, oldest first.
    macros: Vec<(String, String)>,
    children: Vec<(String, ChildView)>,
    postfix: bool,
    authenticated: bool,
    /// The child the stopper runs for.
    own: usize,
    /// Macros the script set for its child, in order.
    set: RefCell<Vec<(String, String)>>,
}

/// `context`: one child of the session. The stopper's own child, or another one reached
/// through `context.children["name"]`.
#[derive(Clone)]
pub struct ScriptContext {
    snapshot: Rc<Snapshot>,
    child: usize,
}

/// `context.children`: the children by name.
#[derive(Clone)]
pub(super) struct ScriptChildren {
    snapshot: Rc<Snapshot>,
}

fn bare(name: &str) -> &str {
    name.strip_prefix('{').and_then(|n| n.strip_suffix('}')).unwrap_or(name)
}

impl ScriptContext {
    /// A snapshot of `context` for a stopper of child `own`.
    pub fn new(context: &Context<'_>, own: usize) -> Self {
        let macros = context
            .macros()
            .map(|(name, value)| {
                let name = String::from_utf8_lossy(name);
                (bare(&name).to_string(), String::from_utf8_lossy(value).into_owned())
            })
            .collect();
        let children = context
            .child_names()
            .map(|name| {
                let view = context.child(name).expect("a name the context listed");
                (name.to_string(), view)
            })
            .collect();
        let snapshot = Snapshot {
            macros,
            children,
            postfix: context.is_postfix(),
            authenticated: context.is_authenticated(),
            own,
            set: RefCell::new(Vec::new()),
        };
        Self { snapshot: Rc::new(snapshot), child: own }
    }

    /// The macros the script set, braces added to long names as the protocol wants.
    pub fn take_set_macros(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.snapshot
            .set
            .take()
            .into_iter()
            .map(|(name, value)| {
                let name = if name.chars().count() > 1 { format!("{{{name}}}") } else { name };
                (name.into_bytes(), value.into_bytes())
            })
            .collect()
    }

    fn view(&self) -> ChildView {
        self.snapshot.children[self.child].1
    }

    fn status_is(&self, status: Status) -> bool {
        self.view().last_status == Some(status)
    }

    /// A macro's value; one the script set wins over the MTA's.
    fn macro_value(&self, name: &str) -> Option<String> {
        let name = bare(name);
        let set = self.snapshot.set.borrow();
        if self.child == self.snapshot.own {
            if let Some((_, value)) = set.iter().rev().find(|(n, _)| n == name) {
                return Some(value.clone());
            }
        }
        self.snapshot.macros.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn set_macro(&mut self, name: &str, value: String) -> Result<(), Box<rhai::EvalAltResult>> {
        if self.child != self.snapshot.own {
            return Err(format!(
                "cannot set macro {name:?} on {:?}: a stopper sets macros of its own child only",
                self.snapshot.children[self.child].0
            )
            .into());
        }
        let name = bare(name);
        if name.is_empty() {
            return Err("a macro needs a name".into());
        }
        self.snapshot.set.borrow_mut().push((name.to_string(), value));
        Ok(())
    }
}

/// A socket address as the manual describes it: IPv4, IPv6 or a unix socket.
#[derive(Clone, Debug, PartialEq)]
pub enum ScriptAddress {
    Inet {
        ip: IpAddr,
        port: u16,
    },
    Unix {
        path: String,
    },
    /// The MTA did not know the client's address.
    Unknown,
}

impl ScriptAddress {
    pub fn from_connect(address: &ConnectAddress) -> Self {
        match address {
            ConnectAddress::Unknown => Self::Unknown,
            ConnectAddress::Unix { path, .. } => {
                Self::Unix { path: String::from_utf8_lossy(path).into_owned() }
            }
            ConnectAddress::Inet { port, .. } | ConnectAddress::Inet6 { port, .. } => {
                match ip_of(address) {
                    Some(ip) => Self::Inet { ip, port: *port },
                    None => Self::Unknown,
                }
            }
        }
    }

    /// The connection-spec form: `inet:25@[192.0.2.1]`, `inet6:25@[::1]`, `unix:/path`.
    pub fn to_spec(&self) -> String {
        match self {
            Self::Inet { ip: IpAddr::V4(ip), port } => format!("inet:{port}@[{ip}]"),
            Self::Inet { ip: IpAddr::V6(ip), port } => format!("inet6:{port}@[{ip}]"),
            Self::Unix { path } => format!("unix:{path}"),
            Self::Unknown => "unknown".to_string(),
        }
    }

    /// The private ranges of Remote Network; a unix socket is local too.
    pub fn is_local(&self) -> bool {
        match self {
            Self::Inet { ip, .. } => RemoteNetwork::is_local(*ip),
            Self::Unix { .. } => true,
            Self::Unknown => false,
        }
    }
}

/// `socket_address.to_ip_address`: the address without its port, as the manual's IPAddr.
/// Compares with another one or with its text (`ip == "127.0.0.1"`), and tells whether it
/// is in a network (`ip.include("192.168.0.0/16")`, an IPAddr's `include?` the other way
/// round: here the address asks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptIp(pub IpAddr);

impl ScriptIp {
    /// Equal to `text`, an address in any of its spellings (`::1`, `0:0::1`).
    fn equals_text(self, text: &str) -> bool {
        text.parse::<IpAddr>().is_ok_and(|ip| ip == self.0)
    }

    /// In `network` (`ADDRESS/BITS` or one address).
    fn is_in(self, network: &str) -> Result<bool, Box<rhai::EvalAltResult>> {
        if let Ok(net) = network.parse::<ipnet::IpNet>() {
            return Ok(net.contains(&self.0));
        }
        network
            .parse::<IpAddr>()
            .map(|ip| ip == self.0)
            .map_err(|_| format!("{network:?} is not an address or ADDRESS/BITS network").into())
    }
}

fn verdict_getter(status: Status) -> impl Fn(&mut ScriptContext) -> bool + Clone + 'static {
    move |context: &mut ScriptContext| context.status_is(status)
}

/// Makes the types of this module known to `engine`.
pub(super) fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<ScriptContext>("Context")
        .register_get("name", |c: &mut ScriptContext| c.snapshot.children[c.child].0.clone())
        .register_get("reject", verdict_getter(Status::Reject))
        .register_get("temporary_failure", verdict_getter(Status::TemporaryFailure))
        .register_get("accept", verdict_getter(Status::Accept))
        .register_get("discard", verdict_getter(Status::Discard))
        .register_get("quitted", |c: &mut ScriptContext| c.view().quitted)
        .register_get("evaluation_mode", |c: &mut ScriptContext| c.view().evaluation_mode)
        .register_get("postfix", |c: &mut ScriptContext| c.snapshot.postfix)
        .register_get("authenticated", |c: &mut ScriptContext| c.snapshot.authenticated)
        .register_get("children", |c: &mut ScriptContext| ScriptChildren {
            snapshot: Rc::clone(&c.snapshot),
        })
        .register_indexer_get(|c: &mut ScriptContext, name: &str| -> Dynamic {
            c.macro_value(name).map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_indexer_set(
            |c: &mut ScriptContext,
             name: &str,
             value: ImmutableString|
             -> Result<(), Box<rhai::EvalAltResult>> {
                c.set_macro(name, value.to_string())
            },
        );
    engine.register_type_with_name::<ScriptChildren>("Children").register_indexer_get(
        |children: &mut ScriptChildren, name: &str| -> Dynamic {
            let snapshot = &children.snapshot;
            match snapshot.children.iter().position(|(n, _)| n == name) {
                Some(child) => {
                    Dynamic::from(ScriptContext { snapshot: Rc::clone(snapshot), child })
                }
                None => Dynamic::UNIT,
            }
        },
    );
    engine
        .register_type_with_name::<ScriptAddress>("SocketAddress")
        .register_get("address", |a: &mut ScriptAddress| -> Dynamic {
            match a {
                ScriptAddress::Inet { ip, .. } => Dynamic::from(ip.to_string()),
                _ => Dynamic::UNIT,
            }
        })
        .register_get("port", |a: &mut ScriptAddress| -> Dynamic {
            match a {
                ScriptAddress::Inet { port, .. } => Dynamic::from(*port as i64),
                _ => Dynamic::UNIT,
            }
        })
        .register_get("path", |a: &mut ScriptAddress| -> Dynamic {
            match a {
                ScriptAddress::Unix { path } => Dynamic::from(path.clone()),
                _ => Dynamic::UNIT,
            }
        })
        .register_get("family", |a: &mut ScriptAddress| -> String {
            match a {
                ScriptAddress::Inet { ip: IpAddr::V4(_), .. } => "inet".into(),
                ScriptAddress::Inet { ip: IpAddr::V6(_), .. } => "inet6".into(),
                ScriptAddress::Unix { .. } => "unix".into(),
                ScriptAddress::Unknown => "unknown".into(),
            }
        })
        .register_get("local", |a: &mut ScriptAddress| a.is_local())
        .register_get("to_ip_address", |a: &mut ScriptAddress| -> Dynamic {
            match a {
                ScriptAddress::Inet { ip, .. } => Dynamic::from(ScriptIp(*ip)),
                _ => Dynamic::UNIT,
            }
        })
        .register_get("to_s", |a: &mut ScriptAddress| a.to_spec())
        .register_fn("to_s", |a: &mut ScriptAddress| a.to_spec())
        .register_fn("to_string", |a: &mut ScriptAddress| a.to_spec());
    engine
        .register_type_with_name::<ScriptIp>("IPAddress")
        .register_get("to_s", |ip: &mut ScriptIp| ip.0.to_string())
        .register_fn("to_s", |ip: &mut ScriptIp| ip.0.to_string())
        .register_fn("to_string", |ip: &mut ScriptIp| ip.0.to_string())
        .register_fn("to_debug", |ip: &mut ScriptIp| format!("IPAddress({})", ip.0))
        .register_get("ipv4", |ip: &mut ScriptIp| ip.0.is_ipv4())
        .register_get("ipv6", |ip: &mut ScriptIp| ip.0.is_ipv6())
        .register_get("local", |ip: &mut ScriptIp| RemoteNetwork::is_local(ip.0))
        .register_fn("include", |ip: &mut ScriptIp, network: &str| ip.is_in(network))
        .register_fn("==", |a: ScriptIp, b: ScriptIp| a == b)
        .register_fn("!=", |a: ScriptIp, b: ScriptIp| a != b)
        .register_fn("==", |a: ScriptIp, b: &str| a.equals_text(b))
        .register_fn("!=", |a: ScriptIp, b: &str| !a.equals_text(b))
        .register_fn("==", |a: &str, b: ScriptIp| b.equals_text(a))
        .register_fn("!=", |a: &str, b: ScriptIp| !b.equals_text(a));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(address: ScriptAddress, expression: &str) -> String {
        let mut engine = Engine::new();
        register(&mut engine);
        let mut scope = rhai::Scope::new();
        scope.push("address", address);
        let value: Dynamic = engine.eval_with_scope(&mut scope, expression).unwrap();
        value.to_string()
    }

    #[test]
    fn socket_addresses_as_the_manual_shows_them() {
        let v4 = ScriptAddress::from_connect(&ConnectAddress::Inet {
            port: 12345,
            address: b"192.168.1.1".to_vec(),
        });
        assert_eq!(eval(v4.clone(), "address.address"), "192.168.1.1");
        assert_eq!(eval(v4.clone(), "address.port"), "12345");
        assert_eq!(eval(v4.clone(), "address.to_s"), "inet:12345@[192.168.1.1]");
        assert_eq!(eval(v4.clone(), "address.local"), "true");
        assert_eq!(eval(v4.clone(), "address.to_ip_address.to_s"), "192.168.1.1");
        assert_eq!(eval(v4.clone(), "`${address.to_ip_address}`"), "192.168.1.1");
        assert_eq!(eval(v4.clone(), "type_of(address.to_ip_address)"), "IPAddress");
        assert_eq!(eval(v4.clone(), "address.to_ip_address == \"192.168.1.1\""), "true");
        assert_eq!(eval(v4.clone(), "\"192.168.1.2\" != address.to_ip_address"), "true");
        assert_eq!(eval(v4.clone(), "address.to_ip_address.include(\"192.168.0.0/16\")"), "true");
        assert_eq!(eval(v4.clone(), "address.to_ip_address.include(\"10.0.0.0/8\")"), "false");
        assert_eq!(eval(v4.clone(), "address.to_ip_address.ipv4"), "true");
        let v6 = ScriptAddress::from_connect(&ConnectAddress::Inet6 {
            port: 12345,
            address: b"IPv6:2001:db8::5".to_vec(),
        });
        assert_eq!(eval(v6.clone(), "address.to_s()"), "inet6:12345@[2001:db8::5]");
        assert_eq!(eval(v6.clone(), "address.local"), "false");
        assert_eq!(eval(v6.clone(), "address.family"), "inet6");
        assert_eq!(eval(v6.clone(), "address.to_ip_address.to_s()"), "2001:db8::5");
        assert_eq!(eval(v6.clone(), "address.to_ip_address == \"2001:db8:0::5\""), "true");
        assert_eq!(eval(v6.clone(), "address.to_ip_address.include(\"2001:db8::/32\")"), "true");
        assert_eq!(eval(v6.clone(), "address.to_ip_address.ipv6"), "true");
        assert_eq!(eval(v6.clone(), "address.to_ip_address == address.to_ip_address"), "true");
        let loopback = ScriptAddress::from_connect(&ConnectAddress::Inet6 {
            port: 1,
            address: b"::1".to_vec(),
        });
        assert_eq!(eval(loopback, "address.local"), "true");
        let unix = ScriptAddress::from_connect(&ConnectAddress::Unix {
            port: 0,
            path: b"/tmp/local.sock".to_vec(),
        });
        assert_eq!(eval(unix.clone(), "address.path"), "/tmp/local.sock");
        assert_eq!(eval(unix.clone(), "address.to_s"), "unix:/tmp/local.sock");
        assert_eq!(eval(unix.clone(), "address.local"), "true");
        assert_eq!(eval(unix.clone(), "address.to_ip_address == ()"), "true");
        assert_eq!(eval(unix, "type_of(address.to_ip_address)"), "()");
    }
}
