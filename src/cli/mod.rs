//! Command-line definitions and dispatch to the subcommands.
//!
//! Exit status: 0 on success, 2 for invalid arguments or settings (clap's usage errors too),
//! 130 for a training run stopped by Ctrl-C (after saving its checkpoint), 1 for everything
//! else (data, checkpoints, GPU).

pub mod bench;
pub mod charts;
pub mod compare;
pub mod device;
pub mod eval;
pub mod info;
pub mod layers;
pub mod logging;
pub mod plot;
pub mod report;
pub mod train;

use clap::{Parser, Subcommand};

/// Neural-network training on any GPU that wgpu reaches.
#[derive(Parser, Debug)]
#[command(name = "wgrad", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model on MNIST (fetched into --data when missing).
    Train(Box<train::TrainArgs>),
    /// Train one model once per optimizer and write CSVs, plots and a summary table.
    Compare(Box<compare::CompareArgs>),
    /// Test loss, accuracy and confusion matrix of a weights file (autoencoders: reconstructions).
    Eval(Box<eval::EvalArgs>),
    /// Loss and accuracy curves from a run's --metrics file, as PNG or SVG.
    Plot(plot::PlotArgs),
    /// List every adapter wgpu finds, with the limits that matter for training.
    Info(info::InfoArgs),
    /// Measure kernels and training steps on this adapter.
    Bench(bench::BenchArgs),
}

impl Cli {
    /// True when the command was given `--quiet`.
    pub fn quiet(&self) -> bool {
        match &self.command {
            Command::Train(a) => a.quiet,
            Command::Compare(a) => a.quiet,
            _ => false,
        }
    }
}

/// Runs the parsed command and returns its exit status; async work is blocked on here, at the
/// binary's edge.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Train(args) => pollster::block_on(train::run(*args)),
        Command::Compare(args) => pollster::block_on(compare::run(*args)),
        Command::Eval(args) => pollster::block_on(eval::run(*args)),
        Command::Plot(args) => plot::run(args),
        Command::Info(args) => pollster::block_on(info::run(args)).map(|_| 0),
        Command::Bench(args) => pollster::block_on(bench::run(args)).map(|_| 0),
    }
}

/// Gives Mesa a private runtime folder on a headless Linux machine.
///
/// While wgpu lists adapters, Mesa's Vulkan driver looks for a Wayland compositor and, when
/// `XDG_RUNTIME_DIR` is unset (as on servers and in containers), prints
/// `error: XDG_RUNTIME_DIR is invalid or not set` twice: harmless, but it reads as a failure. A
/// folder of our own, mode 0700, holds no compositor socket, so the lookup fails quietly.
/// Called first thing in `main`, before any thread exists, so setting the variable is safe.
pub fn quiet_headless_mesa() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
            return;
        }
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("wgrad-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        // Use it only if it is ours and private (not a folder someone else made).
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0 => {
                std::env::set_var("XDG_RUNTIME_DIR", &dir);
            }
            _ => {}
        }
    }
}

/// 2 for settings the user must change, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<wgrad::Error>() {
        Some(wgrad::Error::Config(_)) => 2,
        _ => 1,
    }
}
