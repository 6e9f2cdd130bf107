//! Every kernel against its CPU reference (`wgrad::reference`), on seeded random inputs with
//! sizes that are not multiples of the workgroup tiles, nonzero offsets included.

mod common;

use common::{assert_close, assert_close32, context, random, random_labels};
use wgrad::gpu::Context;
use wgrad::kernels::matmul::{self, Epilogue, Operand, Shape, Variant};
use wgrad::kernels::optim::{self as optk, Rule};
use wgrad::kernels::{self, bias, loss, Dispatch};
use wgrad::optim::Config;
use wgrad::reference;

fn run(ctx: &Context, d: &Dispatch) {
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    kernels::record_all(&mut encoder, [d]);
    ctx.queue.submit([encoder.finish()]);
}

fn read(ctx: &Context, b: &wgpu::Buffer, len: usize) -> Vec<f32> {
    pollster::block_on(ctx.read(b, 0, len)).unwrap()
}

// f32 sums of k <= 130 products of values in [-1, 1], against f64: each fma rounds by at most
// 2^-24 of the running sum (|sum| <~ sqrt(k) for random signs, ~11), and the k roundings add
// like a random walk, ~sqrt(k) * 2^-24 * 11 ~ 8e-6. 2e-5 absolute + 1e-5 relative covers it.
const MATMUL_ABS: f64 = 2e-5;
const MATMUL_REL: f64 = 1e-5;

/// One product with operands laid out as `a_t`/`b_t` say (transposed or not), placed at
/// nonzero offsets, with the given epilogue.
fn check_matmul(
    ctx: &Context,
    (m, n, k): (usize, usize, usize),
    a_t: bool,
    b_t: bool,
    e: Epilogue,
) {
    check_matmul_variant(ctx, Variant::Strided, (m, n, k), a_t, b_t, e, (3, 5, 7));
}

/// As [`check_matmul`] with a chosen kernel and operand offsets.
fn check_matmul_variant(
    ctx: &Context,
    variant: Variant,
    (m, n, k): (usize, usize, usize),
    a_t: bool,
    b_t: bool,
    e: Epilogue,
    (a_off, b_off, c_off): (usize, usize, usize),
) {
    let shape = Shape { m, n, k };
    let a_op = if a_t {
        Operand::transposed(a_off, m)
    } else {
        Operand::row_major(a_off, k)
    };
    let b_op = if b_t {
        Operand::transposed(b_off, k)
    } else {
        Operand::row_major(b_off, n)
    };
    let a = random(a_off + m * k, 1, 1.0);
    let b = random(b_off + k * n, 2, 1.0);
    let bias_v = random(11 + n, 3, 1.0);
    let mask_v = random(13 + m * n, 4, 1.0);
    let c0 = random(c_off + m * n + 9, 5, 1.0);

    let mut want = c0.clone();
    reference::matmul(
        shape,
        (&a, a_op),
        (&b, b_op),
        (&mut want, c_off, n),
        e,
        (&bias_v, &mask_v),
    );

    let bufs: Vec<wgpu::Buffer> = [&a, &b, &bias_v, &mask_v, &c0]
        .iter()
        .map(|v| ctx.storage_init("test", v).unwrap())
        .collect();
    let d = pollster::block_on(matmul::dispatch_variant(
        ctx,
        variant,
        shape,
        a_op,
        b_op,
        (c_off, n),
        e,
        matmul::Buffers {
            a: &bufs[0],
            b: &bufs[1],
            bias: &bufs[2],
            mask: &bufs[3],
            c: &bufs[4],
        },
    ))
    .unwrap();
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    kernels::record_all(&mut encoder, &d);
    ctx.queue.submit([encoder.finish()]);
    let got = read(ctx, &bufs[4], c0.len());
    let want64: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    let what = format!("matmul {variant:?} {m}x{n}x{k} a_t={a_t} b_t={b_t} {e:?}");
    // Elements outside C (before c_off and after it) must be untouched: compared exactly.
    assert_eq!(&got[..c_off], &c0[..c_off], "{what}: wrote before C");
    assert_eq!(
        &got[c_off + m * n..],
        &c0[c_off + m * n..],
        "{what}: wrote after C"
    );
    assert_close(&what, &got, &want64, MATMUL_ABS, MATMUL_REL);
}

#[test]
fn matmul_matches_reference_in_every_layout() {
    let Some(ctx) = context() else { return };
    let plain = Epilogue::default();
    for &dims in &[
        (37, 70, 45),
        (1, 1, 1),
        (33, 65, 3),
        (64, 10, 130),
        (5, 129, 17),
    ] {
        for a_t in [false, true] {
            for b_t in [false, true] {
                check_matmul(&ctx, dims, a_t, b_t, plain);
            }
        }
    }
}

#[test]
fn matmul_epilogues_match_reference() {
    let Some(ctx) = context() else { return };
    let epilogues = [
        Epilogue {
            bias: Some(11),
            relu: false,
            mask: None,
        },
        Epilogue {
            bias: Some(11),
            relu: true,
            mask: None,
        },
        Epilogue {
            bias: None,
            relu: true,
            mask: None,
        },
        Epilogue {
            bias: None,
            relu: false,
            mask: Some((13, 70)),
        },
    ];
    for e in epilogues {
        check_matmul(&ctx, (37, 70, 45), false, true, e);
        check_matmul(&ctx, (37, 70, 45), true, false, e);
        // C rows of whole aligned vec4s: the epilogue's vec4 stores (C_VEC4).
        let e = Epilogue {
            mask: e.mask.map(|(off, _)| (off, 68)),
            ..e
        };
        check_matmul_variant(
            &ctx,
            Variant::Strided,
            (37, 68, 45),
            true,
            false,
            e,
            (3, 5, 8),
        );
    }
}

/// The 8x8-block variants (packed storage buffers or textures, with and without subgroups, with
/// blocks of 16 or 32 rows) in every layout, with edges that cut blocks and workgroup tiles,
/// and each epilogue.
#[test]
fn block8_matmuls_match_reference() {
    let Some(ctx) = context() else { return };
    let e = Epilogue {
        bias: Some(11),
        relu: true,
        mask: None,
    };
    let masked = Epilogue {
        bias: None,
        relu: false,
        mask: Some((13, 150)),
    };
    for v in [
        Variant::Block8,
        Variant::Block8Sg,
        Variant::Block8Sg32,
        Variant::Tex8,
        Variant::Tex8Sg,
        Variant::Tex8Sg32,
    ] {
        let probe = Shape { m: 8, n: 8, k: 4 };
        let row = Operand::row_major(0, 4);
        if let Some(why) = v.unsupported(&ctx, probe, row, row) {
            // Under CI the adapter is llvmpipe, which has every feature these need.
            assert!(
                std::env::var("CI").is_err(),
                "{v:?} unsupported under CI: {why}"
            );
            eprintln!("skipping {v:?}: {why}");
            continue;
        }
        // Odd offsets make every operand packed; aligned ones with k and n multiples of 4 let
        // the buffer variants read row-major operands in place.
        let shapes = [
            (37, 70, 45),
            (1, 1, 1),
            (130, 150, 67),
            (64, 10, 128),
            (36, 68, 44),
            // Wide layout over two workgroups of columns (n > 256) and two block rows of 16
            // (of the 32-row kernels, one that the edge cuts).
            (20, 300, 132),
        ];
        for dims in shapes {
            for offsets in [(3, 5, 7), (4, 8, 8)] {
                for a_t in [false, true] {
                    for b_t in [false, true] {
                        let e = Epilogue::default();
                        check_matmul_variant(&ctx, v, dims, a_t, b_t, e, offsets);
                    }
                }
            }
        }
        check_matmul_variant(&ctx, v, (130, 150, 67), false, true, e, (3, 5, 7));
        check_matmul_variant(&ctx, v, (130, 150, 67), true, false, masked, (3, 5, 7));
        // The same epilogues where C's rows are whole aligned vec4s (C_VEC4).
        let masked = Epilogue {
            mask: Some((13, 68)),
            ..masked
        };
        check_matmul_variant(&ctx, v, (36, 68, 44), false, true, e, (4, 8, 8));
        check_matmul_variant(&ctx, v, (36, 68, 44), true, false, masked, (4, 8, 8));
    }
}

/// The vec4 kernel on each layout it takes (the three products of a linear layer), with
/// 4-aligned offsets and sizes that are multiples of 4 only where it needs them.
#[test]
fn vec4_matmul_matches_reference() {
    let Some(ctx) = context() else { return };
    let e = Epilogue {
        bias: Some(11),
        relu: true,
        mask: None,
    };
    let masked = Epilogue {
        bias: None,
        relu: false,
        mask: Some((13, 68)),
    };
    // (dims, a transposed, b transposed): nt needs k % 4 == 0; tn needs m, n % 4 == 0;
    // nn needs n % 4 == 0.
    let cases = [
        ((37, 70, 44), false, true, e),
        ((5, 3, 4), false, true, Epilogue::default()),
        ((36, 68, 45), true, false, Epilogue::default()),
        ((4, 4, 1), true, false, Epilogue::default()),
        ((37, 68, 45), false, false, masked),
        ((1, 4, 3), false, false, Epilogue::default()),
    ];
    for (dims, a_t, b_t, e) in cases {
        check_matmul_variant(&ctx, Variant::Vec4, dims, a_t, b_t, e, (4, 8, 7));
    }
    // A layout it cannot read is refused rather than computed wrongly.
    let buf = ctx.storage("x", 64).unwrap();
    let refused = pollster::block_on(matmul::dispatch_variant(
        &ctx,
        Variant::Vec4,
        Shape { m: 3, n: 3, k: 3 },
        Operand::row_major(1, 3),
        Operand::transposed(0, 3),
        (0, 3),
        Epilogue::default(),
        matmul::Buffers {
            a: &buf,
            b: &buf,
            bias: &buf,
            mask: &buf,
            c: &buf,
        },
    ));
    assert!(refused.is_err());
}

#[test]
fn bias_grad_is_column_sums() {
    let Some(ctx) = context() else { return };
    let (rows, cols, src_off, dst_off) = (67, 131, 6, 9);
    let src = random(src_off + rows * cols, 8, 1.0);
    let dst0 = random(dst_off + cols + 4, 9, 1.0);
    let sb = ctx.storage_init("src", &src).unwrap();
    let db = ctx.storage_init("dst", &dst0).unwrap();
    let d = pollster::block_on(bias::dispatch(
        &ctx,
        rows,
        cols,
        (&sb, src_off),
        (&db, dst_off),
    ))
    .unwrap();
    run(&ctx, &d);
    let got = read(&ctx, &db, dst0.len());
    let sums = reference::column_sums(&src[src_off..], rows, cols);
    assert_eq!(&got[..dst_off], &dst0[..dst_off]);
    assert_eq!(&got[dst_off + cols..], &dst0[dst_off + cols..]);
    // 67 terms in [-1, 1]: the worst case is 67 * 2^-24 * 67 = 3e-4, but for random signs the
    // running sum stays near sqrt(67) ~ 8 and the roundings add like a random walk:
    // ~sqrt(67) * 2^-24 * 8 ~ 4e-6, so 2e-5 absolute has a 5x margin.
    assert_close32(
        "bias grad",
        &got[dst_off..dst_off + cols],
        &sums,
        2e-5,
        1e-5,
    );
}

#[test]
fn softmax_xent_matches_reference_and_accumulates() {
    let Some(ctx) = context() else { return };
    // 300 rows: more than the kernel's 256 invocations, so some invocations take two rows.
    let (rows, classes, off) = (300, 10, 5);
    let mut logits = random(off + rows * classes, 10, 6.0);
    // A tie in row 0: classes 2 and 7 share the maximum; the first (2) counts as the argmax.
    logits[off + 2] = 50.0;
    logits[off + 7] = 50.0;
    let mut labels = random_labels(rows, classes as u32, 11);
    labels[0] = 7;
    let lb = ctx.storage_init("logits", &logits).unwrap();
    let yb = ctx.storage_init("labels", &labels).unwrap();
    let grad0 = vec![9.0f32; rows * classes];
    let gb = ctx.storage_init("grad", &grad0).unwrap();
    let sb = ctx.storage_init("stats", &[0.0f32, 1.0, 2.0, 3.0]).unwrap();
    // The fused bias gradient goes to elements 3.. of its buffer; the rest keeps its values.
    let bias0 = vec![-4.0f32; classes + 6];
    let bb = ctx.storage_init("bias grad", &bias0).unwrap();
    let mk = |with_grad| {
        pollster::block_on(loss::dispatch(
            &ctx,
            rows,
            classes,
            off,
            with_grad,
            loss::Buffers {
                logits: &lb,
                labels: &yb,
                grad: &gb,
                stats: &sb,
                bias_grad: Some((&bb, 3)),
            },
        ))
        .unwrap()
    };
    let (train, eval) = (mk(true), mk(false));

    let l64: Vec<f64> = logits[off..].iter().map(|&v| v as f64).collect();
    let (want_loss, want_grad, hits) = reference::softmax_xent(&l64, &labels, classes);
    // Row 0 alone: its label (7) ties with class 2 for the maximum, and the first maximum wins,
    // so it must count as a miss.
    let (_, _, row0_hits) = reference::softmax_xent(&l64[..classes], &labels[..1], classes);
    assert_eq!(
        row0_hits, 0,
        "the reference breaks the tie towards the label"
    );

    // Evaluation leaves the gradient alone and adds to the running sums.
    run(&ctx, &eval);
    assert_eq!(
        read(&ctx, &gb, grad0.len()),
        grad0,
        "evaluation wrote the gradient"
    );
    assert_eq!(
        read(&ctx, &bb, bias0.len()),
        bias0,
        "evaluation wrote the bias gradient"
    );
    run(&ctx, &train);
    let stats = read(&ctx, &sb, 4);
    // Loss: each row's logsumexp in f32 is good to ~1e-6 relative; the mean of 300 rows too.
    assert_close("batch loss", &stats[..1], &[want_loss], 1e-5, 1e-5);
    let sum = want_loss * rows as f64;
    let want_stats = [
        1.0 + 2.0 * sum,
        2.0 + 2.0 * hits as f64,
        3.0 + 2.0 * rows as f64,
    ];
    assert_close("running stats", &stats[1..], &want_stats, 1e-3, 1e-5);
    // Gradient entries are (p - onehot) / 300 with p good to ~1e-6: 1e-8 absolute.
    assert_close(
        "logits grad",
        &read(&ctx, &gb, grad0.len()),
        &want_grad,
        1e-8,
        1e-5,
    );
    // The bias gradient: column sums of 300 f32 entries; each add rounds by at most 2^-24 of a
    // partial sum below 1, so 300 adds stay under 2e-5 and typically near 1e-6.
    let got = read(&ctx, &bb, bias0.len());
    let want_bias: Vec<f64> = (0..classes)
        .map(|j| (0..rows).map(|i| want_grad[i * classes + j]).sum())
        .collect();
    assert_close(
        "fused bias grad",
        &got[3..3 + classes],
        &want_bias,
        2e-5,
        1e-5,
    );
    assert!(got[..3]
        .iter()
        .chain(&got[3 + classes..])
        .all(|&v| v == -4.0));
}

/// Runs `steps` updates of `config` on the GPU and on the CPU reference from the same start,
/// with a fresh random gradient each step.
fn check_optimizer(ctx: &Context, name: &str, config: &Config, steps: u64) {
    // A multiple of 4 (the kernel reads vec4s), not of the 256-wide workgroup's 1024 floats,
    // and over two workgroups' worth, so that a partial last workgroup follows full ones.
    let len = 2500;
    let mut p = random(len, 20, 1.0);
    let (mut s1, mut s2) = (vec![0.0f32; len], vec![0.0f32; len]);
    let pb = ctx.storage_init("param", &p).unwrap();
    let gb = ctx.storage("grad", len).unwrap();
    let s1b = ctx.storage("state1", len).unwrap();
    let s2b = ctx.storage("state2", len).unwrap();
    let (_, row_stride) = optk::grid(ctx, len);
    let uniform = ctx.uniform("params", &optk::Params::default());
    let d = pollster::block_on(optk::dispatch(
        ctx,
        config.rule(),
        len,
        optk::Buffers {
            uniform: uniform.clone(),
            param: &pb,
            grad: &gb,
            state1: &s1b,
            state2: &s2b,
        },
    ))
    .unwrap();
    for t in 1..=steps {
        let g = random(len, 100 + t, 0.5);
        let lr = config.lr * (1.0 - 0.05 * t as f64); // a varying rate, as a schedule gives
        let params = config.step_params(t, lr, len, row_stride);
        reference::optim_step(config.rule(), &params, &mut p, &g, &mut s1, &mut s2);
        ctx.write(&gb, 0, &g);
        ctx.write(&uniform, 0, &[params]);
        run(ctx, &d);
    }
    // Same f32 operations in the same order; the GPU may fuse a multiply-add, which changes a
    // result by at most an ulp per step, so a few ulps of the values (~1e-6) after 12 steps.
    assert_close32(
        &format!("{name} params"),
        &read(ctx, &pb, len),
        &p,
        1e-6,
        1e-5,
    );
    if config.rule() != Rule::Sgd || config.momentum != 0.0 {
        assert_close32(
            &format!("{name} state1"),
            &read(ctx, &s1b, len),
            &s1,
            1e-6,
            1e-5,
        );
    }
    if config.rule() == Rule::Adam {
        assert_close32(
            &format!("{name} state2"),
            &read(ctx, &s2b, len),
            &s2,
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn optimizers_match_their_formulas() {
    let Some(ctx) = context() else { return };
    let sgd = Config {
        lr: 0.1,
        ..Config::sgd()
    };
    let cases = [
        ("sgd", sgd.clone()),
        (
            "sgd+wd",
            Config {
                weight_decay: 0.01,
                ..sgd.clone()
            },
        ),
        (
            "momentum",
            Config {
                momentum: 0.9,
                ..sgd.clone()
            },
        ),
        (
            "momentum+dampening",
            Config {
                momentum: 0.9,
                dampening: 0.3,
                ..sgd.clone()
            },
        ),
        (
            "nesterov",
            Config {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-3,
                ..sgd
            },
        ),
        ("adagrad", Config::adagrad()),
        (
            "adagrad+wd+decay",
            Config {
                weight_decay: 0.01,
                lr_decay: 0.1,
                ..Config::adagrad()
            },
        ),
        ("adam", Config::adam()),
        (
            "adam+l2",
            Config {
                weight_decay: 0.01,
                ..Config::adam()
            },
        ),
        ("adamw", Config::adamw()),
        (
            "adamw betas",
            Config {
                beta1: 0.5,
                beta2: 0.9,
                eps: 1e-4,
                ..Config::adamw()
            },
        ),
        (
            "adam eps inside",
            Config {
                eps_inside_sqrt: true,
                ..Config::adam()
            },
        ),
    ];
    for (name, config) in cases {
        config.validate().unwrap();
        check_optimizer(&ctx, name, &config, 12);
    }
}

/// The reference itself against the textbook formulas, written out independently here for
/// Adam and AdamW in f64 (PyTorch's docs), so that a shared mistake in kernel and reference
/// cannot pass unseen.
#[test]
fn optimizer_reference_matches_textbook_adam() {
    let (lr, b1, b2, eps, wd) = (1e-3f64, 0.9f64, 0.999f64, 1e-8f64, 0.01f64);
    for decoupled in [false, true] {
        let base = if decoupled {
            Config::adamw()
        } else {
            Config {
                weight_decay: wd,
                ..Config::adam()
            }
        };
        let n = 8;
        let p0 = random(n, 1, 1.0);
        let (mut p, mut s1, mut s2) = (p0.clone(), vec![0.0f32; n], vec![0.0f32; n]);
        let (mut q, mut m, mut v): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            p0.iter().map(|&x| x as f64).collect(),
            vec![0.0; n],
            vec![0.0; n],
        );
        for t in 1..=10u64 {
            let g = random(n, 50 + t, 1.0);
            let params = base.step_params(t, lr, n, 256);
            reference::optim_step(Rule::Adam, &params, &mut p, &g, &mut s1, &mut s2);
            for i in 0..n {
                let mut gi = g[i] as f64;
                if decoupled {
                    q[i] *= 1.0 - lr * wd;
                } else {
                    gi += wd * q[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let mhat = m[i] / (1.0 - b1.powi(t as i32));
                let vhat = v[i] / (1.0 - b2.powi(t as i32));
                q[i] -= lr * mhat / (vhat.sqrt() + eps);
            }
        }
        // 10 steps of size ~lr in f32 against f64: agreement to ~1e-6 of the weights' scale.
        assert_close(&format!("adam decoupled={decoupled}"), &p, &q, 2e-6, 1e-6);
    }
}

/// The copy that `wgrad bench optim` sets beside the updates copies every element, and only
/// those `len` (the buffer past them keeps its values): otherwise its GB/s would mean nothing.
#[test]
fn optimizer_copy_reference_copies() {
    let Some(ctx) = context() else { return };
    let len = 1000;
    let src = random(len, 7, 1.0);
    let dst0 = vec![-9.0f32; len + 8];
    let sb = ctx.storage_init("src", &src).unwrap();
    let db = ctx.storage_init("dst", &dst0).unwrap();
    let (_, row_stride) = optk::grid(&ctx, len);
    let params = Config::adamw().step_params(1, 1e-3, len, row_stride);
    let uniform = ctx.uniform("copy params", &params);
    let d = pollster::block_on(optk::copy_dispatch(&ctx, len, uniform, &sb, &db)).unwrap();
    run(&ctx, &d);
    let got = read(&ctx, &db, len + 8);
    assert_eq!(&got[..len], &src[..]);
    assert!(got[len..].iter().all(|&v| v == -9.0));
}
