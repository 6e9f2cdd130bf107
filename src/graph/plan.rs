//! Building a [`Plan`]: the buffers of one batch size and the dispatch lists of the forward
//! pass, the loss and the backward pass.
//!
//! Per op `l` with input `X` (the batch, or the output of op `l-1`) and output `Y_l`, the
//! backward pass computes the parameter gradients from `dY_l` and, for `l > 0`, the input
//! gradient `dY_{l-1}`. When op `l-1` ends in a ReLU, its backward (`* (Y_{l-1} > 0)`) is fused
//! into that input gradient, whichever kernel computes it:
//!   linear   forward  matmul  Y = X W^T + b (bias, ReLU fused)                 [B, out]
//!            backward matmul  dW = dY^T X;  bias_grad  db = sum_batch dY;
//!                     matmul  dX = (dY W) * mask
//!   conv     forward  conv2d.forward (bias, ReLU fused)                         [B, oc, oh, ow]
//!            backward conv2d.grad_weight, conv2d.grad_bias, conv2d.grad_input (* mask)
//!            or, as matrix products (kernels::conv_gemm, the usual choice): im2col + matmul
//!            forward, matmul grad_weight on the same im2col, matmul + col2im grad_input
//!   pool     forward  maxpool.forward (y and argmax)                            [B, c, oh, ow]
//!            backward maxpool.backward (* mask)
//! A classifier whose last op is a small linear layer ([`head::fits`]) trains that layer in the
//! fused head (`kernels::head`): its two passes replace the layer's forward, the loss and the
//! layer's backward, write the layer below its input gradient transposed (`[in, B]`, so its
//! weight gradient reads it without a packing pass) and do that layer's bias gradient too.
//! Evaluation still runs the whole forward list and the plain loss.
//! Every gradient buffer is overwritten each step, so nothing needs zeroing.

use super::Network;
use crate::error::Result;
use crate::kernels::conv::{self, Pass};
use crate::kernels::conv_gemm::{self, Method};
use crate::kernels::conv_strip;
use crate::kernels::pool;
use crate::kernels::{bias, head, loss, matmul, Dispatch};
use crate::model::{Loss, Op, OpKind};

/// The buffers and dispatch lists for one batch size.
pub struct Plan {
    pub batch: usize,
    /// `[batch, input...]` f32, written before each step.
    pub input: wgpu::Buffer,
    /// `[batch]` u32 labels (unused by a reconstruction loss).
    pub labels: wgpu::Buffer,
    /// Output of each op, `[batch, out_l...]`; the last is the network's output.
    pub acts: Vec<wgpu::Buffer>,
    /// Gradient of the loss with respect to each op's output, same shapes.
    pub grad_acts: Vec<wgpu::Buffer>,
    /// The argmax of each max-pool op (None for other ops).
    pub argmax: Vec<Option<wgpu::Buffer>>,
    /// The im2col matrix of each convolution run as matrix products, written by its forward and
    /// read by its weight gradient (None for other ops).
    pub cols: Vec<Option<wgpu::Buffer>>,
    pub forward: Vec<Dispatch>,
    /// How many of `forward` a training step runs: all of them, or all but the last layer's
    /// when `loss_train` is the fused head, which computes that layer itself.
    pub train_forward: usize,
    /// Loss with the output gradient, accumulating into the training stats; with a small
    /// linear classifier head, the fused head's first pass ([`crate::kernels::head`]: the
    /// layer's forward and the loss), whose second pass (the layer's backward) opens
    /// `backward`.
    pub loss_train: Dispatch,
    /// Loss (and accuracy) without gradient, accumulating into the evaluation stats.
    pub loss_eval: Dispatch,
    pub backward: Vec<Dispatch>,
}

impl Plan {
    /// Dispatches in one training step's forward, loss and backward (the update adds one).
    pub fn dispatches(&self) -> usize {
        self.train_forward + 1 + self.backward.len()
    }

    /// The dispatches of one training step without the update: forward, loss, backward.
    pub fn train_step(&self) -> impl Iterator<Item = &Dispatch> {
        self.forward[..self.train_forward]
            .iter()
            .chain([&self.loss_train])
            .chain(self.backward.iter())
    }
}

/// How convolution `op` runs at this batch size (None for other ops).
fn conv_method(ctx: &crate::gpu::Context, op: &Op, batch: usize) -> Option<Method> {
    matches!(op.kind, OpKind::Conv { .. }).then(|| conv_gemm::choose(ctx, op.conv_shape(batch)))
}

impl Network {
    /// Element offset of parameter `name` in the packed buffers.
    fn offset(&self, name: &str) -> usize {
        self.layout()
            .slot(name)
            .expect("internal error: layout lacks a slot of its own ops")
            .offset
    }

    pub(super) async fn build_plan_unchecked(&self, batch: usize) -> Result<Plan> {
        let ctx = &self.ctx;
        let ops = self.ops();
        let input = ctx.storage("input batch", batch * self.input_width())?;
        let labels = ctx.storage("label batch", batch)?;
        let (mut acts, mut grad_acts, mut argmax) = (Vec::new(), Vec::new(), Vec::new());
        let mut cols = Vec::new();
        for op in ops {
            cols.push(match (op.kind, conv_method(ctx, op, batch)) {
                (OpKind::Conv { .. }, Some(Method::Gemm(_))) => Some(ctx.storage(
                    &format!("{} im2col", op.name),
                    conv_gemm::col_len(op.conv_shape(batch)),
                )?),
                _ => None,
            });
            acts.push(ctx.storage(&format!("{} output", op.name), batch * op.output)?);
            grad_acts
                .push(ctx.storage(&format!("{} output gradient", op.name), batch * op.output)?);
            argmax.push(match op.kind {
                OpKind::Pool { .. } => {
                    Some(ctx.storage(&format!("{} argmax", op.name), batch * op.output)?)
                }
                _ => None,
            });
        }

        let last = ops.len() - 1;
        let linear_xent =
            self.spec().loss == Loss::CrossEntropy && ops[last].kind == OpKind::Linear;
        // A small linear classifier head trains in the fused head's two passes.
        let fused_head = linear_xent && head::fits(batch, ops[last].output, ops[last].input);

        let mut forward = Vec::new();
        let mut train_forward = 0;
        for (l, op) in ops.iter().enumerate() {
            let x = if l == 0 { &input } else { &acts[l - 1] };
            if l == last {
                train_forward = forward.len();
            }
            forward.extend(
                self.forward_op(op, batch, x, &acts[l], &grad_acts[l], &argmax[l], &cols[l])
                    .await?,
            );
        }
        if !fused_head {
            train_forward = forward.len();
        }

        // Otherwise a linear last layer's bias gradient comes out of the cross-entropy kernel.
        let fused_bias = linear_xent.then(|| self.offset(&format!("{}.bias", ops[last].name)));
        let mut backward = Vec::new();
        let (loss_train, loss_eval) = match self.spec().loss {
            Loss::CrossEntropy => {
                let buffers = |stats| loss::Buffers {
                    logits: &acts[last],
                    labels: &labels,
                    grad: &grad_acts[last],
                    stats,
                    bias_grad: fused_bias.map(|b| (&self.grads, b)),
                };
                let classes = self.classes();
                let train = if fused_head {
                    // The head's second pass opens the backward list.
                    let mut passes = self
                        .head_dispatch(batch, &input, &labels, &acts, &grad_acts)
                        .await?;
                    backward.extend(passes.drain(1..));
                    passes.pop().expect("the head has two passes")
                } else {
                    loss::dispatch(ctx, batch, classes, 0, true, buffers(&self.train_stats)).await?
                };
                (
                    train,
                    loss::dispatch(ctx, batch, classes, 0, false, buffers(&self.eval_stats))
                        .await?,
                )
            }
            Loss::Reconstruction => {
                let buffers = |stats| loss::MseBuffers {
                    pred: &acts[last],
                    target: &input,
                    grad: &grad_acts[last],
                    stats,
                };
                let cols = ops[last].output;
                (
                    loss::mse_dispatch(ctx, batch, cols, 0, true, buffers(&self.train_stats))
                        .await?,
                    loss::mse_dispatch(ctx, batch, cols, 0, false, buffers(&self.eval_stats))
                        .await?,
                )
            }
        };

        for (l, op) in ops.iter().enumerate().rev() {
            if fused_head && l == last {
                continue;
            }
            let x = if l == 0 { &input } else { &acts[l - 1] };
            // Where the input gradient goes, and whether op l-1's ReLU masks it.
            let below = (l > 0).then(|| (&grad_acts[l - 1], ops[l - 1].relu));
            // The fused head leaves a linear op below it dY transposed and its bias gradient
            // done; the cross-entropy kernel does the bias of a linear last layer.
            let head_below = fused_head && l + 1 == last && op.kind == OpKind::Linear;
            let bias_done = (l == last && fused_bias.is_some()) || head_below;
            self.backward_op(
                op,
                batch,
                x,
                (&grad_acts[l], head_below),
                (&argmax[l], &cols[l]),
                (below, bias_done),
                &mut backward,
            )
            .await?;
        }

        Ok(Plan {
            batch,
            input,
            labels,
            acts,
            grad_acts,
            argmax,
            cols,
            forward,
            train_forward,
            loss_train,
            loss_eval,
            backward,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward_op(
        &self,
        op: &Op,
        batch: usize,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        spare: &wgpu::Buffer,
        argmax: &Option<wgpu::Buffer>,
        col: &Option<wgpu::Buffer>,
    ) -> Result<Vec<Dispatch>> {
        let ctx = &self.ctx;
        let params = &self.params;
        // Pools have no parameters: look offsets up only for the ops that have them.
        let weight = || self.offset(&format!("{}.weight", op.name));
        let bias_at = || self.offset(&format!("{}.bias", op.name));
        match op.kind {
            OpKind::Linear => {
                matmul::dispatch(
                    ctx,
                    matmul::Shape {
                        m: batch,
                        n: op.output,
                        k: op.input,
                    },
                    matmul::Operand::row_major(0, op.input),
                    matmul::Operand::transposed(weight(), op.input),
                    (0, op.output),
                    matmul::Epilogue {
                        bias: Some(bias_at()),
                        relu: op.relu,
                        mask: None,
                    },
                    matmul::Buffers {
                        a: x,
                        b: params,
                        bias: params,
                        mask: params,
                        c: y,
                    },
                )
                .await
            }
            OpKind::Conv { .. } => {
                let method = conv_method(ctx, op, batch);
                let shape = op.conv_shape(batch);
                let at = (weight(), bias_at());
                if let (Some(Method::Gemm(v)), Some(col)) = (method, col) {
                    return conv_gemm::forward(ctx, v, shape, x, params, at, op.relu, y, col).await;
                }
                if method == Some(Method::Strip) {
                    return conv_strip::forward(ctx, shape, x, params, at, op.relu, y).await;
                }
                let flags = conv::FLAG_BIAS | if op.relu { conv::FLAG_RELU } else { 0 };
                let d = conv::dispatch(
                    ctx,
                    Pass::Forward,
                    op.conv_shape(batch),
                    flags,
                    conv::Buffers {
                        x: (x, 0),
                        weight: (params, weight(), bias_at()),
                        grad_y: params,
                        out: (y, 0),
                    },
                )
                .await?;
                Ok(vec![d])
            }
            OpKind::Pool { .. } => {
                let argmax = argmax
                    .as_ref()
                    .expect("internal error: a pool has an argmax");
                // The backward's grad_x binding is unused here; any other buffer will do.
                let d = pool::dispatch(
                    ctx,
                    true,
                    op.pool_shape(batch),
                    0,
                    pool::Buffers {
                        x: (x, 0),
                        y,
                        argmax,
                        grad_x: spare,
                    },
                )
                .await?;
                Ok(vec![d])
            }
        }
    }

    /// The fused head of a linear classifier ([`head`]): the last op's forward, the loss and
    /// the last op's backward, with the input gradient left as the op below wants it.
    async fn head_dispatch(
        &self,
        batch: usize,
        input: &wgpu::Buffer,
        labels: &wgpu::Buffer,
        acts: &[wgpu::Buffer],
        grad_acts: &[wgpu::Buffer],
    ) -> Result<Vec<Dispatch>> {
        let ops = self.ops();
        let last = ops.len() - 1;
        let op = &ops[last];
        let below = (last > 0).then(|| {
            let under = &ops[last - 1];
            let linear = under.kind == OpKind::Linear;
            head::Below {
                dh: &grad_acts[last - 1],
                transposed: linear,
                masked: under.relu,
                bias_off: linear.then(|| self.offset(&format!("{}.bias", under.name))),
            }
        });
        let at = (
            self.offset(&format!("{}.weight", op.name)),
            self.offset(&format!("{}.bias", op.name)),
        );
        let buffers = head::Buffers {
            h: if last == 0 { input } else { &acts[last - 1] },
            params: &self.params,
            labels,
            stats: &self.train_stats,
            grads: &self.grads,
            below,
        };
        head::dispatch(&self.ctx, batch, op.output, op.input, at, buffers).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn backward_op(
        &self,
        op: &Op,
        batch: usize,
        x: &wgpu::Buffer,
        // dY, and whether it is stored transposed ([out, batch], as the fused head leaves it).
        (dy, dy_t): (&wgpu::Buffer, bool),
        (argmax, col): (&Option<wgpu::Buffer>, &Option<wgpu::Buffer>),
        // Where the input gradient goes and whether it is masked; whether the loss kernel
        // already wrote this layer's bias gradient.
        (below, bias_done): (Option<(&wgpu::Buffer, bool)>, bool),
        out: &mut Vec<Dispatch>,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let (params, grads) = (&self.params, &self.grads);
        match op.kind {
            OpKind::Linear => {
                let weight = self.offset(&format!("{}.weight", op.name));
                // dW = dY^T X: [out, batch] x [batch, in].
                out.extend(
                    matmul::dispatch(
                        ctx,
                        matmul::Shape {
                            m: op.output,
                            n: op.input,
                            k: batch,
                        },
                        if dy_t {
                            matmul::Operand::row_major(0, batch)
                        } else {
                            matmul::Operand::transposed(0, op.output)
                        },
                        matmul::Operand::row_major(0, op.input),
                        (weight, op.input),
                        matmul::Epilogue::default(),
                        matmul::Buffers {
                            a: dy,
                            b: x,
                            bias: params,
                            mask: params,
                            c: grads,
                        },
                    )
                    .await?,
                );
                if !bias_done {
                    assert!(
                        !dy_t,
                        "internal error: a transposed dY comes with its bias done"
                    );
                    let b = self.offset(&format!("{}.bias", op.name));
                    out.push(bias::dispatch(ctx, batch, op.output, (dy, 0), (grads, b)).await?);
                }
                if let Some((dx, masked)) = below {
                    // dX = (dY W) * relu'(X): [batch, out] x [out, in].
                    out.extend(
                        matmul::dispatch(
                            ctx,
                            matmul::Shape {
                                m: batch,
                                n: op.input,
                                k: op.output,
                            },
                            if dy_t {
                                matmul::Operand::transposed(0, batch)
                            } else {
                                matmul::Operand::row_major(0, op.output)
                            },
                            matmul::Operand::row_major(weight, op.input),
                            (0, op.input),
                            matmul::Epilogue {
                                bias: None,
                                relu: false,
                                mask: masked.then_some((0, op.input)),
                            },
                            matmul::Buffers {
                                a: dy,
                                b: params,
                                bias: params,
                                mask: x,
                                c: dx,
                            },
                        )
                        .await?,
                    );
                }
            }
            OpKind::Conv { .. } => {
                assert!(
                    !dy_t,
                    "internal error: only a linear op takes a transposed dY"
                );
                let shape = op.conv_shape(batch);
                let weight = self.offset(&format!("{}.weight", op.name));
                let b = self.offset(&format!("{}.bias", op.name));
                let buffers = |to, at| conv::Buffers {
                    x: (x, 0),
                    weight: (params, weight, b),
                    grad_y: dy,
                    out: (to, at),
                };
                // Weight and bias gradients by the method; the input gradient by strips where
                // grad_input_by_strips says so, else by the products (which do not read
                // im2col), with block8-sg where the method is strips.
                let products = match (conv_method(ctx, op, batch), col) {
                    (Some(Method::Strip), _) => {
                        let at = (weight, b);
                        out.extend(conv_strip::grad_weight(ctx, shape, dy, x, grads, at).await?);
                        Some(matmul::Variant::Block8Sg)
                    }
                    (Some(Method::Gemm(v)), Some(col)) => {
                        out.extend(
                            conv_gemm::grad_weight(ctx, v, shape, dy, col, grads, weight).await?,
                        );
                        let d = conv::dispatch(ctx, Pass::GradBias, shape, 0, buffers(grads, b));
                        out.push(d.await?);
                        Some(v)
                    }
                    _ => None,
                };
                if let Some(v) = products {
                    if let Some((dx, masked)) = below {
                        let mask = masked.then_some(x);
                        out.extend(if conv_gemm::grad_input_by_strips(ctx, shape) {
                            let w = (params, weight);
                            conv_strip::grad_input(ctx, shape, dy, w, mask, dx).await?
                        } else {
                            conv_gemm::grad_input(ctx, v, shape, dy, params, weight, mask, dx)
                                .await?
                        });
                    }
                    return Ok(());
                }
                out.push(
                    conv::dispatch(ctx, Pass::GradWeight, shape, 0, buffers(grads, weight)).await?,
                );
                out.push(conv::dispatch(ctx, Pass::GradBias, shape, 0, buffers(grads, b)).await?);
                if let Some((dx, masked)) = below {
                    let flags = if masked { conv::FLAG_MASK } else { 0 };
                    out.push(
                        conv::dispatch(ctx, Pass::GradInput, shape, flags, buffers(dx, 0)).await?,
                    );
                }
            }
            OpKind::Pool { .. } => {
                if let Some((dx, masked)) = below {
                    let argmax = argmax
                        .as_ref()
                        .expect("internal error: a pool has an argmax");
                    out.push(
                        pool::dispatch(
                            ctx,
                            false,
                            op.pool_shape(batch),
                            if masked { pool::FLAG_MASK } else { 0 },
                            pool::Buffers {
                                x: (x, 0),
                                y: dy,
                                argmax,
                                grad_x: dx,
                            },
                        )
                        .await?,
                    );
                }
            }
        }
        Ok(())
    }
}
