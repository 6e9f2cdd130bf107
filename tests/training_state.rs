//! Long-run safety in the library: a run stopped anywhere and resumed from its checkpoint file
//! ends bit-identical to one never stopped; early stopping stops at the epoch its rule names
//! and hands back that epoch's weights; training checkpoints that are corrupt or written for
//! another run are refused without the file being touched.

mod common;

use std::path::{Path, PathBuf};

use common::context;
use wgrad::checkpoint::{self, RunInfo};
use wgrad::data::{mnist, Dataset};
use wgrad::gpu::Context;
use wgrad::graph::Network;
use wgrad::model::ModelSpec;
use wgrad::optim::{Config, Schedule};
use wgrad::train::{
    fit_with, Control, EpochReport, FitData, FitOptions, Observer, Position, Snapshot, Trainer,
};

fn subset() -> mnist::Mnist {
    mnist::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist-subset")).unwrap()
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgrad-state-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Stops the run after step `at` with a snapshot, or records epochs when `at` is `None`.
#[derive(Default)]
struct StopAt {
    at: Option<u64>,
    snapshot: Option<Snapshot>,
    epochs: Vec<EpochReport>,
}

impl Observer for StopAt {
    fn after_step(&mut self, p: &Position) -> Control {
        if Some(p.step) == self.at {
            Control::CheckpointAndStop
        } else {
            Control::Continue
        }
    }
    fn checkpoint(&mut self, s: &Snapshot) -> wgrad::Result<()> {
        self.snapshot = Some(s.clone());
        Ok(())
    }
    fn epoch_end(&mut self, r: &EpochReport) {
        self.epochs.push(*r);
    }
}

struct Setup {
    spec: ModelSpec,
    config: Config,
    schedule: Schedule,
    options: FitOptions,
}

impl Setup {
    fn trainer(&self, ctx: &Context, rows: usize) -> Trainer {
        let net = pollster::block_on(Network::new(ctx, &self.spec, self.options.seed)).unwrap();
        let total = self.options.total_steps(rows);
        pollster::block_on(Trainer::new(net, self.config.clone(), self.schedule, total)).unwrap()
    }

    fn run_info(&self, rows: usize) -> RunInfo {
        RunInfo {
            format: checkpoint::TRAINING_FORMAT,
            model: self.spec.describe(),
            optimizer: self.config.clone(),
            schedule: self.schedule,
            total_steps: self.options.total_steps(rows),
            batch_size: self.options.batch_size,
            seed: self.options.seed,
            shuffle: self.options.shuffle,
            train_rows: rows,
            val_rows: 0,
            patience: None,
        }
    }
}

/// Packed parameters and optimizer state after the run.
fn final_state(t: &Trainer) -> (Vec<u32>, Vec<Vec<u32>>) {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let params = bits(&pollster::block_on(t.net.read_packed()).unwrap());
    let state = pollster::block_on(t.read_state()).unwrap();
    (params, state.iter().map(|s| bits(s)).collect())
}

/// 300 rows at batch 32 make 10 steps an epoch, the last of 12 rows; 3 epochs, 30 steps.
/// Stopping after steps 4 (mid-epoch), 10 (an epoch's last step, before its evaluation), 17
/// and 29, saving to a file, loading it and resuming gives the uninterrupted run's weights and
/// optimizer state bit for bit, and the same figures for the epochs after the stop.
#[test]
fn resumed_runs_end_bit_identical() {
    let Some(ctx) = context() else { return };
    let data = subset();
    let train = data.train.take(300);
    let test = data.test.take(100);
    let dir = temp("resume");
    for config in [
        Config::adam(),
        Config {
            momentum: 0.9,
            nesterov: true,
            lr: 0.05,
            ..Config::sgd()
        },
    ] {
        let setup = Setup {
            spec: ModelSpec::mlp(784, &[16], 10),
            config,
            schedule: Schedule::Cosine,
            options: FitOptions {
                epochs: 3,
                batch_size: 32,
                seed: 3,
                ..FitOptions::default()
            },
        };
        let fit_data = FitData {
            train: &train,
            val: None,
            test: &test,
        };
        let mut whole = setup.trainer(&ctx, train.len());
        let mut seen = StopAt::default();
        pollster::block_on(fit_with(
            &mut whole,
            fit_data,
            &setup.options,
            None,
            &mut seen,
        ))
        .unwrap();
        let want = final_state(&whole);
        assert_eq!(whole.steps_done(), 30);

        for stop in [4, 10, 17, 29] {
            let mut first = setup.trainer(&ctx, train.len());
            let mut stopper = StopAt {
                at: Some(stop),
                ..StopAt::default()
            };
            let opts = &setup.options;
            let s = pollster::block_on(fit_with(&mut first, fit_data, opts, None, &mut stopper))
                .unwrap();
            assert!(s.interrupted);
            assert_eq!(s.steps, stop);
            let path = dir.join(format!("at-{stop}.safetensors"));
            let info = setup.run_info(train.len());
            let layout = first.net.layout().clone();
            checkpoint::save_training(&path, &layout, &info, stopper.snapshot.as_ref().unwrap())
                .unwrap();
            drop(first);

            let (written, snapshot) = checkpoint::load_training(&path, &layout).unwrap();
            assert!(written.differences(&info).is_empty());
            // A fresh trainer with other initial weights: the checkpoint replaces them all.
            let mut resumed = setup.trainer(&ctx, train.len());
            let mut after = StopAt::default();
            let s = pollster::block_on(fit_with(
                &mut resumed,
                fit_data,
                opts,
                Some(&snapshot),
                &mut after,
            ))
            .unwrap();
            assert_eq!(s.steps, 30, "resumed after step {stop}");
            let got = final_state(&resumed);
            let name = setup.config.kind.name();
            assert!(
                got.0 == want.0,
                "{name}: parameters differ after a stop at step {stop}"
            );
            assert!(
                got.1 == want.1,
                "{name}: optimizer state differs (stop at step {stop})"
            );
            // The epochs run after the resume report what the whole run reported.
            let tail = &seen.epochs[seen.epochs.len() - after.epochs.len()..];
            for (a, b) in after.epochs.iter().zip(tail) {
                assert_eq!(a.epoch, b.epoch);
                assert_eq!(a.train_loss, b.train_loss, "epoch {} train loss", a.epoch);
                assert_eq!(a.test, b.test, "epoch {} test figures", a.epoch);
            }
            let first_epoch = (stop - 1) / 10 + 1;
            assert_eq!(
                after.epochs.first().map(|e| e.epoch),
                Some(first_epoch as usize)
            );
        }
    }
}

/// Early stopping on a constructed case: the validation rows are training rows with wrong
/// labels (label + 1 mod 10), so the better the network fits its training rows, the worse the
/// validation loss gets. With patience 2 the run must stop exactly 2 epochs after the best
/// epoch (recomputed here from the reported losses), and hand back weights equal, bit for bit,
/// to a run of just that many epochs.
#[test]
fn early_stopping_stops_at_the_right_epoch_with_the_best_weights() {
    let Some(ctx) = context() else { return };
    let data = subset();
    let train = data.train.take(400);
    let wrong: Vec<u32> = train.labels[..200].iter().map(|l| (l + 1) % 10).collect();
    let val = Dataset::new(train.features[..200 * 784].to_vec(), wrong, 784, 10).unwrap();
    let test = data.test.take(100);
    let setup = Setup {
        spec: ModelSpec::mlp(784, &[16], 10),
        config: Config::adam(),
        // Constant, so that a shorter run takes the same steps.
        schedule: Schedule::Constant,
        options: FitOptions {
            epochs: 12,
            batch_size: 50,
            seed: 1,
            patience: Some(2),
            ..FitOptions::default()
        },
    };
    let mut trainer = setup.trainer(&ctx, train.len());
    let mut seen = StopAt::default();
    let fit_data = FitData {
        train: &train,
        val: Some(&val),
        test: &test,
    };
    let s = pollster::block_on(fit_with(
        &mut trainer,
        fit_data,
        &setup.options,
        None,
        &mut seen,
    ))
    .unwrap();
    let losses: Vec<f64> = seen.epochs.iter().map(|e| e.val.unwrap().loss).collect();
    eprintln!("validation loss per epoch: {losses:?}");

    // The rule, recomputed: the first epoch 2 epochs after the latest best.
    let (mut best, mut stop) = (0, None);
    for (i, &l) in losses.iter().enumerate() {
        if l < losses[best] {
            best = i;
        }
        if i - best >= 2 {
            stop = Some(i + 1);
            break;
        }
    }
    assert!(
        stop.is_some(),
        "the constructed case should stop early: {losses:?}"
    );
    assert_eq!(s.stopped_epoch, stop);
    assert_eq!(s.best_epoch, Some(best + 1));
    assert_eq!(seen.epochs.len(), stop.unwrap());

    let mut short = setup.trainer(&ctx, train.len());
    let opts = FitOptions {
        epochs: best + 1,
        patience: None,
        ..setup.options.clone()
    };
    let short_data = FitData {
        val: None,
        ..fit_data
    };
    pollster::block_on(fit_with(
        &mut short,
        short_data,
        &opts,
        None,
        &mut StopAt::default(),
    ))
    .unwrap();
    let restored = pollster::block_on(trainer.net.read_packed()).unwrap();
    let want = pollster::block_on(short.net.read_packed()).unwrap();
    assert!(
        restored == want,
        "the restored weights are not the best epoch's"
    );
    // The summary's test figures are those of the restored weights.
    assert_eq!(s.test, seen.epochs[best].test);
}

/// A truncated file, garbage, a weights-only file, and checkpoints of another model or
/// optimizer are refused with a message that names the difference; the file keeps its bytes.
#[test]
fn bad_training_checkpoints_are_refused_untouched() {
    let Some(ctx) = context() else { return };
    let data = subset();
    let train = data.train.take(64);
    let dir = temp("bad");
    let setup = Setup {
        spec: ModelSpec::mlp(784, &[8], 10),
        config: Config::adam(),
        schedule: Schedule::Constant,
        options: FitOptions {
            epochs: 1,
            batch_size: 32,
            ..FitOptions::default()
        },
    };
    let mut trainer = setup.trainer(&ctx, train.len());
    let mut stopper = StopAt {
        at: Some(1),
        ..StopAt::default()
    };
    let fit_data = FitData {
        train: &train,
        val: None,
        test: &train,
    };
    pollster::block_on(fit_with(
        &mut trainer,
        fit_data,
        &setup.options,
        None,
        &mut stopper,
    ))
    .unwrap();
    let layout = trainer.net.layout().clone();
    let good = dir.join("good.safetensors");
    let info = setup.run_info(train.len());
    checkpoint::save_training(&good, &layout, &info, stopper.snapshot.as_ref().unwrap()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a checkpoint at all").unwrap();
    let weights = dir.join("weights.safetensors");
    let tensors = pollster::block_on(trainer.net.state_dict()).unwrap();
    checkpoint::save(&weights, &tensors, &Default::default()).unwrap();
    for (path, part) in [
        (&truncated, "not a valid safetensors file"),
        (&garbage, "not a valid safetensors file"),
        (&weights, "holds no training state"),
    ] {
        let before = std::fs::read(path).unwrap();
        let err = checkpoint::load_training(path, &layout)
            .unwrap_err()
            .to_string();
        assert!(err.contains(part), "{}: {err}", path.display());
        assert!(
            err.contains(&path.display().to_string()),
            "names the file: {err}"
        );
        assert_eq!(
            std::fs::read(path).unwrap(),
            before,
            "{} was changed",
            path.display()
        );
    }

    // Another model: the weights do not fit.
    let other = ModelSpec::mlp(784, &[9], 10);
    let other_layout = wgrad::model::ParamLayout::new(&other.resolve().unwrap());
    let err = checkpoint::load_training(&good, &other_layout)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mlp 784-8-10") && err.contains("fc1.weight"),
        "{err}"
    );

    // Another optimizer or setting: the differences are spelled out.
    let (written, _) = checkpoint::load_training(&good, &layout).unwrap();
    let mut adamw = info.clone();
    adamw.optimizer = Config::adamw();
    let diffs = written.differences(&adamw);
    assert_eq!(
        diffs,
        ["checkpoint was written for optimizer adam, this run uses adamw"],
        "{diffs:?}"
    );
    let mut lr = info.clone();
    lr.optimizer.lr = 0.01;
    lr.batch_size = 16;
    let diffs = written.differences(&lr).join("; ");
    assert!(
        diffs.contains("adam lr 0.001, this run uses 0.01"),
        "{diffs}"
    );
    assert!(diffs.contains("batch size 32, this run uses 16"), "{diffs}");
    assert_eq!(
        std::fs::read(&good).unwrap(),
        bytes,
        "the checkpoint was changed"
    );
}
