//! The static site: which charts, over which ranges, from which counters; and the HTML
//! page that shows them with a table of each chart's data beside it.

use super::charts::{Chart, Series};
use super::clock;
use super::layout::*;
use super::store::{Archives, Store};

/// A time range of the page: its name (in file names), its heading, how far back it goes
/// and the resolution it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub name: &'static str,
    pub heading: &'static str,
    pub span: i64,
    pub step: i64,
}

pub const RANGES: [Range; 4] = [
    Range { name: "day", heading: "Last day", span: 86_400, step: 300 },
    Range { name: "week", heading: "Last week", span: 7 * 86_400, step: 3600 },
    Range { name: "month", heading: "Last month", span: 31 * 86_400, step: 3600 },
    Range { name: "year", heading: "Last year", span: 365 * 86_400, step: 86_400 },
];

/// Statuses drawn even when they have no data, so that a quiet site's legend still
/// says what the lines would be.
const USUAL_STATUSES: [&str; 4] = ["pass", "accept", "reject", "temporary-failure"];

/// The page's charts, range by range.
pub fn charts(store: &Store, now: i64) -> Vec<(Range, Vec<Chart>)> {
    RANGES.iter().map(|&range| (range, range_charts(store, range, now))).collect()
}

fn range_charts(store: &Store, range: Range, now: i64) -> Vec<Chart> {
    let end = (now.div_euclid(range.step) + 1) * range.step;
    let times: Vec<i64> =
        (end - range.span..end).step_by(usize::try_from(range.step).unwrap_or(1)).collect();
    let minutes = range.step as f64 / 60.0;
    let rows = |archives: &Archives| -> Vec<Option<Vec<u32>>> {
        let ring = archives.ring(range.step);
        times.iter().map(|&t| ring.and_then(|ring| ring.row(t)).map(<[u32]>::to_vec)).collect()
    };
    let column = |rows: &[Option<Vec<u32>>], index: usize| -> Vec<f64> {
        rows.iter()
            .map(|row| row.as_ref().map_or(0.0, |row| f64::from(row[index]) / minutes))
            .collect()
    };
    let chart = |id: String, title: String, unit: &'static str, series: Vec<Series>| Chart {
        id: format!("{id}.{}", range.name),
        title: format!("{title} — {}", range.heading.to_lowercase()),
        y_label: unit,
        with_time: range.step < 3600 || range.span <= 86_400,
        start: end - range.span,
        end,
        times: times.clone(),
        series,
    };
    let named = |rows: &[Option<Vec<u32>>],
                 names: &[&str],
                 first: usize,
                 always: &[&str]|
     -> Vec<Series> {
        names
            .iter()
            .enumerate()
            .map(|(i, &name)| Series { name: name.to_string(), values: column(rows, first + i) })
            .filter(|series| {
                always.contains(&series.name.as_str()) || series.values.iter().any(|&v| v > 0.0)
            })
            .collect()
    };

    let sessions = rows(&store.sessions);
    let mut status_series = named(&sessions, &STATUSES, SESSION_STATUS, &USUAL_STATUSES);
    let disconnected = column(&sessions, SESSION_DISCONNECTED);
    if disconnected.iter().any(|&v| v > 0.0) {
        status_series.push(Series { name: "disconnected".into(), values: disconnected });
    }
    let mut charts = vec![chart(
        "sessions".into(),
        "Sessions by final status".into(),
        "sessions per minute",
        status_series,
    )];
    for (index, (name, archives)) in store.milters().enumerate() {
        let rows = rows(archives);
        charts.push(chart(
            format!("milter-{index}-{}", file_safe(name)),
            format!("Child milter {name}: sessions by status"),
            "sessions per minute",
            named(&rows, &STATUSES, MILTER_STATUS, &["pass"]),
        ));
    }
    charts.push(chart(
        "stages".into(),
        "Sessions by the stage they ended in".into(),
        "sessions per minute",
        named(&sessions, &STAGES, SESSION_STAGE, &["end-of-message"]),
    ));
    charts.push(chart(
        "elapsed".into(),
        "Session duration percentiles".into(),
        "seconds",
        [(50.0, "median"), (90.0, "90th percentile"), (99.0, "99th percentile")]
            .iter()
            .map(|&(percent, name)| Series {
                name: name.into(),
                values: sessions
                    .iter()
                    .map(|row| row.as_ref().map_or(f64::NAN, |row| percentile(row, percent)))
                    .collect(),
            })
            .collect(),
    ));
    charts.push(chart(
        "modifications".into(),
        "Headers added by child milters, by kind".into(),
        "headers per minute",
        named(&sessions, &MODIFICATIONS, SESSION_MODIFICATION, &["spam", "virus"]),
    ));
    charts
}

/// The `percent` percentile of a bucket's session durations, as the end of the
/// elapsed-time bucket it falls in; NaN without sessions.
pub fn percentile(row: &[u32], percent: f64) -> f64 {
    let buckets = &row[SESSION_ELAPSED..SESSION_ELAPSED + ELAPSED_BUCKETS];
    let total: u64 = buckets.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return f64::NAN;
    }
    // At most `total`: no truncation.
    #[allow(clippy::cast_possible_truncation)]
    let rank = ((percent / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (bucket, &n) in buckets.iter().enumerate() {
        seen += u64::from(n);
        if seen >= rank {
            return elapsed_bucket_end(bucket);
        }
    }
    elapsed_bucket_end(ELAPSED_BUCKETS - 1)
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(40)
        .collect()
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn number(value: f64) -> String {
    if value.is_nan() {
        return "–".into();
    }
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The page: each range's charts (as `<img>` of `<chart id>.svg`) with their tables.
pub fn index_html(ranges: &[(Range, Vec<Chart>)], now: i64, store: &Store) -> String {
    let mut html = String::new();
    html.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<title>milter-manager statistics</title>\n<style>\n",
        "body{font-family:sans-serif;margin:1em 2em}figure{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}",
        "table{border-collapse:collapse;font-size:small}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}",
        "img{max-width:100%;height:auto}details{max-height:360px;overflow:auto}\n</style>\n</head>\n<body>\n",
        "<h1>milter-manager statistics</h1>\n"
    ));
    let latest = if store.watermark.count > 0 {
        format!("last statistics line counted: {} UTC", clock::format_minute(store.watermark.time))
    } else {
        "no statistics lines counted yet".to_string()
    };
    html.push_str(&format!(
        "<p>Generated {} UTC; {latest}. Times are UTC.</p>\n<nav><ul>\n",
        clock::format_minute(now)
    ));
    for (range, _) in ranges {
        html.push_str(&format!("<li><a href=\"#{}\">{}</a></li>\n", range.name, range.heading));
    }
    html.push_str("</ul></nav>\n");
    for (range, charts) in ranges {
        html.push_str(&format!("<section id=\"{}\">\n<h2>{}</h2>\n", range.name, range.heading));
        for chart in charts {
            html.push_str(&chart_html(chart));
        }
        html.push_str("</section>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

fn chart_html(chart: &Chart) -> String {
    let title = escape(&chart.title);
    let names: Vec<String> = chart.series.iter().map(|series| escape(&series.name)).collect();
    let mut html = format!(
        "<figure>\n<img src=\"{}.svg\" width=\"960\" height=\"360\" alt=\"{title}: {}\">\n",
        chart.id,
        names.join(", ")
    );
    html.push_str(&format!("<details>\n<summary>Table: {title}</summary>\n<table>\n<caption>{title} ({}); periods without data are left out</caption>\n", chart.y_label));
    html.push_str("<tr><th scope=\"col\">from (UTC)</th>");
    for name in &names {
        html.push_str(&format!("<th scope=\"col\">{name}</th>"));
    }
    html.push_str("</tr>\n");
    for (index, &time) in chart.times.iter().enumerate() {
        let values: Vec<f64> = chart.series.iter().map(|series| series.values[index]).collect();
        if values.iter().all(|&v| v == 0.0 || v.is_nan()) {
            continue;
        }
        html.push_str(&format!("<tr><th scope=\"row\">{}</th>", clock::format_minute(time)));
        for value in values {
            html.push_str(&format!("<td>{}</td>", number(value)));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n</details>\n</figure>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::log_analyzer::aggregate;
    use crate::tools::log_analyzer::parse::Record;

    const NOW: i64 = 1_796_256_000;

    fn store() -> Store {
        let mut store = Store::default();
        for (i, status) in ["pass", "pass", "reject", "accept", "pass"].iter().enumerate() {
            let record = Record::SessionEnd {
                stage: "end-of-message",
                status,
                elapsed: 0.01 * (i + 1) as f64,
            };
            aggregate::count(&mut store, NOW - 600, &record);
        }
        aggregate::count(
            &mut store,
            NOW - 600,
            &Record::MilterEnd {
                stage: "data",
                status: "reject",
                elapsed: 0.1,
                milter: "clam<av>",
            },
        );
        store
    }

    #[test]
    fn day_charts_read_five_minute_buckets_as_rates() {
        let ranges = charts(&store(), NOW);
        let (range, day) = &ranges[0];
        assert_eq!(range.name, "day");
        let ids: Vec<&str> = day.iter().map(|chart| chart.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "sessions.day",
                "milter-0-clam_av_.day",
                "stages.day",
                "elapsed.day",
                "modifications.day"
            ]
        );
        let sessions = &day[0];
        assert_eq!(sessions.times.len(), 288);
        let at = sessions.times.iter().position(|&t| t == NOW - 600).unwrap();
        let value =
            |name: &str| sessions.series.iter().find(|s| s.name == name).unwrap().values[at];
        assert_eq!((value("pass"), value("reject"), value("accept")), (0.6, 0.2, 0.2));
        assert_eq!(value("temporary-failure"), 0.0);
        assert!(!sessions.series.iter().any(|s| s.name == "discard"));
    }

    #[test]
    fn percentiles_are_bucket_ends() {
        let store = store();
        let row = store.sessions.ring(300).unwrap().row(NOW - 600).unwrap();
        // 10, 20, 30, 40, 50 ms.
        assert_eq!(percentile(row, 50.0), elapsed_bucket_end(elapsed_bucket(0.03)));
        assert_eq!(percentile(row, 99.0), elapsed_bucket_end(elapsed_bucket(0.05)));
        assert!(percentile(&[0; SESSION_WIDTH], 50.0).is_nan());
    }

    #[test]
    fn the_page_has_tables_and_escapes_names() {
        let store = store();
        let ranges = charts(&store, NOW);
        let html = index_html(&ranges, NOW, &store);
        assert!(html.contains("<img src=\"sessions.day.svg\""));
        assert!(html.contains("Child milter clam&lt;av&gt;: sessions by status"));
        assert!(!html.contains("clam<av>"));
        assert!(html.contains("<tr><th scope=\"row\">2026-12-02 23:50</th><td>0.6</td>"));
        assert!(!html.contains("<script"));
    }
}
