//! Weights on disk: safetensors files with the names and layouts of the equivalent PyTorch
//! module's `state_dict`, so that `model.load_state_dict(safetensors.torch.load_file(path))`
//! takes them, and back.
//!
//! Files are written to a temporary name beside the target and renamed over it, so a crash
//! leaves either the old file or the new one, never a torn one.
//!
//! A training checkpoint ([`save_training`]) is such a file with more in it: the optimizer
//! state, the epoch's running loss and the best weights so far as `wgrad.*` tensors, and the
//! run's settings ([`RunInfo`]), its position and the early-stopping figures as JSON metadata.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::model::{ParamLayout, Tensor};
use crate::optim::{Config, Schedule};
use crate::train::{EarlyStopping, Position, Snapshot};

/// Serialises `tensors` (f32, row-major) with string `metadata` into safetensors bytes.
pub fn to_bytes(tensors: &[Tensor], metadata: &HashMap<String, String>) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            TensorView::new(Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&t.data))
                .map(|v| (t.name.clone(), v))
                .map_err(|e| Error::Shape(format!("tensor {}: {e}", t.name)))
        })
        .collect::<Result<_>>()?;
    let meta = (!metadata.is_empty()).then(|| metadata.clone());
    safetensors::serialize(views, meta)
        .map_err(|e| Error::Shape(format!("serialising a checkpoint: {e}")))
}

/// Parses safetensors bytes into f32 tensors and the metadata; `path` names the file in errors.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<(Vec<Tensor>, HashMap<String, String>)> {
    let bad = |msg: String| Error::checkpoint(path, msg);
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let mut tensors = Vec::new();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names {
        let view = st
            .tensor(&name)
            .map_err(|e| bad(format!("tensor {name}: {e}")))?;
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor {name} has dtype {:?}, expected F32",
                view.dtype()
            )));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.push(Tensor {
            name,
            shape: view.shape().to_vec(),
            data,
        });
    }
    Ok((tensors, metadata))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::checkpoint(path, "the path names no file"))?;
    // Unique per process and per call, so two saves to one path never share a temporary.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}.{n}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable: sync the folder's entry (Unix; elsewhere a no-op).
        #[cfg(unix)]
        std::fs::File::open(&dir)?.sync_all()?;
        Ok::<(), std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Checks, before a long run, that a file can be created at `path` (its folder is made if
/// needed), so that a bad `--save` path fails at once rather than after training.
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    if path.is_dir() {
        return Err(Error::checkpoint(path, "is a folder, not a file name"));
    }
    let probe = dir.join(format!(".wgrad-write-check.{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| Error::io(path, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Saves `tensors` to `path` as safetensors, atomically.
pub fn save(path: &Path, tensors: &[Tensor], metadata: &HashMap<String, String>) -> Result<()> {
    write_atomic(path, &to_bytes(tensors, metadata)?)
}

/// Loads every f32 tensor of the safetensors file at `path`, with its metadata.
pub fn load(path: &Path) -> Result<(Vec<Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(path, &bytes)
}

/// Prefix of the tensors a training checkpoint holds besides the weights.
pub const STATE_PREFIX: &str = "wgrad.";
/// Version of the training-checkpoint format; bumped when its contents change.
pub const TRAINING_FORMAT: u32 = 1;
const RUN_KEY: &str = "wgrad.run";
const POSITION_KEY: &str = "wgrad.position";
const EARLY_KEY: &str = "wgrad.early_stopping";

/// The settings a training run must share with the run that wrote its checkpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub format: u32,
    /// The model's one-line description, e.g. `mlp 784-64-10`.
    pub model: String,
    pub optimizer: Config,
    pub schedule: Schedule,
    /// Steps of the whole run (what a cosine schedule spans).
    pub total_steps: u64,
    pub batch_size: usize,
    /// Seed of the initial weights and of every epoch's row order.
    pub seed: u64,
    pub shuffle: bool,
    pub train_rows: usize,
    pub val_rows: usize,
    pub patience: Option<usize>,
}

/// The early-stopping figures, with the loss as bits so that it is read back exactly.
#[derive(serde::Serialize, serde::Deserialize)]
struct EarlyMeta {
    best_loss_bits: Option<u64>,
    best_epoch: Option<usize>,
    bad_epochs: usize,
}

impl RunInfo {
    /// What differs between the run that wrote a checkpoint (`self`) and `this` run, one
    /// sentence each ("checkpoint was written for optimizer adam, this run uses adamw").
    pub fn differences(&self, this: &RunInfo) -> Vec<String> {
        let mut out = Vec::new();
        let differ = |out: &mut Vec<String>, what: &str, was: String, now: String| {
            if was != now {
                out.push(format!(
                    "checkpoint was written for {what} {was}, this run uses {now}"
                ));
            }
        };
        differ(
            &mut out,
            "format",
            self.format.to_string(),
            this.format.to_string(),
        );
        differ(&mut out, "model", self.model.clone(), this.model.clone());
        let (a, b) = (&self.optimizer, &this.optimizer);
        if a.kind != b.kind {
            differ(
                &mut out,
                "optimizer",
                a.kind.name().into(),
                b.kind.name().into(),
            );
        } else {
            // Field by field, each value as the same JSON writer spells it.
            let (ja, jb) = (json_fields(a), json_fields(b));
            for (k, va) in &ja {
                let vb = jb.get(k).cloned().unwrap_or_default();
                differ(&mut out, &format!("{} {k}", a.kind.name()), va.clone(), vb);
            }
        }
        let name = |s: &Schedule| match *s {
            Schedule::Step { step_size, gamma } => {
                format!("step (step size {step_size}, gamma {gamma})")
            }
            s => s.name().to_string(),
        };
        differ(
            &mut out,
            "schedule",
            name(&self.schedule),
            name(&this.schedule),
        );
        if self.schedule == Schedule::Cosine && self.total_steps != this.total_steps {
            out.push(format!(
                "checkpoint was written for a cosine schedule over {} steps, this run has {} \
                 (keep --epochs and --max-steps as they were)",
                self.total_steps, this.total_steps
            ));
        }
        differ(
            &mut out,
            "batch size",
            self.batch_size.to_string(),
            this.batch_size.to_string(),
        );
        differ(
            &mut out,
            "seed",
            self.seed.to_string(),
            this.seed.to_string(),
        );
        differ(
            &mut out,
            "shuffle",
            self.shuffle.to_string(),
            this.shuffle.to_string(),
        );
        differ(
            &mut out,
            "training rows",
            self.train_rows.to_string(),
            this.train_rows.to_string(),
        );
        differ(
            &mut out,
            "validation rows",
            self.val_rows.to_string(),
            this.val_rows.to_string(),
        );
        let patience = |p: Option<usize>| p.map_or("none".into(), |p| p.to_string());
        differ(
            &mut out,
            "patience",
            patience(self.patience),
            patience(this.patience),
        );
        out
    }
}

fn json_fields<T: serde::Serialize>(v: &T) -> std::collections::BTreeMap<String, String> {
    let text = serde_json::to_string(v).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
        .unwrap_or_default()
}

/// Saves a training checkpoint atomically: the weights under their usual names (so the file
/// also serves as `--init` or `eval --weights`), the optimizer state, running loss and best
/// weights as `wgrad.*` tensors, and the run's settings and position as JSON metadata.
pub fn save_training(
    path: &Path,
    layout: &ParamLayout,
    run: &RunInfo,
    snap: &Snapshot,
) -> Result<()> {
    let mut tensors = layout.unpack(&snap.params);
    let mut extra = |name: &str, data: &[f32]| {
        if !data.is_empty() {
            tensors.push(Tensor {
                name: format!("{STATE_PREFIX}{name}"),
                shape: vec![data.len()],
                data: data.to_vec(),
            });
        }
    };
    extra("optimizer.state1", &snap.state[0]);
    extra("optimizer.state2", &snap.state[1]);
    extra("train_stats", &snap.train_stats);
    extra(
        "best_params",
        snap.early.best_params.as_deref().unwrap_or(&[]),
    );
    let early = EarlyMeta {
        best_loss_bits: snap.early.best.map(|(l, _)| l.to_bits()),
        best_epoch: snap.early.best.map(|(_, e)| e),
        bad_epochs: snap.early.bad_epochs,
    };
    let json = |v: serde_json::Result<String>| {
        v.map_err(|e| Error::checkpoint(path, format!("encoding the metadata: {e}")))
    };
    let mut meta = HashMap::new();
    meta.insert("model".to_string(), run.model.clone());
    meta.insert(
        "optimizer".to_string(),
        run.optimizer.kind.name().to_string(),
    );
    meta.insert("steps".to_string(), snap.position.step.to_string());
    meta.insert(RUN_KEY.to_string(), json(serde_json::to_string(run))?);
    meta.insert(
        POSITION_KEY.to_string(),
        json(serde_json::to_string(&snap.position))?,
    );
    meta.insert(EARLY_KEY.to_string(), json(serde_json::to_string(&early))?);
    save(path, &tensors, &meta)
}

/// Loads a training checkpoint written by [`save_training`] for a network of `layout`.
/// Refuses a file that is not one (weights only, corrupt, another model) with a message that
/// says what is wrong; compare [`RunInfo::differences`] before resuming.
pub fn load_training(path: &Path, layout: &ParamLayout) -> Result<(RunInfo, Snapshot)> {
    let (tensors, meta) = load(path)?;
    let bad = |msg: String| Error::checkpoint(path, msg);
    let field = |key: &str| {
        meta.get(key).ok_or_else(|| {
            bad(format!(
                "has no {key} metadata: it holds no training state (weights alone go to \
                 --init, not --resume)"
            ))
        })
    };
    let run: RunInfo = serde_json::from_str(field(RUN_KEY)?)
        .map_err(|e| bad(format!("unreadable {RUN_KEY} metadata ({e})")))?;
    if run.format != TRAINING_FORMAT {
        return Err(bad(format!(
            "training-checkpoint format {} is not this build's {TRAINING_FORMAT}",
            run.format
        )));
    }
    let position: Position = serde_json::from_str(field(POSITION_KEY)?)
        .map_err(|e| bad(format!("unreadable {POSITION_KEY} metadata ({e})")))?;
    let early: EarlyMeta = serde_json::from_str(field(EARLY_KEY)?)
        .map_err(|e| bad(format!("unreadable {EARLY_KEY} metadata ({e})")))?;
    let (state, weights): (Vec<Tensor>, Vec<Tensor>) = tensors
        .into_iter()
        .partition(|t| t.name.starts_with(STATE_PREFIX));
    let params = layout.pack(&weights).map_err(|e| {
        bad(format!(
            "written for model {}: {e}",
            meta.get("model").map_or("?", |m| m.as_str())
        ))
    })?;
    let take = |name: &str| {
        state
            .iter()
            .find(|t| t.name == format!("{STATE_PREFIX}{name}"))
            .map_or(Vec::new(), |t| t.data.clone())
    };
    let best_params = take("best_params");
    let snapshot = Snapshot {
        position,
        params,
        state: [take("optimizer.state1"), take("optimizer.state2")],
        train_stats: take("train_stats"),
        early: EarlyStopping {
            best: early
                .best_loss_bits
                .zip(early.best_epoch)
                .map(|(b, e)| (f64::from_bits(b), e)),
            bad_epochs: early.bad_epochs,
            best_params: (!best_params.is_empty()).then_some(best_params),
        },
    };
    Ok((run, snapshot))
}

/// Loads the weights of a safetensors file, leaving out a training checkpoint's `wgrad.*`
/// state, so that a checkpoint serves wherever a weights file does.
pub fn load_weights(path: &Path) -> Result<(Vec<Tensor>, HashMap<String, String>)> {
    let (mut tensors, meta) = load(path)?;
    tensors.retain(|t| !t.name.starts_with(STATE_PREFIX));
    Ok((tensors, meta))
}
