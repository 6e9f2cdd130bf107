//! Loading MNIST from a folder of IDX files into two [`Dataset`]s.
//!
//! The folder holds the four files under their canonical names (see [`FILES`]), each either raw
//! or gzipped as `NAME.gz`; the raw file wins when both exist. Images become rows of 784 pixels,
//! each `byte / 255` and nothing more, so that any normalisation stays visible in the model code.
//! Fetching missing files is [`super::fetch`]'s job; this module only reads.

use std::path::{Path, PathBuf};

use super::idx::{dims_string, read_idx, Idx};
use super::Dataset;
use crate::error::{Error, Result};

/// Training images, `[60000, 28, 28]`.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Training labels, `[60000]`.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Test images, `[10000, 28, 28]`.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Test labels, `[10000]`.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// The four canonical file names, in the order they are loaded and fetched.
pub const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// Height and width of an MNIST image.
pub const SIDE: usize = 28;
/// Features per row: 28x28 pixels in row order.
pub const DIM: usize = SIDE * SIDE;
/// Number of classes, the digits 0 to 9.
pub const CLASSES: usize = 10;

/// MNIST's two splits.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// The training split (60000 rows for the full set).
    pub train: Dataset,
    /// The test split (10000 rows for the full set).
    pub test: Dataset,
}

/// Loads both splits from `dir`.
///
/// Each file is read as `dir/NAME`, or `dir/NAME.gz` when the raw one is absent. Fails with an
/// [`Error::Data`] naming the file when one is missing or malformed, when image and label counts
/// differ, or when a label is not a digit.
pub fn load(dir: &Path) -> Result<Mnist> {
    let train = load_split(&locate(dir, TRAIN_IMAGES)?, &locate(dir, TRAIN_LABELS)?)?;
    let test = load_split(&locate(dir, TEST_IMAGES)?, &locate(dir, TEST_LABELS)?)?;
    log::info!(
        "loaded MNIST from {}: {} training rows, {} test rows",
        dir.display(),
        train.len(),
        test.len()
    );
    Ok(Mnist { train, test })
}

/// Loads one split from an images file (`[n, 28, 28]`) and a labels file (`[n]`).
///
/// Either file may be gzipped (name ending in `.gz`).
pub fn load_split(images_path: &Path, labels_path: &Path) -> Result<Dataset> {
    let images = read_idx(images_path)?;
    let labels = read_idx(labels_path)?;
    check_dims(
        images_path,
        &images,
        &[None, Some(SIDE), Some(SIDE)],
        "[n, 28, 28]",
    )?;
    check_dims(labels_path, &labels, &[None], "[n]")?;

    let n = images.dims[0];
    if labels.dims[0] != n {
        return Err(Error::data(
            labels_path,
            format!(
                "{} labels, but {} holds {n} images; the two files must have the same count",
                labels.dims[0],
                images_path.display()
            ),
        ));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= CLASSES)
    {
        return Err(Error::data(
            labels_path,
            format!("label at index {i} is {l}, expected a digit 0..=9"),
        ));
    }

    let features: Vec<f32> = images.data.iter().map(|&b| b as f32 / 255.0).collect();
    let labels: Vec<u32> = labels.data.iter().map(|&l| l as u32).collect();
    Dataset::new(features, labels, DIM, CLASSES)
}

/// The files of [`FILES`] for which `dir` holds neither `NAME` nor `NAME.gz`.
pub fn missing_files(dir: &Path) -> Vec<&'static str> {
    FILES
        .iter()
        .copied()
        .filter(|name| find_file(dir, name).is_none())
        .collect()
}

/// The path `load` would read for `name` in `dir`: `dir/NAME` if it exists, else
/// `dir/NAME.gz` if that exists, else `None`.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Some(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    gz.is_file().then_some(gz)
}

/// Like [`find_file`], but a missing file is an error that says how to get it.
fn locate(dir: &Path, name: &str) -> Result<PathBuf> {
    find_file(dir, name).ok_or_else(|| {
        Error::data(
            dir.join(name),
            format!(
                "missing: neither {name} nor {name}.gz is in {}; copy the MNIST files there \
                 or fetch them with wgrad::data::fetch::ensure_mnist",
                dir.display()
            ),
        )
    })
}

/// Checks that `idx` has `want.len()` dims and that every `Some` entry matches; `shape` is the
/// same expectation written out for the message.
fn check_dims(path: &Path, idx: &Idx, want: &[Option<usize>], shape: &str) -> Result<()> {
    let fits = idx.dims.len() == want.len()
        && idx
            .dims
            .iter()
            .zip(want)
            .all(|(&d, w)| w.is_none_or(|w| w == d));
    if fits {
        return Ok(());
    }
    Err(Error::data(
        path,
        format!(
            "expected shape {shape}, found {} dims: {}",
            idx.dims.len(),
            dims_string(&idx.dims)
        ),
    ))
}
