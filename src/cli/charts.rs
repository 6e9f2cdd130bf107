//! Charts as PNG or SVG files (plotters, pure Rust): line charts in panels for losses and
//! accuracies, a confusion-matrix heatmap, and a grid of digit images.
//!
//! Text uses DejaVu Sans, embedded in the binary (`assets/`, its license beside it), so the
//! charts look the same on machines without fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use wgrad::Error;

const FONT: &str = "sans-serif";

/// Ten colours that stay apart on white (Tableau 10).
pub const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_err() {
            panic!("internal error: the embedded font does not parse");
        }
    });
}

/// How a line is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stroke {
    Solid,
    Dashed,
    Dotted,
}

/// One line of a panel.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text; empty for a line left out of the legend.
    pub name: String,
    pub color: RGBColor,
    pub stroke: Stroke,
    /// Draw a dot at every point (for short per-epoch series).
    pub markers: bool,
    pub points: Vec<(f64, f64)>,
}

/// One chart: axes, labels and lines.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic y axis (for losses).
    pub log_y: bool,
    /// Fixed y range; `None`: fitted to the data.
    pub y_range: Option<(f64, f64)>,
    /// Label the x axis with whole numbers only (epochs).
    pub integer_x: bool,
    /// Where the legend goes (away from where the lines end).
    pub legend: SeriesLabelPosition,
    pub series: Vec<Series>,
}

/// Draws `panels` side by side into `path`, `width` x `height` pixels; SVG when the name ends
/// in `.svg`, PNG otherwise.
pub fn save_panels(path: &Path, size: (u32, u32), panels: &[Panel]) -> Result<(), Error> {
    register_font();
    let is_svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if is_svg {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw_panels(&root, panels)
            .and_then(|_| root.present())
            .map_err(|e| chart_error(path, e))
    } else {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw_panels(&root, panels)
            .and_then(|_| root.present())
            .map_err(|e| chart_error(path, e))
    }
}

fn chart_error<E: std::error::Error + Send + Sync>(
    path: &Path,
    e: DrawingAreaErrorKind<E>,
) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!("drawing the chart: {e}")),
    )
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[Panel],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    Ok(())
}

/// The range of the values, widened by 5% each side (and never empty).
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> DrawResult<DB> {
    let points = || p.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = if p.integer_x {
        // Whole epochs, a quarter epoch of margin each side.
        let (lo, hi) = span(points().map(|q| q.0));
        ((lo + 0.5).round() - 0.25, (hi - 0.5).round() + 0.25)
    } else {
        let (lo, hi) = span(points().map(|q| q.0));
        (lo.max(0.0), hi)
    };
    let x_ticks = if p.integer_x {
        ((x1 - x0).round() as usize + 1).min(12)
    } else {
        10
    };
    let mut chart = ChartBuilder::on(area);
    chart
        .caption(&p.title, (FONT, 22))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(72);
    if p.log_y {
        let positive = points().map(|q| q.1).filter(|&v| v > 0.0 && v.is_finite());
        let (lo, hi) = positive.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = match p.y_range {
            Some(r) => r,
            None if lo.is_finite() => (lo / 1.15, hi * 1.15),
            None => (1e-3, 1.0),
        };
        let y = (lo..hi).log_scale().with_key_points(log_ticks(lo, hi));
        let mut c = chart.build_cartesian_2d(x0..x1, y)?;
        mesh(&mut c, p, x_ticks)?;
        for s in &p.series {
            let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|q| q.1 > 0.0).collect();
            draw_series(&mut c, s, pts)?;
        }
        if p.series.iter().any(|s| !s.name.is_empty()) {
            legend(&mut c, p.legend.clone())?;
        }
    } else {
        let (lo, hi) = p.y_range.unwrap_or_else(|| span(points().map(|q| q.1)));
        let mut c = chart.build_cartesian_2d(x0..x1, lo..hi)?;
        mesh(&mut c, p, x_ticks)?;
        for s in &p.series {
            match p.y_range {
                // A fixed range cuts the lines at its edges (plotters would pin them there).
                Some((lo, hi)) => {
                    let parts = clip(&s.points, lo, hi);
                    for (i, part) in parts.into_iter().enumerate() {
                        let labelled = Series {
                            name: if i == 0 {
                                s.name.clone()
                            } else {
                                String::new()
                            },
                            markers: false,
                            ..s.clone()
                        };
                        draw_series(&mut c, &labelled, part)?;
                    }
                    // Markers on the data points only, not where a line meets an edge.
                    if s.markers {
                        let inside = s.points.iter().filter(|q| q.1 >= lo && q.1 <= hi);
                        c.draw_series(inside.map(|&q| Circle::new(q, 3, s.color.filled())))?;
                    }
                }
                None => draw_series(&mut c, s, s.points.clone())?,
            }
        }
        if p.series.iter().any(|s| !s.name.is_empty()) {
            legend(&mut c, p.legend.clone())?;
        }
    }
    Ok(())
}

fn mesh<'a, DB, Y>(
    c: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    p: &Panel,
    x_ticks: usize,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let x_format = |v: &f64| x_tick(*v, p.integer_x);
    let y_format = |v: &f64| significant(*v);
    let mut m = c.configure_mesh();
    m.x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .x_labels(x_ticks)
        .y_labels(12)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(WHITE.mix(0.0));
    if p.integer_x {
        m.disable_x_mesh();
    }
    m.draw()
}

/// Ticks of a log axis: 1-2-5 times powers of ten within `[lo, hi]`, or finer steps when
/// that gives fewer than four.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let within = |mantissas: &[f64]| -> Vec<f64> {
        let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (k0..=k1)
            .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|&v| v >= lo && v <= hi)
            .collect()
    };
    let coarse = within(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 4 {
        return coarse;
    }
    within(&[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
}

/// A tick value to three significant digits, without trailing zeros: 0.05, 0.25, 2, 97.5.
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 8) as usize;
    trim(&format!("{v:.digits$}"))
}

/// Tick text of the x axis: whole numbers only for epochs (other ticks left blank).
fn x_tick(v: f64, integer: bool) -> String {
    if !integer {
        return significant(v);
    }
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}

/// A number's text without trailing zeros after its decimal point.
fn trim(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// The parts of a polyline within `lo <= y <= hi`, cut where it crosses the edges.
fn clip(points: &[(f64, f64)], lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let inside = |p: &(f64, f64)| p.1 >= lo && p.1 <= hi;
    // Where the segment a-b crosses the edge y = e.
    let cross = |a: (f64, f64), b: (f64, f64), e: f64| {
        let t = (e - a.1) / (b.1 - a.1);
        (a.0 + t * (b.0 - a.0), e)
    };
    let mut parts = Vec::new();
    let mut part: Vec<(f64, f64)> = Vec::new();
    for (i, &p) in points.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| points[j]);
        match (prev, inside(&p)) {
            (Some(a), true) if !inside(&a) => {
                part.push(cross(a, p, if a.1 < lo { lo } else { hi }));
                part.push(p);
            }
            (_, true) => part.push(p),
            (Some(a), false) if inside(&a) => {
                part.push(cross(a, p, if p.1 < lo { lo } else { hi }));
                parts.push(std::mem::take(&mut part));
            }
            _ => {}
        }
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

fn draw_series<'a, DB, X, Y>(
    c: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    s: &Series,
    pts: Vec<(f64, f64)>,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = s.color.stroke_width(2);
    let color = s.color;
    // Dash and gap lengths in pixels; a solid line is one long dash.
    let dash = match s.stroke {
        Stroke::Solid => (24, 1),
        Stroke::Dashed => (8, 5),
        Stroke::Dotted => (3, 4),
    };
    let anno = match s.stroke {
        Stroke::Solid => c.draw_series(LineSeries::new(pts.clone(), style))?,
        _ => c.draw_series(DashedLineSeries::new(pts.clone(), dash.0, dash.1, style))?,
    };
    if !s.name.is_empty() {
        anno.label(&s.name).legend(move |(x, y)| {
            let style = color.stroke_width(2);
            plotters::element::DashedPathElement::new(
                vec![(x, y), (x + 22, y)],
                dash.0,
                dash.1,
                style,
            )
        });
    }
    if s.markers {
        c.draw_series(pts.iter().map(|&q| Circle::new(q, 3, color.filled())))?;
    }
    Ok(())
}

fn legend<'a, DB, X, Y>(
    c: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    c.configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 15))
        .draw()
}

/// A confusion matrix as a heatmap: rows the true class, columns the prediction, each cell
/// shaded by its share of the row and labelled with its count.
pub fn save_confusion(path: &Path, matrix: &[Vec<u64>], title: &str) -> Result<(), Error> {
    register_font();
    let root = BitMapBackend::new(path, (760, 720)).into_drawing_area();
    draw_confusion(&root, matrix, title)
        .and_then(|_| root.present())
        .map_err(|e| chart_error(path, e))
}

fn draw_confusion<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    m: &[Vec<u64>],
    title: &str,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    // Cell (r, c) is centred on (c, n-1-r), so that class 0 is the top row.
    let n = m.len();
    let top = n as f64 - 0.5;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..top, -0.5..top)?;
    let class = |v: f64, flip: bool| {
        let k = v.round();
        if (v - k).abs() > 1e-6 || k < 0.0 || k > top {
            return String::new();
        }
        let k = k as usize;
        (if flip { n - 1 - k } else { k }).to_string()
    };
    let x_format = |v: &f64| class(*v, false);
    let y_format = |v: &f64| class(*v, true);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted class")
        .y_desc("true class")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .draw()?;
    let centre = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    );
    for (r, row) in m.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        let y = (n - 1 - r) as f64;
        for (c, &count) in row.iter().enumerate() {
            let share = count as f64 / total;
            // White to dark blue by the share of the true class's rows.
            let shade = |full: u8| (255.0 - (255.0 - full as f64) * share.sqrt()) as u8;
            let fill = RGBColor(shade(8), shade(48), shade(107));
            let x = c as f64;
            let cell = [(x - 0.5, y + 0.5), (x + 0.5, y - 0.5)];
            chart.draw_series(std::iter::once(Rectangle::new(cell, fill.filled())))?;
            let ink = if share > 0.4 { WHITE } else { BLACK };
            let style = TextStyle::from((FONT, 15).into_font())
                .color(&ink)
                .pos(centre);
            let label = Text::new(count.to_string(), (x, y), style);
            chart.draw_series(std::iter::once(label))?;
        }
    }
    Ok(())
}

/// A grid of 28x28 images in `[0, 1]`: each row of `rows` is a labelled strip of images.
pub fn save_image_rows(
    path: &Path,
    rows: &[(String, Vec<&[f32]>)],
    side: usize,
) -> Result<(), Error> {
    register_font();
    const SCALE: u32 = 3;
    const GAP: u32 = 6;
    const LABEL: u32 = 28;
    let per_row = rows.iter().map(|r| r.1.len()).max().unwrap_or(1) as u32;
    let cell = side as u32 * SCALE;
    let width = GAP + per_row * (cell + GAP);
    let height = rows.len() as u32 * (LABEL + cell + GAP) + GAP;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    draw_image_rows(&root, rows, side, (SCALE, GAP, LABEL))
        .and_then(|_| root.present())
        .map_err(|e| chart_error(path, e))
}

fn draw_image_rows<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[(String, Vec<&[f32]>)],
    side: usize,
    (scale, gap, label): (u32, u32, u32),
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let cell = side as u32 * scale;
    for (r, (title, images)) in rows.iter().enumerate() {
        let top = gap + r as u32 * (label + cell + gap);
        root.draw_text(
            title,
            &(FONT, 18).into_font().color(&BLACK),
            (gap as i32, top as i32 + 4),
        )?;
        for (i, img) in images.iter().enumerate() {
            let left = gap + i as u32 * (cell + gap);
            for (p, &v) in img.iter().enumerate().take(side * side) {
                // Dark ink on white, as digits are printed.
                let g = 255 - (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                let (px, py) = ((p % side) as u32 * scale, (p / side) as u32 * scale);
                let x = (left + px) as i32;
                let y = (top + label + py) as i32;
                let rect = Rectangle::new(
                    [(x, y), (x + scale as i32, y + scale as i32)],
                    RGBColor(g, g, g).filled(),
                );
                root.draw(&rect)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_the_range_edges() {
        let pts = [(0.0, 0.0), (1.0, 2.0), (2.0, 4.0), (3.0, 2.0)];
        let parts = clip(&pts, 1.0, 3.0);
        assert_eq!(
            parts,
            vec![
                vec![(0.5, 1.0), (1.0, 2.0), (1.5, 3.0)],
                vec![(2.5, 3.0), (3.0, 2.0)]
            ]
        );
        assert!(clip(&[(0.0, 5.0), (1.0, 6.0)], 1.0, 3.0).is_empty());
    }

    #[test]
    fn log_ticks_are_one_two_five() {
        let t = log_ticks(0.03, 2.5);
        let want = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0];
        assert_eq!(t.len(), want.len(), "{t:?}");
        assert!(
            t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{t:?}"
        );
    }
}
