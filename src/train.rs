//! Training: the optimizer's GPU state and update, one training step, and the epoch loop.
//!
//! A step writes its batch and the optimizer's per-step scalars, records forward, loss,
//! backward and update into one command buffer and submits it once. The loss stays on the GPU
//! unless the caller asks for it. At most two steps are in flight: after submitting step k the
//! host waits for step k-1, so it prepares the next batch while the GPU works.
//!
//! The loop ([`fit`]) knows nothing of files or clocks: it reports to an [`Observer`], which
//! may time, print or write what it is told.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::graph::{Evaluation, Network, EVAL_BATCH};
use crate::kernels::{self, loss, optim as kernel, Dispatch};
use crate::optim::{Config, Schedule};

/// A network with an optimizer: the thing that takes steps.
pub struct Trainer {
    pub net: Network,
    config: Config,
    schedule: Schedule,
    /// Steps the schedule spans (the `K` of the cosine schedule).
    total_steps: u64,
    /// Optimizer steps done so far.
    step: u64,
    uniform: wgpu::Buffer,
    update: Dispatch,
    /// The optimizer state, `[state1, state2]`, each the size of the packed parameters when the
    /// rule uses it and a 4-element placeholder otherwise.
    state: [wgpu::Buffer; 2],
    row_stride: u32,
    in_flight: Option<wgpu::SubmissionIndex>,
}

impl Trainer {
    /// Attaches an optimizer to `net`. `total_steps` is the run's length, used by the cosine
    /// schedule (any value for the others).
    pub async fn new(
        net: Network,
        config: Config,
        schedule: Schedule,
        total_steps: u64,
    ) -> Result<Self> {
        config.validate()?;
        schedule.validate()?;
        let ctx = net.ctx.clone();
        let len = net.layout().len;
        let used = config.kind.state_buffers(&config);
        let state_len = |i| if i < used { len } else { 4 };
        let scope = ctx.scope();
        let state = [
            ctx.storage("optimizer state 1", state_len(0))?,
            ctx.storage("optimizer state 2", state_len(1))?,
        ];
        let (_, row_stride) = kernel::grid(&ctx, len);
        let uniform = ctx.uniform("optimizer params", &kernel::Params::default());
        let update = kernel::dispatch(
            &ctx,
            config.rule(),
            len,
            kernel::Buffers {
                uniform: uniform.clone(),
                param: &net.params,
                grad: &net.grads,
                state1: &state[0],
                state2: &state[1],
            },
        )
        .await;
        scope.finish("allocating the optimizer state").await?;
        Ok(Trainer {
            net,
            config,
            schedule,
            total_steps,
            step: 0,
            uniform,
            update: update?,
            state,
            row_stride,
            in_flight: None,
        })
    }

    /// The optimizer settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Optimizer steps taken.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The learning rate that step `k` (from 0) uses.
    pub fn lr_at(&self, k: u64) -> f64 {
        self.schedule.lr(self.config.lr, k, self.total_steps)
    }

    /// Dispatches in one training step of batch size `batch` (forward, loss, backward, update).
    pub async fn dispatches_per_step(&mut self, batch: usize) -> Result<usize> {
        self.net.ensure_plan(batch).await?;
        Ok(self.net.plan(batch).dispatches() + 1)
    }

    /// The dispatches of one training step of `rows` rows, in order (forward, loss, backward,
    /// update), for profiling. The plan for `rows` must exist ([`Network::ensure_plan`]).
    pub fn step_dispatches(&self, rows: usize) -> Vec<&Dispatch> {
        let plan = self.net.plan(rows);
        plan.forward
            .iter()
            .chain([&plan.loss_train])
            .chain(plan.backward.iter())
            .chain([&self.update])
            .collect()
    }

    /// Uploads a batch and this step's optimizer scalars without running anything: what
    /// [`Trainer::step`] does before it records the step. For profiling, which records the same
    /// dispatches itself.
    pub async fn prepare_step(&mut self, x: &[f32], labels: &[u32]) -> Result<()> {
        let rows = labels.len();
        self.net.ensure_plan(rows).await?;
        self.net.upload(rows, x, labels)?;
        let lr = self.lr_at(self.step);
        let params =
            self.config
                .step_params(self.step + 1, lr, self.net.layout().len, self.row_stride);
        self.net.ctx.write(&self.uniform, 0, &[params]);
        Ok(())
    }

    /// One training step on `x` (`[rows, input]`) and `labels` (`[rows]`).
    ///
    /// Returns the batch loss of this step's forward pass (before the update) when `want_loss`,
    /// which costs a round trip to the GPU; otherwise returns `None` without waiting for it.
    pub async fn step(
        &mut self,
        x: &[f32],
        labels: &[u32],
        want_loss: bool,
    ) -> Result<Option<f32>> {
        let rows = labels.len();
        self.net.ensure_plan(rows).await?;
        self.net.upload(rows, x, labels)?;
        let ctx = &self.net.ctx;

        let lr = self.lr_at(self.step);
        let params =
            self.config
                .step_params(self.step + 1, lr, self.net.layout().len, self.row_stride);
        ctx.write(&self.uniform, 0, &[params]);

        let plan = self.net.plan(rows);
        let stats = &self.net.train_stats;
        let (index, staging) = ctx
            .submit("running a training step", |encoder| {
                kernels::record_all(
                    encoder,
                    plan.forward
                        .iter()
                        .chain([&plan.loss_train])
                        .chain(plan.backward.iter())
                        .chain([&self.update]),
                );
                want_loss.then(|| ctx.copy_to_staging(encoder, stats, 0, 4))
            })
            .await?;
        self.step += 1;

        // Keep at most two steps queued: wait for the previous one.
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(prev) = self.in_flight.replace(index) {
            ctx.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(prev),
                    timeout: None,
                })
                .map_err(|e| Error::gpu("waiting for a training step", e.to_string()))?;
        }
        match staging {
            Some(s) => Ok(Some(ctx.map_staging::<f32>(&s, 4).await?[0])),
            None => Ok(None),
        }
    }

    /// Zeroes the running training loss (call at the start of an epoch).
    pub fn reset_train_loss(&self) {
        self.net
            .ctx
            .write(&self.net.train_stats, 0, &[0.0f32; loss::STATS_LEN]);
    }

    /// Mean training loss and accuracy over the steps since [`Trainer::reset_train_loss`],
    /// weighted by rows (the mean over every training row seen).
    pub async fn train_loss(&self) -> Result<(f64, f64)> {
        let s: Vec<f32> = self
            .net
            .ctx
            .read(&self.net.train_stats, 0, loss::STATS_LEN)
            .await?;
        let rows = (s[3] as f64).max(1.0);
        Ok((s[1] as f64 / rows, s[2] as f64 / rows))
    }

    /// The optimizer state buffers as host vectors (empty for those the rule does not use).
    pub async fn read_state(&self) -> Result<[Vec<f32>; 2]> {
        let len = self.net.layout().len;
        let used = self.config.kind.state_buffers(&self.config);
        let mut out = [Vec::new(), Vec::new()];
        for (i, o) in out.iter_mut().enumerate().take(used) {
            *o = self.net.ctx.read(&self.state[i], 0, len).await?;
        }
        Ok(out)
    }
}

/// Options of the epoch loop.
#[derive(Clone, Debug)]
pub struct FitOptions {
    pub epochs: usize,
    /// Stop after this many steps in all (`None`: run every epoch).
    pub max_steps: Option<u64>,
    pub batch_size: usize,
    /// Shuffle the training rows each epoch; without it, step k takes rows (k-1)B .. kB-1.
    pub shuffle: bool,
    pub seed: u64,
    /// Report the batch loss every this many steps (0: never).
    pub log_every: u64,
    /// Rows per evaluation batch.
    pub eval_batch: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            max_steps: None,
            batch_size: 64,
            shuffle: true,
            seed: 0,
            log_every: 0,
            eval_batch: EVAL_BATCH,
        }
    }
}

impl FitOptions {
    /// Steps per epoch for `rows` training rows (the last short batch counts as one).
    pub fn steps_per_epoch(&self, rows: usize) -> u64 {
        rows.div_ceil(self.batch_size.max(1)) as u64
    }

    /// Steps of the whole run: every epoch, capped by `max_steps`.
    pub fn total_steps(&self, rows: usize) -> u64 {
        let all = self.steps_per_epoch(rows) * self.epochs as u64;
        self.max_steps.map_or(all, |m| m.min(all))
    }
}

/// One logged step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Step number, from 1.
    pub step: u64,
    /// Batch loss of this step's forward pass, before its update.
    pub loss: f32,
    /// Learning rate this step used.
    pub lr: f64,
}

/// One finished epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's rows, each counted at the step that used it.
    pub train_loss: f64,
    pub test: Evaluation,
    /// Steps and rows trained in this epoch.
    pub steps: u64,
    pub samples: usize,
}

/// What the loop tells whoever watches it. Every method has an empty default.
pub trait Observer {
    /// An epoch (from 1) is about to start.
    fn epoch_start(&mut self, _epoch: usize, _steps: u64) {}
    /// A logged step finished.
    fn step(&mut self, _report: &StepReport) {}
    /// An epoch's training finished (its evaluation comes next).
    fn epoch_trained(&mut self, _epoch: usize) {}
    /// An epoch finished, with its evaluation.
    fn epoch_end(&mut self, _report: &EpochReport) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// The end of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct FitSummary {
    pub steps: u64,
    pub epochs: Vec<EpochReport>,
    pub test: Evaluation,
}

/// The row order of `epoch` (from 1): shuffled from `(seed, epoch)` alone, so that any epoch's
/// order can be rebuilt without replaying the ones before.
pub fn epoch_order(rows: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    if shuffle {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Stream 0 draws the initial weights; each epoch has a stream of its own.
        rng.set_stream(epoch as u64);
        order.shuffle(&mut rng);
    }
    order
}

/// Copies the rows `order[..]` of `data` into `x` and `labels`.
pub fn gather(data: &Dataset, order: &[usize], x: &mut Vec<f32>, labels: &mut Vec<u32>) {
    x.clear();
    labels.clear();
    for &i in order {
        x.extend_from_slice(data.row(i));
        labels.push(data.labels[i]);
    }
}

/// Trains for `options.epochs` epochs (or `max_steps` steps), evaluating on `test` after each
/// epoch, and returns every epoch's figures and the final evaluation.
pub async fn fit(
    trainer: &mut Trainer,
    train: &Dataset,
    test: &Dataset,
    options: &FitOptions,
    observer: &mut dyn Observer,
) -> Result<FitSummary> {
    if train.is_empty() {
        return Err(Error::Shape("training data set is empty".into()));
    }
    if options.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    let total = options.total_steps(train.len());
    let mut epochs = Vec::new();
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    let mut epoch = 0;
    while trainer.steps_done() < total && epoch < options.epochs {
        epoch += 1;
        let order = epoch_order(train.len(), options.seed, epoch, options.shuffle);
        let steps_here = options
            .steps_per_epoch(train.len())
            .min(total - trainer.steps_done());
        observer.epoch_start(epoch, steps_here);
        trainer.reset_train_loss();
        let mut samples = 0;
        for chunk in order.chunks(options.batch_size).take(steps_here as usize) {
            gather(train, chunk, &mut x, &mut labels);
            let k = trainer.steps_done() + 1;
            let log = options.log_every > 0 && k % options.log_every == 0;
            let lr = trainer.lr_at(k - 1);
            if let Some(loss) = trainer.step(&x, &labels, log).await? {
                observer.step(&StepReport { step: k, loss, lr });
            }
            samples += chunk.len();
        }
        let (train_loss, _) = trainer.train_loss().await?;
        observer.epoch_trained(epoch);
        let eval = trainer.net.evaluate(test, options.eval_batch).await?;
        let report = EpochReport {
            epoch,
            train_loss,
            test: eval,
            steps: steps_here,
            samples,
        };
        observer.epoch_end(&report);
        epochs.push(report);
    }
    let test = match epochs.last() {
        Some(e) => e.test,
        None => trainer.net.evaluate(test, options.eval_batch).await?,
    };
    Ok(FitSummary {
        steps: trainer.steps_done(),
        epochs,
        test,
    })
}
