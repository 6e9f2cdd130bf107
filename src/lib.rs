//! wgrad: neural-network training on any GPU that wgpu reaches, with hand-written WGSL kernels.
//!
//! The pieces, in the order data flows through them:
//! - [`gpu`]: adapter choice, the device, uploads and downloads, errors as `Result`s.
//! - [`kernels`]: one module per WGSL kernel in `shaders/` (matmul, bias gradient, conv2d,
//!   max-pool, softmax cross-entropy, MSE, optimizer updates), each with its parameters and
//!   dispatch arithmetic.
//! - [`model`]: layer lists (MLP, LeNet-5, autoencoder presets and a builder), shapes,
//!   parameter names and layouts, PyTorch's initialisation.
//! - [`graph`]: the executor, a [`graph::Network`] with forward and backward plans per batch size.
//! - [`optim`]: optimizer settings with PyTorch's defaults, and learning-rate schedules.
//! - [`train`]: the [`train::Trainer`] that takes steps, and the epoch loop [`train::fit`]
//!   ([`train::fit_with`] adds a validation set, early stopping, and snapshots to resume from).
//! - [`data`], [`checkpoint`]: MNIST and other data sets, safetensors weights and training
//!   checkpoints (file system).
//! - [`reference`]: plain CPU versions of everything, for tests.
//!
//! GPU waits are `async fn`s; on native targets they poll the device, in the browser they
//! yield. Their futures are not `Send` (wgpu's error scopes are per thread), so drive them on
//! the thread that made them, e.g. with `pollster::block_on`, as the `wgrad` binary does.
//!
//! A program that trains the lecture's network on its own rows:
//! ```no_run
//! # async fn run() -> wgrad::Result<()> {
//! use wgrad::{data::Dataset, gpu, graph::Network, model::ModelSpec, optim, train};
//! let ctx = gpu::Context::new(&gpu::ContextOptions::default()).await?;
//! let rows: Vec<f32> = vec![0.5; 784 * 100];
//! let labels: Vec<u32> = (0..100).map(|i| i % 10).collect();
//! let data = Dataset::new(rows, labels, 784, 10)?;
//! let net = Network::new(&ctx, &ModelSpec::mlp(784, &[64], 10), 0).await?;
//! let options = train::FitOptions { epochs: 2, ..Default::default() };
//! let total = options.total_steps(data.len());
//! let mut trainer =
//!     train::Trainer::new(net, optim::Config::adamw(), optim::Schedule::Constant, total).await?;
//! let summary = train::fit(&mut trainer, &data, &data, &options, &mut train::Silent).await?;
//! println!("accuracy {:.3}", summary.test.accuracy.unwrap_or(0.0));
//! let logits = trainer.net.predict(data.row(0)).await?;
//! let weights = trainer.net.state_dict().await?;
//! # let _ = (logits, weights); Ok(()) }
//! ```

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod kernels;
pub mod model;
pub mod optim;
pub mod profile;
pub mod reference;
pub mod train;

pub use error::{Error, Result};
