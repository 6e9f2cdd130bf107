//! Criterion benches of the kernels and of a whole training step, on the default adapter.
//!
//! `cargo bench` prints the median time per dispatch (matmul, every variant the adapter runs, on
//! the MLP's shapes and a square one; the AdamW update) and per training step (784-64-10, AdamW,
//! batch 64 and 128). Each iteration submits
//! the work and waits for it, so GPU time is included; on llvmpipe a dispatch also carries its
//! ~45 us fixed cost. Run them with nothing else loading the CPU: llvmpipe shares its cores.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgrad::gpu::{Context, ContextOptions};
use wgrad::graph::Network;
use wgrad::kernels::matmul::{self, Epilogue, Operand, Shape, Variant};
use wgrad::kernels::{self, optim, Dispatch};
use wgrad::model::ModelSpec;
use wgrad::optim::{Config, Schedule};
use wgrad::train::Trainer;

fn context() -> Context {
    pollster::block_on(Context::new(&ContextOptions::default())).expect("a GPU adapter")
}

fn run(ctx: &Context, d: &[Dispatch]) {
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    kernels::record_all(&mut encoder, d);
    ctx.queue.submit([encoder.finish()]);
    pollster::block_on(ctx.wait()).unwrap();
}

fn matmul_benches(c: &mut Criterion) {
    let ctx = context();
    let a = ctx.storage("a", 1 << 20).unwrap();
    let b = ctx.storage("b", 1 << 20).unwrap();
    let out = ctx.storage("c", 1 << 20).unwrap();
    // The three products of the MLP's first layer at batch 64, and a square one.
    let cases = [
        (
            "forward 64x64x784",
            Shape {
                m: 64,
                n: 64,
                k: 784,
            },
            Operand::row_major(0, 784),
            Operand::transposed(0, 784),
        ),
        (
            "grad_w 64x784x64",
            Shape {
                m: 64,
                n: 784,
                k: 64,
            },
            Operand::transposed(0, 64),
            Operand::row_major(0, 784),
        ),
        (
            "grad_x 64x784x64",
            Shape {
                m: 64,
                n: 784,
                k: 64,
            },
            Operand::row_major(0, 64),
            Operand::row_major(0, 784),
        ),
        (
            "square 256",
            Shape {
                m: 256,
                n: 256,
                k: 256,
            },
            Operand::row_major(0, 256),
            Operand::row_major(0, 256),
        ),
    ];
    let mut group = c.benchmark_group(format!("matmul on {}", ctx.info.name));
    group.sample_size(20);
    for (name, shape, a_op, b_op) in cases {
        group.throughput(Throughput::Elements(
            (2 * shape.m * shape.n * shape.k) as u64,
        ));
        for variant in Variant::ALL {
            if variant.unsupported(&ctx, shape, a_op, b_op).is_some() {
                continue;
            }
            let d = pollster::block_on(matmul::dispatch_variant(
                &ctx,
                variant,
                shape,
                a_op,
                b_op,
                (0, shape.n),
                Epilogue::default(),
                matmul::Buffers {
                    a: &a,
                    b: &b,
                    bias: &a,
                    mask: &a,
                    c: &out,
                },
            ))
            .unwrap();
            group.bench_function(format!("{name} {}", variant.name()), |bench| {
                bench.iter(|| run(&ctx, &d))
            });
        }
    }
    group.finish();
}

fn step_benches(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group(format!(
        "train step mlp 784-64-10 adamw on {}",
        ctx.info.name
    ));
    group.sample_size(20);
    for batch in [64usize, 128] {
        let spec = ModelSpec::mlp(784, &[64], 10);
        let net = pollster::block_on(Network::new(&ctx, &spec, 0)).unwrap();
        let mut trainer = pollster::block_on(Trainer::new(
            net,
            Config::adamw(),
            Schedule::Constant,
            1 << 30,
        ))
        .unwrap();
        let x = vec![0.25f32; batch * 784];
        let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch {batch}"), |bench| {
            bench.iter(|| {
                pollster::block_on(trainer.step(&x, &labels, false)).unwrap();
                pollster::block_on(ctx.wait()).unwrap();
            })
        });
    }
    group.finish();
}

/// The fused AdamW update over 1M parameters (28 bytes each: read p, g, m, v; write p, m, v).
fn optim_benches(c: &mut Criterion) {
    let ctx = context();
    let len = 1 << 20;
    let config = Config::adamw();
    let bufs: Vec<wgpu::Buffer> = (0..4).map(|_| ctx.storage("state", len).unwrap()).collect();
    let (_, row_stride) = optim::grid(&ctx, len);
    let uniform = ctx.uniform("params", &config.step_params(1, 1e-3, len, row_stride));
    let d = pollster::block_on(optim::dispatch(
        &ctx,
        config.rule(),
        len,
        optim::Buffers {
            uniform,
            param: &bufs[0],
            grad: &bufs[1],
            state1: &bufs[2],
            state2: &bufs[3],
        },
    ))
    .unwrap();
    let mut group = c.benchmark_group(format!("optimizer on {}", ctx.info.name));
    group.sample_size(20);
    group.throughput(Throughput::Bytes(28 * len as u64));
    group.bench_function("adamw 1M params", |bench| {
        bench.iter(|| run(&ctx, std::slice::from_ref(&d)))
    });
    group.finish();
}

criterion_group!(benches, matmul_benches, optim_benches, step_benches);
criterion_main!(benches);
