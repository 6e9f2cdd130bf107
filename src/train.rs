//! Training: the optimizer's GPU state and update, one training step, and the epoch loop.
//!
//! A step writes its batch and the optimizer's per-step scalars, records forward, loss,
//! backward and update into one command buffer and submits it once. The loss stays on the GPU
//! unless the caller asks for it. At most two steps are in flight: after submitting step k the
//! host waits for step k-1, so it prepares the next batch while the GPU works.
//!
//! The loop ([`fit`], [`fit_with`]) knows nothing of files or clocks: it reports to an
//! [`Observer`], which may time, print or write what it is told. After every step the observer
//! may ask for a [`Snapshot`] (weights, optimizer state, position) and for the loop to stop; a
//! run resumed from a snapshot ends with the same weights, bit for bit, as one never stopped,
//! because every epoch's row order is rebuilt from `(seed, epoch)` alone. With a validation
//! set the loop keeps the best epoch's weights and can stop early (`patience`).

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
        plan.train_step().chain([&self.update]).collect()
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
        self.prepare_step(x, labels).await?;
        let ctx = &self.net.ctx;
        let dispatches = self.step_dispatches(rows);
        let stats = &self.net.train_stats;
        let (index, staging) = ctx
            .submit("running a training step", |encoder| {
                kernels::record_all(encoder, dispatches);
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

impl Trainer {
    /// The learning-rate schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Steps the schedule spans.
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }

    /// Everything needed to continue from here: the packed parameters, the optimizer state and
    /// the running training loss, read after every step submitted so far has finished.
    pub async fn snapshot(&self, position: Position, early: &EarlyStopping) -> Result<Snapshot> {
        let ctx = &self.net.ctx;
        let train_stats = ctx.read(&self.net.train_stats, 0, loss::STATS_LEN).await?;
        Ok(Snapshot {
            position,
            params: self.net.read_packed().await?,
            state: self.read_state().await?,
            train_stats,
            early: early.clone(),
        })
    }

    /// Puts the parameters, optimizer state, running loss and step count of `s` in place.
    /// Refuses a snapshot whose sizes do not fit this network and optimizer.
    pub fn restore(&mut self, s: &Snapshot) -> Result<()> {
        let len = self.net.layout().len;
        let used = self.config.kind.state_buffers(&self.config);
        let bad = |what: &str, got: usize, want: usize| {
            Err(Error::Shape(format!(
                "snapshot {what} holds {got} values, this network and optimizer need {want}"
            )))
        };
        if s.params.len() != len {
            return bad("parameters", s.params.len(), len);
        }
        for (i, st) in s.state.iter().enumerate() {
            let want = if i < used { len } else { 0 };
            if st.len() != want {
                return bad(&format!("optimizer state {}", i + 1), st.len(), want);
            }
        }
        if s.train_stats.len() != loss::STATS_LEN {
            return bad("training stats", s.train_stats.len(), loss::STATS_LEN);
        }
        if let Some(best) = &s.early.best_params {
            if best.len() != len {
                return bad("best parameters", best.len(), len);
            }
        }
        let ctx = &self.net.ctx;
        ctx.write(&self.net.params, 0, &s.params);
        for (i, st) in s.state.iter().enumerate().take(used) {
            ctx.write(&self.state[i], 0, st);
        }
        ctx.write(&self.net.train_stats, 0, &s.train_stats);
        self.step = s.position.step;
        Ok(())
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
    /// With a validation set: stop after this many epochs in a row without a new best
    /// validation loss, and restore the best epoch's weights at the end (`None`: never stop
    /// early, keep the last weights).
    pub patience: Option<usize>,
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
            patience: None,
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
    /// The evaluation on the validation set, when there is one.
    pub val: Option<Evaluation>,
    /// Steps and rows trained in this epoch (in this process, for an epoch resumed midway).
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
    /// A step was submitted (every step, logged or not): go on, stop, or take a snapshot.
    fn after_step(&mut self, _at: &Position) -> Control {
        Control::Continue
    }
    /// The snapshot asked for by [`Observer::after_step`]; an error ends the run.
    fn checkpoint(&mut self, _snapshot: &Snapshot) -> Result<()> {
        Ok(())
    }
}

/// What the loop does after a step, as the observer asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Hand a [`Snapshot`] to [`Observer::checkpoint`] and go on.
    Checkpoint,
    /// Hand a snapshot to [`Observer::checkpoint`], then stop.
    CheckpointAndStop,
    /// Stop at once.
    Stop,
}

/// Where the loop stands after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Steps done in all, from the start of the run.
    pub step: u64,
    /// The epoch (from 1) of the last step.
    pub epoch: usize,
    /// Steps of that epoch done, `1..=steps_in_epoch`; when equal, the epoch's training is
    /// done and its evaluation comes next.
    pub step_in_epoch: u64,
    pub steps_in_epoch: u64,
}

/// Early-stopping bookkeeping: the best validation loss so far and the weights that made it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EarlyStopping {
    /// Best validation loss and its epoch.
    pub best: Option<(f64, usize)>,
    /// Epochs in a row since the best.
    pub bad_epochs: usize,
    /// The packed parameters after the best epoch (kept when `patience` is set).
    pub best_params: Option<Vec<f32>>,
}

impl EarlyStopping {
    /// Takes epoch `epoch`'s validation loss; returns true when it is a new best (strictly
    /// lower), which resets the count of epochs without one.
    pub fn record(&mut self, epoch: usize, loss: f64) -> bool {
        if self.best.is_none_or(|(best, _)| loss < best) {
            self.best = Some((loss, epoch));
            self.bad_epochs = 0;
            true
        } else {
            self.bad_epochs += 1;
            false
        }
    }
}

/// Everything needed to continue a run exactly where it was.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub position: Position,
    /// Packed parameters, padding included.
    pub params: Vec<f32>,
    /// The optimizer state buffers, packed (empty for those the rule does not use).
    pub state: [Vec<f32>; 2],
    /// `[batch loss, loss sum, hits, rows]` of the epoch so far.
    pub train_stats: Vec<f32>,
    pub early: EarlyStopping,
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// The end of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct FitSummary {
    pub steps: u64,
    /// The epochs finished by this call (a resumed run lacks those before the resume).
    pub epochs: Vec<EpochReport>,
    /// The test evaluation of the final weights (the best epoch's, when restored).
    pub test: Evaluation,
    /// The epoch of the best validation loss, when there is a validation set.
    pub best_epoch: Option<usize>,
    /// The epoch after which early stopping ended the run.
    pub stopped_epoch: Option<usize>,
    /// True when the observer stopped the run.
    pub interrupted: bool,
}

/// The data sets of a run: training rows, optional held-out validation rows, test rows.
#[derive(Clone, Copy, Debug)]
pub struct FitData<'a> {
    pub train: &'a Dataset,
    pub val: Option<&'a Dataset>,
    pub test: &'a Dataset,
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
    let data = FitData {
        train,
        val: None,
        test,
    };
    fit_with(trainer, data, options, None, observer).await
}

/// As [`fit`], with an optional validation set (evaluated after every epoch; with
/// `options.patience`, early stopping) and an optional snapshot to resume from. `epochs` and
/// `max_steps` count the whole run, the steps before the snapshot included.
pub async fn fit_with(
    trainer: &mut Trainer,
    data: FitData<'_>,
    options: &FitOptions,
    resume: Option<&Snapshot>,
    observer: &mut dyn Observer,
) -> Result<FitSummary> {
    let train = data.train;
    if train.is_empty() {
        return Err(Error::Shape("training data set is empty".into()));
    }
    if options.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    if data.val.is_some_and(|v| v.is_empty()) {
        return Err(Error::Shape("validation data set is empty".into()));
    }
    let total = options.total_steps(train.len());
    let per_epoch = options.steps_per_epoch(train.len());
    let mut early = EarlyStopping::default();
    // The first epoch to run and the steps of it already done.
    let mut skip = 0;
    let first = match resume {
        Some(s) => {
            let p = s.position;
            let expected = (p.epoch as u64 - 1) * per_epoch + p.step_in_epoch;
            if p.epoch == 0 || p.step != expected || p.step_in_epoch > per_epoch {
                return Err(Error::Config(format!(
                    "the snapshot's position (step {}, epoch {}, step {} of the epoch) does \
                     not fit {per_epoch} steps per epoch",
                    p.step, p.epoch, p.step_in_epoch
                )));
            }
            trainer.restore(s)?;
            early = s.early.clone();
            skip = p.step_in_epoch;
            p.epoch
        }
        None => 1,
    };

    let mut summary = FitSummary {
        steps: 0,
        epochs: Vec::new(),
        test: Evaluation {
            loss: f64::NAN,
            accuracy: None,
            rows: 0,
        },
        best_epoch: None,
        stopped_epoch: None,
        interrupted: false,
    };
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    for epoch in first..=options.epochs {
        let before = (epoch as u64 - 1) * per_epoch;
        // Stop when the steps are used up, unless this epoch was trained but not evaluated.
        if before >= total && !(epoch == first && skip > 0) {
            break;
        }
        let steps_here = per_epoch.min(total.saturating_sub(before)).max(skip);
        let skip_here = if epoch == first { skip } else { 0 };
        observer.epoch_start(epoch, steps_here - skip_here);
        if skip_here == 0 {
            trainer.reset_train_loss();
        }
        let order = epoch_order(train.len(), options.seed, epoch, options.shuffle);
        let mut samples = 0;
        let chunks = order.chunks(options.batch_size).take(steps_here as usize);
        for (i, chunk) in chunks.enumerate().skip(skip_here as usize) {
            gather(train, chunk, &mut x, &mut labels);
            let k = trainer.steps_done() + 1;
            let log = options.log_every > 0 && k % options.log_every == 0;
            let lr = trainer.lr_at(k - 1);
            if let Some(loss) = trainer.step(&x, &labels, log).await? {
                observer.step(&StepReport { step: k, loss, lr });
            }
            samples += chunk.len();
            let at = Position {
                step: k,
                epoch,
                step_in_epoch: i as u64 + 1,
                steps_in_epoch: steps_here,
            };
            let control = observer.after_step(&at);
            if matches!(control, Control::Checkpoint | Control::CheckpointAndStop) {
                let snapshot = trainer.snapshot(at, &early).await?;
                observer.checkpoint(&snapshot)?;
            }
            if matches!(control, Control::Stop | Control::CheckpointAndStop) {
                summary.interrupted = true;
                break;
            }
        }
        if summary.interrupted {
            break;
        }
        let (train_loss, _) = trainer.train_loss().await?;
        observer.epoch_trained(epoch);
        let test = trainer.net.evaluate(data.test, options.eval_batch).await?;
        let val = match data.val {
            Some(v) => Some(trainer.net.evaluate(v, options.eval_batch).await?),
            None => None,
        };
        let report = EpochReport {
            epoch,
            train_loss,
            test,
            val,
            steps: steps_here - skip_here,
            samples,
        };
        observer.epoch_end(&report);
        summary.epochs.push(report);
        if let Some(v) = val {
            if early.record(epoch, v.loss) && options.patience.is_some() {
                early.best_params = Some(trainer.net.read_packed().await?);
            }
            if options.patience.is_some_and(|p| early.bad_epochs >= p) {
                summary.stopped_epoch = Some(epoch);
                break;
            }
        }
    }
    summary.steps = trainer.steps_done();
    summary.best_epoch = early.best.map(|(_, e)| e);

    // Early stopping hands back the best epoch's weights, evaluated afresh.
    let last = summary.epochs.last().map(|e| e.epoch);
    let restored = match (&early.best_params, summary.interrupted) {
        (Some(best), false) if options.patience.is_some() && summary.best_epoch != last => {
            trainer.net.ctx.write(&trainer.net.params, 0, best);
            true
        }
        _ => false,
    };
    summary.test = match summary.epochs.last() {
        Some(e) if !restored => e.test,
        _ => trainer.net.evaluate(data.test, options.eval_batch).await?,
    };
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a strictly lower loss is a new best; every other epoch counts towards patience.
    #[test]
    fn early_stopping_counts_epochs_without_a_new_best() {
        let mut e = EarlyStopping::default();
        let losses = [0.5, 0.4, 0.4, 0.45, 0.3, 0.31];
        let news: Vec<bool> = losses
            .iter()
            .enumerate()
            .map(|(i, &l)| e.record(i + 1, l))
            .collect();
        assert_eq!(news, [true, true, false, false, true, false]);
        assert_eq!((e.best, e.bad_epochs), (Some((0.3, 5)), 1));
    }

    /// Each epoch's order is a permutation drawn from (seed, epoch) alone.
    #[test]
    fn epoch_orders_depend_on_seed_and_epoch_only() {
        let a = epoch_order(100, 7, 3, true);
        assert_eq!(a, epoch_order(100, 7, 3, true));
        assert_ne!(a, epoch_order(100, 7, 4, true));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(epoch_order(5, 7, 3, false), [0, 1, 2, 3, 4]);
    }
}
