//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines, then
//! one line per sample, every family's samples together.
//!
//! Written here rather than taken from a crate: the values are already counted in shared
//! memory, histograms included, and only need printing; a metrics crate would have each
//! scrape rebuild its own registry of metric objects just to print them.

use std::fmt::Write;

/// The content type of the format, for HTTP.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a family counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// A text being written: a family, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    family: String,
}

impl Exposition {
    /// Starts the family `name` (a counter's ends in `_total`).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
        self.family = name.to_string();
    }

    /// A sample of the current family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: u64) {
        self.sample_named("", labels, &value.to_string());
    }

    /// A sample of a float value (`+Inf`, `-Inf` and `NaN` spelled as the format wants).
    pub fn sample_f64(&mut self, labels: &[(&str, &str)], value: f64) {
        self.sample_named("", labels, &float(value));
    }

    /// A histogram of the current family: `buckets` as (upper bound, cumulative count),
    /// then the `+Inf` bucket (`count`), `_sum` and `_count`.
    pub fn histogram(
        &mut self,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        for (bound, cumulative) in buckets {
            self.bucket(labels, &float(*bound), *cumulative);
        }
        self.bucket(labels, "+Inf", count);
        self.sample_named("_sum", labels, &float(sum));
        self.sample_named("_count", labels, &count.to_string());
    }

    fn bucket(&mut self, labels: &[(&str, &str)], le: &str, cumulative: u64) {
        let mut with_le = labels.to_vec();
        with_le.push(("le", le));
        self.sample_named("_bucket", &with_le, &cumulative.to_string());
    }

    fn sample_named(&mut self, suffix: &str, labels: &[(&str, &str)], value: &str) {
        let text = &mut self.text;
        text.push_str(&self.family);
        text.push_str(suffix);
        if !labels.is_empty() {
            text.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                let _ = write!(text, "{name}=\"{}\"", escape_label(value));
            }
            text.push('}');
        }
        let _ = writeln!(text, " {value}");
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust's shortest round-trip form ("0.001", "60", "1e-7"), which Go's parser takes.
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_label_escapes() {
        let mut out = Exposition::default();
        out.family("x_total", Kind::Counter, "Things\\done,\nby name.");
        out.sample(&[("name", "a \"b\"\\c\nd"), ("status", "pass")], 3);
        out.sample(&[], 0);
        out.family("y", Kind::Gauge, "Level.");
        out.sample_f64(&[], 0.5);
        out.sample_f64(&[], f64::INFINITY);
        assert_eq!(
            out.finish(),
            "# HELP x_total Things\\\\done,\\nby name.\n# TYPE x_total counter\n\
             x_total{name=\"a \\\"b\\\"\\\\c\\nd\",status=\"pass\"} 3\nx_total 0\n\
             # HELP y Level.\n# TYPE y gauge\ny 0.5\ny +Inf\n"
        );
    }

    #[test]
    fn a_histogram_has_cumulative_buckets_inf_sum_and_count() {
        let mut out = Exposition::default();
        out.family("t_seconds", Kind::Histogram, "Time.");
        out.histogram(&[("m", "a")], &[(0.001, 1), (2.5, 3)], 4.25, 5);
        assert_eq!(
            out.finish(),
            "# HELP t_seconds Time.\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{m=\"a\",le=\"0.001\"} 1\n\
             t_seconds_bucket{m=\"a\",le=\"2.5\"} 3\n\
             t_seconds_bucket{m=\"a\",le=\"+Inf\"} 5\n\
             t_seconds_sum{m=\"a\"} 4.25\nt_seconds_count{m=\"a\"} 5\n"
        );
    }
}
