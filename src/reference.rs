//! Plain, slow CPU references for every kernel and for a whole MLP training step.
//!
//! Tests and benches compare the GPU against these. They are written for clarity, in the
//! obvious loop order, with f64 accumulation where a sum is involved, so that they are the
//! "exact" side of every comparison.

use crate::kernels::conv::ConvShape;
use crate::kernels::matmul::{Epilogue, Operand, Shape};
use crate::kernels::optim::{
    Params as OptimParams, Rule, FLAG_EPS_INSIDE, FLAG_FIRST, FLAG_MOMENTUM, FLAG_NESTEROV,
};
use crate::kernels::pool::PoolShape;
use crate::model::{Loss, Op, OpKind, ParamLayout};

/// `C = epilogue(A B)` over the same strided operands as `shaders/matmul.wgsl`, writing row-major
/// C rows of stride `c.1` from offset `c.0`. Sums in f64.
pub fn matmul(
    shape: Shape,
    (a, a_op): (&[f32], Operand),
    (b, b_op): (&[f32], Operand),
    (c, c_off, c_rs): (&mut [f32], usize, usize),
    epilogue: Epilogue,
    (bias, mask): (&[f32], &[f32]),
) {
    for i in 0..shape.m {
        for j in 0..shape.n {
            let mut s = 0.0f64;
            for k in 0..shape.k {
                s += a[a_op.at(i, k)] as f64 * b[b_op.at(k, j)] as f64;
            }
            let mut v = s as f32;
            if let Some(off) = epilogue.bias {
                v += bias[off + j];
            }
            if epilogue.relu {
                v = v.max(0.0);
            }
            if let Some((off, rs)) = epilogue.mask {
                if mask[off + i * rs + j] <= 0.0 {
                    v = 0.0;
                }
            }
            c[c_off + i * c_rs + j] = v;
        }
    }
}

/// Column sums of a row-major `[rows, cols]` matrix.
pub fn column_sums(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .map(|j| (0..rows).map(|i| x[i * cols + j] as f64).sum::<f64>() as f32)
        .collect()
}

/// Softmax cross-entropy of row-major `[rows, classes]` logits in f64: returns the mean loss,
/// the logits gradient `(softmax - onehot) / rows`, and the number of rows whose first maximal
/// logit is the label.
pub fn softmax_xent(logits: &[f64], labels: &[u32], classes: usize) -> (f64, Vec<f64>, usize) {
    let rows = labels.len();
    let mut loss = 0.0;
    let mut grad = vec![0.0; rows * classes];
    let mut hits = 0;
    for (i, &y) in labels.iter().enumerate() {
        let row = &logits[i * classes..(i + 1) * classes];
        let (mut arg, mut mx) = (0, row[0]);
        for (j, &v) in row.iter().enumerate() {
            if v > mx {
                (arg, mx) = (j, v);
            }
        }
        let sum: f64 = row.iter().map(|v| (v - mx).exp()).sum();
        loss += mx + sum.ln() - row[y as usize];
        hits += usize::from(arg == y as usize);
        for j in 0..classes {
            let soft = (row[j] - mx).exp() / sum;
            let onehot = if j == y as usize { 1.0 } else { 0.0 };
            grad[i * classes + j] = (soft - onehot) / rows as f64;
        }
    }
    (loss / rows as f64, grad, hits)
}

/// One optimizer update on the CPU, element by element, with the kernel's parameters: the
/// formulas of `shaders/optim.wgsl` (PyTorch's), in f32 as the GPU computes them.
pub fn optim_step(
    rule: Rule,
    p: &OptimParams,
    param: &mut [f32],
    grad: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
) {
    let flag = |f| p.flags & f != 0;
    for i in 0..param.len() {
        let w = param[i];
        match rule {
            Rule::Sgd => {
                let mut g = grad[i] + p.weight_decay * w;
                if flag(FLAG_MOMENTUM) {
                    let b = if flag(FLAG_FIRST) {
                        g
                    } else {
                        p.momentum * s1[i] + p.one_minus_dampening * g
                    };
                    s1[i] = b;
                    g = if flag(FLAG_NESTEROV) {
                        g + p.momentum * b
                    } else {
                        b
                    };
                }
                param[i] = w + (-p.lr) * g;
            }
            Rule::Adagrad => {
                let g = grad[i] + p.weight_decay * w;
                s1[i] += g * g;
                param[i] = w + (-p.clr) * g / (s1[i].sqrt() + p.eps);
            }
            Rule::Adam => {
                let decayed = w * p.decay;
                let g = grad[i] + p.weight_decay * w;
                let weight = p.one_minus_beta1;
                s1[i] = if weight < 0.5 {
                    s1[i] + weight * (g - s1[i])
                } else {
                    g - (g - s1[i]) * (1.0 - weight)
                };
                s2[i] = p.beta2 * s2[i] + p.one_minus_beta2 * g * g;
                let denom = if flag(FLAG_EPS_INSIDE) {
                    (s2[i] / p.bc2 + p.eps).sqrt()
                } else {
                    s2[i].sqrt() / p.bc2_sqrt + p.eps
                };
                param[i] = decayed + (-p.step_size) * s1[i] / denom;
            }
        }
    }
}

/// Loss and packed parameter gradients of a network on one batch, all in f64: the reference
/// for the GPU's forward and backward plans. `x` is `[rows, input]`; `labels` are used by the
/// cross-entropy loss, the input itself by the reconstruction loss.
pub fn network_gradients(
    ops: &[Op],
    loss: Loss,
    layout: &ParamLayout,
    params: &[f32],
    x: &[f32],
    labels: &[u32],
) -> (f64, Vec<f64>) {
    let rows = labels.len();
    let tensor = |name: String| -> (usize, Vec<f64>) {
        let s = layout.slot(&name).expect("slot of the model's own op");
        let v = params[s.offset..s.offset + s.len]
            .iter()
            .map(|&v| v as f64)
            .collect();
        (s.offset, v)
    };
    let relu = |v: Vec<f64>, on: bool| -> Vec<f64> {
        if on {
            v.into_iter().map(|a| a.max(0.0)).collect()
        } else {
            v
        }
    };

    // Forward, keeping every op's output (and each pool's argmax).
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut outs: Vec<Vec<f64>> = vec![x64.clone()];
    let mut argmaxes: Vec<Vec<u32>> = vec![Vec::new(); ops.len()];
    for (l, op) in ops.iter().enumerate() {
        let xin = outs.last().expect("input is there");
        let y = match op.kind {
            OpKind::Linear => {
                let (_, wt) = tensor(format!("{}.weight", op.name));
                let (_, b) = tensor(format!("{}.bias", op.name));
                let mut y = vec![0.0; rows * op.output];
                for i in 0..rows {
                    for o in 0..op.output {
                        let mut s = b[o];
                        for k in 0..op.input {
                            s += xin[i * op.input + k] * wt[o * op.input + k];
                        }
                        y[i * op.output + o] = s;
                    }
                }
                y
            }
            OpKind::Conv { .. } => {
                let (_, wt) = tensor(format!("{}.weight", op.name));
                let (_, b) = tensor(format!("{}.bias", op.name));
                conv2d(op.conv_shape(rows), xin, &wt, Some(&b), false)
            }
            OpKind::Pool { .. } => {
                let (y, arg) = maxpool(op.pool_shape(rows), xin);
                argmaxes[l] = arg;
                y
            }
        };
        outs.push(relu(y, op.relu));
    }

    let out = outs.last().expect("output");
    let (value, mut dy) = match loss {
        Loss::CrossEntropy => {
            let classes = ops.last().map(|o| o.output).unwrap_or(0);
            let (l, g, _) = softmax_xent(out, labels, classes);
            (l, g)
        }
        Loss::Reconstruction => {
            let n = out.len() as f64;
            let d: Vec<f64> = out.iter().zip(&x64).map(|(p, t)| p - t).collect();
            (
                d.iter().map(|v| v * v).sum::<f64>() / n,
                d.iter().map(|v| 2.0 * v / n).collect(),
            )
        }
    };

    // Backward, last op first. dy is the gradient of op l's output (after its ReLU).
    let mut grads = vec![0.0; layout.len];
    for (l, op) in ops.iter().enumerate().rev() {
        let xin = &outs[l];
        // Through this op's own ReLU: zero where its output is not positive.
        if op.relu {
            for (g, &y) in dy.iter_mut().zip(&outs[l + 1]) {
                if y <= 0.0 {
                    *g = 0.0;
                }
            }
        }
        let dx = match op.kind {
            OpKind::Linear => {
                let (wo, wt) = tensor(format!("{}.weight", op.name));
                let (bo, _) = tensor(format!("{}.bias", op.name));
                for o in 0..op.output {
                    for k in 0..op.input {
                        grads[wo + o * op.input + k] = (0..rows)
                            .map(|i| dy[i * op.output + o] * xin[i * op.input + k])
                            .sum();
                    }
                    grads[bo + o] = (0..rows).map(|i| dy[i * op.output + o]).sum();
                }
                let mut dx = vec![0.0; rows * op.input];
                for i in 0..rows {
                    for k in 0..op.input {
                        dx[i * op.input + k] = (0..op.output)
                            .map(|o| dy[i * op.output + o] * wt[o * op.input + k])
                            .sum();
                    }
                }
                dx
            }
            OpKind::Conv { .. } => {
                let (wo, wt) = tensor(format!("{}.weight", op.name));
                let (bo, _) = tensor(format!("{}.bias", op.name));
                let (dx, gw, gb) = conv2d_grads(op.conv_shape(rows), xin, &wt, &dy);
                grads[wo..wo + gw.len()].copy_from_slice(&gw);
                grads[bo..bo + gb.len()].copy_from_slice(&gb);
                dx
            }
            OpKind::Pool { .. } => {
                maxpool_backward(op.pool_shape(rows), xin, &argmaxes[l], &dy, false)
            }
        };
        dy = dx;
    }
    (value, grads)
}

/// `y [n, oc, oh, ow]` of a convolution of `x [n, ic, h, w]` with `weight [oc, ic, kh, kw]`,
/// plus `bias [oc]` when given, then ReLU when `relu`: the plain six-deep loop, in f64.
pub fn conv2d<T: Copy + Into<f64>>(
    s: ConvShape,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<f64> {
    let (oh, ow) = s.output().expect("a valid convolution shape");
    let mut y = vec![0.0; s.n * s.oc * oh * ow];
    for b in 0..s.n {
        for o in 0..s.oc {
            for i in 0..oh {
                for j in 0..ow {
                    let mut sum = bias.map_or(0.0, |bv| bv[o].into());
                    for c in 0..s.ic {
                        for u in 0..s.kh {
                            for v in 0..s.kw {
                                if let Some((r, q)) = conv_tap(s, i, j, u, v) {
                                    let xv: f64 = x[((b * s.ic + c) * s.h + r) * s.w + q].into();
                                    let wv: f64 =
                                        weight[((o * s.ic + c) * s.kh + u) * s.kw + v].into();
                                    sum += xv * wv;
                                }
                            }
                        }
                    }
                    y[((b * s.oc + o) * oh + i) * ow + j] = if relu { sum.max(0.0) } else { sum };
                }
            }
        }
    }
    y
}

/// The input position that output `(i, j)` reads through kernel tap `(u, v)`, if inside.
fn conv_tap(s: ConvShape, i: usize, j: usize, u: usize, v: usize) -> Option<(usize, usize)> {
    let r = (i * s.stride + u).checked_sub(s.pad)?;
    let q = (j * s.stride + v).checked_sub(s.pad)?;
    (r < s.h && q < s.w).then_some((r, q))
}

/// Gradients of a convolution for upstream `grad_y [n, oc, oh, ow]`: `(grad_x, grad_weight,
/// grad_bias)`, by scattering every product of the forward loop back to its operands (the
/// transpose of [`conv2d`], written independently of the kernel's gather).
pub fn conv2d_grads<T: Copy + Into<f64>>(
    s: ConvShape,
    x: &[T],
    weight: &[T],
    grad_y: &[T],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (oh, ow) = s.output().expect("a valid convolution shape");
    let mut gx = vec![0.0; x.len()];
    let mut gw = vec![0.0; weight.len()];
    let mut gb = vec![0.0; s.oc];
    for b in 0..s.n {
        for o in 0..s.oc {
            for i in 0..oh {
                for j in 0..ow {
                    let g: f64 = grad_y[((b * s.oc + o) * oh + i) * ow + j].into();
                    gb[o] += g;
                    for c in 0..s.ic {
                        for u in 0..s.kh {
                            for v in 0..s.kw {
                                if let Some((r, q)) = conv_tap(s, i, j, u, v) {
                                    let xi = ((b * s.ic + c) * s.h + r) * s.w + q;
                                    let wi = ((o * s.ic + c) * s.kh + u) * s.kw + v;
                                    gx[xi] += g * weight[wi].into();
                                    gw[wi] += g * x[xi].into();
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (gx, gw, gb)
}

/// Max-pooling of `x [n, c, h, w]`: `(y, argmax)`, argmax as `r * w + q` within the plane,
/// ties to the first maximum in row-major window order.
pub fn maxpool<T: Copy + PartialOrd>(s: PoolShape, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let (oh, ow) = s.output().expect("a valid pooling shape");
    let mut y = Vec::with_capacity(s.n * s.c * oh * ow);
    let mut arg = Vec::with_capacity(y.capacity());
    for plane in 0..s.n * s.c {
        let xp = &x[plane * s.h * s.w..(plane + 1) * s.h * s.w];
        for i in 0..oh {
            for j in 0..ow {
                let mut best = (i * s.stride) * s.w + j * s.stride;
                for u in 0..s.k {
                    for v in 0..s.k {
                        let at = (i * s.stride + u) * s.w + j * s.stride + v;
                        if xp[at] > xp[best] {
                            best = at;
                        }
                    }
                }
                y.push(xp[best]);
                arg.push(best as u32);
            }
        }
    }
    (y, arg)
}

/// The backward of [`maxpool`]: each `grad_y` element added to its argmax input; with `mask`,
/// zeroed where `x <= 0` (the ReLU before the pool).
pub fn maxpool_backward<T: Copy + PartialOrd + Default + std::ops::AddAssign>(
    s: PoolShape,
    x: &[T],
    argmax: &[u32],
    grad_y: &[T],
    mask: bool,
) -> Vec<T> {
    let (oh, ow) = s.output().expect("a valid pooling shape");
    let zero = T::default();
    let mut gx = vec![zero; s.n * s.c * s.h * s.w];
    for plane in 0..s.n * s.c {
        for o in 0..oh * ow {
            let k = plane * oh * ow + o;
            gx[plane * s.h * s.w + argmax[k] as usize] += grad_y[k];
        }
    }
    if mask {
        for (g, &v) in gx.iter_mut().zip(x) {
            // Not positive (NaN counts as not positive, as in the kernel).
            if v.partial_cmp(&zero) != Some(std::cmp::Ordering::Greater) {
                *g = zero;
            }
        }
    }
    gx
}

/// Mean squared error of `pred` against `target` and its gradient `2 (pred - target) / numel`.
pub fn mse(pred: &[f32], target: &[f32]) -> (f64, Vec<f64>) {
    let n = pred.len() as f64;
    let diff: Vec<f64> = pred
        .iter()
        .zip(target)
        .map(|(&p, &t)| p as f64 - t as f64)
        .collect();
    let loss = diff.iter().map(|d| d * d).sum::<f64>() / n;
    (loss, diff.iter().map(|d| 2.0 * d / n).collect())
}
