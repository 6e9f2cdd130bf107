//! Progress for a person (a bar per epoch on a terminal, log lines) and for programs
//! (`--metrics` JSON lines), from the events of the training loop; and the checkpoints the loop
//! hands over, every `--checkpoint-every` steps and on Ctrl-C. The clock lives here, outside the
//! library's training core.
//!
//! Metrics records, one JSON object per line:
//!   {"kind":"step","step":k,"loss":L,"lr":r}            every --log-every steps
//!   {"kind":"epoch","epoch":e,"train_loss":..,"test_loss":..,"test_acc":..,"seconds":..,
//!    "samples_per_sec":..}                              after each epoch
//!   {"kind":"final","steps":..,"test_loss":..,"test_acc":..,"seconds":..}
//! `seconds` of an epoch is its training time (evaluation excluded); of the final record, the
//! whole run's. Accuracies are fractions in [0, 1]; an autoencoder's records have no
//! `test_acc` (its `test_loss` is the reconstruction MSE). With `--val`, epoch records add
//! `val_loss` (and `val_acc`), and the final record `best_epoch` (and `stopped_epoch` when
//! early stopping ended the run). A run stopped by Ctrl-C ends with `"interrupted":true` in its
//! final record; a resumed run appends to the metrics file.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use wgrad::checkpoint::{self, RunInfo};
use wgrad::model::ParamLayout;
use wgrad::train::{Control, EpochReport, FitSummary, Observer, Position, Snapshot, StepReport};
use wgrad::Error;

/// Where and how often to save training checkpoints.
pub struct Checkpoints {
    pub path: PathBuf,
    /// Steps between saves (0: only on Ctrl-C).
    pub every: u64,
    pub run: RunInfo,
    pub layout: ParamLayout,
    /// Set by the Ctrl-C handler.
    pub interrupt: Arc<AtomicBool>,
}

pub struct Reporter {
    metrics: Option<(PathBuf, BufWriter<File>)>,
    /// The first write error; reported when the run ends rather than aborting it.
    failed: Option<Error>,
    total_steps: u64,
    epoch_start: Instant,
    epoch_seconds: f64,
    /// Only the final line (`--quiet`).
    quiet: bool,
    /// A progress bar per epoch, when stderr is a terminal and not quiet.
    bars: bool,
    bar: Option<ProgressBar>,
    batch_size: usize,
    epoch_steps: u64,
    last_loss: Option<f32>,
    checkpoints: Option<Checkpoints>,
    /// The position of the last checkpoint saved, and whether Ctrl-C asked for it.
    pub saved: Option<(Position, bool)>,
}

impl Reporter {
    /// A reporter writing `metrics` (appended to when `append`, as a resumed run does).
    pub fn new(
        metrics: Option<&Path>,
        total_steps: u64,
        append: bool,
        quiet: bool,
    ) -> Result<Self, Error> {
        let metrics = match metrics {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                let f = File::options()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(p)
                    .map_err(|e| Error::io(p, e))?;
                Some((p.to_path_buf(), BufWriter::new(f)))
            }
            None => None,
        };
        Ok(Reporter {
            metrics,
            failed: None,
            total_steps,
            epoch_start: Instant::now(),
            epoch_seconds: 0.0,
            quiet,
            bars: !quiet && std::io::stderr().is_terminal() && std::io::stdout().is_terminal(),
            bar: None,
            batch_size: 1,
            epoch_steps: 0,
            last_loss: None,
            checkpoints: None,
            saved: None,
        })
    }

    /// Shows samples/s for batches of `batch_size` rows.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Saves checkpoints as `c` says.
    pub fn checkpoints(mut self, c: Option<Checkpoints>) -> Self {
        self.checkpoints = c;
        self
    }

    /// Logs a line at info, above the progress bar when there is one.
    fn line(&self, text: String) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| log::info!("{text}")),
            None => log::info!("{text}"),
        }
    }

    fn record(&mut self, value: serde_json::Value) {
        if let Some((path, w)) = &mut self.metrics {
            // Flushed per record, so that the file can be followed while the run goes on.
            if let Err(e) = writeln!(w, "{value}").and_then(|_| w.flush()) {
                self.failed.get_or_insert(Error::io(path.clone(), e));
            }
        }
    }

    /// Writes the final record and flushes the metrics file.
    pub fn finish(&mut self, summary: &FitSummary, seconds: f64) -> Result<(), Error> {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
        let mut record = json!({
            "kind": "final",
            "steps": summary.steps,
            "test_loss": summary.test.loss,
            "seconds": seconds,
        });
        if let Some(acc) = summary.test.accuracy {
            record["test_acc"] = json!(acc);
        }
        if let Some(e) = summary.best_epoch {
            record["best_epoch"] = json!(e);
        }
        if let Some(e) = summary.stopped_epoch {
            record["stopped_epoch"] = json!(e);
        }
        if summary.interrupted {
            record["interrupted"] = json!(true);
        }
        self.record(record);
        if let Some(stopped) = summary.stopped_epoch {
            let best = summary.best_epoch.unwrap_or(stopped);
            self.line(format!(
                "early stopping after epoch {stopped}: no better validation loss since epoch \
                 {best}; its weights are restored"
            ));
        }
        let done = format!(
            "{}: {} steps in {seconds:.1} s, test loss {:.4}{}",
            if summary.interrupted {
                "interrupted"
            } else {
                "done"
            },
            summary.steps,
            summary.test.loss,
            accuracy_text(summary.test.accuracy, ", ")
        );
        // --quiet keeps the log at warnings; its one line goes to stdout.
        if self.quiet {
            println!("{done}");
        } else {
            log::info!("{done}");
        }
        if let Some((path, w)) = &mut self.metrics {
            if let Err(e) = w.flush() {
                self.failed.get_or_insert(Error::io(path.clone(), e));
            }
        }
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Observer for Reporter {
    fn epoch_start(&mut self, epoch: usize, steps: u64) {
        self.epoch_start = Instant::now();
        self.epoch_steps = 0;
        if self.bars {
            let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:25}] {pos}/{len} steps  {msg}  ETA {eta}",
            )
            .expect("internal error: the progress template parses")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("epoch {epoch:>2}"));
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, r: &StepReport) {
        self.record(json!({"kind": "step", "step": r.step, "loss": r.loss, "lr": r.lr}));
        self.last_loss = Some(r.loss);
        if self.bar.is_some() {
            return;
        }
        let width = self.total_steps.to_string().len();
        self.line(format!(
            "step {:>width$}/{}  loss {:.4}  lr {:.3e}",
            r.step, self.total_steps, r.loss, r.lr
        ));
    }

    fn after_step(&mut self, at: &Position) -> Control {
        self.epoch_steps += 1;
        if let Some(bar) = &self.bar {
            // A resumed epoch starts midway: show the whole epoch.
            bar.set_length(at.steps_in_epoch);
            bar.set_position(at.step_in_epoch);
            let secs = self.epoch_start.elapsed().as_secs_f64().max(1e-9);
            let rate = (self.epoch_steps * self.batch_size as u64) as f64 / secs;
            let loss = self
                .last_loss
                .map_or(String::new(), |l| format!("loss {l:.4}  "));
            bar.set_message(format!("{loss}{rate:.0} samples/s"));
        }
        let Some(c) = &self.checkpoints else {
            return Control::Continue;
        };
        if c.interrupt.load(Ordering::SeqCst) {
            Control::CheckpointAndStop
        } else if c.every > 0 && at.step % c.every == 0 {
            Control::Checkpoint
        } else {
            Control::Continue
        }
    }

    fn checkpoint(&mut self, snapshot: &Snapshot) -> wgrad::Result<()> {
        let Some(c) = &self.checkpoints else {
            return Ok(());
        };
        checkpoint::save_training(&c.path, &c.layout, &c.run, snapshot)?;
        let interrupted = c.interrupt.load(Ordering::SeqCst);
        let text = format!(
            "saved checkpoint at step {} (epoch {}) to {}",
            snapshot.position.step,
            snapshot.position.epoch,
            c.path.display()
        );
        // Routine saves are debug lines; the one made on Ctrl-C is always shown.
        if interrupted {
            if let Some(bar) = self.bar.take() {
                bar.abandon();
            }
            log::warn!("{text}");
        } else {
            log::debug!("{text}");
        }
        self.saved = Some((snapshot.position, interrupted));
        Ok(())
    }

    fn epoch_trained(&mut self, _epoch: usize) {
        self.epoch_seconds = self.epoch_start.elapsed().as_secs_f64();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn epoch_end(&mut self, r: &EpochReport) {
        let rate = r.samples as f64 / self.epoch_seconds.max(1e-9);
        let mut record = json!({
            "kind": "epoch",
            "epoch": r.epoch,
            "train_loss": r.train_loss,
            "test_loss": r.test.loss,
            "seconds": self.epoch_seconds,
            "samples_per_sec": rate,
        });
        if let Some(acc) = r.test.accuracy {
            record["test_acc"] = json!(acc);
        }
        let mut val = String::new();
        if let Some(v) = r.val {
            record["val_loss"] = json!(v.loss);
            val = format!("  val loss {:.4}", v.loss);
            if let Some(acc) = v.accuracy {
                record["val_acc"] = json!(acc);
                val += &format!("  val accuracy {:.2}%", 100.0 * acc);
            }
        }
        self.record(record);
        self.line(format!(
            "epoch {:>2}  train loss {:.4}  test loss {:.4}{}{val}  {:.1} s  {:.0} samples/s",
            r.epoch,
            r.train_loss,
            r.test.loss,
            accuracy_text(r.test.accuracy, "  "),
            self.epoch_seconds,
            rate
        ));
    }
}

/// `"<sep>test accuracy 97.12%"`, or nothing for a model without accuracy (an autoencoder).
fn accuracy_text(accuracy: Option<f64>, sep: &str) -> String {
    accuracy.map_or(String::new(), |a| {
        format!("{sep}test accuracy {:.2}%", 100.0 * a)
    })
}
