//! Command-line definitions and dispatch to the subcommands.
//!
//! Exit status: 0 on success, 2 for invalid arguments or settings (clap's usage errors too),
//! 1 for everything else (data, checkpoints, GPU).

pub mod info;
pub mod logging;
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
    /// List every adapter wgpu finds, with the limits that matter for training.
    Info(info::InfoArgs),
}

/// Runs the parsed command; async work is blocked on here, at the binary's edge.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => pollster::block_on(train::run(*args)),
        Command::Info(args) => pollster::block_on(info::run(args)),
    }
}

/// 2 for settings the user must change, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<wgrad::Error>() {
        Some(wgrad::Error::Config(_)) => 2,
        _ => 1,
    }
}
