//! The library's one error type.
//!
//! Every fallible call in `wgrad` returns [`Result`]. Each variant's message names what was being
//! done, the file or value involved and what was expected, so that the binary can print it as it
//! is and a user knows what to change.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `wgrad`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter could be found or none matched the requested name.
    #[error("no usable GPU adapter: {0}")]
    NoAdapter(String),

    /// The GPU reported a validation error, ran out of memory, or lost the device.
    #[error("GPU error while {op}: {msg}")]
    Gpu { op: String, msg: String },

    /// A model, tensor or dispatch does not fit the adapter's limits.
    #[error("{0}")]
    Limit(String),

    /// Shapes that do not fit together (model building, batches, checkpoints in memory).
    #[error("shape mismatch: {0}")]
    Shape(String),

    /// An invalid hyper-parameter or option; the message names the flag.
    #[error("invalid setting: {0}")]
    Config(String),

    /// A data file that is missing, truncated or malformed.
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },

    /// Fetching a data set failed; the message lists every source that was tried.
    #[error("could not fetch {what}:\n{tried}")]
    Fetch { what: String, tried: String },

    /// A checkpoint that is unreadable or does not match the model.
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },

    /// An operating-system I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Shorthand for a [`Error::Data`] error on `path`.
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// Shorthand for an [`Error::Io`] error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for an [`Error::Checkpoint`] error on `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// Shorthand for an [`Error::Gpu`] error.
    pub fn gpu(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Gpu {
            op: op.into(),
            msg: msg.into(),
        }
    }
}
