//! The study and long-run commands end to end, on the committed MNIST subset: `compare` writes
//! its CSV, plots and table; `plot` and `eval` write images that decode at the stated size;
//! `train` stopped by Ctrl-C or resumed from a periodic checkpoint ends with the weights of an
//! uninterrupted run; bad input is refused with a clear message and the right exit status.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wgrad::checkpoint;

fn wgrad(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .expect("the wgrad binary runs")
}

/// The binary with the tests' environment: no MNIST source, a kernel cache of the tests' own,
/// and no kernel timing, so that every run picks the same kernels and runs compare bit for bit.
fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wgrad"));
    c.env_remove("WGRAD_MNIST_SOURCE")
        .env("WGRAD_CACHE_DIR", env!("CARGO_TARGET_TMPDIR"))
        .env("WGRAD_TUNE", "0");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn subset() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/mnist-subset")
        .display()
        .to_string()
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgrad-study-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// Asserts a failed run: the exit status, no panic, and every part in the message.
fn assert_fails(o: &Output, code: i32, parts: &[&str]) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "exit status; stderr:\n{err}");
    assert!(!err.contains("panicked"), "it panicked:\n{err}");
    for p in parts {
        assert!(err.contains(p), "stderr should mention {p:?}:\n{err}");
    }
}

/// Width and height of a PNG file, decoding it whole.
fn png_size(path: &Path) -> (u32, u32) {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    (info.width, info.height)
}

/// The tensors of a safetensors file, without its metadata (whose order may vary).
fn tensors(path: &Path) -> Vec<wgrad::model::Tensor> {
    checkpoint::load(path).unwrap().0
}

#[test]
fn compare_writes_the_csv_the_plots_and_the_table() {
    if common::context().is_none() {
        return;
    }
    let out = temp("compare");
    let data = subset();
    let o = wgrad(&[
        "compare",
        "--data",
        &data,
        "--optimizers",
        "sgd,adamw",
        "--lr",
        "sgd=0.1",
        "--epochs",
        "2",
        "--train-limit",
        "640",
        "--out",
        s(&out),
    ]);
    assert_ok(&o);
    let csv = fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "optimizer",
            "lr",
            "epoch",
            "train_loss",
            "test_loss",
            "test_acc",
            "seconds"
        ]
    );
    let keys: Vec<(&str, &str, &str)> = rows[1..].iter().map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(
        keys,
        [
            ("sgd", "0.1", "1"),
            ("sgd", "0.1", "2"),
            ("adamw", "0.001", "1"),
            ("adamw", "0.001", "2")
        ]
    );
    for r in &rows[1..] {
        let acc: f64 = r[5].parse().unwrap();
        assert!(
            (0.0..=1.0).contains(&acc) && r[3].parse::<f64>().unwrap() > 0.0,
            "{r:?}"
        );
    }
    // 640 rows at batch 64 are 10 steps an epoch, logged every 10: 2 lines per run.
    let steps = fs::read_to_string(out.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().count(), 1 + 2 * 2, "{steps}");
    assert_eq!(png_size(&out.join("loss.png")), (1600, 600));
    assert_eq!(png_size(&out.join("accuracy.png")), (1600, 650));
    for svg in ["loss.svg", "accuracy.svg"] {
        let t = fs::read_to_string(out.join(svg)).unwrap();
        assert!(t.contains("<svg") && t.contains("adamw"), "{svg}");
    }
    let table = text(&o.stdout);
    assert!(
        table.contains("| optimizer |") && table.contains("| adamw | 0.001 |"),
        "{table}"
    );
    assert_eq!(
        fs::read_to_string(out.join("summary.md")).unwrap().trim(),
        table.trim()
    );

    // --replot redraws from the CSV files alone, to the same table.
    fs::remove_file(out.join("accuracy.png")).unwrap();
    let o = wgrad(&["compare", "--replot", "--out", s(&out)]);
    assert_ok(&o);
    assert_eq!(text(&o.stdout), table);
    assert_eq!(png_size(&out.join("accuracy.png")), (1600, 650));
}

#[test]
fn compare_refuses_bad_settings_before_reading_data() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--lr", "nadam=0.1"],
            &["--lr", "unknown optimizer \"nadam\""],
        ),
        (
            &["--lr", "sgd=fast"],
            &["--lr", "\"sgd=fast\" is not a non-negative number"],
        ),
        (
            &["--optimizers", "sgd", "--lr", "adam=0.1"],
            &["adam, which is not in --optimizers"],
        ),
        (
            &["--optimizers", "sgd,rmsprop"],
            &["--optimizers", "unknown optimizer"],
        ),
        (&["--lr", "0"], &["--lr must be a positive number"]),
        (&["--weight-decay", "adamw=-1"], &["--weight-decay"]),
    ];
    for (args, parts) in cases {
        let mut all = vec!["compare", "--data", "/nonexistent/wgrad-data"];
        all.extend_from_slice(args);
        assert_fails(&wgrad(&all), 2, parts);
    }
}

#[test]
fn plot_and_eval_write_images() {
    if common::context().is_none() {
        return;
    }
    let dir = temp("plot");
    let data = subset();
    let metrics = dir.join("m.jsonl");
    let weights = dir.join("w.safetensors");
    let o = wgrad(&[
        "train",
        "--data",
        &data,
        "--train-limit",
        "600",
        "--val",
        "100",
        "--epochs",
        "2",
        "--log-every",
        "2",
        "--metrics",
        s(&metrics),
        "--save",
        s(&weights),
    ]);
    assert_ok(&o);
    let m = fs::read_to_string(&metrics).unwrap();
    assert!(
        m.contains("\"val_loss\"") && m.contains("\"val_acc\""),
        "{m}"
    );
    assert!(m.contains("\"best_epoch\""), "{m}");

    let png = dir.join("curves.png");
    assert_ok(&wgrad(&["plot", s(&metrics), "-o", s(&png)]));
    // Three panels of 560 x 560: step loss, epoch loss, accuracy.
    assert_eq!(png_size(&png), (1680, 560));
    let bad = dir.join("bad.jsonl");
    fs::write(
        &bad,
        "{\"kind\":\"step\",\"step\":1,\"loss\":0.5}\nnot json\n",
    )
    .unwrap();
    let o = wgrad(&["plot", s(&bad), "-o", s(&dir.join("bad.png"))]);
    assert_fails(&o, 1, &[s(&bad), "line 2", "not a JSON object"]);

    let out = dir.join("eval");
    let o = wgrad(&[
        "eval",
        "--data",
        &data,
        "--weights",
        s(&weights),
        "--out",
        s(&out),
    ]);
    assert_ok(&o);
    let printed = text(&o.stdout);
    assert!(printed.contains("test accuracy") && printed.contains("confusion matrix"));
    // The 10 matrix rows add up to the 1000 test images.
    let total: u64 = printed
        .lines()
        .skip_while(|l| !l.starts_with("confusion"))
        .skip(2)
        .take(10)
        .flat_map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(|v| v.parse::<u64>().unwrap())
        })
        .sum();
    assert_eq!(total, 1000, "{printed}");
    assert_eq!(png_size(&out.join("confusion.png")), (760, 720));
    let o = wgrad(&[
        "eval",
        "--data",
        &data,
        "--hidden",
        "32",
        "--weights",
        s(&weights),
    ]);
    assert_fails(&o, 1, &[s(&weights), "fc1.weight"]);

    // An autoencoder: the reconstruction loss and a grid of 16 digits over 4 strips.
    let ae = dir.join("ae.safetensors");
    let ae_args = ["--model", "autoencoder", "--hidden", "32"];
    let mut train = vec![
        "train",
        "--data",
        &data,
        "--train-limit",
        "200",
        "--epochs",
        "1",
    ];
    train.extend_from_slice(&ae_args);
    train.extend_from_slice(&["--save", s(&ae)]);
    assert_ok(&wgrad(&train));
    let mut eval = vec![
        "eval",
        "--data",
        &data,
        "--weights",
        s(&ae),
        "--out",
        s(&out),
    ];
    eval.extend_from_slice(&ae_args);
    let o = wgrad(&eval);
    assert_ok(&o);
    assert!(text(&o.stdout).contains("reconstruction MSE"));
    // 8 digits of 28 x 3 pixels with 6-pixel gaps; 4 strips with 28-pixel labels.
    assert_eq!(
        png_size(&out.join("reconstructions.png")),
        (6 + 8 * 90, 4 * 118 + 6)
    );
}

/// Training flags shared by the resume tests: 320 rows at batch 32, 10 steps an epoch.
fn run_args<'a>(data: &'a str, epochs: &'a str) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--data",
        data,
        "--train-limit",
        "320",
        "--batch-size",
        "32",
    ];
    v.extend_from_slice(&[
        "--hidden",
        "16",
        "--epochs",
        epochs,
        "--log-every",
        "1",
        "-q",
    ]);
    v
}

#[test]
fn resumed_runs_match_the_uninterrupted_one() {
    if common::context().is_none() {
        return;
    }
    let dir = temp("resume");
    let data = subset();
    let full = dir.join("full.safetensors");
    let mut args = run_args(&data, "3");
    args.extend_from_slice(&["--save", s(&full)]);
    assert_ok(&wgrad(&args));

    // Checkpoints every 13 steps: the last one is at step 26, in epoch 3.
    let ckpt = dir.join("ckpt.safetensors");
    let mut args = run_args(&data, "3");
    args.extend_from_slice(&["--checkpoint", s(&ckpt), "--checkpoint-every", "13"]);
    assert_ok(&wgrad(&args));
    let (_, meta) = checkpoint::load(&ckpt).unwrap();
    assert_eq!(meta["steps"], "26");
    let resumed = dir.join("resumed.safetensors");
    let mut args = run_args(&data, "3");
    args.extend_from_slice(&["--resume", s(&ckpt), "--save", s(&resumed)]);
    assert_ok(&wgrad(&args));
    assert_eq!(tensors(&resumed), tensors(&full), "resumed weights differ");

    // Checkpoints another run cannot continue are refused, and left as they were.
    let bytes = fs::read(&ckpt).unwrap();
    let mut args = run_args(&data, "3");
    args.extend_from_slice(&["--resume", s(&ckpt), "--optimizer", "adam"]);
    assert_fails(
        &wgrad(&args),
        2,
        &["checkpoint was written for optimizer adamw, this run uses adam"],
    );
    let mut args = run_args(&data, "5");
    args.extend_from_slice(&["--resume", s(&ckpt)]);
    assert_fails(
        &wgrad(&args),
        2,
        &["cosine schedule over 30 steps, this run has 50"],
    );
    assert_eq!(
        fs::read(&ckpt).unwrap(),
        bytes,
        "the checkpoint was changed"
    );
    let garbage = dir.join("garbage.safetensors");
    fs::write(
        &garbage,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}",
    )
    .unwrap();
    let mut args = run_args(&data, "3");
    args.extend_from_slice(&["--resume", s(&garbage)]);
    assert_fails(
        &wgrad(&args),
        1,
        &[s(&garbage), "not a valid safetensors file"],
    );
    assert_eq!(
        fs::read(&garbage).unwrap(),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}"
    );
}

/// Ctrl-C (SIGINT) in the middle of a run saves a checkpoint, says how to resume and exits
/// 130; resuming ends with the uninterrupted run's weights.
#[cfg(unix)]
#[test]
fn ctrl_c_saves_a_checkpoint_that_resumes_exactly() {
    if common::context().is_none() {
        return;
    }
    let dir = temp("ctrlc");
    let data = subset();
    let epochs = "40"; // 400 steps: long enough to be interrupted midway
    let metrics = dir.join("m.jsonl");
    let ckpt = dir.join("ckpt.safetensors");
    let mut args = run_args(&data, epochs);
    args.extend_from_slice(&["--metrics", s(&metrics), "--checkpoint", s(&ckpt)]);
    let child = command()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first logged step, then interrupt.
    let started = Instant::now();
    while !fs::read_to_string(&metrics).is_ok_and(|m| m.contains("\"step\"")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "stderr:\n{err}");
    assert!(
        err.contains("saved checkpoint") && err.contains("resume with:"),
        "{err}"
    );
    let m = fs::read_to_string(&metrics).unwrap();
    assert!(
        m.lines().last().unwrap().contains("\"interrupted\":true"),
        "{m}"
    );
    let (_, meta) = checkpoint::load(&ckpt).unwrap();
    let stopped: u64 = meta["steps"].parse().unwrap();
    assert!(stopped < 400, "the run finished before Ctrl-C arrived");

    let resumed = dir.join("resumed.safetensors");
    let mut args = run_args(&data, epochs);
    args.extend_from_slice(&["--resume", s(&ckpt), "--save", s(&resumed)]);
    assert_ok(&wgrad(&args));
    let full = dir.join("full.safetensors");
    let mut args = run_args(&data, epochs);
    args.extend_from_slice(&["--save", s(&full)]);
    assert_ok(&wgrad(&args));
    assert_eq!(
        tensors(&resumed),
        tensors(&full),
        "stopped at step {stopped}"
    );
}
