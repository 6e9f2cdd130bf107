//! `wgrad bench`: kernel and training-step speed on the chosen adapter.
//!
//! `matmul` times every matmul variant on square products and marks the one the tuner picks;
//! `optim` the fused AdamW update; `train` whole training steps (data gathering, upload, GPU
//! work), optionally with a per-kernel breakdown from timestamp queries. Every figure is a
//! median over repetitions after warm-up, and names the adapter. `--json` prints one object per
//! line instead of a table.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use wgrad::data::{fetch, mnist};
use wgrad::gpu::Context;
use wgrad::graph::Network;
use wgrad::kernels::matmul::{self, Operand, Shape};
use wgrad::kernels::optim as kernel;
use wgrad::kernels::tune::median;
use wgrad::model::ModelSpec;
use wgrad::optim::{Config, Schedule};
use wgrad::train::{epoch_order, gather, Trainer};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchCommand,
    /// One JSON object per line instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Adapter to run on (substring of its name; see `wgrad info`).
    #[arg(long, global = true)]
    pub adapter: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// GFLOP/s of every matmul variant on n x n x n products, or m x k times k x n ones.
    Matmul {
        /// Sizes: `n` for a square product, `MxNxK` for C[M, N] = A[M, K] B[K, N].
        #[arg(long, value_delimiter = ',', default_value = "256,512,1024,2048",
              value_parser = parse_size)]
        sizes: Vec<Shape>,
        /// Also print each dispatch's GPU time (packing and product) per variant.
        #[arg(long)]
        profile: bool,
    },
    /// GB/s of the fused AdamW update (28 bytes per parameter: read p, g, m, v; write p, m, v).
    Optim {
        #[arg(long, default_value = "10000000")]
        params: usize,
    },
    /// Samples/s of whole training steps (AdamW).
    Train(TrainBench),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BenchModel {
    /// 784-64-10.
    Mlp,
    Lenet5,
}

#[derive(Args, Debug)]
pub struct TrainBench {
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: BenchModel,
    #[arg(long, default_value = "128")]
    pub batch_size: usize,
    /// Timed steps per repetition.
    #[arg(long, default_value = "50")]
    pub steps: usize,
    /// MNIST folder (fetched when missing, as `wgrad train` does).
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Also print each kernel's GPU time in one step (timestamp queries).
    #[arg(long)]
    pub profile: bool,
}

/// Repetitions each figure is the median of.
const REPS: usize = 5;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let ctx = super::device::open(args.adapter.clone()).await?;
    if !args.json {
        println!("adapter: {}", ctx.adapter_name());
    }
    let result = match &args.what {
        BenchCommand::Matmul { sizes, profile } => {
            bench_matmul(&ctx, sizes, *profile, args.json).await
        }
        BenchCommand::Optim { params } => bench_optim(&ctx, *params, args.json).await,
        BenchCommand::Train(t) => bench_train(&ctx, t, args.json).await,
    };
    super::device::save_cache(&ctx);
    result
}

/// `n` (square) or `MxNxK`, each at least 1.
fn parse_size(s: &str) -> Result<Shape, String> {
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.trim().parse().ok().filter(|&v| v > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{s}`: expected a size n >= 1 or MxNxK"))?;
    match dims[..] {
        [n] => Ok(Shape { m: n, n, k: n }),
        [m, n, k] => Ok(Shape { m, n, k }),
        _ => Err(format!("`{s}`: expected a size n >= 1 or MxNxK")),
    }
}

async fn bench_matmul(
    ctx: &Context,
    sizes: &[Shape],
    profile: bool,
    json: bool,
) -> anyhow::Result<()> {
    let adapter = ctx.adapter_name();
    for &shape in sizes {
        let Shape { m, n, k } = shape;
        let square = m == n && n == k;
        let label = if square {
            format!("n={n}")
        } else {
            format!("{m}x{n}x{k}")
        };
        // Both operands row-major and dense.
        let (a, b) = (Operand::row_major(0, k), Operand::row_major(0, n));
        // About half a second of timing per variant and size.
        let timings = matmul::time_variants(ctx, shape, a, b, 0.5).await?;
        let chosen = matmul::known_choice(ctx, shape, a, b)
            .unwrap_or_else(|| matmul::record_choice(ctx, shape, a, b, &timings));
        for t in &timings {
            let gflops = 2.0 * (m * n * k) as f64 / t.seconds / 1e9;
            let is_chosen = t.variant == chosen;
            if json {
                let mut line = json!({"bench": "matmul", "n": n, "variant": t.variant.name(),
                    "gflops": gflops, "ms": t.seconds * 1e3, "chosen": is_chosen,
                    "adapter": adapter});
                if !square {
                    line["m"] = json!(m);
                    line["k"] = json!(k);
                }
                println!("{line}");
            } else {
                println!(
                    "matmul {label:<12} {:<11} {gflops:8.2} GFLOP/s {:10.3} ms{}",
                    t.variant.name(),
                    t.seconds * 1e3,
                    if is_chosen { "  (chosen)" } else { "" }
                );
            }
            if profile {
                profile_matmul(ctx, t.variant, shape).await?;
            }
        }
    }
    Ok(())
}

/// The GPU time of each dispatch of one product of `shape` in `variant`.
async fn profile_matmul(
    ctx: &Context,
    variant: matmul::Variant,
    shape: Shape,
) -> anyhow::Result<()> {
    let Shape { m, n, k } = shape;
    let (a, b, c) = (
        ctx.storage("a", m * k)?,
        ctx.storage("b", k * n)?,
        ctx.storage("c", m * n)?,
    );
    let buffers = matmul::Buffers {
        a: &a,
        b: &b,
        bias: &a,
        mask: &a,
        c: &c,
    };
    let list = matmul::dispatch_variant(
        ctx,
        variant,
        shape,
        Operand::row_major(0, k),
        Operand::row_major(0, n),
        (0, n),
        Default::default(),
        buffers,
    )
    .await?;
    let refs: Vec<_> = list.iter().collect();
    // A first run, not reported: it includes compiling the shaders on adapters that compile at
    // first use.
    wgrad::profile::time_dispatches(ctx, &refs).await?;
    if let Some(times) = wgrad::profile::time_dispatches(ctx, &refs).await? {
        for k in times {
            println!("    {:<24} {:10.3} ms", k.kernel, k.seconds * 1e3);
        }
    }
    Ok(())
}

async fn bench_optim(ctx: &Context, len: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(len > 0, "--params must be at least 1");
    let config = Config::adamw();
    let values: Vec<f32> = (0..len)
        .map(|i| ((i % 251) as f32 - 125.0) * 1e-3)
        .collect();
    let param = ctx.storage_init("params", &values)?;
    let grad = ctx.storage_init("grads", &values)?;
    let m = ctx.storage("exp_avg", len)?;
    let v = ctx.storage("exp_avg_sq", len)?;
    let (_, row_stride) = kernel::grid(ctx, len);
    let step_params = config.step_params(1, config.lr, len, row_stride);
    let uniform = ctx.uniform("optimizer params", &step_params);
    let update = kernel::dispatch(
        ctx,
        config.rule(),
        len,
        kernel::Buffers {
            uniform,
            param: &param,
            grad: &grad,
            state1: &m,
            state2: &v,
        },
    )
    .await?;
    // The reference: a vec4 copy over the same grid, m = g (8 bytes per element moved).
    let copy_uniform = ctx.uniform("copy params", &step_params);
    let copy = kernel::copy_dispatch(ctx, len, copy_uniform, &grad, &m).await?;
    let run = |d: &wgrad::kernels::Dispatch, times: usize| {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        for _ in 0..times {
            wgrad::kernels::record_all(&mut encoder, [d]);
        }
        ctx.queue.submit([encoder.finish()]);
    };
    run(&update, 2);
    run(&copy, 2);
    ctx.wait().await?;
    // Interleaved, so that a drift in the adapter's speed falls on both alike.
    let (mut samples, mut copies) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        for (d, out) in [(&update, &mut samples), (&copy, &mut copies)] {
            let t0 = Instant::now();
            run(d, 5);
            ctx.wait().await?;
            out.push(t0.elapsed().as_secs_f64() / 5.0);
        }
    }
    let seconds = median(&mut samples);
    let gbps = 28.0 * len as f64 / seconds / 1e9;
    let copy_gbps = 8.0 * len as f64 / median(&mut copies) / 1e9;
    if json {
        let line = json!({"bench": "optim", "optimizer": "adamw", "params": len,
            "gb_per_sec": gbps, "ms": seconds * 1e3, "copy_gb_per_sec": copy_gbps,
            "adapter": ctx.adapter_name()});
        println!("{line}");
    } else {
        println!(
            "optim adamw params={len} {gbps:.2} GB/s {:.3} ms per update; \
             shader copy {copy_gbps:.2} GB/s",
            seconds * 1e3
        );
    }
    Ok(())
}

async fn bench_train(ctx: &Context, t: &TrainBench, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(t.batch_size > 0, "--batch-size must be at least 1");
    anyhow::ensure!(t.steps > 0, "--steps must be at least 1");
    let (name, spec) = match t.model {
        BenchModel::Mlp => ("mlp", ModelSpec::mlp(mnist::DIM, &[64], mnist::CLASSES)),
        BenchModel::Lenet5 => ("lenet5", ModelSpec::lenet5()),
    };
    fetch::ensure_mnist(&t.data)?;
    let data = mnist::load(&t.data)?.train;
    let net = Network::new(ctx, &spec, 0).await?;
    let mut trainer = Trainer::new(net, Config::adamw(), Schedule::Constant, 1).await?;
    let dispatches = trainer.dispatches_per_step(t.batch_size).await?;

    // Full batches only, in a shuffled order, gathered on the host each step as in training.
    let order = epoch_order(data.len(), 0, 1, true);
    let batches: Vec<&[usize]> = order.chunks_exact(t.batch_size).collect();
    anyhow::ensure!(!batches.is_empty(), "fewer than --batch-size training rows");
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    let mut next = 0;
    let mut steps = |n: usize| {
        let chunk: Vec<&[usize]> = (0..n)
            .map(|i| batches[(next + i) % batches.len()])
            .collect();
        next += n;
        chunk
    };
    // Warm-up: plans, pipelines and tuning are built on the first step.
    for c in steps(5) {
        gather(&data, c, &mut x, &mut labels);
        trainer.step(&x, &labels, false).await?;
    }
    ctx.wait().await?;
    let mut samples = Vec::new();
    for _ in 0..REPS {
        let chunk = steps(t.steps);
        let t0 = Instant::now();
        for c in chunk {
            gather(&data, c, &mut x, &mut labels);
            trainer.step(&x, &labels, false).await?;
        }
        ctx.wait().await?;
        samples.push(t0.elapsed().as_secs_f64() / t.steps as f64);
    }
    let seconds = median(&mut samples);
    let per_sec = t.batch_size as f64 / seconds;
    if json {
        let line = json!({"bench": "train", "model": name, "batch_size": t.batch_size,
            "samples_per_sec": per_sec, "ms_per_step": seconds * 1e3,
            "dispatches_per_step": dispatches, "adapter": ctx.adapter_name()});
        println!("{line}");
    } else {
        println!(
            "train {name} batch={} {per_sec:.0} samples/s {:.3} ms/step {dispatches} \
             dispatches/step",
            t.batch_size,
            seconds * 1e3
        );
    }
    if t.profile {
        profile(ctx, &mut trainer, &data, &batches, json).await?;
    }
    Ok(())
}

/// Where a step's time goes: each dispatch's GPU time from timestamp queries (median over a
/// few steps) where the adapter has them, and its time replayed alone (host clock, 20 replays
/// per submit, median of 5), which includes the adapter's fixed cost per dispatch.
async fn profile(
    ctx: &Context,
    trainer: &mut Trainer,
    data: &wgrad::data::Dataset,
    batches: &[&[usize]],
    json: bool,
) -> anyhow::Result<()> {
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    let mut stamps: Vec<Vec<f64>> = Vec::new();
    for c in batches.iter().take(REPS) {
        gather(data, c, &mut x, &mut labels);
        trainer.prepare_step(&x, &labels).await?;
        let list = trainer.step_dispatches(labels.len());
        match wgrad::profile::time_dispatches(ctx, &list).await? {
            Some(times) => {
                stamps.resize(times.len(), Vec::new());
                for k in times {
                    stamps[k.index].push(k.seconds);
                }
            }
            None => break,
        }
    }
    let list = trainer.step_dispatches(labels.len());
    let mut alone = Vec::with_capacity(list.len());
    for d in &list {
        let mut samples = Vec::new();
        for _ in 0..REPS {
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            wgrad::kernels::record_all(&mut encoder, std::iter::repeat_n(*d, 20));
            let t0 = Instant::now();
            ctx.queue.submit([encoder.finish()]);
            ctx.wait().await?;
            samples.push(t0.elapsed().as_secs_f64() / 20.0);
        }
        alone.push(median(&mut samples));
    }
    let total: f64 = alone.iter().sum();
    for (i, d) in list.iter().enumerate() {
        let stamp = stamps
            .get_mut(i)
            .filter(|s| !s.is_empty())
            .map(|s| median(s));
        if json {
            let line = json!({"bench": "profile", "index": i, "kernel": d.kernel.name,
                "ms_alone": alone[i] * 1e3, "ms_timestamp": stamp.map(|s| s * 1e3),
                "adapter": ctx.adapter_name()});
            println!("{line}");
        } else {
            let stamp = stamp.map_or("-".to_string(), |s| format!("{:.3}", s * 1e3));
            println!(
                "  {i:>3} {:<24} alone {:8.3} ms {:5.1}%  timestamps {stamp:>8} ms",
                d.kernel.name,
                alone[i] * 1e3,
                100.0 * alone[i] / total
            );
        }
    }
    if !json {
        println!("  sum alone {:.3} ms", total * 1e3);
    }
    Ok(())
}
