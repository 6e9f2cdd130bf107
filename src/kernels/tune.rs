//! Choosing a kernel variant per adapter and shape: time the candidates once, keep the fastest
//! one that is correct, and remember the choice.
//!
//! The [`Tuning`] of a [`Context`](crate::gpu::Context) holds the clock to time with, a variant
//! forced by the user (`WGRAD_KERNEL`), and the [`TuneCache`] of earlier choices. The library
//! never touches files or reads a clock of its own: the binary hands it a clock (any function
//! returning seconds) and loads and saves the cache (serde JSON) around a run, so a second run on
//! the same adapter starts at once. Without a clock nothing is timed and each kernel module
//! falls back to its static preference order.
//!
//! Cache keys name the adapter, its driver and backend, the kernel and the shape with its
//! operand layout, so a driver update or another adapter tunes afresh.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// A monotonic clock in seconds, supplied by the caller (`std::time::Instant` natively,
/// `performance.now()` on the web).
#[derive(Clone)]
pub struct Clock(pub Arc<dyn Fn() -> f64 + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// What was chosen for one key, with the candidates' timings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub variant: String,
    /// Median microseconds per run of each candidate that passed the correctness check.
    pub micros: BTreeMap<String, f64>,
}

/// Choices keyed by adapter, kernel and shape: the on-disk cache.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TuneCache {
    /// Bumped when kernels change in a way that invalidates old timings.
    pub version: u32,
    pub entries: BTreeMap<String, Choice>,
}

/// The cache format this build writes; caches of another version are ignored.
pub const CACHE_VERSION: u32 = 1;

/// How a context picks kernel variants.
#[derive(Clone, Debug, Default)]
pub struct TuningOptions {
    /// Times candidates when set; without it no timing happens.
    pub clock: Option<Clock>,
    /// A variant name every kernel uses where it applies (`WGRAD_KERNEL`).
    pub forced: Option<String>,
    /// Choices from earlier runs.
    pub cache: TuneCache,
}

/// The tuning state of one device (shared by its context's clones).
#[derive(Debug, Default)]
pub struct Tuning {
    pub clock: Option<Clock>,
    pub forced: Option<String>,
    cache: Mutex<TuneCache>,
    changed: Mutex<bool>,
}

impl Tuning {
    pub fn new(options: TuningOptions) -> Self {
        let cache = if options.cache.version == CACHE_VERSION {
            options.cache
        } else {
            TuneCache {
                version: CACHE_VERSION,
                entries: BTreeMap::new(),
            }
        };
        Tuning {
            clock: options.clock,
            forced: options.forced.filter(|s| !s.is_empty()),
            cache: Mutex::new(cache),
            changed: Mutex::new(false),
        }
    }

    /// The time now, when a clock was given.
    pub fn now(&self) -> Option<f64> {
        self.clock.as_ref().map(|c| (c.0)())
    }

    pub fn lookup(&self, key: &str) -> Option<Choice> {
        self.cache
            .lock()
            .expect("tuning cache poisoned")
            .entries
            .get(key)
            .cloned()
    }

    pub fn record(&self, key: String, choice: Choice) {
        self.cache
            .lock()
            .expect("tuning cache poisoned")
            .entries
            .insert(key, choice);
        *self.changed.lock().expect("tuning cache poisoned") = true;
    }

    /// The cache, and whether anything was added since it was loaded.
    pub fn snapshot(&self) -> (TuneCache, bool) {
        let cache = self.cache.lock().expect("tuning cache poisoned").clone();
        (cache, *self.changed.lock().expect("tuning cache poisoned"))
    }
}

/// The median of `xs` (which must not be empty).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_cache_of_another_version_is_dropped() {
        let mut cache = TuneCache {
            version: CACHE_VERSION + 1,
            ..Default::default()
        };
        cache.entries.insert(
            "k".into(),
            Choice {
                variant: "strided".into(),
                micros: BTreeMap::new(),
            },
        );
        let t = Tuning::new(TuningOptions {
            cache,
            ..Default::default()
        });
        assert!(t.lookup("k").is_none());
        assert_eq!(t.snapshot().0.version, CACHE_VERSION);
    }
}
