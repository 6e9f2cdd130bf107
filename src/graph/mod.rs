//! The executor: a model on the GPU, with its forward and backward plans.
//!
//! A [`Network`] owns the packed parameter and gradient buffers. For each batch size it meets it
//! builds a [`Plan`] once (see [`plan`] for the dispatches of each kind of layer): the
//! activation and gradient buffers for that batch size and the dispatch lists of the forward
//! pass, the loss, and the backward pass (the same layers in reverse). Training and evaluation
//! then only write a batch and replay the lists.

mod plan;

pub use plan::Plan;

use std::collections::HashMap;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernels::{self, loss};
use crate::model::{init_params, Loss, ModelSpec, Op, ParamLayout, Tensor};

/// Batch size used by [`Network::evaluate`] unless told otherwise.
pub const EVAL_BATCH: usize = 1000;

/// Loss and accuracy over a data set.
///
/// The GPU counts rows and hits in f32, exact up to 2^24 (16.7 million) rows per evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss over all rows: cross-entropy, or the reconstruction MSE.
    pub loss: f64,
    /// Fraction of rows whose arg-max logit is the label (None for a reconstruction loss).
    pub accuracy: Option<f64>,
    pub rows: usize,
}

/// A model resident on the GPU.
pub struct Network {
    pub(crate) ctx: Context,
    spec: ModelSpec,
    ops: Vec<Op>,
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
    pub fn ops(&self) -> &[Op] {
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
        self.spec.input_len()
    }

    /// Number of classes of a classifier (the output width; the input's for an autoencoder).
    pub fn classes(&self) -> usize {
        self.ops.last().map(|o| o.output).unwrap_or(0)
    }

    /// Values per output row.
    pub fn output_width(&self) -> usize {
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

    /// Checks a batch against the model and writes it into the plan's input buffers.
    pub(crate) fn upload(&self, batch: usize, x: &[f32], labels: &[u32]) -> Result<()> {
        let dim = self.input_width();
        if x.len() != batch * dim || labels.len() != batch {
            return Err(Error::Shape(format!(
                "batch of {} features and {} labels does not fit {batch} rows of {dim} features",
                x.len(),
                labels.len()
            )));
        }
        let classes = self.classes();
        if self.spec.loss == Loss::CrossEntropy {
            if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
                return Err(Error::Shape(format!("label {l} is outside 0..{classes}")));
            }
        }
        let plan = self.plan(batch);
        self.ctx.write(&plan.input, 0, x);
        self.ctx.write(&plan.labels, 0, labels);
        Ok(())
    }

    /// Outputs `[rows, output]` (logits, or reconstructions) for `x` `[rows, input]`, in
    /// batches of at most [`EVAL_BATCH`] rows (so that callers with varying row counts reuse at
    /// most two plans).
    pub async fn predict(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let dim = self.input_width();
        if x.is_empty() || x.len() % dim != 0 {
            return Err(Error::Shape(format!(
                "predict: {} features is not a whole number of rows of {dim}",
                x.len()
            )));
        }
        let mut logits = Vec::with_capacity(x.len() / dim * self.output_width());
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
            logits.extend(
                self.ctx
                    .read::<f32>(out, 0, rows * self.output_width())
                    .await?,
            );
        }
        Ok(logits)
    }

    /// Mean loss and accuracy over `data`, in batches of `batch` rows.
    pub async fn evaluate(&mut self, data: &Dataset, batch: usize) -> Result<Evaluation> {
        if data.dim != self.input_width() {
            return Err(Error::Shape(format!(
                "evaluation data has {} features per row, the model takes {}",
                data.dim,
                self.input_width()
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
            accuracy: (self.spec.loss == Loss::CrossEntropy).then(|| stats[2] as f64 / rows),
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
                kernels::record_all(e, plan.train_step())
            })
            .await?;
        let loss: Vec<f32> = self.ctx.read(&self.train_stats, 0, 1).await?;
        let grads = self.ctx.read(&self.grads, 0, self.layout.len).await?;
        Ok((loss[0], grads))
    }
}
