//! `wgrad train`: settings from flags, MNIST from disk (fetched when missing), the training
//! loop of the library, and the weights saved at the end.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use wgrad::checkpoint::RunInfo;
use wgrad::data::{fetch, mnist};
use wgrad::graph::Network;
use wgrad::model::{ModelSpec, ParamLayout};
use wgrad::optim::{self, Kind, Schedule};
use wgrad::train::{self, FitData, FitOptions, Trainer};
use wgrad::{checkpoint, Error};

use super::report::{Checkpoints, Reporter};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// Multi-layer perceptron 784-h1-..-10 with ReLU (widths from --hidden).
    Mlp,
    /// LeNet-5: two 5x5 convolutions with max-pooling, then 120-84-10.
    Lenet5,
    /// Autoencoder 784-h1-..-hk-..-h1-784 trained with MSE on its input (widths from --hidden).
    Autoencoder,
    /// Any layer list, from --layers.
    Custom,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Adagrad,
    Adam,
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    Constant,
    InvSqrt,
    Step,
    Cosine,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Folder of the MNIST IDX files; fetched there when missing.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: ModelArg,
    /// Layers of --model custom, comma-separated, or @FILE with one layer per line:
    /// conv:OUT:K[:STRIDE[:PAD]], maxpool:K[:STRIDE], flatten, linear:N, relu.
    #[arg(long)]
    pub layers: Option<String>,
    /// Hidden widths, comma-separated, any depth: 64 or 512,256,128.
    #[arg(long, default_value = "64", value_delimiter = ',')]
    pub hidden: Vec<usize>,
    #[arg(long, value_enum, default_value = "adamw")]
    pub optimizer: OptimizerArg,
    /// Base learning rate [default: sgd 0.1, adagrad 0.01, adam and adamw 5e-3; for MNIST].
    #[arg(long)]
    pub lr: Option<f64>,
    /// SGD momentum [default: 0].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// SGD with Nesterov momentum (needs --momentum).
    #[arg(long)]
    pub nesterov: bool,
    /// Adam/AdamW beta1 [default: 0.9].
    #[arg(long)]
    pub beta1: Option<f64>,
    /// Adam/AdamW beta2 [default: 0.999].
    #[arg(long)]
    pub beta2: Option<f64>,
    /// Denominator epsilon [default: 1e-8, adagrad 1e-10].
    #[arg(long)]
    pub eps: Option<f64>,
    /// Adam/AdamW: divide by sqrt(v + eps) instead of sqrt(v) + eps.
    #[arg(long)]
    pub eps_inside_sqrt: bool,
    /// Weight decay: coupled L2 for sgd/adagrad/adam, decoupled for adamw [default: 0, adamw 0.01].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule over the run's steps (constant is PyTorch's no-scheduler).
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: ScheduleArg,
    /// Steps between decays of --schedule step.
    #[arg(long)]
    pub step_size: Option<u64>,
    /// Decay factor of --schedule step [default: 0.1].
    #[arg(long)]
    pub gamma: Option<f64>,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Stop after this many steps in all.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Take training images in file order (step k uses images (k-1)B .. kB-1).
    #[arg(long)]
    pub no_shuffle: bool,
    /// Seed of the initial weights and the shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Start from the weights in this safetensors file.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Save the final weights to this safetensors file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Write JSON-lines metrics to this file.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Log the batch loss every N steps (0: only per epoch).
    #[arg(long, default_value_t = 100)]
    pub log_every: u64,
    /// Adapter to use: a substring of its name [default: WGRAD_ADAPTER, then the best found].
    #[arg(long)]
    pub adapter: Option<String>,
    /// Hold out the last N training images (after --train-limit) as a validation set,
    /// evaluated after every epoch and not trained on.
    #[arg(long)]
    pub val: Option<usize>,
    /// With --val: stop after P epochs in a row without a new best validation loss; the best
    /// epoch's weights are restored (and are what --save writes).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Training checkpoint file (weights, optimizer state, position), written every
    /// --checkpoint-every steps and on Ctrl-C [default on Ctrl-C: wgrad-checkpoint.safetensors].
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Steps between checkpoints (0: only on Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Continue the run saved in this training checkpoint (same flags as the run that wrote it).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Print only the final line (and warnings and errors).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Where Ctrl-C saves a checkpoint when no --checkpoint is given.
pub const DEFAULT_CHECKPOINT: &str = "wgrad-checkpoint.safetensors";

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Turns the optimizer flags into a validated config, refusing flags that do not apply.
pub fn optimizer_config(a: &TrainArgs) -> Result<optim::Config, Error> {
    let kind = match a.optimizer {
        OptimizerArg::Sgd => Kind::Sgd,
        OptimizerArg::Adagrad => Kind::Adagrad,
        OptimizerArg::Adam => Kind::Adam,
        OptimizerArg::Adamw => Kind::Adamw,
    };
    let name = kind.name();
    let refuse = |flag: &str, only: &str| {
        Err(Error::Config(format!(
            "{flag} applies to --optimizer {only}, not {name}"
        )))
    };
    let sgd = kind == Kind::Sgd;
    let adam = matches!(kind, Kind::Adam | Kind::Adamw);
    if !sgd && (a.momentum.is_some() || a.nesterov) {
        return refuse(
            if a.nesterov {
                "--nesterov"
            } else {
                "--momentum"
            },
            "sgd",
        );
    }
    if kind == Kind::Sgd && a.eps.is_some() {
        return refuse("--eps", "adagrad, adam or adamw");
    }
    if !adam && (a.beta1.is_some() || a.beta2.is_some() || a.eps_inside_sqrt) {
        let flag = if a.beta1.is_some() {
            "--beta1"
        } else if a.beta2.is_some() {
            "--beta2"
        } else {
            "--eps-inside-sqrt"
        };
        return refuse(flag, "adam or adamw");
    }
    let mut c = optim::Config::default_for(kind);
    c.lr = a.lr.unwrap_or(default_lr(kind));
    c.momentum = a.momentum.unwrap_or(c.momentum);
    c.nesterov = a.nesterov;
    c.beta1 = a.beta1.unwrap_or(c.beta1);
    c.beta2 = a.beta2.unwrap_or(c.beta2);
    c.eps = a.eps.unwrap_or(c.eps);
    c.eps_inside_sqrt = a.eps_inside_sqrt;
    c.weight_decay = a.weight_decay.unwrap_or(c.weight_decay);
    c.validate()?;
    Ok(c)
}

/// The command line's default rates, used with its default cosine schedule. PyTorch's (1e-3
/// for SGD, Adam, AdamW, with no schedule) are kept by the library's `Config` constructors; on
/// MNIST at batch 64 they are slow (AdamW reaches 93.5% after one epoch, SGD 86% after ten).
/// AdamW at 5e-3 with cosine decay reaches 95.7% after one epoch and 97.9% after ten; at 3e-3
/// with a constant rate, 95.1% and 97.0% (the last epochs then wander by +-0.3%).
pub fn default_lr(kind: Kind) -> f64 {
    match kind {
        Kind::Sgd => 0.1,
        Kind::Adagrad => 0.01,
        Kind::Adam | Kind::Adamw => 5e-3,
    }
}

/// Turns the schedule flags into a validated schedule.
pub fn schedule(a: &TrainArgs) -> Result<Schedule, Error> {
    let s = match a.schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::InvSqrt => Schedule::InvSqrt,
        ScheduleArg::Cosine => Schedule::Cosine,
        ScheduleArg::Step => Schedule::Step {
            step_size: a.step_size.ok_or_else(|| {
                Error::Config("--schedule step needs --step-size (steps between decays)".into())
            })?,
            gamma: a.gamma.unwrap_or(0.1),
        },
    };
    if a.schedule != ScheduleArg::Step && (a.step_size.is_some() || a.gamma.is_some()) {
        let flag = if a.step_size.is_some() {
            "--step-size"
        } else {
            "--gamma"
        };
        return Err(Error::Config(format!(
            "{flag} applies to --schedule step only"
        )));
    }
    s.validate()?;
    Ok(s)
}

/// The model the flags describe.
pub fn model_spec(a: &TrainArgs) -> Result<ModelSpec, Error> {
    spec_from(a.model, a.layers.as_deref(), &a.hidden)
}

/// The model of `--model`, `--layers` and `--hidden`, its shapes checked.
pub fn spec_from(
    model: ModelArg,
    layers: Option<&str>,
    hidden: &[usize],
) -> Result<ModelSpec, Error> {
    let a = ModelFlags {
        model,
        layers,
        hidden,
    };
    if a.layers.is_some() && a.model != ModelArg::Custom {
        return Err(Error::Config(
            "--layers applies to --model custom only".into(),
        ));
    }
    if let Some(i) = a.hidden.iter().position(|&h| h == 0) {
        return Err(Error::Config(format!(
            "--hidden width {} is 0; every hidden layer needs at least one unit",
            i + 1
        )));
    }
    let spec = match a.model {
        ModelArg::Mlp => ModelSpec::mlp(mnist::DIM, a.hidden, mnist::CLASSES),
        ModelArg::Lenet5 => ModelSpec::lenet5(),
        ModelArg::Autoencoder => ModelSpec::autoencoder(mnist::DIM, a.hidden),
        ModelArg::Custom => {
            let text = a.layers.ok_or_else(|| {
                Error::Config("--model custom needs --layers (a list or @FILE)".into())
            })?;
            super::layers::parse_model(text)?
        }
    };
    // Shapes are checked here, before any data is read; the error names the layer.
    spec.resolve().map_err(|e| Error::Config(e.to_string()))?;
    Ok(spec)
}

struct ModelFlags<'a> {
    model: ModelArg,
    layers: Option<&'a str>,
    hidden: &'a [usize],
}

/// MNIST from `dir` (fetched when missing), the training rows cut to `limit`.
pub fn load_mnist(dir: &std::path::Path, limit: Option<usize>) -> Result<mnist::Mnist, Error> {
    fetch::ensure_mnist(dir)?;
    let mut data = mnist::load(dir)?;
    if let Some(n) = limit {
        data.train = data.train.take(n);
    }
    Ok(data)
}

/// Runs `wgrad train`; returns the exit status (0, or [`EXIT_INTERRUPTED`] after Ctrl-C).
pub async fn run(a: TrainArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    // Every setting is checked before anything slow happens.
    let config = optimizer_config(&a)?;
    let schedule = schedule(&a)?;
    let spec = model_spec(&a)?;
    let positive = [
        ("--batch-size", Some(a.batch_size as u64)),
        ("--epochs", Some(a.epochs as u64)),
        ("--max-steps", a.max_steps),
        ("--train-limit", a.train_limit.map(|n| n as u64)),
        ("--val", a.val.map(|n| n as u64)),
        ("--patience", a.patience.map(|n| n as u64)),
    ];
    for (flag, value) in positive {
        if value == Some(0) {
            return Err(Error::Config(format!("{flag} must be at least 1")).into());
        }
    }
    if a.patience.is_some() && a.val.is_none() {
        return Err(Error::Config(
            "--patience needs --val N (the held-out images it watches)".into(),
        )
        .into());
    }
    if a.init.is_some() && a.resume.is_some() {
        return Err(Error::Config(
            "--init and --resume exclude each other: a checkpoint holds its own weights".into(),
        )
        .into());
    }
    if a.checkpoint_every > 0 && a.checkpoint.is_none() {
        return Err(Error::Config("--checkpoint-every needs --checkpoint FILE".into()).into());
    }
    for path in [&a.save, &a.checkpoint].into_iter().flatten() {
        checkpoint::check_writable(path)?;
    }
    let init = match &a.init {
        Some(path) => Some(checkpoint::load_weights(path)?),
        None => None,
    };

    let data = load_mnist(&a.data, a.train_limit)?;
    let (train_set, val_set) = match a.val {
        Some(n) if n >= data.train.len() => {
            return Err(Error::Config(format!(
                "--val {n} leaves no training images: {} are loaded{}",
                data.train.len(),
                if a.train_limit.is_some() {
                    " (after --train-limit)"
                } else {
                    ""
                }
            ))
            .into())
        }
        Some(n) => {
            let (train, val) = data.train.split_tail(n);
            (train, Some(val))
        }
        None => (data.train.clone(), None),
    };

    let options = FitOptions {
        epochs: a.epochs,
        max_steps: a.max_steps,
        batch_size: a.batch_size,
        shuffle: !a.no_shuffle,
        seed: a.seed,
        log_every: a.log_every,
        patience: a.patience,
        ..FitOptions::default()
    };
    let total = options.total_steps(train_set.len());
    let run_info = RunInfo {
        format: checkpoint::TRAINING_FORMAT,
        model: spec.describe(),
        optimizer: config.clone(),
        schedule,
        total_steps: total,
        batch_size: a.batch_size,
        seed: a.seed,
        shuffle: options.shuffle,
        train_rows: train_set.len(),
        val_rows: val_set.as_ref().map_or(0, |v| v.len()),
        patience: a.patience,
    };
    // A checkpoint is checked against this run before the GPU is touched.
    let resume = match &a.resume {
        Some(path) => Some(load_resume(path, &spec, &run_info)?),
        None => None,
    };

    let ctx = super::device::open(a.adapter.clone()).await?;

    let mut net = Network::new(&ctx, &spec, a.seed).await?;
    if let (Some((tensors, _)), Some(path)) = (&init, &a.init) {
        net.load_state_dict(tensors)
            .map_err(|e| Error::checkpoint(path, e.to_string()))?;
    }
    let mut trainer = Trainer::new(net, config.clone(), schedule, total).await?;

    if !a.quiet {
        log::info!("wgrad train");
        let mut data_text = format!("{} train, {} test rows", train_set.len(), data.test.len());
        if let Some(v) = &val_set {
            data_text += &format!(
                ", {} validation rows (the last of the training set)",
                v.len()
            );
        }
        for (k, v) in [
            ("adapter", ctx.adapter_name()),
            ("model", spec.describe()),
            ("parameters", trainer.net.layout().count().to_string()),
            ("optimizer", describe_optimizer(&config)),
            ("schedule", schedule.name().to_string()),
            ("batch size", a.batch_size.to_string()),
            ("data", data_text),
            (
                "steps",
                match a.max_steps {
                    Some(m) if m <= total => format!("{total} (--max-steps)"),
                    _ => format!("{total} ({} epochs)", a.epochs),
                },
            ),
            ("seed", a.seed.to_string()),
        ] {
            log::info!("  {k:<11} {v}");
        }
        if let (Some(s), Some(p)) = (&resume, &a.resume) {
            log::info!(
                "  resume      step {} (epoch {}, step {} of it) from {}",
                s.position.step,
                s.position.epoch,
                s.position.step_in_epoch,
                p.display()
            );
        }
    }

    let interrupt = on_ctrl_c();
    let checkpoint_path = a
        .checkpoint
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHECKPOINT));
    let checkpoints = Checkpoints {
        path: checkpoint_path.clone(),
        every: if a.checkpoint.is_some() {
            a.checkpoint_every
        } else {
            0
        },
        run: run_info,
        layout: trainer.net.layout().clone(),
        interrupt,
    };

    let mut reporter = Reporter::new(a.metrics.as_deref(), total, resume.is_some(), a.quiet)?
        .batch_size(a.batch_size)
        .checkpoints(Some(checkpoints));
    let fit_data = FitData {
        train: &train_set,
        val: val_set.as_ref(),
        test: &data.test,
    };
    let summary = train::fit_with(
        &mut trainer,
        fit_data,
        &options,
        resume.as_ref(),
        &mut reporter,
    )
    .await?;
    super::device::save_cache(&ctx);
    reporter.finish(&summary, started.elapsed().as_secs_f64())?;

    if summary.interrupted {
        let args: Vec<String> = std::env::args().skip(1).collect();
        log::warn!(
            "resume with: wgrad {} --resume {}",
            without_resume(&args).join(" "),
            checkpoint_path.display()
        );
        if a.save.is_some() {
            log::warn!("--save skipped: the run did not finish");
        }
        return Ok(EXIT_INTERRUPTED);
    }

    if let Some(path) = &a.save {
        let tensors = trainer.net.state_dict().await?;
        let mut meta = HashMap::new();
        meta.insert("model".to_string(), spec.describe());
        meta.insert("optimizer".to_string(), config.kind.name().to_string());
        meta.insert("steps".to_string(), summary.steps.to_string());
        if let Some(e) = summary.best_epoch.filter(|_| a.patience.is_some()) {
            meta.insert("epoch".to_string(), e.to_string());
        }
        checkpoint::save(path, &tensors, &meta)
            .with_context(|| format!("saving the weights to {}", path.display()))?;
        if !a.quiet {
            log::info!("saved weights to {}", path.display());
        }
    }
    Ok(0)
}

/// The training checkpoint at `path`, refused unless it was written by a run with the same
/// settings as `run` (the message lists every difference).
fn load_resume(
    path: &std::path::Path,
    spec: &ModelSpec,
    run: &RunInfo,
) -> Result<train::Snapshot, Error> {
    let layout = ParamLayout::new(&spec.resolve()?);
    let (written, snapshot) = checkpoint::load_training(path, &layout)?;
    let diffs = written.differences(run);
    if !diffs.is_empty() {
        return Err(Error::Config(format!(
            "cannot resume from {}: {}",
            path.display(),
            diffs.join("; ")
        )));
    }
    Ok(snapshot)
}

/// A flag that Ctrl-C sets, asking the loop to save a checkpoint and stop after the current
/// step; a second Ctrl-C quits at once.
fn on_ctrl_c() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let handler = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
        log::warn!("Ctrl-C: saving a checkpoint after this step (Ctrl-C again to quit now)");
    });
    if let Err(e) = handler {
        log::warn!("Ctrl-C will not save a checkpoint: {e}");
    }
    interrupt
}

/// The command line without any `--resume FILE` (or `--resume=FILE`) it had.
fn without_resume(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
        } else if arg == "--resume" {
            skip = true;
        } else if !arg.starts_with("--resume=") {
            out.push(arg.clone());
        }
    }
    out
}

pub fn describe_optimizer(c: &optim::Config) -> String {
    let mut s = format!("{} lr {}", c.kind.name(), c.lr);
    match c.kind {
        Kind::Sgd => {
            if c.momentum != 0.0 {
                s += &format!(" momentum {}", c.momentum);
            }
            if c.nesterov {
                s += " nesterov";
            }
        }
        Kind::Adagrad => s += &format!(" eps {}", c.eps),
        Kind::Adam | Kind::Adamw => {
            s += &format!(" betas ({}, {}) eps {}", c.beta1, c.beta2, c.eps);
            if c.eps_inside_sqrt {
                s += " (inside sqrt)";
            }
        }
    }
    if c.weight_decay != 0.0 {
        s += &format!(" weight decay {}", c.weight_decay);
    }
    s
}
