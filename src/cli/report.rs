//! Progress for a person (log lines) and for programs (`--metrics` JSON lines), from the events
//! of the training loop. The clock lives here, outside the library's training core.
//!
//! Metrics records, one JSON object per line:
//!   {"kind":"step","step":k,"loss":L,"lr":r}            every --log-every steps
//!   {"kind":"epoch","epoch":e,"train_loss":..,"test_loss":..,"test_acc":..,"seconds":..,
//!    "samples_per_sec":..}                              after each epoch
//!   {"kind":"final","steps":..,"test_loss":..,"test_acc":..,"seconds":..}
//! `seconds` of an epoch is its training time (evaluation excluded); of the final record, the
//! whole run's. Accuracies are fractions in [0, 1]; an autoencoder's records have no
//! `test_acc` (its `test_loss` is the reconstruction MSE).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use wgrad::train::{EpochReport, FitSummary, Observer, StepReport};
use wgrad::Error;

pub struct Reporter {
    metrics: Option<(PathBuf, BufWriter<File>)>,
    /// The first write error; reported when the run ends rather than aborting it.
    failed: Option<Error>,
    total_steps: u64,
    epoch_start: Instant,
    epoch_seconds: f64,
}

impl Reporter {
    pub fn new(metrics: Option<&Path>, total_steps: u64) -> Result<Self, Error> {
        let metrics = match metrics {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                let f = File::create(p).map_err(|e| Error::io(p, e))?;
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
        })
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
        let mut record = json!({
            "kind": "final",
            "steps": summary.steps,
            "test_loss": summary.test.loss,
            "seconds": seconds,
        });
        if let Some(acc) = summary.test.accuracy {
            record["test_acc"] = json!(acc);
        }
        self.record(record);
        log::info!(
            "done: {} steps in {seconds:.1} s, test loss {:.4}{}",
            summary.steps,
            summary.test.loss,
            accuracy_text(summary.test.accuracy, ", ")
        );
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
    fn epoch_start(&mut self, _epoch: usize, _steps: u64) {
        self.epoch_start = Instant::now();
    }

    fn step(&mut self, r: &StepReport) {
        self.record(json!({"kind": "step", "step": r.step, "loss": r.loss, "lr": r.lr}));
        let width = self.total_steps.to_string().len();
        log::info!(
            "step {:>width$}/{}  loss {:.4}  lr {:.3e}",
            r.step,
            self.total_steps,
            r.loss,
            r.lr
        );
    }

    fn epoch_trained(&mut self, _epoch: usize) {
        self.epoch_seconds = self.epoch_start.elapsed().as_secs_f64();
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
        self.record(record);
        log::info!(
            "epoch {:>2}  train loss {:.4}  test loss {:.4}{}  {:.1} s  {:.0} samples/s",
            r.epoch,
            r.train_loss,
            r.test.loss,
            accuracy_text(r.test.accuracy, "  "),
            self.epoch_seconds,
            rate
        );
    }
}

/// `"<sep>test accuracy 97.12%"`, or nothing for a model without accuracy (an autoencoder).
fn accuracy_text(accuracy: Option<f64>, sep: &str) -> String {
    accuracy.map_or(String::new(), |a| {
        format!("{sep}test accuracy {:.2}%", 100.0 * a)
    })
}
