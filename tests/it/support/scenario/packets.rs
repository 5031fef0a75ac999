//! Commands and replies written as scenario text, e.g. `M <a@example.com> SIZE=10`,
//! `y "550 5.7.1 no"`, `O 6 all skip|no-connect`.

use milter_manager::protocol::{
    Actions, Command, ConnectAddress, MacroRequestStage, Negotiation, Reply, Steps,
};

fn text(t: &[u8]) -> String {
    String::from_utf8_lossy(t).into_owned()
}

fn arg(args: &[Vec<u8>], i: usize, what: &str) -> Result<Vec<u8>, String> {
    args.get(i).cloned().ok_or_else(|| format!("missing {what}"))
}

fn number(args: &[Vec<u8>], i: usize, what: &str) -> Result<u32, String> {
    text(&arg(args, i, what)?).parse().map_err(|_| format!("{what} must be a number"))
}

fn negotiation(args: &[Vec<u8>]) -> Result<Negotiation, String> {
    let version = number(args, 1, "version")?;
    let actions = match text(&arg(args, 2, "actions")?).as_str() {
        "all" => Actions::ALL,
        other => Actions::parse(other).map_err(|e| e.to_string())?,
    };
    let steps = match text(&arg(args, 3, "steps")?).as_str() {
        "all" => Steps::ALL,
        other => match other.strip_prefix("all-but:") {
            Some(left_out) => {
                Steps::ALL.difference(Steps::parse(left_out).map_err(|e| e.to_string())?)
            }
            None => Steps::parse(other).map_err(|e| e.to_string())?,
        },
    };
    let mut negotiation = Negotiation::new(version, actions, steps);
    for extra in &args[4.min(args.len())..] {
        // STAGE-INDEX=names
        let extra = text(extra);
        let (index, names) = extra.split_once('=').ok_or("symbol lists are INDEX=names")?;
        let index: u32 = index.parse().map_err(|_| "bad symbol list index")?;
        negotiation
            .macro_requests
            .push((MacroRequestStage::from_index(index), names.replace(',', " ").into_bytes()));
    }
    Ok(negotiation)
}

fn parameters(args: &[Vec<u8>], from: usize) -> Vec<Vec<u8>> {
    args[from.min(args.len())..].to_vec()
}

pub(crate) fn command(args: &[Vec<u8>]) -> Result<Command, String> {
    let code = text(&arg(args, 0, "command")?);
    Ok(match code.as_str() {
        "O" => Command::Negotiate(negotiation(args)?),
        "D" => {
            let stage = arg(args, 1, "macro stage")?;
            let mut macros = Vec::new();
            for pair in &args[2..] {
                let eq = pair.iter().position(|&b| b == b'=').ok_or("macros are name=value")?;
                macros.push((pair[..eq].to_vec(), pair[eq + 1..].to_vec()));
            }
            Command::DefineMacros { stage: stage[0], macros }
        }
        "C" => {
            let hostname = arg(args, 1, "host name")?;
            let family = text(&arg(args, 2, "family")?);
            let address = match family.as_str() {
                "U" => ConnectAddress::Unknown,
                "L" => ConnectAddress::Unix { port: 0, path: arg(args, 3, "path")? },
                "4" | "6" => {
                    let address = arg(args, 3, "address")?;
                    let port = u16::try_from(number(args, 4, "port")?)
                        .map_err(|_| "port: out of range".to_string())?;
                    if family == "4" {
                        ConnectAddress::Inet { port, address }
                    } else {
                        ConnectAddress::Inet6 { port, address }
                    }
                }
                other => return Err(format!("unknown family {other}")),
            };
            Command::Connect { hostname, address }
        }
        "H" => Command::Helo { fqdn: arg(args, 1, "fqdn")? },
        "M" => Command::EnvelopeFrom {
            address: arg(args, 1, "sender")?,
            parameters: parameters(args, 2),
        },
        "R" => Command::EnvelopeRecipient {
            address: arg(args, 1, "recipient")?,
            parameters: parameters(args, 2),
        },
        "T" => Command::Data,
        "L" => Command::Header { name: arg(args, 1, "name")?, value: arg(args, 2, "value")? },
        "N" => Command::EndOfHeader,
        "B" => Command::Body { chunk: arg(args, 1, "chunk")? },
        "E" => Command::EndOfMessage { chunk: args.get(1).cloned().unwrap_or_default() },
        "A" => Command::Abort,
        "U" => Command::Unknown { command: arg(args, 1, "command")? },
        "Q" => Command::Quit,
        "K" => Command::QuitNewConnection,
        other => return Err(format!("unknown command {other:?}")),
    })
}

pub(crate) fn reply(args: &[Vec<u8>]) -> Result<Reply, String> {
    let code = text(&arg(args, 0, "reply")?);
    let optional = |i: usize| args.get(i).cloned();
    Ok(match code.as_str() {
        "O" => Reply::Negotiate(negotiation(args)?),
        "c" => Reply::Continue,
        "a" => Reply::Accept,
        "r" => Reply::Reject,
        "t" => Reply::TemporaryFailure,
        "d" => Reply::Discard,
        "s" => Reply::Skip,
        "p" => Reply::Progress,
        "f" => Reply::ConnectionFailure,
        "4" => Reply::Shutdown,
        "y" => Reply::ReplyCode { text: arg(args, 1, "reply text")? },
        "h" => Reply::AddHeader { name: arg(args, 1, "name")?, value: arg(args, 2, "value")? },
        "i" => Reply::InsertHeader {
            index: number(args, 1, "index")?,
            name: arg(args, 2, "name")?,
            value: arg(args, 3, "value")?,
        },
        "m" => Reply::ChangeHeader {
            index: number(args, 1, "index")?,
            name: arg(args, 2, "name")?,
            value: arg(args, 3, "value")?,
        },
        "e" => Reply::ChangeFrom { address: arg(args, 1, "sender")?, parameters: optional(2) },
        "+" => Reply::AddRecipient { address: arg(args, 1, "recipient")? },
        "2" => Reply::AddRecipientWithParameters {
            address: arg(args, 1, "recipient")?,
            parameters: optional(2),
        },
        "-" => Reply::DeleteRecipient { address: arg(args, 1, "recipient")? },
        "b" => Reply::ReplaceBody { chunk: args.get(1).cloned().unwrap_or_default() },
        "q" => Reply::Quarantine { reason: arg(args, 1, "reason")? },
        other => return Err(format!("unknown reply {other:?}")),
    })
}
