//! `wgrad bench` and the kernel tuning cache, through the binary: the JSON lines carry the fields
//! the issue fixes, exactly one variant per size is marked chosen, the choice is cached on disk
//! and reused, and `WGRAD_KERNEL` forces a variant or is refused when it names none.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bench(cache: &Path, kernel: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wgrad"));
    cmd.arg("bench").args(args).env("WGRAD_CACHE_DIR", cache);
    match kernel {
        Some(k) => cmd.env("WGRAD_KERNEL", k),
        None => cmd.env_remove("WGRAD_KERNEL"),
    };
    cmd.output().expect("the wgrad binary runs")
}

fn lines(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn fresh_cache(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn matmul_bench_marks_one_choice_and_caches_it() {
    if common::context().is_none() {
        return;
    }
    let cache = fresh_cache("bench-cache");
    let first = lines(&bench(&cache, None, &["matmul", "--sizes", "40", "--json"]));
    assert!(
        first.len() >= 2,
        "at least strided and one more variant: {first:?}"
    );
    for l in &first {
        assert_eq!(l["bench"], "matmul");
        assert_eq!(l["n"], 40);
        assert!(l["gflops"].as_f64().unwrap() > 0.0);
        assert!(l["adapter"].as_str().is_some_and(|a| !a.is_empty()));
    }
    let chosen: Vec<&Value> = first.iter().filter(|l| l["chosen"] == true).collect();
    assert_eq!(chosen.len(), 1, "{first:?}");
    let variant = chosen[0]["variant"].as_str().unwrap().to_string();

    // The choice is on disk under this adapter and shape, and the next run keeps it.
    let text = std::fs::read_to_string(cache.join("kernels.json")).unwrap();
    let saved: Value = serde_json::from_str(&text).unwrap();
    let entries = saved["entries"].as_object().unwrap();
    let key = entries
        .keys()
        .find(|k| k.contains("matmul 40x40x40"))
        .unwrap();
    assert_eq!(entries[key]["variant"], variant.as_str());
    let again = lines(&bench(&cache, None, &["matmul", "--sizes", "40", "--json"]));
    let chosen_again: Vec<&Value> = again.iter().filter(|l| l["chosen"] == true).collect();
    assert_eq!(chosen_again[0]["variant"], variant.as_str());
}

#[test]
fn wgrad_kernel_forces_a_variant_or_names_the_valid_ones() {
    if common::context().is_none() {
        return;
    }
    let cache = fresh_cache("bench-forced");
    let forced = lines(&bench(
        &cache,
        Some("strided"),
        &["matmul", "--sizes", "24", "--json"],
    ));
    let chosen: Vec<&Value> = forced.iter().filter(|l| l["chosen"] == true).collect();
    assert_eq!(chosen.len(), 1);
    assert_eq!(chosen[0]["variant"], "strided");

    let bad = bench(&cache, Some("fastest"), &["matmul", "--sizes", "24"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("WGRAD_KERNEL=fastest") && err.contains("tex8-sg"),
        "{err}"
    );
}

#[test]
fn train_and_optim_benches_report_their_fields() {
    if common::context().is_none() {
        return;
    }
    let cache = fresh_cache("bench-train");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist-subset");
    let args = [
        "train",
        "--model",
        "mlp",
        "--batch-size",
        "32",
        "--steps",
        "2",
        "--json",
        "--data",
        data.to_str().unwrap(),
    ];
    let out = lines(&bench(&cache, None, &args));
    let t = &out[0];
    assert_eq!(t["bench"], "train");
    assert_eq!(t["model"], "mlp");
    assert_eq!(t["batch_size"], 32);
    // Samples per second and milliseconds per step are two views of one median.
    let (sps, ms) = (
        t["samples_per_sec"].as_f64().unwrap(),
        t["ms_per_step"].as_f64().unwrap(),
    );
    assert!((sps * ms / 1e3 - 32.0).abs() < 1e-6, "{t}");
    // 784-64-10: the first layer's forward product, the fused head's two passes (in place of
    // six dispatches), the first layer's weight gradient and the update; a kernel that needs
    // its operands packed may add up to two.
    let d = t["dispatches_per_step"].as_u64().unwrap();
    assert!((5..=7).contains(&d), "{t}");

    let out = lines(&bench(
        &cache,
        None,
        &["optim", "--params", "1000", "--json"],
    ));
    assert_eq!(out[0]["bench"], "optim");
    assert_eq!(out[0]["params"], 1000);
    assert!(out[0]["gb_per_sec"].as_f64().unwrap() > 0.0);
    assert!(out[0]["copy_gb_per_sec"].as_f64().unwrap() > 0.0);
}
