//! The executor: a model on the GPU, with its forward and backward plans.
//!
//! A [`Network`] owns the packed parameter and gradient buffers. For each batch size it meets it
//! builds a [`Plan`] once: the activation and gradient buffers for that batch size and the
//! dispatch lists of the forward pass, the loss, and the backward pass (the same layers in
//! reverse). Training and evaluation then only write a batch and replay the lists.
//!
//! Dispatches of one MLP layer `l` (`Y_l = relu?(Y_{l-1} W_l^T + b_l)`, `Y_0` the input):
//!   forward   matmul  Y_l = Y_{l-1} W_l^T, bias and ReLU fused               [B, out_l]
//!   loss      softmax_xent  dY_L (logits gradient), batch loss and counts     [B, classes]
//!   backward  matmul  dW_l = dY_l^T Y_{l-1}                                   [out_l, in_l]
//!             bias_grad  db_l = sum over the batch of dY_l                     [out_l]
//!             matmul  dY_{l-1} = (dY_l W_l) * (Y_{l-1} > 0), for l > 1       [B, in_l]
//! Every gradient buffer is overwritten each step, so nothing needs zeroing.

use std::collections::HashMap;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernels::{self, bias, loss, matmul, Dispatch};
use crate::model::{init_params, LinearOp, ModelSpec, ParamLayout, Tensor};

/// Batch size used by [`Network::evaluate`] unless told otherwise.
pub const EVAL_BATCH: usize = 1000;

/// The buffers and dispatch lists for one batch size.
pub struct Plan {
    pub batch: usize,
    /// `[batch, input]` f32, written before each step.
    pub input: wgpu::Buffer,
    /// `[batch]` u32 labels.
    pub labels: wgpu::Buffer,
    /// Output of each op, `[batch, out_l]`; the last is the logits.
    pub acts: Vec<wgpu::Buffer>,
    /// Gradient of the loss with respect to each op's output, `[batch, out_l]`.
    pub grad_acts: Vec<wgpu::Buffer>,
    pub forward: Vec<Dispatch>,
    /// Loss with the logits gradient, accumulating into the training stats.
    pub loss_train: Dispatch,
    /// Loss and accuracy without gradient, accumulating into the evaluation stats.
    pub loss_eval: Dispatch,
    pub backward: Vec<Dispatch>,
}

impl Plan {
    /// Dispatches in one training step's forward, loss and backward (the update adds one).
    pub fn dispatches(&self) -> usize {
        self.forward.len() + 1 + self.backward.len()
    }
}

/// Loss and accuracy over a data set.
///
/// The GPU counts rows and hits in f32, exact up to 2^24 (16.7 million) rows per evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy over all rows.
    pub loss: f64,
    /// Fraction of rows whose arg-max logit is the label.
    pub accuracy: f64,
    pub rows: usize,
}

/// A model resident on the GPU.
pub struct Network {
    pub(crate) ctx: Context,
    spec: ModelSpec,
    ops: Vec<LinearOp>,
    layout: ParamLayout,
    pub(crate) params: wgpu::Buffer,
    pub(crate) grads: wgpu::Buffer,
    /// `[batch loss, loss sum, hits, rows]` of training steps since the last reset.
    pub(crate) train_stats: wgpu::Buffer,
    /// The same for evaluation.
    eval_stats: wgpu::Buffer,
    plans: HashMap<usize, Plan>,
}

impl Network {
    /// Builds `spec` on the GPU with PyTorch's default initialisation drawn from `seed`.
    pub async fn new(ctx: &Context, spec: &ModelSpec, seed: u64) -> Result<Self> {
        let ops = spec.resolve()?;
        let layout = ParamLayout::new(&ops);
        let init = init_params(&layout, &ops, seed);
        let scope = ctx.scope();
        let params = ctx.storage_init("parameters", &init);
        let grads = ctx.storage("gradients", layout.len);
        scope.finish("allocating the parameters").await?;
        let (params, grads) = (params?, grads?);
        Ok(Network {
            ctx: ctx.clone(),
            spec: spec.clone(),
            ops,
            layout,
            params,
            grads,
            train_stats: ctx.storage("training stats", loss::STATS_LEN)?,
            eval_stats: ctx.storage("evaluation stats", loss::STATS_LEN)?,
            plans: HashMap::new(),
        })
    }

    /// The model description.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Resolved layers.
    pub fn ops(&self) -> &[LinearOp] {
        &self.ops
    }

    /// Where each parameter tensor sits in the packed buffers.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The GPU context the network lives on.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Input features per row.
    pub fn input_width(&self) -> usize {
        self.spec.input
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.ops.last().map(|o| o.output).unwrap_or(0)
    }

    /// The packed parameters, padding included.
    pub async fn read_packed(&self) -> Result<Vec<f32>> {
        self.ctx.read(&self.params, 0, self.layout.len).await
    }

    /// The parameters as named tensors in PyTorch `state_dict` layout.
    pub async fn state_dict(&self) -> Result<Vec<Tensor>> {
        Ok(self.layout.unpack(&self.read_packed().await?))
    }

    /// Replaces the parameters, checking every name and shape.
    pub fn load_state_dict(&mut self, tensors: &[Tensor]) -> Result<()> {
        let packed = self.layout.pack(tensors)?;
        self.ctx.write(&self.params, 0, &packed);
        Ok(())
    }

    /// Builds the plan for `batch` rows if there is none yet.
    pub async fn ensure_plan(&mut self, batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(Error::Shape(
                "a batch (training, evaluation or prediction) must have at least one row".into(),
            ));
        }
        if !self.plans.contains_key(&batch) {
            let plan = self.build_plan(batch).await?;
            self.plans.insert(batch, plan);
        }
        Ok(())
    }

    /// The plan for `batch` rows; [`Network::ensure_plan`] must have been called.
    pub(crate) fn plan(&self, batch: usize) -> &Plan {
        self.plans
            .get(&batch)
            .expect("internal error: plan used before ensure_plan")
    }

    async fn build_plan(&self, batch: usize) -> Result<Plan> {
        let ctx = &self.ctx;
        let scope = ctx.scope();
        let plan = self.build_plan_unchecked(batch).await;
        scope
            .finish(&format!("building the plan for batch size {batch}"))
            .await?;
        plan
    }

    async fn build_plan_unchecked(&self, batch: usize) -> Result<Plan> {
        let ctx = &self.ctx;
        let classes = self.classes();

        let input = ctx.storage("input batch", batch * self.spec.input)?;
        let labels = ctx.storage("label batch", batch)?;
        let mut acts = Vec::new();
        let mut grad_acts = Vec::new();
        for op in &self.ops {
            acts.push(ctx.storage(&format!("{} output", op.name), batch * op.output)?);
            grad_acts
                .push(ctx.storage(&format!("{} output gradient", op.name), batch * op.output)?);
        }

        let slot = |name: String| {
            self.layout
                .slot(&name)
                .expect("internal error: layout lacks a slot of its own ops")
                .offset
        };

        let mut forward = Vec::new();
        for (l, op) in self.ops.iter().enumerate() {
            let x = if l == 0 { &input } else { &acts[l - 1] };
            forward.push(
                matmul::dispatch(
                    ctx,
                    matmul::Shape {
                        m: batch,
                        n: op.output,
                        k: op.input,
                    },
                    matmul::Operand::row_major(0, op.input),
                    matmul::Operand::transposed(slot(format!("{}.weight", op.name)), op.input),
                    (0, op.output),
                    matmul::Epilogue {
                        bias: Some(slot(format!("{}.bias", op.name))),
                        relu: op.relu,
                        mask: None,
                    },
                    matmul::Buffers {
                        a: x,
                        b: &self.params,
                        bias: &self.params,
                        mask: &self.params,
                        c: &acts[l],
                    },
                )
                .await?,
            );
        }

        let last = self.ops.len() - 1;
        let loss_buffers = |stats| loss::Buffers {
            logits: &acts[last],
            labels: &labels,
            grad: &grad_acts[last],
            stats,
        };
        let loss_train = loss::dispatch(
            ctx,
            batch,
            classes,
            0,
            true,
            loss_buffers(&self.train_stats),
        )
        .await?;
        let loss_eval = loss::dispatch(
            ctx,
            batch,
            classes,
            0,
            false,
            loss_buffers(&self.eval_stats),
        )
        .await?;

        let mut backward = Vec::new();
        for (l, op) in self.ops.iter().enumerate().rev() {
            let x = if l == 0 { &input } else { &acts[l - 1] };
            // dW = dY^T X: [out, batch] x [batch, in].
            backward.push(
                matmul::dispatch(
                    ctx,
                    matmul::Shape {
                        m: op.output,
                        n: op.input,
                        k: batch,
                    },
                    matmul::Operand::transposed(0, op.output),
                    matmul::Operand::row_major(0, op.input),
                    (slot(format!("{}.weight", op.name)), op.input),
                    matmul::Epilogue::default(),
                    matmul::Buffers {
                        a: &grad_acts[l],
                        b: x,
                        bias: &self.params,
                        mask: &self.params,
                        c: &self.grads,
                    },
                )
                .await?,
            );
            backward.push(
                bias::dispatch(
                    ctx,
                    batch,
                    op.output,
                    (&grad_acts[l], 0),
                    (&self.grads, slot(format!("{}.bias", op.name))),
                )
                .await?,
            );
            if l > 0 {
                // dX = (dY W) * relu'(previous output): [batch, out] x [out, in].
                let prev = &self.ops[l - 1];
                backward.push(
                    matmul::dispatch(
                        ctx,
                        matmul::Shape {
                            m: batch,
                            n: op.input,
                            k: op.output,
                        },
                        matmul::Operand::row_major(0, op.output),
                        matmul::Operand::row_major(slot(format!("{}.weight", op.name)), op.input),
                        (0, op.input),
                        matmul::Epilogue {
                            bias: None,
                            relu: false,
                            mask: prev.relu.then_some((0, op.input)),
                        },
                        matmul::Buffers {
                            a: &grad_acts[l],
                            b: &self.params,
                            bias: &self.params,
                            mask: &acts[l - 1],
                            c: &grad_acts[l - 1],
                        },
                    )
                    .await?,
                );
            }
        }

        Ok(Plan {
            batch,
            input,
            labels,
            acts,
            grad_acts,
            forward,
            loss_train,
            loss_eval,
            backward,
        })
    }

    /// Checks a batch against the model and writes it into the plan's input buffers.
    pub(crate) fn upload(&self, batch: usize, x: &[f32], labels: &[u32]) -> Result<()> {
        let dim = self.spec.input;
        if x.len() != batch * dim || labels.len() != batch {
            return Err(Error::Shape(format!(
                "batch of {} features and {} labels does not fit {batch} rows of {dim} features",
                x.len(),
                labels.len()
            )));
        }
        let classes = self.classes();
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::Shape(format!("label {l} is outside 0..{classes}")));
        }
        let plan = self.plan(batch);
        self.ctx.write(&plan.input, 0, x);
        self.ctx.write(&plan.labels, 0, labels);
        Ok(())
    }

    /// Logits `[rows, classes]` for `x` `[rows, input]`, in batches of at most [`EVAL_BATCH`]
    /// rows (so that callers with varying row counts reuse at most two plans).
    pub async fn predict(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let dim = self.spec.input;
        if x.is_empty() || x.len() % dim != 0 {
            return Err(Error::Shape(format!(
                "predict: {} features is not a whole number of rows of {dim}",
                x.len()
            )));
        }
        let mut logits = Vec::with_capacity(x.len() / dim * self.classes());
        for chunk in x.chunks(EVAL_BATCH * dim) {
            let rows = chunk.len() / dim;
            self.ensure_plan(rows).await?;
            self.upload(rows, chunk, &vec![0; rows])?;
            let plan = self.plan(rows);
            self.ctx
                .submit("running a forward pass", |e| {
                    kernels::record_all(e, &plan.forward)
                })
                .await?;
            let out = plan.acts.last().expect("a model has at least one op");
            logits.extend(self.ctx.read::<f32>(out, 0, rows * self.classes()).await?);
        }
        Ok(logits)
    }

    /// Mean loss and accuracy over `data`, in batches of `batch` rows.
    pub async fn evaluate(&mut self, data: &Dataset, batch: usize) -> Result<Evaluation> {
        if data.dim != self.spec.input {
            return Err(Error::Shape(format!(
                "evaluation data has {} features per row, the model takes {}",
                data.dim, self.spec.input
            )));
        }
        if data.is_empty() {
            return Err(Error::Shape("evaluation data set is empty".into()));
        }
        self.ctx
            .write(&self.eval_stats, 0, &[0.0f32; loss::STATS_LEN]);
        let mut start = 0;
        while start < data.len() {
            let rows = batch.min(data.len() - start);
            self.ensure_plan(rows).await?;
            let x = &data.features[start * data.dim..(start + rows) * data.dim];
            self.upload(rows, x, &data.labels[start..start + rows])?;
            let plan = self.plan(rows);
            self.ctx
                .submit("evaluating", |e| {
                    kernels::record_all(e, plan.forward.iter().chain([&plan.loss_eval]))
                })
                .await?;
            start += rows;
        }
        let stats: Vec<f32> = self.ctx.read(&self.eval_stats, 0, loss::STATS_LEN).await?;
        let rows = stats[3] as f64;
        Ok(Evaluation {
            loss: stats[1] as f64 / rows,
            accuracy: stats[2] as f64 / rows,
            rows: data.len(),
        })
    }

    /// Runs forward, loss and backward on one batch and returns the batch loss and the packed
    /// gradients (for gradient checks; training uses [`crate::train::Trainer`]).
    pub async fn gradients(&mut self, x: &[f32], labels: &[u32]) -> Result<(f32, Vec<f32>)> {
        let rows = labels.len();
        self.ensure_plan(rows).await?;
        self.upload(rows, x, labels)?;
        let plan = self.plan(rows);
        self.ctx
            .submit("computing gradients", |e| {
                kernels::record_all(
                    e,
                    plan.forward
                        .iter()
                        .chain([&plan.loss_train])
                        .chain(plan.backward.iter()),
                )
            })
            .await?;
        let loss: Vec<f32> = self.ctx.read(&self.train_stats, 0, 1).await?;
        let grads = self.ctx.read(&self.grads, 0, self.layout.len).await?;
        Ok((loss[0], grads))
    }
}
