//! `wgrad eval`: a weights file on the MNIST test set: loss, accuracy and a confusion matrix
//! (printed, and as an image with `--out`); for an autoencoder, the reconstruction loss and a
//! grid of test digits above their reconstructions.

use std::path::PathBuf;

use clap::Args;
use wgrad::graph::{Network, EVAL_BATCH};
use wgrad::model::Loss;
use wgrad::{checkpoint, Error};

use super::charts;
use super::train::{load_mnist, spec_from, ModelArg};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder of the MNIST IDX files; fetched there when missing.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: ModelArg,
    /// Layers of --model custom (as for train).
    #[arg(long)]
    pub layers: Option<String>,
    /// Hidden widths, comma-separated.
    #[arg(long, default_value = "64", value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// Safetensors weights (from --save, or a training checkpoint).
    #[arg(long)]
    pub weights: PathBuf,
    /// Folder for confusion.png (classifiers) or reconstructions.png (autoencoders).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Adapter to use: a substring of its name.
    #[arg(long)]
    pub adapter: Option<String>,
}

/// Test digits shown in the reconstruction grid, in rows of 8.
const GRID: usize = 16;

pub async fn run(a: EvalArgs) -> anyhow::Result<u8> {
    let spec = spec_from(a.model, a.layers.as_deref(), &a.hidden)?;
    let (tensors, _) = checkpoint::load_weights(&a.weights)?;
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let data = load_mnist(&a.data, None)?;
    let ctx = super::device::open(a.adapter.clone()).await?;
    let mut net = Network::new(&ctx, &spec, 0).await?;
    net.load_state_dict(&tensors)
        .map_err(|e| Error::checkpoint(&a.weights, e.to_string()))?;
    let test = &data.test;
    let eval = net.evaluate(test, EVAL_BATCH).await?;
    println!("model {}, weights {}", spec.describe(), a.weights.display());

    if spec.loss == Loss::Reconstruction {
        println!(
            "test loss (reconstruction MSE) {:.5} over {} images",
            eval.loss, eval.rows
        );
        if let Some(dir) = &a.out {
            let n = GRID.min(test.len());
            let recon = net.predict(&test.features[..n * test.dim]).await?;
            let dim = test.dim;
            let originals: Vec<&[f32]> = (0..n).map(|i| test.row(i)).collect();
            let outputs: Vec<&[f32]> = recon.chunks(dim).collect();
            let mut rows = Vec::new();
            for start in (0..n).step_by(8) {
                let end = (start + 8).min(n);
                let range = format!("{}-{}", start + 1, end);
                rows.push((
                    format!("test digits {range}"),
                    originals[start..end].to_vec(),
                ));
                rows.push((
                    format!("reconstructions {range}"),
                    outputs[start..end].to_vec(),
                ));
            }
            let path = dir.join("reconstructions.png");
            charts::save_image_rows(&path, &rows, 28)?;
            println!("wrote {}", path.display());
        }
        return Ok(0);
    }

    let classes = net.classes();
    let logits = net.predict(&test.features).await?;
    let mut matrix = vec![vec![0u64; classes]; classes];
    for (row, &label) in logits.chunks(classes).zip(&test.labels) {
        matrix[label as usize][argmax(row)] += 1;
    }
    let acc = eval.accuracy.unwrap_or(0.0);
    println!(
        "test loss {:.4}, test accuracy {:.2}% over {} images",
        eval.loss,
        100.0 * acc,
        eval.rows
    );
    println!("{}", confusion_text(&matrix));
    if let Some(dir) = &a.out {
        let path = dir.join("confusion.png");
        let title = format!(
            "Confusion matrix, {} ({:.2}% of {} test images)",
            spec.describe(),
            100.0 * acc,
            eval.rows
        );
        charts::save_confusion(&path, &matrix, &title)?;
        println!("wrote {}", path.display());
    }
    Ok(0)
}

/// The index of the largest value (the first of equals).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The matrix as text: rows the true class, columns the predicted one.
pub fn confusion_text(m: &[Vec<u64>]) -> String {
    let n = m.len();
    let mut s = String::from("confusion matrix (rows: true class, columns: predicted)\n");
    s += "      ";
    for c in 0..n {
        s += &format!("{c:>6}");
    }
    s.push('\n');
    for (r, row) in m.iter().enumerate() {
        s += &format!("{r:>6}");
        for v in row {
            s += &format!("{v:>6}");
        }
        s.push('\n');
    }
    s.pop();
    s
}
