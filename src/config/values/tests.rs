use toml::de::DeValue;

use super::*;

fn value(text: &str) -> DeValue<'_> {
    DeValue::parse(text).unwrap().into_inner()
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
