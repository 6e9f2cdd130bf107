//! Helpers shared by the integration tests: one GPU context per test binary, seeded random
//! data, and a tolerance check that reports the worst element.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgrad::gpu::{Context, ContextOptions};

/// The shared context, or `None` (with a printed reason) when this machine has no adapter.
///
/// Under CI (`CI` set) a missing adapter fails the test instead: CI installs llvmpipe, so no
/// adapter there means the setup is broken, and skipping would hide it.
pub fn context() -> Option<Context> {
    static CTX: OnceLock<Option<Context>> = OnceLock::new();
    CTX.get_or_init(
        || match pollster::block_on(Context::new(&ContextOptions::default())) {
            Ok(ctx) => {
                eprintln!("adapter: {}", ctx.adapter_name());
                Some(ctx)
            }
            Err(e) if std::env::var_os("CI").is_some() => panic!("CI has no GPU adapter: {e}"),
            Err(e) => {
                eprintln!("skipping GPU test: {e}");
                None
            }
        },
    )
    .clone()
}

/// `n` values uniform in `[-scale, scale)` from `seed`.
pub fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// `n` labels in `0..classes` from `seed`.
pub fn random_labels(n: usize, classes: u32, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..classes)).collect()
}

/// Asserts `|got - want| <= abs + rel * |want|` elementwise; on failure names the first bad
/// index, both values and the largest difference.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], abs: f64, rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut worst = (0usize, 0.0f64);
    let mut first_bad = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g as f64 - w).abs();
        if d > worst.1 || d.is_nan() {
            worst = (i, d);
        }
        let within = d <= abs + rel * w.abs(); // false for NaN too
        if first_bad.is_none() && !within {
            first_bad = Some(i);
        }
    }
    if let Some(i) = first_bad {
        panic!(
            "{what}: element {i} is {} but should be {} (max |diff| {:e} at {}; tolerance {abs:e} \
             + {rel:e} |want|)",
            got[i], want[i], worst.1, worst.0
        );
    }
}

/// As [`assert_close`] with an f32 expectation.
pub fn assert_close32(what: &str, got: &[f32], want: &[f32], abs: f64, rel: f64) {
    let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    assert_close(what, got, &want, abs, rel);
}
