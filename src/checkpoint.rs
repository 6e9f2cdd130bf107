//! Weights on disk: safetensors files with the names and layouts of the equivalent PyTorch
//! module's `state_dict`, so that `model.load_state_dict(safetensors.torch.load_file(path))`
//! takes them, and back.
//!
//! Files are written to a temporary name beside the target and renamed over it, so a crash
//! leaves either the old file or the new one, never a torn one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::model::Tensor;

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
