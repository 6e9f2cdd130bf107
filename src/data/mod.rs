//! Training data: an in-memory set of f32 feature rows with class labels, MNIST's IDX files, and
//! fetching MNIST when it is missing.
//!
//! The training core only ever sees a [`Dataset`]; files and the network live in [`mnist`] and
//! [`fetch`], which the binary (or an embedding program) calls before training starts.

pub mod fetch;
pub mod idx;
pub mod mnist;

use crate::error::{Error, Result};

/// Rows of `dim` f32 features, each with a class label in `0..classes`.
///
/// `features` is row-major `[n, dim]`. For MNIST, `dim = 784` (28x28 pixels in row order) and each
/// pixel is `byte / 255`.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `[n, dim]`, row-major.
    pub features: Vec<f32>,
    /// `[n]`, each `< classes`.
    pub labels: Vec<u32>,
    /// Number of features per row.
    pub dim: usize,
    /// Number of classes; labels are `0..classes`.
    pub classes: usize,
}

impl Dataset {
    /// Builds a data set, checking that the sizes agree and every label is in range.
    pub fn new(features: Vec<f32>, labels: Vec<u32>, dim: usize, classes: usize) -> Result<Self> {
        if dim == 0 || features.len() % dim != 0 {
            return Err(Error::Shape(format!(
                "data set: {} features is not a whole number of rows of {dim}",
                features.len()
            )));
        }
        let n = features.len() / dim;
        if labels.len() != n {
            return Err(Error::Shape(format!(
                "data set: {n} feature rows but {} labels",
                labels.len()
            )));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes)
        {
            return Err(Error::Shape(format!(
                "data set: label {l} at row {i} is outside 0..{classes}"
            )));
        }
        Ok(Dataset {
            features,
            labels,
            dim,
            classes,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set has no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features of row `i`, `[dim]`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }

    /// The first `n` rows (all of them when `n >= len`).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            features: self.features[..n * self.dim].to_vec(),
            labels: self.labels[..n].to_vec(),
            dim: self.dim,
            classes: self.classes,
        }
    }

    /// Splits off the last `n` rows: returns `(first len-n rows, last n rows)`.
    pub fn split_tail(&self, n: usize) -> (Dataset, Dataset) {
        let n = n.min(self.len());
        let cut = self.len() - n;
        let head = self.take(cut);
        let tail = Dataset {
            features: self.features[cut * self.dim..].to_vec(),
            labels: self.labels[cut..].to_vec(),
            dim: self.dim,
            classes: self.classes,
        };
        (head, tail)
    }
}
