//! Each setting type's `Deserialize`: good values and each bad value's message, from a TOML
//! value and from a script value (both go through the same impl).

use rhai::{Array, Dynamic};
use toml::de::DeValue;

use super::*;
use crate::config::CommandOptions;
use crate::spec::Spec;
use crate::status::FallbackStatus;

fn value(text: &str) -> DeValue<'_> {
    DeValue::parse(text).unwrap().into_inner()
}

/// `text` (a TOML value) read as an `S`; the error as the user reads it.
fn toml<S: Setting>(text: &str) -> Result<S::Field, String> {
    let value = DeValue::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    decode::<S>(&Input::Toml(&value)).map_err(|e| e.to_string())
}

/// A script value read as an `S`.
fn script<S: Setting>(value: impl Into<Dynamic>) -> Result<S::Field, String> {
    decode::<S>(&Input::Script(&value.into())).map_err(|e| e.to_string())
}

fn strings(items: &[&str]) -> Dynamic {
    Dynamic::from(items.iter().map(|i| Dynamic::from(i.to_string())).collect::<Array>())
}

#[test]
fn flags_are_true_or_false() {
    assert_eq!(toml::<Flag>("true"), Ok(true));
    assert_eq!(script::<Flag>(false), Ok(false));
    let wrong = Err("expected true or false, found a string".to_string());
    assert_eq!(toml::<Flag>("\"yes\""), wrong);
    assert_eq!(script::<Flag>("yes"), wrong);
    assert_eq!(toml::<Flag>("1979-05-27"), Err("expected true or false, found a datetime".into()));
    assert_eq!(toml::<Flag>("{ a = 1 }"), Err("expected true or false, found a table".into()));
    assert_eq!(toml::<Flag>("[true]"), Err("expected true or false, found an array".into()));
}

#[test]
fn optional_strings_are_unset_by_an_empty_string_or_unit() {
    assert_eq!(toml::<Optional<Text>>("\"nobody\""), Ok(Some("nobody".into())));
    assert_eq!(toml::<Optional<Text>>("\"\""), Ok(None));
    assert_eq!(script::<Optional<Text>>(()), Ok(None));
    assert_eq!(
        toml::<Optional<Text>>("1"),
        Err("expected a string in quotes, found an integer".into())
    );
    assert_eq!(script::<Text>(()), Ok(String::new()));
}

#[test]
fn file_paths_cannot_hold_nul() {
    assert_eq!(toml::<Optional<FilePath>>("\"/run/m.pid\""), Ok(Some("/run/m.pid".into())));
    assert_eq!(
        toml::<Optional<FilePath>>("\"a\\u0000b\""),
        Err("a path cannot contain a NUL character".into())
    );
}

#[test]
fn choices_name_the_allowed_words() {
    assert_eq!(toml::<Platform>("\"redhat\""), Ok("redhat".into()));
    assert_eq!(
        toml::<Platform>("\"gentoo\""),
        Err(
            "unknown value \"gentoo\" (use one of \"debian\", \"redhat\", \"freebsd\", \"pkgsrc\")"
                .into()
        )
    );
    assert_eq!(script::<EventLoopBackend>("libev"), Ok("libev".into()));
    assert_eq!(
        toml::<EventLoopBackend>("\"epoll\""),
        Err("unknown value \"epoll\" (use one of \"glib\", \"libev\")".into())
    );
    assert_eq!(toml::<SyslogFacility>("\"local3\""), Ok("local3".into()));
    assert!(toml::<SyslogFacility>("\"email\"")
        .unwrap_err()
        .starts_with("unknown value \"email\" (use one of \"kern\", "));
}

#[test]
fn log_levels_are_kept_as_written() {
    assert_eq!(toml::<LogLevels>("\"error|warning\""), Ok("error|warning".into()));
    let error = toml::<LogLevels>("\"loud\"").unwrap_err();
    assert!(error.starts_with("unknown log level \"loud\" (use all, default, none or "), "{error}");
}

#[test]
fn package_options_are_name_value_pairs() {
    assert_eq!(
        toml::<Optional<PackageOptions>>("\"prefix=/etc,name=value\""),
        Ok(Some("prefix=/etc,name=value".into()))
    );
    assert_eq!(toml::<Optional<PackageOptions>>("\"\""), Ok(None));
    assert_eq!(
        toml::<Optional<PackageOptions>>("\"prefix\""),
        Err("\"prefix\" is not name=value (write \"name=value,name=value\")".into())
    );
}

#[test]
fn whole_numbers_are_range_checked_whatever_their_size() {
    type Workers = Whole32<0, 1000>;
    assert_eq!(toml::<Workers>("1_000"), Ok(1000));
    assert_eq!(toml::<Workers>("0x10"), Ok(16));
    assert_eq!(script::<Workers>(7_i64), Ok(7));
    let range = Err("must be a whole number from 0 to 1000".to_string());
    for bad in ["1001", "-1", "9223372036854775807", "-9223372036854775808"] {
        assert_eq!(toml::<Workers>(bad), range, "{bad}");
    }
    assert_eq!(script::<Workers>(-1_i64), range);
    assert_eq!(toml::<Workers>("1.5"), Err("expected a whole number, found a float".into()));
    assert_eq!(script::<Workers>("3"), Err("expected a whole number, found a string".into()));
    assert_eq!(
        toml::<Whole32<1, 65535>>("0"),
        Err("must be a whole number from 1 to 65535".into())
    );
    // Past u32 and below 0 for the items that take any u32 or u64.
    assert_eq!(
        toml::<AnyU32>("4294967296"),
        Err("must be a whole number from 0 to 4294967295".into())
    );
    assert_eq!(toml::<AnyU32>("4294967295"), Ok(u32::MAX));
    assert_eq!(toml::<AnyU64>("9223372036854775807"), Ok(i64::MAX as u64));
    assert_eq!(toml::<AnyU64>("-1"), Err("must be a whole number of at least 0".into()));
}

#[test]
fn automatic_numbers_take_an_empty_string() {
    assert_eq!(toml::<Automatic>("20"), Ok(Some(20)));
    assert_eq!(toml::<Automatic>("\"\""), Ok(None));
    assert_eq!(script::<Automatic>(()), Ok(None));
    assert_eq!(
        toml::<Automatic>("-1"),
        Err("must be a whole number from 0 to 4294967295, or \"\" for the automatic value".into())
    );
    assert_eq!(
        toml::<Automatic>("\"many\""),
        Err("expected a whole number, found a string, or \"\" for the automatic value".into())
    );
}

#[test]
fn modes_are_octal_in_both_forms() {
    assert_eq!(toml::<Mode>("0o660"), Ok(0o660));
    assert_eq!(toml::<Mode>("\"0660\""), Ok(0o660));
    assert_eq!(toml::<Mode>("\"660\""), Ok(0o660));
    assert_eq!(toml::<Mode>("\"0o600\""), Ok(0o600));
    let how = "write the mode in octal, as 0o660 or \"0660\"";
    assert_eq!(toml::<Mode>("660"), Err(format!("660 is not an octal number; {how}")));
    assert_eq!(toml::<Mode>("0x1b0"), Err(format!("0x1b0 is not an octal number; {how}")));
    assert_eq!(toml::<Mode>("\"0668\""), Err(format!("\"0668\" is not an octal number; {how}")));
    assert_eq!(toml::<Mode>("0o17777"), Err("a file mode is at most 0o7777".into()));
    assert_eq!(toml::<Mode>("true"), Err(format!("expected a file mode, found a boolean; {how}")));
    // A script's integer is the mode itself (`0o660` in Rhai is that number).
    assert_eq!(script::<Mode>(0o640_i64), Ok(0o640));
    assert_eq!(script::<Mode>(-1_i64), Err("a file mode is at most 0o7777".into()));
    assert_eq!(script::<Mode>("0600"), Ok(0o600));
}

#[test]
fn seconds_take_integers_and_floats() {
    assert_eq!(toml::<Seconds>("60"), Ok(60.0));
    assert_eq!(toml::<Seconds>("7.5"), Ok(7.5));
    assert_eq!(script::<Seconds>(1.5_f64), Ok(1.5));
    assert_eq!(script::<Seconds>(10_i64), Ok(10.0));
    let range = Err("must be a number of seconds above 0 and at most 86400".to_string());
    for bad in ["0", "-1", "0.0", "inf", "nan", "100000"] {
        assert_eq!(toml::<Seconds>(bad), range, "{bad}");
    }
    let wrong = Err("expected a number of seconds, found a string".to_string());
    assert_eq!(toml::<Seconds>("\"7\""), wrong);
    assert_eq!(script::<Seconds>("soon"), wrong);
}

#[test]
fn the_dnsbl_timeout_is_at_most_a_minute() {
    assert_eq!(toml::<DnsblTimeout>("2.5"), Ok(2.5));
    let range = "must be a number of seconds above 0 and at most 60 (the MTA waits for the \
                 answer to CONNECT meanwhile)";
    for bad in ["61", "0", "\"3\""] {
        assert_eq!(toml::<DnsblTimeout>(bad), Err(range.to_string()), "{bad}");
    }
    assert_eq!(script::<DnsblTimeout>(600_i64), Err(range.to_string()));
}

#[test]
fn specs_and_statuses_are_parsed() {
    assert_eq!(
        toml::<Spec>("\"inet:10025@[127.0.0.1]\""),
        Ok(Spec::parse("inet:10025@[127.0.0.1]").unwrap())
    );
    assert_eq!(
        toml::<Spec>("\"inet:x\""),
        Err("invalid connection spec \"inet:x\": port \"x\" is not a number".into())
    );
    assert_eq!(toml::<Optional<Spec>>("\"\""), Ok(None));
    assert_eq!(
        script::<Optional<Spec>>("unix:/run/a.sock").map(|s| s.unwrap().to_string()),
        Ok("unix:/run/a.sock".into())
    );
    assert_eq!(
        toml::<InetSpec>("\"inet6:9@[::1]\"").map(|spec| spec.to_string()),
        Ok("inet6:9@[::1]".into())
    );
    assert_eq!(
        toml::<InetSpec>("\"unix:/run/m.sock\""),
        Err("unix:/run/m.sock is not an inet: address: HTTP is served over TCP \
             (inet:PORT@[ADDRESS])"
            .into())
    );
    assert_eq!(toml::<FallbackStatus>("\"reject\""), Ok(FallbackStatus::Reject));
    assert_eq!(
        toml::<FallbackStatus>("\"pass\""),
        Err("unknown status \"pass\" (use \"accept\", \"temporary-failure\", \"reject\" or \"discard\")"
            .into())
    );
    assert_eq!(
        script::<FallbackStatus>(3_i64),
        Err("expected a string in quotes, found an integer".into())
    );
}

#[test]
fn command_options_are_a_line_or_arguments() {
    type Options = Optional<CommandOptions>;
    assert_eq!(toml::<Options>("\"start\""), Ok(Some(CommandOptions::Line("start".into()))));
    let arguments = Some(CommandOptions::Arguments(vec!["--a".into(), "b c".into()]));
    assert_eq!(toml::<Options>("[\"--a\", \"b c\"]"), Ok(arguments.clone()));
    assert_eq!(script::<Options>(strings(&["--a", "b c"])), Ok(arguments));
    assert_eq!(toml::<Options>("\"\""), Ok(None));
    assert_eq!(
        toml::<Options>("[1]"),
        Err("expected an array of strings, found an integer in it".into())
    );
    assert_eq!(
        toml::<Options>("1"),
        Err("expected a string or an array of strings, found an integer".into())
    );
}

#[test]
fn lists_take_one_string_or_an_array_and_check_each_entry() {
    assert_eq!(toml::<Names>("\"S25R\""), Ok(vec!["S25R".to_string()]));
    assert_eq!(script::<Names>(strings(&["a", "b"])), Ok(vec!["a".into(), "b".into()]));
    assert_eq!(toml::<Names>("[\"\"]"), Err("a name in the list is empty".into()));
    assert_eq!(toml::<Names>("true"), Err("expected an array of strings, found a boolean".into()));
    assert_eq!(
        toml::<Names>("[\"a\", 2.5]"),
        Err("expected an array of strings, found a float in it".into())
    );

    assert_eq!(toml::<NamesOrPatterns>("[\"mx.example\", \"/^dyn/i\"]").map(|l| l.len()), Ok(2));
    assert_eq!(toml::<NamesOrPatterns>("[\"\"]"), Err("an empty entry".into()));
    let error = toml::<NamesOrPatterns>("\"/[/\"").unwrap_err();
    assert!(error.starts_with("\"/[/\" is not a valid regular expression: "), "{error}");

    assert_eq!(toml::<Networks>("[\"192.0.2.0/24\", \"2001:db8::1\"]").map(|l| l.len()), Ok(2));
    let error = toml::<Networks>("[\"192.0.2.0/33\"]").unwrap_err();
    assert!(
        error.starts_with("\"192.0.2.0/33\" is neither an IP address nor a network"),
        "{error}"
    );

    assert_eq!(toml::<FileNames>("[\"/etc/domains\"]"), Ok(vec!["/etc/domains".into()]));
    let bad_file = Err("a file name in the list is empty or contains a NUL character".to_string());
    assert_eq!(toml::<FileNames>("[\"\"]"), bad_file);

    assert_eq!(toml::<DnsblServices>("[\"bl.example=127.0.0.2\"]").map(|l| l.len()), Ok(1));
    let error = toml::<DnsblServices>("[\"bl.example=yes\"]").unwrap_err();
    assert!(error.starts_with("invalid expected DNSBL answer \"yes\" for bl.example"), "{error}");
    let error = script::<DnsblServices>(strings(&["bl example"])).unwrap_err();
    assert!(error.starts_with("invalid DNSBL zone \"bl example\""), "{error}");

    assert_eq!(toml::<NameServers>("[\"127.0.0.1:5353\"]").map(|l| l.len()), Ok(1));
    let error = toml::<NameServers>("[\"ns.example\"]").unwrap_err();
    assert!(error.starts_with("invalid name server \"ns.example\""), "{error}");

    assert_eq!(toml::<Accounts>("[\"@example.org\"]").map(|l| l.len()), Ok(1));
    let error = toml::<Accounts>("[\"a b\"]").unwrap_err();
    assert!(error.starts_with("invalid restricted account \"a b\""), "{error}");
}

#[test]
fn plain_values_go_through_the_same_checks() {
    assert_eq!(decode_plain::<Whole32<0, 1000>, _>(4_u32), Ok(4));
    assert_eq!(
        decode_plain::<Whole32<0, 1000>, _>(1001_u32).map_err(|e| e.to_string()),
        Err("must be a whole number from 0 to 1000".into())
    );
    assert_eq!(
        decode_plain::<Mode, _>(0o10000_u32).map_err(|e| e.to_string()),
        Err("a file mode is at most 0o7777".into())
    );
    assert_eq!(decode_plain::<SyslogFacility, _>("mail"), Ok("mail".into()));
}

#[test]
fn quoted_strings_read_back() {
    for text in ["plain", "a \"b\" \\c", "tab\tnew\nline", "\u{1}\u{7f}é", ""] {
        let quoted = quote(text);
        assert_eq!(value(&quoted).as_str(), Some(text), "{quoted}");
    }
}

#[test]
fn shown_floats_read_back_as_floats() {
    for number in [297.0, 7.0, 0.1, 1e-7, 86400.0] {
        let text = Shown::Float(number).to_toml().unwrap();
        assert_eq!(
            value(&text).as_float().map(|f| f.as_str().parse::<f64>().unwrap()),
            Some(number)
        );
    }
}
