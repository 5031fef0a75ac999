//! The original's items, the TOML key each becomes, and how a Ruby value turns into the
//! value our configuration takes.

use super::ast::Expr;
use super::regexp::pattern_entry;
use crate::text::quote;

/// What kind of value an item takes, which decides how a Ruby value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    /// A string that may be unset (`nil` in Ruby, `""` in our TOML).
    OptionalText,
    Bool,
    Count,
    /// A count where `nil` means "never" (0): `manager.maintenance_interval = nil`.
    CountOrNever,
    /// A socket mode: octal.
    Mode,
    Seconds,
    /// `"accept"` or `:accept`.
    Status,
    /// A list of strings (`applicable_conditions`, `name_servers`).
    Names,
    /// `command_options`: a string or a list of strings.
    TextOrNames,
    /// A count that may be unset.
    OptionalCount,
}

/// A value ready to be written out.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil` for an item that cannot be unset: our default stays (the original's `nil`
    /// meant its build-time default).
    Default,
    Text(String),
    Bool(bool),
    Int(i64),
    Mode(u32),
    Float(f64),
    List(Vec<String>),
}

impl Value {
    pub fn toml(&self) -> String {
        match self {
            Self::Default => String::new(),
            Self::Text(text) => quote(text),
            Self::Bool(flag) => flag.to_string(),
            Self::Int(number) => number.to_string(),
            Self::Mode(mode) => format!("0o{mode:o}"),
            Self::Float(number) => format!("{number:?}"),
            Self::List(items) => {
                let items: Vec<String> = items.iter().map(|item| quote(item)).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }

    pub fn rhai(&self) -> String {
        match self {
            Self::Text(text) => quote(text),
            Self::Mode(mode) => quote(&format!("0{mode:o}")),
            Self::List(items) => {
                let items: Vec<String> = items.iter().map(|item| quote(item)).collect();
                format!("[{}]", items.join(", "))
            }
            other => other.toml(),
        }
    }
}

/// The Ruby value `expr` as a value of `kind`, or why not.
pub fn convert(kind: ValueKind, expr: &Expr) -> Result<Value, String> {
    use ValueKind as K;
    let wrong = |wanted: &str| Err(format!("expected {wanted}, found {}", describe(expr)));
    match (kind, expr) {
        (K::Text | K::OptionalText | K::Status, Expr::Str(text)) => Ok(Value::Text(text.clone())),
        (K::Status, Expr::Symbol(name)) => Ok(Value::Text(name.replace('_', "-"))),
        (K::OptionalText | K::TextOrNames, Expr::Nil) => Ok(Value::Text(String::new())),
        (K::Text, Expr::Nil) => Ok(Value::Default),
        (K::Bool, Expr::Bool(flag)) => Ok(Value::Bool(*flag)),
        (K::Count | K::CountOrNever | K::OptionalCount, Expr::Int(n)) if *n >= 0 => {
            Ok(Value::Int(*n))
        }
        (K::CountOrNever, Expr::Nil) => Ok(Value::Int(0)),
        (K::Mode, Expr::Int(n)) => match u32::try_from(*n) {
            Ok(mode) if mode <= 0o7777 => Ok(Value::Mode(mode)),
            _ => Err(format!("mode {n:o} is not a socket mode (at most 07777)")),
        },
        (K::Mode, Expr::Str(text)) => {
            let digits = text.trim_start_matches("0o");
            match u32::from_str_radix(digits, 8) {
                Ok(mode) if mode <= 0o7777 => Ok(Value::Mode(mode)),
                _ => Err(format!("mode {text:?} is not an octal socket mode")),
            }
        }
        (K::Seconds, Expr::Int(n)) if *n > 0 => Ok(Value::Float(*n as f64)),
        (K::Seconds, Expr::Float(n)) if *n > 0.0 => Ok(Value::Float(*n)),
        (K::Names | K::TextOrNames, Expr::Array(items)) => {
            let mut names = Vec::new();
            for item in items {
                match item {
                    Expr::Str(text) | Expr::Symbol(text) => names.push(text.clone()),
                    _ => return wrong("a list of strings"),
                }
            }
            Ok(Value::List(names))
        }
        (K::Names, Expr::Str(text)) => Ok(Value::List(vec![text.clone()])),
        (K::Names, Expr::Nil) => Ok(Value::List(Vec::new())),
        (K::TextOrNames, Expr::Str(text)) => Ok(Value::Text(text.clone())),
        (K::Text | K::Status, _) => wrong("a string"),
        (K::OptionalText, _) => wrong("a string or nil"),
        (K::Bool, _) => wrong("true or false"),
        (K::Count | K::OptionalCount, _) => wrong("a number of 0 or more"),
        (K::CountOrNever, _) => wrong("a number of 0 or more, or nil"),
        (K::Mode, _) => wrong("an octal mode such as 0660"),
        (K::Seconds, _) => wrong("a number of seconds above 0"),
        (K::Names, _) => wrong("a list of strings"),
        (K::TextOrNames, _) => wrong("a string or a list of strings"),
    }
}

/// A host or domain entry of a list: a string, or a regexp as `"/regex/"`.
pub fn list_entry(expr: &Expr) -> Result<String, String> {
    match expr {
        Expr::Str(text) => Ok(text.clone()),
        Expr::Regexp { source, flags } => pattern_entry(source, flags),
        other => Err(format!("expected a string or a regexp, found {}", describe(other))),
    }
}

pub fn describe(expr: &Expr) -> &'static str {
    match expr {
        Expr::Str(_) => "a string",
        Expr::Interpolated(_) => "a string with #{...} (computed in Ruby)",
        Expr::Int(_) => "an integer",
        Expr::Float(_) => "a number",
        Expr::Bool(_) => "true or false",
        Expr::Nil => "nil",
        Expr::Regexp { .. } => "a regexp",
        Expr::Symbol(_) => "a symbol",
        Expr::Array(_) => "a list",
        Expr::Pair(..) => "a keyword argument",
        Expr::Call(_) | Expr::Index(..) | Expr::Constant(_) => "Ruby code (computed in Ruby)",
        Expr::Unary(..) | Expr::Binary(..) | Expr::If { .. } | Expr::Case { .. } => {
            "an expression (computed in Ruby)"
        }
    }
}

/// The items of a section the original sets with `section.key = value`, and their kinds.
/// The TOML key is the original's.
pub fn section_item(section: &str, key: &str) -> Option<ValueKind> {
    use ValueKind as K;
    let kind = match (section, key) {
        ("package", "platform") => K::Text,
        ("package", "options") => K::OptionalText,
        ("security", "privilege_mode") => K::Bool,
        ("security", "effective_user" | "effective_group") => K::OptionalText,
        ("manager", "connection_spec") => K::Text,
        ("controller", "connection_spec") => K::OptionalText,
        ("manager" | "controller", "unix_socket_mode") => K::Mode,
        ("manager" | "controller", "unix_socket_group") => K::OptionalText,
        (
            "manager" | "controller",
            "remove_unix_socket_on_create" | "remove_unix_socket_on_close",
        ) => K::Bool,
        ("manager", "daemon" | "report_memory_statistics") => K::Bool,
        ("manager", "pid_file" | "custom_configuration_directory" | "temporary_directory") => {
            K::OptionalText
        }
        ("manager", "maintenance_interval") => K::CountOrNever,
        (
            "manager",
            "suspend_time_on_unacceptable"
            | "max_connections"
            | "max_file_descriptors"
            | "n_workers"
            | "packet_buffer_size"
            | "chunk_size"
            | "max_pending_finished_sessions"
            | "connection_check_interval"
            | "max_body_memory",
        ) => K::Count,
        ("manager", "negotiation_timeout") => K::Seconds,
        ("manager", "fallback_status" | "fallback_status_at_disconnect") => K::Status,
        ("manager", "event_loop_backend") => K::Text,
        ("log", "level" | "syslog_facility") => K::Text,
        ("log", "path") => K::OptionalText,
        ("log", "use_syslog") => K::Bool,
        ("s25r", "check_only_ipv4") => K::Bool,
        ("stress", "threshold_n_connections") => K::OptionalCount,
        ("dnsbl", "name_servers") => K::Names,
        ("dnsbl", "timeout") => K::Seconds,
        _ => return None,
    };
    Some(kind)
}

/// The items of `define_milter`, by the original's name.
pub fn milter_item(key: &str) -> Option<ValueKind> {
    use ValueKind as K;
    Some(match key {
        "connection_spec" | "description" | "command" | "user_name" => K::OptionalText,
        "enabled" | "evaluation_mode" => K::Bool,
        "fallback_status" => K::Status,
        "applicable_conditions" => K::Names,
        "command_options" => K::TextOrNames,
        "connection_timeout" | "writing_timeout" | "reading_timeout" | "end_of_message_timeout" => {
            K::Seconds
        }
        _ => return None,
    })
}

/// The original's shipped conditions, by the file that defines them, as our built-ins.
pub const SHIPPED_CONDITION_FILES: [&str; 8] = [
    "s25r.conf",
    "remote-network.conf",
    "authentication.conf",
    "sendmail-compatible.conf",
    "stress.conf",
    "trust.conf",
    "dnsbl.conf",
    "restrict-accounts.conf",
];

/// Our name for a condition the original ships, `None` for any other name.
pub fn builtin_condition(name: &str) -> Option<&'static str> {
    Some(match name {
        "S25R" => "S25R",
        "Remote Network" => "Remote Network",
        "Authenticated" | "Authentication" => "Authenticated",
        "Unauthenticated" | "Unauthentication" => "Unauthenticated",
        "Sendmail Compatible" => "Sendmail Compatible",
        "Stress Notify" => "Stress Notify",
        "No Stress" => "No Stress",
        "Trust" => "Trust",
        "DNSBL Listed" => "DNSBL Listed",
        "Not DNSBL Listed" => "Not DNSBL Listed",
        "Restrict Accounts" => "Restrict Accounts",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_values_become_the_values_our_items_take() {
        assert_eq!(convert(ValueKind::Mode, &Expr::Int(0o660)).unwrap().toml(), "0o660");
        assert_eq!(convert(ValueKind::Seconds, &Expr::Int(60)).unwrap().toml(), "60.0");
        assert_eq!(
            convert(ValueKind::Status, &Expr::Symbol("temporary_failure".into())),
            Ok(Value::Text("temporary-failure".into()))
        );
        assert_eq!(convert(ValueKind::OptionalText, &Expr::Nil).unwrap().toml(), "\"\"");
        assert_eq!(convert(ValueKind::CountOrNever, &Expr::Nil), Ok(Value::Int(0)));
        let error = convert(ValueKind::Bool, &Expr::Str("yes".into())).unwrap_err();
        assert_eq!(error, "expected true or false, found a string");
        assert_eq!(quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }
}
