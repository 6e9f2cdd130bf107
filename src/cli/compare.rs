//! `wgrad compare`: the lecture's optimizer study in one command. One model is trained once per
//! optimizer, every run from the same initial weights and the same row order, and the results
//! are written to `--out`: `results.csv` (one row per optimizer and epoch), `steps.csv` (the
//! logged batch losses), `loss.png`/`.svg`, `accuracy.png`/`.svg` and `summary.md`, whose
//! table is also printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use plotters::prelude::SeriesLabelPosition;
use wgrad::graph::Network;
use wgrad::optim::{Config, Schedule};
use wgrad::train::{self, EpochReport, FitOptions, Observer, StepReport, Trainer};
use wgrad::{checkpoint, Error};

use super::charts::{self, Panel, Series, Stroke};
use super::train::{load_mnist, spec_from, ModelArg, ScheduleArg};

/// The optimizers of the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    Sgd,
    Momentum,
    Nesterov,
    Adagrad,
    Adam,
    AdamL2,
    Adamw,
}

impl Variant {
    pub const ALL: [Variant; 7] = [
        Variant::Sgd,
        Variant::Momentum,
        Variant::Nesterov,
        Variant::Adagrad,
        Variant::Adam,
        Variant::AdamL2,
        Variant::Adamw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Sgd => "sgd",
            Variant::Momentum => "momentum",
            Variant::Nesterov => "nesterov",
            Variant::Adagrad => "adagrad",
            Variant::Adam => "adam",
            Variant::AdamL2 => "adam-l2",
            Variant::Adamw => "adamw",
        }
    }

    fn parse(name: &str, flag: &str) -> Result<Variant, Error> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{flag}: unknown optimizer {name:?}; expected one of {}",
                    names(&Variant::ALL)
                ))
            })
    }

    /// PyTorch's default rate: 1e-3, AdaGrad 1e-2 (the lecture's one-rate view).
    fn default_lr(self) -> f64 {
        match self {
            Variant::Adagrad => 1e-2,
            _ => 1e-3,
        }
    }

    /// Rates tuned per optimizer for MNIST at batch 64 (`--lr tuned`).
    fn tuned_lr(self) -> f64 {
        match self {
            Variant::Sgd => 0.1,
            Variant::Momentum | Variant::Nesterov | Variant::Adagrad => 0.05,
            Variant::Adam | Variant::AdamL2 | Variant::Adamw => 1e-3,
        }
    }

    /// Default weight decay: adam-l2 1e-4 (coupled L2, added to the gradient), adamw 1e-2
    /// (decoupled, PyTorch's default); none for the others.
    fn default_wd(self) -> f64 {
        match self {
            Variant::AdamL2 => 1e-4,
            Variant::Adamw => 1e-2,
            _ => 0.0,
        }
    }

    /// How its accuracy line is drawn, so that runs that coincide (momentum and Nesterov,
    /// the Adam family at one rate) stay visible on top of each other.
    fn stroke(self) -> Stroke {
        match self {
            Variant::Nesterov | Variant::AdamL2 => Stroke::Dashed,
            Variant::Adamw => Stroke::Dotted,
            _ => Stroke::Solid,
        }
    }

    fn config(self, lr: f64, weight_decay: f64, momentum: f64) -> Config {
        let mut c = match self {
            Variant::Sgd | Variant::Momentum | Variant::Nesterov => Config::sgd(),
            Variant::Adagrad => Config::adagrad(),
            Variant::Adam | Variant::AdamL2 => Config::adam(),
            Variant::Adamw => Config::adamw(),
        };
        c.lr = lr;
        c.weight_decay = weight_decay;
        if matches!(self, Variant::Momentum | Variant::Nesterov) {
            c.momentum = momentum;
            c.nesterov = self == Variant::Nesterov;
        }
        c
    }
}

fn names(v: &[Variant]) -> String {
    v.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Folder of the MNIST IDX files; fetched there when missing.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: ModelArg,
    /// Layers of --model custom (as for train).
    #[arg(long)]
    pub layers: Option<String>,
    /// Hidden widths, comma-separated.
    #[arg(long, default_value = "64", value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// Optimizers to train, comma-separated, from sgd, momentum, nesterov, adagrad, adam,
    /// adam-l2 (Adam with coupled L2) and adamw.
    #[arg(
        long,
        default_value = "sgd,momentum,nesterov,adagrad,adam,adam-l2,adamw",
        value_delimiter = ','
    )]
    pub optimizers: Vec<String>,
    /// Learning rates: one for all (1e-3), per optimizer (sgd=0.1,adam=1e-3), or the presets
    /// pytorch (1e-3, adagrad 1e-2) and tuned (sgd 0.1, momentum, nesterov and adagrad 0.05,
    /// the Adam family 1e-3); later items override earlier ones [default: pytorch].
    #[arg(long)]
    pub lr: Option<String>,
    /// Weight decay, as --lr: one value or per optimizer [default: adam-l2=1e-4,adamw=1e-2].
    #[arg(long)]
    pub weight_decay: Option<String>,
    /// Momentum of the momentum and nesterov runs.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Learning-rate schedule of every run (constant is PyTorch's no-scheduler).
    #[arg(long, value_enum, default_value = "constant")]
    pub schedule: ScheduleArg,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Stop each run after this many steps.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Take training images in file order.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Seed of the initial weights (shared by every run) and of the row order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Start every run from the weights in this safetensors file.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Log the batch loss every N steps, for the per-step loss plot.
    #[arg(long, default_value_t = 10)]
    pub log_every: u64,
    /// Folder for the CSV files, plots and summary.
    #[arg(long, default_value = "study")]
    pub out: PathBuf,
    /// Adapter to use: a substring of its name.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Print only the summary table.
    #[arg(short, long)]
    pub quiet: bool,
    /// Train nothing: redraw the plots and the summary from the results.csv and steps.csv
    /// already in --out.
    #[arg(long)]
    pub replot: bool,
}

/// A named set of values, one per optimizer (`--lr tuned`).
pub type Preset = (&'static str, fn(Variant) -> f64);

/// Parses `--lr`/`--weight-decay`: comma-separated items, each `X` (every optimizer),
/// `NAME=X`, or a preset name; later items override earlier ones.
pub fn parse_values(
    spec: &str,
    flag: &str,
    run: &[Variant],
    presets: &[Preset],
    start: fn(Variant) -> f64,
) -> Result<BTreeMap<Variant, f64>, Error> {
    let mut out: BTreeMap<Variant, f64> = run.iter().map(|&v| (v, start(v))).collect();
    let number = |text: &str, item: &str| -> Result<f64, Error> {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{flag} {spec:?}: {item:?} is not a non-negative number (expected X, \
                     NAME=X or a preset, comma-separated)"
                ))
            })
    };
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((name, value)) = item.split_once('=') {
            let v = Variant::parse(name.trim(), flag)?;
            if !run.contains(&v) {
                return Err(Error::Config(format!(
                    "{flag} names {}, which is not in --optimizers ({})",
                    v.name(),
                    names(run)
                )));
            }
            out.insert(v, number(value, item)?);
        } else if let Some((_, f)) = presets.iter().find(|(p, _)| *p == item) {
            for (v, x) in out.iter_mut() {
                *x = f(*v);
            }
        } else {
            let x = number(item, item)?;
            out.values_mut().for_each(|v| *v = x);
        }
    }
    Ok(out)
}

/// One optimizer's run as the study records it.
struct Run {
    variant: Variant,
    config: Config,
    steps: Vec<(u64, f32)>,
    epochs: Vec<(EpochReport, f64)>,
}

/// Records logged losses and epochs, with the training time of each epoch.
struct Recorder<'a> {
    run: &'a mut Run,
    started: Instant,
    seconds: f64,
    quiet: bool,
    epochs: usize,
}

impl Observer for Recorder<'_> {
    fn epoch_start(&mut self, _epoch: usize, _steps: u64) {
        self.started = Instant::now();
    }
    fn step(&mut self, r: &StepReport) {
        self.run.steps.push((r.step, r.loss));
    }
    fn epoch_trained(&mut self, _epoch: usize) {
        self.seconds = self.started.elapsed().as_secs_f64();
    }
    fn epoch_end(&mut self, r: &EpochReport) {
        if !self.quiet {
            log::info!(
                "{:<9} epoch {:>2}/{}  train loss {:.4}  test loss {:.4}{}  {:.1} s",
                self.run.variant.name(),
                r.epoch,
                self.epochs,
                r.train_loss,
                r.test.loss,
                r.test.accuracy.map_or(String::new(), |a| format!(
                    "  test accuracy {:.2}%",
                    100.0 * a
                )),
                self.seconds
            );
        }
        // Kept at the 0.01 s that results.csv holds, so that the summary's total time is the
        // same whether computed now or by --replot from the CSV.
        self.run
            .epochs
            .push((*r, (self.seconds * 100.0).round() / 100.0));
    }
}

pub async fn run(a: CompareArgs) -> anyhow::Result<u8> {
    if a.replot {
        let runs = read_results(&a.out)?;
        return finish(&a, &runs);
    }
    // Every setting is checked before anything slow happens.
    let spec = spec_from(a.model, a.layers.as_deref(), &a.hidden)?;
    let mut variants = Vec::new();
    for name in &a.optimizers {
        let v = Variant::parse(name.trim(), "--optimizers")?;
        if variants.contains(&v) {
            return Err(Error::Config(format!("--optimizers lists {name} twice")).into());
        }
        variants.push(v);
    }
    if variants.is_empty() {
        return Err(Error::Config("--optimizers is empty".into()).into());
    }
    let presets: [Preset; 2] = [
        ("pytorch", Variant::default_lr),
        ("tuned", Variant::tuned_lr),
    ];
    let lrs = parse_values(
        a.lr.as_deref().unwrap_or(""),
        "--lr",
        &variants,
        &presets,
        Variant::default_lr,
    )?;
    let wds = parse_values(
        a.weight_decay.as_deref().unwrap_or(""),
        "--weight-decay",
        &variants,
        &[],
        Variant::default_wd,
    )?;
    let configs: Vec<(Variant, Config)> = variants
        .iter()
        .map(|&v| {
            let c = v.config(lrs[&v], wds[&v], a.momentum);
            c.validate().map(|_| (v, c))
        })
        .collect::<Result<_, _>>()?;
    let schedule = match a.schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::InvSqrt => Schedule::InvSqrt,
        ScheduleArg::Cosine => Schedule::Cosine,
        ScheduleArg::Step => {
            return Err(Error::Config(
                "compare takes --schedule constant, inv-sqrt or cosine".into(),
            )
            .into())
        }
    };
    for (flag, value) in [
        ("--epochs", a.epochs as u64),
        ("--batch-size", a.batch_size as u64),
        ("--max-steps", a.max_steps.unwrap_or(1)),
        ("--train-limit", a.train_limit.unwrap_or(1) as u64),
    ] {
        if value == 0 {
            return Err(Error::Config(format!("{flag} must be at least 1")).into());
        }
    }
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let init = match &a.init {
        Some(path) => Some(checkpoint::load_weights(path)?),
        None => None,
    };

    let data = load_mnist(&a.data, a.train_limit)?;
    let ctx = super::device::open(a.adapter.clone()).await?;
    let options = FitOptions {
        epochs: a.epochs,
        max_steps: a.max_steps,
        batch_size: a.batch_size,
        shuffle: !a.no_shuffle,
        seed: a.seed,
        log_every: a.log_every,
        ..FitOptions::default()
    };
    let total = options.total_steps(data.train.len());

    // The initial weights, drawn (or loaded) once and given to every run.
    let mut first = Network::new(&ctx, &spec, a.seed).await?;
    if let (Some((tensors, _)), Some(path)) = (&init, &a.init) {
        first
            .load_state_dict(tensors)
            .map_err(|e| Error::checkpoint(path, e.to_string()))?;
    }
    let initial = first.state_dict().await?;
    drop(first);

    if !a.quiet {
        log::info!("wgrad compare");
        log::info!("  adapter     {}", ctx.adapter_name());
        log::info!("  model       {}", spec.describe());
        log::info!(
            "  data        {} train, {} test rows; batch size {}; {total} steps per run",
            data.train.len(),
            data.test.len(),
            a.batch_size
        );
        log::info!("  schedule    {}; seed {}", schedule.name(), a.seed);
        for (v, c) in &configs {
            log::info!("  {:<11} {}", v.name(), super::train::describe_optimizer(c));
        }
    }

    let mut runs = Vec::new();
    for (variant, config) in configs {
        let mut net = Network::new(&ctx, &spec, a.seed).await?;
        net.load_state_dict(&initial)?;
        let mut trainer = Trainer::new(net, config.clone(), schedule, total).await?;
        let mut run = Run {
            variant,
            config,
            steps: Vec::new(),
            epochs: Vec::new(),
        };
        let mut recorder = Recorder {
            run: &mut run,
            started: Instant::now(),
            seconds: 0.0,
            quiet: a.quiet,
            epochs: a.epochs,
        };
        train::fit(
            &mut trainer,
            &data.train,
            &data.test,
            &options,
            &mut recorder,
        )
        .await?;
        runs.push(run);
    }

    super::device::save_cache(&ctx);
    finish(&a, &runs)
}

/// Writes every output file and prints the table.
fn finish(a: &CompareArgs, runs: &[Run]) -> anyhow::Result<u8> {
    let written_accuracy = write_outputs(&a.out, runs)?;
    let table = summary_table(runs);
    std::fs::write(a.out.join("summary.md"), &table).map_err(|e| Error::io(&a.out, e))?;
    println!("{table}");
    if !a.quiet {
        let plots = if written_accuracy {
            "loss and accuracy"
        } else {
            "loss"
        };
        log::info!(
            "wrote results.csv, steps.csv, the {plots} plots (.png, .svg) and summary.md to {}",
            a.out.display()
        );
    }
    Ok(0)
}

/// The runs recorded in `out`'s results.csv and steps.csv (for `--replot`).
fn read_results(out: &Path) -> Result<Vec<Run>, Error> {
    let read = |name: &str| {
        let path = out.join(name);
        std::fs::read_to_string(&path)
            .map(|t| (path.clone(), t))
            .map_err(|e| Error::io(&path, e))
    };
    let mut runs: Vec<Run> = Vec::new();
    let (path, text) = read("results.csv")?;
    for (i, line) in text.lines().enumerate().skip(1) {
        let bad = || Error::data(&path, format!("line {}: expected {RESULTS_HEADER}", i + 1));
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return Err(bad());
        }
        let num = |k: usize| f[k].parse::<f64>().map_err(|_| bad());
        let variant = Variant::parse(f[0], "results.csv")?;
        let report = EpochReport {
            epoch: f[2].parse().map_err(|_| bad())?,
            train_loss: num(3)?,
            test: wgrad::graph::Evaluation {
                loss: num(4)?,
                accuracy: if f[5].is_empty() { None } else { Some(num(5)?) },
                rows: 0,
            },
            val: None,
            steps: 0,
            samples: 0,
        };
        if runs.last().is_none_or(|r| r.variant != variant) {
            runs.push(Run {
                variant,
                config: variant.config(num(1)?, 0.0, 0.0),
                steps: Vec::new(),
                epochs: Vec::new(),
            });
        }
        let run = runs.last_mut().expect("a run was just pushed");
        run.epochs.push((report, num(6)?));
    }
    let (path, text) = read("steps.csv")?;
    for (i, line) in text.lines().enumerate().skip(1) {
        let bad = || {
            Error::data(
                &path,
                format!("line {}: expected optimizer,step,loss", i + 1),
            )
        };
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 3 {
            return Err(bad());
        }
        let variant = Variant::parse(f[0], "steps.csv")?;
        let step = f[1].parse().map_err(|_| bad())?;
        let loss = f[2].parse().map_err(|_| bad())?;
        if let Some(r) = runs.iter_mut().find(|r| r.variant == variant) {
            r.steps.push((step, loss));
        }
    }
    if runs.is_empty() {
        return Err(Error::data(out.join("results.csv"), "holds no results"));
    }
    Ok(runs)
}

const RESULTS_HEADER: &str = "optimizer,lr,epoch,train_loss,test_loss,test_acc,seconds";

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes the CSV files and plots; returns whether there was an accuracy plot to write.
fn write_outputs(out: &Path, runs: &[Run]) -> Result<bool, Error> {
    let mut csv = format!("{RESULTS_HEADER}\n");
    let mut steps = String::from("optimizer,step,loss\n");
    for r in runs {
        for (e, secs) in &r.epochs {
            let acc = e.test.accuracy.map_or(String::new(), |a| format!("{a:.4}"));
            let _ = writeln!(
                csv,
                "{},{},{},{:.6},{:.6},{acc},{secs:.2}",
                r.variant.name(),
                r.config.lr,
                e.epoch,
                e.train_loss,
                e.test.loss
            );
        }
        for (k, l) in &r.steps {
            let _ = writeln!(steps, "{},{k},{l}", r.variant.name());
        }
    }
    write_file(&out.join("results.csv"), &csv)?;
    write_file(&out.join("steps.csv"), &steps)?;

    let label = |r: &Run| format!("{} (lr {})", r.variant.name(), r.config.lr);
    let color = |i: usize| charts::COLORS[i % charts::COLORS.len()];
    let smoothed: Vec<Series> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| Series {
            name: label(r),
            color: color(i),
            stroke: Stroke::Solid,
            markers: false,
            points: bin_means(&r.steps, 200),
        })
        .collect();
    let mut per_epoch = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let pts = |f: fn(&EpochReport) -> f64| -> Vec<(f64, f64)> {
            r.epochs
                .iter()
                .map(|(e, _)| (e.epoch as f64, f(e)))
                .collect()
        };
        per_epoch.push(Series {
            name: r.variant.name().into(),
            color: color(i),
            stroke: Stroke::Solid,
            markers: true,
            points: pts(|e| e.train_loss),
        });
        per_epoch.push(Series {
            name: String::new(),
            color: color(i),
            stroke: Stroke::Dashed,
            markers: false,
            points: pts(|e| e.test.loss),
        });
    }
    // The steps one plotted point stands for: the logging interval times the bin width.
    let interval = runs
        .iter()
        .find_map(|r| r.steps.get(1).map(|b| b.0 - r.steps[0].0))
        .unwrap_or(1);
    let bin = runs
        .iter()
        .map(|r| bin_width(&r.steps, 200))
        .max()
        .unwrap_or(1) as u64;
    let step_title = if bin == 1 {
        format!("Training loss (batch loss every {interval} steps)")
    } else {
        format!(
            "Training loss (batch loss, mean over {} steps)",
            bin * interval
        )
    };
    let loss_panels = [
        Panel {
            title: step_title,
            x_label: "step".into(),
            y_label: "batch loss (log scale)".into(),
            log_y: true,
            y_range: None,
            integer_x: false,
            legend: SeriesLabelPosition::LowerLeft,
            series: smoothed,
        },
        Panel {
            title: "Loss per epoch (solid: training, dashed: test)".into(),
            x_label: "epoch".into(),
            y_label: "loss (log scale)".into(),
            log_y: true,
            y_range: None,
            integer_x: true,
            legend: SeriesLabelPosition::LowerLeft,
            series: per_epoch,
        },
    ];
    for ext in ["png", "svg"] {
        charts::save_panels(&out.join(format!("loss.{ext}")), LOSS_SIZE, &loss_panels)?;
    }

    let has_accuracy = runs
        .iter()
        .all(|r| r.epochs.iter().all(|(e, _)| e.test.accuracy.is_some()));
    if has_accuracy {
        let series: Vec<Series> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| Series {
                name: label(r),
                color: color(i),
                stroke: r.variant.stroke(),
                markers: true,
                points: r
                    .epochs
                    .iter()
                    .map(|(e, _)| (e.epoch as f64, 100.0 * e.test.accuracy.unwrap_or(0.0)))
                    .collect(),
            })
            .collect();
        let accs = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let (lo, hi) = accs().fold((100.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo) * 0.08).max(0.5);
        // The zoom shows the 5 points below the best final accuracy.
        let best_final = series
            .iter()
            .filter_map(|s| s.points.last().map(|p| p.1))
            .fold(0.0f64, f64::max);
        let zoom_lo = (best_final - 5.0).max(lo - 0.2).max(0.0);
        let zoom_hi = (hi + 0.4).min(100.0);
        let full = Panel {
            title: "Test accuracy per epoch".into(),
            x_label: "epoch".into(),
            y_label: "test accuracy (%)".into(),
            log_y: false,
            y_range: Some(((lo - pad).max(0.0), (hi + pad).min(100.0))),
            integer_x: true,
            legend: SeriesLabelPosition::LowerRight,
            series: series.clone(),
        };
        let zoom = Panel {
            title: format!("Zoom on {zoom_lo:.1}-{zoom_hi:.1}%"),
            y_range: Some((zoom_lo, zoom_hi)),
            series: series
                .into_iter()
                .map(|s| Series {
                    name: String::new(),
                    ..s
                })
                .collect(),
            ..full.clone()
        };
        for ext in ["png", "svg"] {
            let path = out.join(format!("accuracy.{ext}"));
            charts::save_panels(&path, ACCURACY_SIZE, &[full.clone(), zoom.clone()])?;
        }
    }
    Ok(has_accuracy)
}

/// Pixel sizes of the two figures.
pub const LOSS_SIZE: (u32, u32) = (1600, 600);
pub const ACCURACY_SIZE: (u32, u32) = (1600, 650);

/// Logged points per bin so that a series has at most `max` points.
fn bin_width(points: &[(u64, f32)], max: usize) -> usize {
    points.len().div_ceil(max).max(1)
}

/// Means of consecutive bins of logged losses, at the bins' mean step; the step (x) spacing
/// is the logging interval times the bin width.
fn bin_means(points: &[(u64, f32)], max: usize) -> Vec<(f64, f64)> {
    let w = bin_width(points, max);
    points
        .chunks(w)
        .map(|c| {
            let n = c.len() as f64;
            let step = c.iter().map(|p| p.0 as f64).sum::<f64>() / n;
            let loss = c.iter().map(|p| p.1 as f64).sum::<f64>() / n;
            (step, loss)
        })
        .collect()
}

/// The summary as a Markdown table: final and best accuracy, epoch of the best, final test
/// loss, training time.
fn summary_table(runs: &[Run]) -> String {
    let mut t = String::from(
        "| optimizer | lr | final test acc | best test acc | best epoch | final test loss | \
         train time |\n|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let last = r.epochs.last().map(|(e, _)| e);
        let best = r
            .epochs
            .iter()
            .filter_map(|(e, _)| e.test.accuracy.map(|a| (a, e.epoch)))
            .fold(None, |b: Option<(f64, usize)>, (a, e)| match b {
                Some((ba, _)) if ba >= a => b,
                _ => Some((a, e)),
            });
        let pct = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
        let secs: f64 = r.epochs.iter().map(|(_, s)| s).sum();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {secs:.1} s |",
            r.variant.name(),
            r.config.lr,
            pct(last.and_then(|e| e.test.accuracy)),
            pct(best.map(|b| b.0)),
            best.map_or("-".to_string(), |b| b.1.to_string()),
            last.map_or("-".to_string(), |e| format!("{:.4}", e.test.loss)),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pytorch(v: Variant) -> f64 {
        v.default_lr()
    }

    #[test]
    fn rate_specs() {
        let run = [Variant::Sgd, Variant::Adam];
        let presets: [Preset; 1] = [("tuned", Variant::tuned_lr)];
        let p = |s: &str| parse_values(s, "--lr", &run, &presets, pytorch);
        assert_eq!(p("").unwrap()[&Variant::Sgd], 1e-3);
        assert_eq!(p("0.01").unwrap()[&Variant::Adam], 0.01);
        let m = p("tuned,adam=2e-3").unwrap();
        assert_eq!((m[&Variant::Sgd], m[&Variant::Adam]), (0.1, 2e-3));
        assert!(p("nadam=0.1")
            .unwrap_err()
            .to_string()
            .contains("unknown optimizer"));
        assert!(p("momentum=0.1")
            .unwrap_err()
            .to_string()
            .contains("not in --optimizers"));
        assert!(p("sgd=fast")
            .unwrap_err()
            .to_string()
            .contains("not a non-negative number"));
    }

    #[test]
    fn bins_average_consecutive_points() {
        let pts: Vec<(u64, f32)> = (1..=10).map(|k| (k * 10, k as f32)).collect();
        assert_eq!(
            bin_means(&pts, 5),
            vec![
                (15.0, 1.5),
                (35.0, 3.5),
                (55.0, 5.5),
                (75.0, 7.5),
                (95.0, 9.5)
            ]
        );
    }
}
