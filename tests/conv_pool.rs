//! The CNN and autoencoder kernels against their CPU references: conv2d forward and its three
//! gradients, max-pool with argmax and backward (ties and odd sizes included), and MSE.

mod common;

use common::{assert_close, assert_close32, context, random};
use wgrad::gpu::Context;
use wgrad::kernels::conv::{self, ConvShape, Pass};
use wgrad::kernels::conv_gemm;
use wgrad::kernels::conv_strip;
use wgrad::kernels::matmul::Variant;
use wgrad::kernels::pool::{self, PoolShape};
use wgrad::kernels::{self, loss, Dispatch};
use wgrad::reference;

fn run(ctx: &Context, d: &Dispatch) {
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    kernels::record_all(&mut encoder, [d]);
    ctx.queue.submit([encoder.finish()]);
}

fn read<T: bytemuck::Pod>(ctx: &Context, b: &wgpu::Buffer, len: usize) -> Vec<T> {
    pollster::block_on(ctx.read(b, 0, len)).unwrap()
}

// Sums of at most ic*kh*kw (forward: <= 150; grad_input: oc*kh*kw <= 400) or n*oh*ow
// (grad_weight: <= 1568) products of values in [-1, 1], accumulated in f32 with fma against an
// f64 reference. Each addition rounds by at most 2^-24 of the running sum, with random signs, so
// the error grows like sqrt(len) * 2^-24 * the partial sums' size (up to ~20 here): ~5e-5 for
// 1568 terms. (The worst case, len * 2^-24 * sum|terms|, ~0.15 there, needs every rounding to
// fall the same way.) Measured worst over these tests: 3.0e-5 (the strips: 1.0e-5).
const CONV_ABS: f64 = 1e-4;
const CONV_REL: f64 = 1e-5;

fn check_conv(ctx: &Context, s: ConvShape) {
    let (oh, ow) = s.output().unwrap();
    let (x_off, w_off) = (5, 3);
    let x = random(x_off + s.n * s.ic * s.h * s.w, 1, 1.0);
    // Weight [oc, ic, kh, kw] at w_off, bias [oc] after it, in one buffer like the parameters.
    let wlen = s.oc * s.ic * s.kh * s.kw;
    let params = random(w_off + wlen + s.oc, 2, 1.0);
    let b_off = w_off + wlen;
    let gy = random(s.n * s.oc * oh * ow, 3, 1.0);
    let xb = ctx.storage_init("x", &x).unwrap();
    let pb = ctx.storage_init("params", &params).unwrap();
    let gyb = ctx.storage_init("grad_y", &gy).unwrap();
    let what = format!("{s:?}");

    let xs = &x[x_off..];
    let ws = &params[w_off..b_off];
    let (gx, gw, gb) = reference::conv2d_grads(s, xs, ws, &gy);
    for (flags, relu) in [
        (conv::FLAG_BIAS, false),
        (conv::FLAG_BIAS | conv::FLAG_RELU, true),
    ] {
        let want = reference::conv2d(s, xs, ws, Some(&params[b_off..]), relu);
        let out = ctx.storage("out", want.len() + 2).unwrap();
        let d = pollster::block_on(conv::dispatch(
            ctx,
            Pass::Forward,
            s,
            flags,
            conv::Buffers {
                x: (&xb, x_off),
                weight: (&pb, w_off, b_off),
                grad_y: &gyb,
                out: (&out, 2),
            },
        ))
        .unwrap();
        run(ctx, &d);
        let got: Vec<f32> = read(ctx, &out, want.len() + 2);
        assert_eq!(
            &got[..2],
            &[0.0, 0.0],
            "{what}: forward wrote before its offset"
        );
        assert_close(
            &format!("{what} forward relu={relu}"),
            &got[2..],
            &want,
            CONV_ABS,
            CONV_REL,
        );
    }

    let cases: [(Pass, u32, Vec<f64>); 4] = [
        (Pass::GradInput, 0, gx.clone()),
        (
            Pass::GradInput,
            conv::FLAG_MASK,
            gx.iter()
                .zip(xs)
                .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                .collect(),
        ),
        (Pass::GradWeight, 0, gw),
        (Pass::GradBias, 0, gb),
    ];
    for (pass, flags, want) in cases {
        let out = ctx.storage("out", want.len()).unwrap();
        let d = pollster::block_on(conv::dispatch(
            ctx,
            pass,
            s,
            flags,
            conv::Buffers {
                x: (&xb, x_off),
                weight: (&pb, w_off, b_off),
                grad_y: &gyb,
                out: (&out, 0),
            },
        ))
        .unwrap();
        run(ctx, &d);
        let got: Vec<f32> = read(ctx, &out, want.len());
        assert_close(
            &format!("{what} {pass:?} flags {flags}"),
            &got,
            &want,
            CONV_ABS,
            CONV_REL,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn shape(
    n: usize,
    ic: usize,
    h: usize,
    w: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
) -> ConvShape {
    ConvShape {
        n,
        ic,
        h,
        w,
        oc,
        kh,
        kw,
        stride,
        pad,
    }
}

/// The convolutions both implementations are checked on.
fn conv_shapes() -> [ConvShape; 6] {
    [
        shape(3, 2, 11, 9, 5, 3, 4, 2, 1), // odd sizes, non-square kernel, stride 2, padding
        shape(2, 3, 8, 8, 4, 3, 3, 1, 0),  // no padding
        shape(1, 1, 5, 7, 2, 5, 5, 3, 2),  // stride 3 with padding 2
        shape(2, 2, 1, 3, 3, 5, 5, 1, 2),  // kernel wider than the image: taps in the padding
        shape(2, 1, 28, 28, 6, 5, 5, 1, 2), // LeNet-5 conv1
        shape(2, 6, 14, 14, 16, 5, 5, 1, 0), // LeNet-5 conv2
    ]
}

#[test]
fn conv2d_and_gradients_match_reference() {
    let Some(ctx) = context() else { return };
    for s in conv_shapes() {
        check_conv(&ctx, s);
    }
    assert!(
        shape(1, 1, 3, 3, 1, 5, 5, 1, 0).output().is_err(),
        "a kernel larger than the input"
    );
}

fn check_pool(ctx: &Context, s: PoolShape, x: &[f32]) {
    let (oh, ow) = s.output().unwrap();
    let outs = s.n * s.c * oh * ow;
    let (want_y, want_arg) = reference::maxpool(s, x);
    let xb = ctx.storage_init("x", x).unwrap();
    let yb = ctx.storage("y", outs).unwrap();
    let ab = ctx.storage("argmax", outs).unwrap();
    let gxb = ctx.storage("grad_x", x.len()).unwrap();
    let what = format!("{s:?}");
    let fwd = pollster::block_on(pool::dispatch(
        ctx,
        true,
        s,
        0,
        pool::Buffers {
            x: (&xb, 0),
            y: &yb,
            argmax: &ab,
            grad_x: &gxb,
        },
    ))
    .unwrap();
    run(ctx, &fwd);
    // Max and argmax are selections, not arithmetic: compared exactly.
    assert_eq!(read::<f32>(ctx, &yb, outs), want_y, "{what}: max");
    let arg: Vec<u32> = read(ctx, &ab, outs);
    assert_eq!(arg, want_arg, "{what}: argmax");

    let gy = random(outs, 9, 1.0);
    let gyb = ctx.storage_init("grad_y", &gy).unwrap();
    for mask in [false, true] {
        let bwd = pollster::block_on(pool::dispatch(
            ctx,
            false,
            s,
            if mask { pool::FLAG_MASK } else { 0 },
            pool::Buffers {
                x: (&xb, 0),
                y: &gyb,
                argmax: &ab,
                grad_x: &gxb,
            },
        ))
        .unwrap();
        run(ctx, &bwd);
        let want = reference::maxpool_backward(s, x, &arg, &gy, mask);
        // Each input gets at most a few grad_y values, summed in the same window order: a
        // difference can only come from that order (overlapping windows), within an ulp.
        assert_close32(
            &format!("{what} backward mask={mask}"),
            &read(ctx, &gxb, x.len()),
            &want,
            1e-7,
            1e-6,
        );
    }
}

#[test]
fn maxpool_matches_reference_with_ties_and_odd_sizes() {
    let Some(ctx) = context() else { return };
    let shape = |n, c, h, w, k, stride| PoolShape {
        n,
        c,
        h,
        w,
        k,
        stride,
    };
    // Odd height and width: the trailing row and column are dropped (floor mode).
    let s = shape(2, 3, 7, 9, 2, 2);
    check_pool(&ctx, s, &random(2 * 3 * 7 * 9, 4, 1.0));
    // Ties: values on a coarse grid repeat inside windows; the first maximum must win.
    let s = shape(2, 2, 8, 6, 2, 2);
    let coarse: Vec<f32> = random(2 * 2 * 8 * 6, 5, 1.0)
        .iter()
        .map(|v| (v * 2.0).round())
        .collect();
    check_pool(&ctx, s, &coarse);
    let flat = vec![0.5f32; 2 * 2 * 8 * 6];
    check_pool(&ctx, s, &flat);
    let (_, arg) = reference::maxpool(s, &flat);
    assert_eq!(
        &arg[..3],
        &[0, 2, 4],
        "a constant window's argmax is its first element"
    );
    // Ties where the 2x2 windows run in pairs over vec4 rows (w a multiple of 4).
    let s = shape(2, 2, 6, 8, 2, 2);
    check_pool(&ctx, s, &coarse[..2 * 2 * 6 * 8]);
    check_pool(&ctx, s, &flat[..2 * 2 * 6 * 8]);
    // Overlapping windows (k 3, stride 2) and the LeNet-5 shape.
    check_pool(&ctx, shape(1, 2, 9, 8, 3, 2), &coarse[..2 * 9 * 8]);
    check_pool(
        &ctx,
        shape(3, 6, 28, 28, 2, 2),
        &random(3 * 6 * 28 * 28, 6, 1.0),
    );
    assert!(
        shape(1, 1, 1, 4, 2, 2).output().is_err(),
        "a window taller than the input"
    );
}

#[test]
fn mse_matches_reference() {
    let Some(ctx) = context() else { return };
    let (rows, cols, off) = (37, 50, 3); // 1850 elements: each invocation takes several
    let pred = random(off + rows * cols, 7, 1.0);
    let target = random(rows * cols, 8, 1.0);
    let pb = ctx.storage_init("pred", &pred).unwrap();
    let tb = ctx.storage_init("target", &target).unwrap();
    let gb = ctx.storage("grad", rows * cols).unwrap();
    let sb = ctx
        .storage_init("stats", &[0.0f32; loss::STATS_LEN])
        .unwrap();
    let d = pollster::block_on(loss::mse_dispatch(
        &ctx,
        rows,
        cols,
        off,
        true,
        loss::MseBuffers {
            pred: &pb,
            target: &tb,
            grad: &gb,
            stats: &sb,
        },
    ))
    .unwrap();
    run(&ctx, &d);
    let (want_loss, want_grad) = reference::mse(&pred[off..], &target);
    let stats: Vec<f32> = read(&ctx, &sb, loss::STATS_LEN);
    // A mean of 1850 squares of values in [-2, 2], summed in f32 in a fixed tree: ~1e-6 relative.
    assert_close("mse loss", &stats[..1], &[want_loss], 1e-6, 1e-5);
    assert_close(
        "mse running sum",
        &stats[1..2],
        &[want_loss * rows as f64],
        1e-5,
        1e-5,
    );
    assert_eq!(stats[3], rows as f32);
    // Each gradient element is one scaled difference: within an ulp or two.
    assert_close(
        "mse grad",
        &read(&ctx, &gb, rows * cols),
        &want_grad,
        1e-9,
        1e-6,
    );
}

/// The convolution as matrix products (src/kernels/conv_gemm.rs) on the same shapes, by each
/// buffer matmul variant: forward with and without ReLU, the three gradients, the mask.
fn check_conv_gemm(ctx: &Context, variant: Variant, s: ConvShape) {
    let (oh, ow) = s.output().unwrap();
    let w_off = 3;
    let x = random(s.n * s.ic * s.h * s.w, 1, 1.0);
    let wlen = s.oc * s.ic * s.kh * s.kw;
    let params = random(w_off + wlen + s.oc, 2, 1.0);
    let b_off = w_off + wlen;
    let gy = random(s.n * s.oc * oh * ow, 3, 1.0);
    let xb = ctx.storage_init("x", &x).unwrap();
    let pb = ctx.storage_init("params", &params).unwrap();
    let gyb = ctx.storage_init("grad_y", &gy).unwrap();
    let col = ctx.storage("col", conv_gemm::col_len(s)).unwrap();
    let what = format!("{variant:?} {s:?}");
    let ws = &params[w_off..b_off];
    let (gx, gw, _) = reference::conv2d_grads(s, &x, ws, &gy);

    let run_all = |d: &[Dispatch]| {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        wgrad::kernels::record_all(&mut encoder, d);
        ctx.queue.submit([encoder.finish()]);
    };
    for relu in [false, true] {
        let want = reference::conv2d(s, &x, ws, Some(&params[b_off..]), relu);
        let y = ctx.storage("y", want.len()).unwrap();
        let d = pollster::block_on(conv_gemm::forward(
            ctx,
            variant,
            s,
            &xb,
            &pb,
            (w_off, b_off),
            relu,
            &y,
            &col,
        ))
        .unwrap();
        run_all(&d);
        let got: Vec<f32> = read(ctx, &y, want.len());
        let name = format!("{what} gemm forward relu={relu}");
        assert_close(&name, &got, &want, CONV_ABS, CONV_REL);
    }

    // grad_weight reads the col the forward above left, at offset w_off of a larger buffer.
    let grads = ctx.storage("grads", w_off + wlen + 5).unwrap();
    let d = pollster::block_on(conv_gemm::grad_weight(
        ctx, variant, s, &gyb, &col, &grads, w_off,
    ))
    .unwrap();
    run_all(&d);
    let got: Vec<f32> = read(ctx, &grads, w_off + wlen);
    let name = format!("{what} gemm grad_weight");
    assert_close(&name, &got[w_off..], &gw, CONV_ABS, CONV_REL);

    for masked in [false, true] {
        let dx = ctx.storage("dx", x.len()).unwrap();
        let mask = masked.then_some(&xb);
        let d = pollster::block_on(conv_gemm::grad_input(
            ctx, variant, s, &gyb, &pb, w_off, mask, &dx,
        ))
        .unwrap();
        run_all(&d);
        let got: Vec<f32> = read(ctx, &dx, x.len());
        let want: Vec<f64> = gx
            .iter()
            .zip(&x)
            .map(|(&g, &v)| if masked && v <= 0.0 { 0.0 } else { g })
            .collect();
        let name = format!("{what} gemm grad_input masked={masked}");
        assert_close(&name, &got, &want, CONV_ABS, CONV_REL);
    }
}

/// The two forms of im2col (one invocation per texel, or per row) write the same col, bit for
/// bit; the forward checks above cover the form this adapter uses.
#[test]
fn im2col_forms_agree() {
    let Some(ctx) = context() else { return };
    for s in conv_shapes() {
        let x = random(s.n * s.ic * s.h * s.w, 1, 1.0);
        let xb = ctx.storage_init("x", &x).unwrap();
        let len = conv_gemm::col_len(s);
        let cols: Vec<Vec<f32>> = [false, true]
            .into_iter()
            .map(|per_row| {
                let col = ctx.storage("col", len).unwrap();
                let d = pollster::block_on(conv_gemm::im2col(&ctx, s, &xb, &col, per_row));
                run(&ctx, &d.unwrap());
                read(&ctx, &col, len)
            })
            .collect();
        let differ = cols[0]
            .iter()
            .zip(&cols[1])
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(differ, None, "{s:?}: im2col forms differ at {differ:?}");
    }
}

#[test]
fn conv2d_as_matrix_products_matches_reference() {
    let Some(ctx) = context() else { return };
    for variant in [Variant::Block8, Variant::Block8Sg] {
        for s in conv_shapes() {
            check_conv_gemm(&ctx, variant, s);
        }
    }
}

/// The strips of conv_strip.wgsl (forward with and without ReLU, weight and bias gradients) on
/// the shapes they take: LeNet-5's first convolution; several input channels with padding and
/// a non-square kernel; a batch whose last strips fill only part of a subgroup; LeNet-5's
/// second (two groups of 8 filters, rows of 10, so the last strip of each row is partial); and
/// 12 filters, so that the second group is partly empty, with odd sizes.
#[test]
fn conv_strips_match_reference() {
    let Some(ctx) = context() else { return };
    let shapes = [
        shape(2, 1, 28, 28, 6, 5, 5, 1, 2),
        shape(3, 2, 9, 8, 5, 4, 3, 1, 1),
        shape(1, 3, 6, 4, 8, 2, 1, 1, 0),
        shape(2, 6, 14, 14, 16, 5, 5, 1, 0),
        shape(2, 3, 7, 9, 12, 3, 5, 1, 2),
    ];
    for s in shapes {
        assert!(
            conv_strip::fits(&ctx, s) || std::env::var("CI").is_err(),
            "{s:?}"
        );
        if !conv_strip::fits(&ctx, s) {
            eprintln!("skipping strips for {s:?}: not supported here");
            continue;
        }
        let (oh, ow) = s.output().unwrap();
        let (w_off, wlen) = (5, s.oc * s.ic * s.kh * s.kw);
        let b_off = w_off + wlen + 3;
        let x = random(s.n * s.ic * s.h * s.w, 1, 1.0);
        let params = random(b_off + s.oc + 2, 2, 1.0);
        let gy = random(s.n * s.oc * oh * ow, 3, 1.0);
        let (ws, bs) = (&params[w_off..w_off + wlen], &params[b_off..b_off + s.oc]);
        let xb = ctx.storage_init("x", &x).unwrap();
        let pb = ctx.storage_init("params", &params).unwrap();
        let gyb = ctx.storage_init("grad_y", &gy).unwrap();
        let run_all = |d: &[Dispatch]| {
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            kernels::record_all(&mut encoder, d);
            ctx.queue.submit([encoder.finish()]);
        };
        for relu in [false, true] {
            let want = reference::conv2d(s, &x, ws, Some(bs), relu);
            // One float more than y, which must stay as it was.
            let before = random(want.len() + 1, 5, 1.0);
            let y = ctx.storage_init("y", &before).unwrap();
            let at = (w_off, b_off);
            let d = pollster::block_on(conv_strip::forward(&ctx, s, &xb, &pb, at, relu, &y));
            run_all(&d.unwrap());
            let got: Vec<f32> = read(&ctx, &y, before.len());
            let name = format!("{s:?} strips relu={relu}");
            assert_close(&name, &got[..want.len()], &want, CONV_ABS, CONV_REL);
            assert_eq!(got[want.len()], before[want.len()], "{name}: wrote past y");
        }
        // Into a larger gradient buffer: what lies outside the weight and bias stays as it was.
        let (_, gw, gb) = reference::conv2d_grads(s, &x, ws, &gy);
        let before = random(b_off + s.oc + 2, 4, 1.0);
        let grads = ctx.storage_init("grads", &before).unwrap();
        let at = (w_off, b_off);
        let d = pollster::block_on(conv_strip::grad_weight(&ctx, s, &gyb, &xb, &grads, at));
        run_all(&d.unwrap());
        let got: Vec<f32> = read(&ctx, &grads, before.len());
        let name = format!("{s:?} strips grad_weight");
        assert_close(&name, &got[w_off..w_off + wlen], &gw, CONV_ABS, CONV_REL);
        let name = format!("{s:?} strips grad_bias");
        assert_close(&name, &got[b_off..b_off + s.oc], &gb, CONV_ABS, CONV_REL);
        let untouched = |r: std::ops::Range<usize>| got[r.clone()] == before[r];
        assert!(
            untouched(0..w_off) && untouched(w_off + wlen..b_off),
            "{name}: wrote outside"
        );
        assert!(
            untouched(b_off + s.oc..before.len()),
            "{name}: wrote past the bias"
        );
    }
}

/// The input gradient as strips (conv_strip.wgsl's forward, TRANSPOSED), with and without the
/// ReLU mask, on: LeNet-5's second convolution (grad_x rows of 14, so the last strip of a row
/// is partial and stored as floats); padding with a non-square kernel and whole vec4 rows;
/// 12 filters, so that the transposed convolution reads 12 channels, with padding 2 of a 3x3
/// kernel; a kernel wider than the image, so that taps fall in the padding; 11 input channels,
/// two groups of filters in the transposed convolution, the second partly empty; and a kernel
/// wider than tall on a narrow image, whose transposed padding differs per axis (2 rows, 3
/// columns).
#[test]
fn conv_strip_input_gradients_match_reference() {
    let Some(ctx) = context() else { return };
    let shapes = [
        shape(2, 6, 14, 14, 16, 5, 5, 1, 0),
        shape(3, 2, 9, 8, 5, 4, 3, 1, 1),
        shape(1, 8, 7, 6, 12, 3, 3, 1, 2),
        shape(2, 2, 1, 3, 3, 5, 5, 1, 2),
        shape(2, 11, 6, 5, 4, 3, 2, 1, 1),
        shape(2, 3, 6, 4, 5, 3, 5, 1, 1),
    ];
    for s in shapes {
        assert!(
            conv_strip::fits_grad_input(&ctx, s) || std::env::var("CI").is_err(),
            "{s:?}"
        );
        if !conv_strip::fits_grad_input(&ctx, s) {
            eprintln!("skipping strip input gradients for {s:?}: not supported here");
            continue;
        }
        let (oh, ow) = s.output().unwrap();
        let (w_off, wlen) = (7, s.oc * s.ic * s.kh * s.kw);
        // About half the inputs are not positive, so the mask zeroes some of each strip.
        let x = random(s.n * s.ic * s.h * s.w, 1, 1.0);
        let params = random(w_off + wlen + 2, 2, 1.0);
        let gy = random(s.n * s.oc * oh * ow, 3, 1.0);
        let (gx, _, _) = reference::conv2d_grads(s, &x, &params[w_off..w_off + wlen], &gy);
        let xb = ctx.storage_init("x", &x).unwrap();
        let pb = ctx.storage_init("params", &params).unwrap();
        let gyb = ctx.storage_init("grad_y", &gy).unwrap();
        for masked in [false, true] {
            // One float more than grad_x, which must stay as it was.
            let before = random(x.len() + 1, 4, 1.0);
            let dx = ctx.storage_init("dx", &before).unwrap();
            let mask = masked.then_some(&xb);
            let d = conv_strip::grad_input(&ctx, s, &gyb, (&pb, w_off), mask, &dx);
            let d = pollster::block_on(d).unwrap();
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            kernels::record_all(&mut encoder, &d);
            ctx.queue.submit([encoder.finish()]);
            let got: Vec<f32> = read(&ctx, &dx, before.len());
            let want: Vec<f64> = gx
                .iter()
                .zip(&x)
                .map(|(&g, &v)| if masked && v <= 0.0 { 0.0 } else { g })
                .collect();
            let name = format!("{s:?} strips grad_input masked={masked}");
            assert_close(&name, &got[..x.len()], &want, CONV_ABS, CONV_REL);
            assert_eq!(got[x.len()], before[x.len()], "{name}: wrote past grad_x");
        }
    }
}
