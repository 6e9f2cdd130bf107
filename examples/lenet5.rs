//! Trains LeNet-5 on MNIST from Rust: the model built layer by layer, trained with AdamW, its
//! test accuracy printed and its weights saved in PyTorch's layout.
//!
//! cargo run --release --example lenet5 -- [DATA_DIR] [EPOCHS]
//! (DATA_DIR defaults to data/mnist, fetched when missing; EPOCHS to 1.)

use wgrad::data::{fetch, mnist};
use wgrad::gpu::{Context, ContextOptions};
use wgrad::graph::Network;
use wgrad::model::{Loss, ModelSpec};
use wgrad::optim::{Config, Schedule};
use wgrad::train::{fit, EpochReport, FitOptions, Observer, Trainer};

/// Prints one line per epoch.
struct Progress;
impl Observer for Progress {
    fn epoch_end(&mut self, r: &EpochReport) {
        let acc = r.test.accuracy.unwrap_or(0.0);
        println!(
            "epoch {}: train loss {:.4}, test accuracy {:.2}%",
            r.epoch,
            r.train_loss,
            100.0 * acc
        );
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "data/mnist".into()));
    let epochs: usize = args.next().map_or(Ok(1), |e| e.parse())?;

    fetch::ensure_mnist(&dir)?;
    let data = mnist::load(&dir)?;

    // LeNet-5 as a layer list; shapes are inferred and checked by build().
    let spec = ModelSpec::builder("lenet5", &[1, 28, 28])
        .conv(6, 5, 1, 2)
        .relu()
        .maxpool(2, 2)
        .conv(16, 5, 1, 0)
        .relu()
        .maxpool(2, 2)
        .flatten()
        .linear(120)
        .relu()
        .linear(84)
        .relu()
        .linear(10)
        .build(Loss::CrossEntropy)?;

    pollster::block_on(async {
        let ctx = Context::new(&ContextOptions::default()).await?;
        println!("training {} on {}", spec.describe(), ctx.adapter_name());
        let net = Network::new(&ctx, &spec, 0).await?;
        let options = FitOptions {
            epochs,
            batch_size: 64,
            ..FitOptions::default()
        };
        let total = options.total_steps(data.train.len());
        let config = Config {
            lr: 1e-3,
            ..Config::adamw()
        };
        let mut trainer = Trainer::new(net, config, Schedule::Constant, total).await?;
        let summary = fit(
            &mut trainer,
            &data.train,
            &data.test,
            &options,
            &mut Progress,
        )
        .await?;
        println!(
            "test accuracy {:.2}%",
            100.0 * summary.test.accuracy.unwrap_or(0.0)
        );

        let weights = trainer.net.state_dict().await?;
        wgrad::checkpoint::save("lenet5.safetensors".as_ref(), &weights, &Default::default())?;
        println!("saved lenet5.safetensors");
        anyhow::Ok(())
    })
}
