//! `docs/benchmarks.png`: latency (p99 inter-chunk gap, median added time to first token) and
//! peak resident memory against concurrent streams, both servers, on log scales.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::Measured;
use crate::mock_model::ModelScript;
use crate::report::{added_ttft_ms, p99_gap_ms};

/// Where the TTF the labels are drawn with is looked for (Debian's `fonts-dejavu-core` first).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const COLOURS: [RGBColor; 2] = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28)];

/// One server's curves: (concurrency, value) points.
struct Curves {
    name: String,
    gap: Vec<(f64, f64)>,
    ttft: Vec<(f64, f64)>,
    rss: Vec<(f64, f64)>,
}

fn curves(measured: &[Measured], script: &ModelScript) -> Vec<Curves> {
    measured
        .iter()
        .map(|m| {
            let mut curves = Curves {
                name: m.name.clone(),
                gap: Vec::new(),
                ttft: Vec::new(),
                rss: Vec::new(),
            };
            for level in &m.levels {
                let x = level.concurrency as f64;
                if let Some(gap) = p99_gap_ms(&level.timings) {
                    curves.gap.push((x, gap.max(0.01)));
                }
                if let Some(ttft) = added_ttft_ms(&level.timings, script, 0.5) {
                    curves.ttft.push((x, ttft.max(0.01)));
                }
                curves.rss.push((x, level.peak_rss_kib as f64 / 1024.0));
            }
            curves
        })
        .collect()
}

fn font() -> Result<&'static [u8], String> {
    let path = std::env::var("CHATFN_BENCH_FONT")
        .ok()
        .into_iter()
        .chain(FONTS.iter().map(|path| (*path).to_owned()))
        .find(|path| Path::new(path).is_file())
        .ok_or("no TTF font found (install fonts-dejavu-core or set CHATFN_BENCH_FONT)")?;
    let bytes = std::fs::read(&path).map_err(|error| format!("{path}: {error}"))?;
    // Registered once for the life of the process, which plotters needs as 'static.
    Ok(Box::leak(bytes.into_boxed_slice()))
}

/// A tick label: whole numbers from 10 up, else two significant digits or so.
fn number(value: f64) -> String {
    if value >= 10.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The range a log axis needs to show every value, with some room around.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(low, high), v| {
        (low.min(v), high.max(v))
    });
    if low > high {
        return 1.0..10.0;
    }
    (low / 1.5)..(high * 1.5)
}

/// Draws the plot into `path` (a PNG).
pub fn write(path: &Path, measured: &[Measured], script: &ModelScript) -> Result<(), String> {
    register_font("sans-serif", FontStyle::Normal, font()?)
        .map_err(|_| "the font could not be read".to_owned())?;
    let curves = curves(measured, script);
    let levels: Vec<f64> = curves
        .iter()
        .flat_map(|c| c.rss.iter().map(|(x, _)| *x))
        .collect();
    if levels.is_empty() {
        return Err("no load levels to plot".into());
    }
    let x_range = log_range(levels.iter().copied());
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    let error = |e: DrawingAreaErrorKind<_>| format!("plot: {e}");
    root.fill(&WHITE).map_err(error)?;
    let (left, right) = root.split_horizontally(720);

    let latency = log_range(
        curves
            .iter()
            .flat_map(|c| c.gap.iter().chain(&c.ttft).map(|(_, y)| *y)),
    );
    let mut chart = ChartBuilder::on(&left)
        .caption("Latency against concurrent streams", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.clone().log_scale(), latency.log_scale())
        .map_err(error)?;
    chart
        .configure_mesh()
        .x_desc("concurrent streams")
        .y_desc("ms")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| number(*y))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(error)?;
    for (index, server) in curves.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(server.gap.clone(), colour.stroke_width(3)))
            .map_err(error)?
            .label(format!("{}: p99 inter-chunk gap", server.name))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(PointSeries::of_element(
                server.gap.clone(),
                4,
                colour.filled(),
                &|point, size, style| Circle::new(point, size, style),
            ))
            .map_err(error)?;
        chart
            .draw_series(DashedLineSeries::new(
                server.ttft.clone(),
                8,
                6,
                colour.stroke_width(2),
            ))
            .map_err(error)?
            .label(format!(
                "{}: added time to first token, median",
                server.name
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 8, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(PointSeries::of_element(
                server.ttft.clone(),
                4,
                colour.stroke_width(2),
                &|point, size, style| Circle::new(point, size, style),
            ))
            .map_err(error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(error)?;

    let memory = log_range(curves.iter().flat_map(|c| c.rss.iter().map(|(_, y)| *y)));
    let mut chart = ChartBuilder::on(&right)
        .caption("Peak resident memory", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.log_scale(), memory.log_scale())
        .map_err(error)?;
    chart
        .configure_mesh()
        .x_desc("concurrent streams")
        .y_desc("MiB")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| number(*y))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(error)?;
    for (index, server) in curves.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(server.rss.clone(), colour.stroke_width(3)))
            .map_err(error)?
            .label(server.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(PointSeries::of_element(
                server.rss.clone(),
                4,
                colour.filled(),
                &|point, size, style| Circle::new(point, size, style),
            ))
            .map_err(error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(error)?;
    root.present().map_err(error)?;
    Ok(())
}
