//! The `wgrad` binary end to end: its runs match the library's and PyTorch's numbers, its
//! metrics have the documented fields, and bad input gives a clear error and a non-zero exit
//! status instead of a panic.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use wgrad::checkpoint;
use wgrad::model::Tensor;

fn wgrad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgrad"))
        .args(args)
        .env_remove("WGRAD_MNIST_SOURCE")
        // Kernel choices go to a cache of the tests' own, not the user's.
        .env("WGRAD_CACHE_DIR", env!("CARGO_TARGET_TMPDIR"))
        // No timing: every run picks the same kernels, so runs compare bit for bit.
        .env("WGRAD_TUNE", "0")
        .output()
        .expect("the wgrad binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgrad-cli-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Asserts a failed run: the exit status, no panic, and every part in the message.
fn assert_fails(o: &Output, code: i32, parts: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit status; stderr:\n{err}");
    assert!(!err.contains("panicked"), "it panicked:\n{err}");
    for p in parts {
        assert!(err.contains(p), "stderr should mention {p:?}:\n{err}");
    }
}

/// Writes an IDX file: magic 00 00 08 ndim, big-endian dims, bytes.
fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    fs::write(path, b).unwrap();
}

/// A tiny MNIST-shaped data folder of `n` training and `n` test images.
fn tiny_mnist(dir: &Path, n: u32) {
    let pixels: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (images, labels_name) in [
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    ] {
        write_idx(&dir.join(images), &[n, 28, 28], &pixels);
        write_idx(&dir.join(labels_name), &[n], &labels);
    }
}

#[test]
fn invalid_settings_are_refused_with_the_flag_named() {
    // Settings are checked before any data is read, so no data folder is needed.
    let cases: &[(&[&str], &str)] = &[
        (&["--lr", "0"], "--lr"),
        (&["--lr=-0.1"], "--lr"),
        (&["--beta1", "1.0"], "--beta1"),
        (&["--beta2", "1.5"], "--beta2"),
        (&["--weight-decay=-1"], "--weight-decay"),
        (&["--eps=-1e-8"], "--eps"),
        (&["--optimizer", "adam", "--momentum", "0.9"], "--momentum"),
        (&["--optimizer", "sgd", "--nesterov"], "--nesterov"),
        (&["--optimizer", "sgd", "--momentum=-1"], "--momentum"),
        (&["--schedule", "step"], "--step-size"),
        (
            &["--schedule", "step", "--step-size", "10", "--gamma", "0"],
            "--gamma",
        ),
        (&["--schedule", "constant", "--gamma", "0.5"], "--gamma"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--hidden", "64,0"], "--hidden"),
        (&["--epochs", "0"], "--epochs"),
        (&["--optimizer", "sgd", "--eps", "1e-8"], "--eps"),
        (&["--optimizer", "adagrad", "--beta1", "0.9"], "--beta1"),
    ];
    for (flags, named) in cases {
        let mut args = vec!["train", "--data", "/nonexistent/wgrad"];
        args.extend_from_slice(flags);
        assert_fails(&wgrad(&args), 2, &[named]);
    }
}

#[test]
fn bad_idx_files_name_the_file_and_the_problem() {
    let dir = temp("idx");
    tiny_mnist(&dir, 20);
    let data = dir.to_str().unwrap();
    let images = dir.join("train-images-idx3-ubyte");

    // Truncated: the header promises 20 images, the file holds fewer bytes.
    let full = fs::read(&images).unwrap();
    fs::write(&images, &full[..full.len() - 100]).unwrap();
    assert_fails(
        &wgrad(&["train", "--data", data]),
        1,
        &["train-images-idx3-ubyte", "truncated"],
    );

    // Wrong magic number.
    let mut bad = full.clone();
    bad[2] = 0x0d;
    fs::write(&images, &bad).unwrap();
    assert_fails(
        &wgrad(&["train", "--data", data]),
        1,
        &["train-images-idx3-ubyte", "magic"],
    );

    // 20 images but 19 labels.
    fs::write(&images, &full).unwrap();
    write_idx(&dir.join("train-labels-idx1-ubyte"), &[19], &[1; 19]);
    assert_fails(
        &wgrad(&["train", "--data", data]),
        1,
        &["train-labels-idx1-ubyte", "19", "20"],
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn bad_checkpoints_are_refused_without_training() {
    let dir = temp("ckpt");
    tiny_mnist(&dir, 20);
    let data = dir.to_str().unwrap();
    let run = |init: &Path| wgrad(&["train", "--data", data, "--init", init.to_str().unwrap()]);

    let (good, _) = checkpoint::load(&data_dir().join("torch/init_64.safetensors")).unwrap();
    let save = |name: &str, tensors: &[Tensor]| {
        let p = dir.join(name);
        checkpoint::save(&p, tensors, &Default::default()).unwrap();
        p
    };

    let missing: Vec<Tensor> = good
        .iter()
        .filter(|t| t.name != "fc2.bias")
        .cloned()
        .collect();
    assert_fails(
        &run(&save("missing.safetensors", &missing)),
        1,
        &["missing.safetensors", "fc2.bias", "missing"],
    );

    let mut misshaped = good.clone();
    let w = misshaped
        .iter_mut()
        .find(|t| t.name == "fc1.weight")
        .unwrap();
    w.shape = vec![32, 1568];
    assert_fails(
        &run(&save("misshaped.safetensors", &misshaped)),
        1,
        &[
            "misshaped.safetensors",
            "fc1.weight",
            "[32, 1568]",
            "[64, 784]",
        ],
    );

    let garbage = dir.join("garbage.safetensors");
    fs::write(&garbage, b"this is not a checkpoint").unwrap();
    assert_fails(&run(&garbage), 1, &["garbage.safetensors", "safetensors"]);

    assert_fails(
        &run(&dir.join("absent.safetensors")),
        1,
        &["absent.safetensors"],
    );
    let _ = fs::remove_dir_all(&dir);
}

/// `wgrad train` with --init, --no-shuffle and --train-limit runs the same 16 steps as PyTorch:
/// SGD with momentum lands on PyTorch's weights (see tests/torch_reference.rs for every
/// optimizer), the metrics file has the documented records, and --save writes PyTorch's names.
#[test]
fn train_command_matches_pytorch_and_writes_metrics() {
    if common::context().is_none() {
        return;
    }
    let dir = temp("train");
    let (metrics, saved) = (dir.join("m.jsonl"), dir.join("w.safetensors"));
    let subset = data_dir().join("mnist-subset");
    let init = data_dir().join("torch/init_64.safetensors");
    let o = wgrad(&[
        "train",
        "--data",
        subset.to_str().unwrap(),
        "--init",
        init.to_str().unwrap(),
        "--no-shuffle",
        "--train-limit",
        "1024",
        "--batch-size",
        "64",
        "--max-steps",
        "16",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--momentum",
        "0.9",
        "--schedule",
        "constant",
        "--log-every",
        "4",
        "--metrics",
        metrics.to_str().unwrap(),
        "--save",
        saved.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let (got, _) = checkpoint::load(&saved).unwrap();
    let (want, _) = checkpoint::load(&data_dir().join("torch/momentum.safetensors")).unwrap();
    assert_eq!(
        got.iter().map(|t| (&t.name, &t.shape)).collect::<Vec<_>>(),
        want.iter().map(|t| (&t.name, &t.shape)).collect::<Vec<_>>()
    );
    for (g, w) in got.iter().zip(&want) {
        // SGD passes gradient rounding on unamplified: 3e-8 measured, 1e-6 allowed.
        common::assert_close32(&g.name, &g.data, &w.data, 1e-6, 1e-5);
    }

    let lines: Vec<Value> = fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["step", "step", "step", "step", "epoch", "final"]);
    let reference: Value =
        serde_json::from_slice(&fs::read(data_dir().join("torch/reference.json")).unwrap())
            .unwrap();
    let torch_losses = &reference["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "momentum")
        .unwrap()["losses"];
    for (i, step) in lines[..4].iter().enumerate() {
        let k = 4 * (i + 1);
        assert_eq!(step["step"].as_u64(), Some(k as u64));
        assert_eq!(step["lr"].as_f64(), Some(0.05));
        let want = torch_losses[k - 1].as_f64().unwrap();
        assert!(
            (step["loss"].as_f64().unwrap() - want).abs() < 1e-5,
            "step {k} loss"
        );
    }
    for field in [
        "epoch",
        "train_loss",
        "test_loss",
        "test_acc",
        "seconds",
        "samples_per_sec",
    ] {
        assert!(lines[4][field].is_number(), "epoch record lacks {field}");
    }
    for field in ["steps", "test_loss", "test_acc", "seconds"] {
        assert!(lines[5][field].is_number(), "final record lacks {field}");
    }
    assert_eq!(lines[5]["steps"].as_u64(), Some(16));
    let acc = lines[5]["test_acc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    // No temporary file is left beside the checkpoint.
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn unknown_adapter_lists_the_ones_found() {
    if common::context().is_none() {
        return;
    }
    let dir = temp("adapter");
    tiny_mnist(&dir, 20);
    let o = wgrad(&[
        "train",
        "--data",
        dir.to_str().unwrap(),
        "--adapter",
        "no-such-gpu-xyz",
    ]);
    assert_fails(&o, 1, &["no-such-gpu-xyz", "adapters found"]);
    let _ = fs::remove_dir_all(&dir);
}
