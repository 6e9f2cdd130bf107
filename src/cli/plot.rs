//! `wgrad plot`: loss and accuracy curves from the `--metrics` JSON lines of any run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use plotters::prelude::SeriesLabelPosition;
use serde_json::Value;
use wgrad::Error;

use super::charts::{self, Panel, Series, Stroke, COLORS};

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A metrics file written by `wgrad train --metrics`.
    pub metrics: PathBuf,
    /// The image to write: PNG, or SVG when the name ends in .svg.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// What the plot needs from a metrics file. Records are keyed by step or epoch, so that a
/// resumed run (which appends, repeating the steps after its last checkpoint) keeps the last.
#[derive(Debug, Default, PartialEq)]
pub struct Curves {
    pub steps: BTreeMap<u64, f64>,
    /// Per epoch: train loss, test loss, test accuracy, validation loss and accuracy.
    pub epochs: BTreeMap<u64, EpochFigures>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochFigures {
    pub train_loss: f64,
    pub test_loss: f64,
    pub test_acc: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
}

/// Reads a metrics file; a malformed line is an error naming the file and the line.
pub fn read_metrics(path: &Path) -> Result<Curves, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut curves = Curves::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| Error::data(path, format!("line {}: {msg}", i + 1));
        let v: Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object ({e})")))?;
        let num = |key: &str| v.get(key).and_then(Value::as_f64);
        let need = |key: &str| num(key).ok_or_else(|| bad(format!("has no number {key:?}")));
        match v.get("kind").and_then(Value::as_str) {
            Some("step") => {
                curves.steps.insert(need("step")? as u64, need("loss")?);
            }
            Some("epoch") => {
                let figures = EpochFigures {
                    train_loss: need("train_loss")?,
                    test_loss: need("test_loss")?,
                    test_acc: num("test_acc"),
                    val_loss: num("val_loss"),
                    val_acc: num("val_acc"),
                };
                curves.epochs.insert(need("epoch")? as u64, figures);
            }
            Some(_) => {}
            None => return Err(bad("has no \"kind\" (expected step, epoch or final)".into())),
        }
    }
    if curves.steps.is_empty() && curves.epochs.is_empty() {
        return Err(Error::data(
            path,
            "holds no step or epoch records (is it a `wgrad train --metrics` file?)",
        ));
    }
    Ok(curves)
}

pub fn run(a: PlotArgs) -> anyhow::Result<u8> {
    let curves = read_metrics(&a.metrics)?;
    let panels = panels(&curves);
    let width = 560 * panels.len() as u32;
    charts::save_panels(&a.output, (width, 560), &panels)?;
    log::info!("wrote {}", a.output.display());
    Ok(0)
}

/// Training loss per step; loss per epoch (training, test, validation); accuracy per epoch
/// when the run has one.
pub fn panels(c: &Curves) -> Vec<Panel> {
    let line = |name: &str, color: usize, stroke, markers, points: Vec<(f64, f64)>| Series {
        name: name.into(),
        color: COLORS[color],
        stroke,
        markers,
        points,
    };
    let per_epoch = |f: &dyn Fn(&EpochFigures) -> Option<f64>| -> Vec<(f64, f64)> {
        c.epochs
            .iter()
            .filter_map(|(&e, fig)| f(fig).map(|v| (e as f64, v)))
            .collect()
    };
    let mut out = Vec::new();
    if !c.steps.is_empty() {
        let points = c.steps.iter().map(|(&k, &l)| (k as f64, l)).collect();
        out.push(Panel {
            title: "Training loss per logged step".into(),
            x_label: "step".into(),
            y_label: "batch loss (log scale)".into(),
            log_y: true,
            y_range: None,
            integer_x: false,
            legend: SeriesLabelPosition::LowerLeft,
            series: vec![line("batch loss", 0, Stroke::Solid, false, points)],
        });
    }
    if !c.epochs.is_empty() {
        let mut series = vec![
            line(
                "train",
                0,
                Stroke::Solid,
                true,
                per_epoch(&|f| Some(f.train_loss)),
            ),
            line(
                "test",
                1,
                Stroke::Dashed,
                true,
                per_epoch(&|f| Some(f.test_loss)),
            ),
        ];
        let val = per_epoch(&|f| f.val_loss);
        if !val.is_empty() {
            series.push(line("validation", 2, Stroke::Dashed, true, val));
        }
        out.push(Panel {
            title: "Loss per epoch".into(),
            x_label: "epoch".into(),
            y_label: "loss (log scale)".into(),
            log_y: true,
            y_range: None,
            integer_x: true,
            legend: SeriesLabelPosition::LowerLeft,
            series,
        });
        let pct = |v: Option<f64>| v.map(|a| 100.0 * a);
        let test = per_epoch(&|f| pct(f.test_acc));
        if !test.is_empty() {
            let mut series = vec![line("test", 1, Stroke::Solid, true, test)];
            let val = per_epoch(&|f| pct(f.val_acc));
            if !val.is_empty() {
                series.push(line("validation", 2, Stroke::Dashed, true, val));
            }
            out.push(Panel {
                title: "Accuracy per epoch".into(),
                x_label: "epoch".into(),
                y_label: "accuracy (%)".into(),
                log_y: false,
                y_range: None,
                integer_x: true,
                legend: SeriesLabelPosition::LowerRight,
                series,
            });
        }
    }
    out
}
