//! One chart's data, and its SVG drawn by plotters (lines over time, title, axes with
//! units, legend).

use plotters::prelude::*;

use super::clock;

pub const WIDTH: u32 = 960;
/// Room on the right for the legend, outside the lines.
const LEGEND_WIDTH: u32 = 180;
pub const HEIGHT: u32 = 360;

/// A line chart over time: one value per series for each of `times` (bucket starts).
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The file name without `.svg`.
    pub id: String,
    pub title: String,
    /// The unit of the values (the y axis).
    pub y_label: &'static str,
    /// Whether the x axis shows times of day (else dates).
    pub with_time: bool,
    pub start: i64,
    pub end: i64,
    pub times: Vec<i64>,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// NaN where there is no value (the line skips it).
    pub values: Vec<f64>,
}

/// The SVG document of `chart`.
pub fn svg(chart: &Chart) -> Result<String, String> {
    let mut out = String::new();
    draw(chart, &mut out).map_err(|error| format!("cannot draw chart {}: {error}", chart.id))?;
    Ok(out)
}

fn draw(chart: &Chart, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let highest = chart
        .series
        .iter()
        .flat_map(|series| series.values.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let top = if highest > 0.0 { highest * 1.15 } else { 1.0 };
    let mut context = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(10)
        .margin_right(LEGEND_WIDTH)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (chart.start..chart.end).with_key_points(key_times(chart.start, chart.end)),
            0.0..top,
        )?;
    let with_time = chart.with_time;
    let x_formatter = move |time: &i64| clock::format_axis(*time, with_time);
    context
        .configure_mesh()
        .x_desc(if with_time { "time of day (UTC)" } else { "date (UTC, month-day)" })
        .y_desc(chart.y_label)
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&x_formatter)
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (index, series) in chart.series.iter().enumerate() {
        let color = color_of(&series.name, index);
        let points = chart
            .times
            .iter()
            .zip(&series.values)
            .filter(|(_, value)| value.is_finite())
            .map(|(&time, &value)| (time, value));
        context.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
    }
    // The legend, in the room kept right of the plotting area (plotters' own legend box
    // stays inside the plotting area, over the lines).
    let (width, _) = root.dim_in_pixel();
    let left = i32::try_from(width - LEGEND_WIDTH).unwrap_or(0) + 20;
    root.draw(&Text::new(
        "Legend",
        (left, 40),
        ("sans-serif", 15).into_font().style(FontStyle::Bold),
    ))?;
    // Up to 22 pixels a line; closer when there are many (all 15 stages fit).
    let count = i32::try_from(chart.series.len()).unwrap_or(1).max(1);
    let spacing = (22).min((i32::try_from(HEIGHT).unwrap_or(0) - 80) / count);
    for (index, series) in chart.series.iter().enumerate() {
        let color = color_of(&series.name, index);
        let y = 66 + spacing * i32::try_from(index).unwrap_or(0);
        root.draw(&PathElement::new(vec![(left, y), (left + 24, y)], color.stroke_width(3)))?;
        root.draw(&Text::new(
            series.name.as_str(),
            // Text hangs from its top-left corner: half a line up centres it on the mark.
            (left + 32, y - 8),
            ("sans-serif", 14),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// Ticks at round times: every 3 hours over a day, at midnight over a week, every 4 days
/// over a month, at the start of each month over a year.
fn key_times(start: i64, end: i64) -> Vec<i64> {
    let span = end - start;
    let every = if span <= 86_400 {
        3 * 3600
    } else if span <= 7 * 86_400 {
        86_400
    } else if span <= 31 * 86_400 {
        4 * 86_400
    } else {
        {
            let (mut year, mut month, _) = clock::civil_from_days(start.div_euclid(86_400));
            let mut times = Vec::new();
            loop {
                (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                let time = clock::days_from_civil(year, month, 1) * 86_400;
                if time > end {
                    return times;
                }
                times.push(time);
            }
        }
    };
    let first = (start.div_euclid(every) + 1) * every;
    (first..=end).step_by(usize::try_from(every).unwrap_or(1)).collect()
}

/// The same color for the same name on every chart.
fn color_of(name: &str, index: usize) -> RGBColor {
    match name {
        "pass" | "median" => RGBColor(46, 139, 87),
        "accept" | "90th percentile" => RGBColor(31, 119, 180),
        "reject" | "99th percentile" | "spam" => RGBColor(214, 39, 40),
        "discard" | "virus" => RGBColor(148, 103, 189),
        "temporary-failure" | "greylist" => RGBColor(255, 127, 14),
        "quarantine" => RGBColor(140, 86, 75),
        "abort" => RGBColor(127, 127, 127),
        "disconnected" => RGBColor(227, 119, 194),
        "error" => RGBColor(0, 0, 0),
        "skip" => RGBColor(23, 190, 207),
        "stop" => RGBColor(188, 189, 34),
        _ => {
            let RGBAColor(r, g, b, _) = Palette99::pick(index).to_rgba();
            RGBColor(r, g, b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts of an SVG document (plotters writes each on a line of its own).
    pub(crate) fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|text| {
                Some(text.split_once('>')?.1.split_once("</text>")?.0.trim().to_string())
            })
            .collect()
    }

    #[test]
    fn the_svg_has_title_axes_and_legend() {
        let chart = Chart {
            id: "sessions.day".into(),
            title: "Sessions by final status".into(),
            y_label: "sessions per minute",
            with_time: true,
            start: -3600,
            end: 86_400 - 3600,
            times: vec![0, 1200, 2400],
            series: vec![
                Series { name: "pass".into(), values: vec![1.0, 2.0, 0.5] },
                Series { name: "median".into(), values: vec![f64::NAN, 2.0, 1.0] },
            ],
        };
        let svg = svg(&chart).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        let texts = texts(&svg);
        for text in [
            "Sessions by final status",
            "sessions per minute",
            "time of day (UTC)",
            "pass",
            "median",
            "00:00",
            "03:00",
        ] {
            assert!(texts.contains(&text.to_string()), "{text} missing in {texts:?}");
        }
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn ticks_fall_on_round_times() {
        let day = 1_796_256_000;
        assert_eq!(
            key_times(day - 86_400 + 300, day + 300)[..2],
            [day - 86_400 + 3 * 3600, day - 86_400 + 6 * 3600]
        );
        assert_eq!(key_times(day - 7 * 86_400 + 1, day + 1).len(), 7);
        let months = key_times(day - 365 * 86_400, day);
        assert_eq!(months.len(), 12);
        assert_eq!(clock::format_minute(months[0]), "2026-01-01 00:00");
    }

    #[test]
    fn an_empty_chart_is_still_drawn() {
        let chart = Chart {
            id: "x".into(),
            title: "Nothing".into(),
            y_label: "seconds",
            with_time: false,
            start: 0,
            end: 86_400 * 7,
            times: vec![],
            series: vec![],
        };
        assert!(svg(&chart).unwrap().contains("Nothing"));
    }
}
