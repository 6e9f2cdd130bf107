//! Learning-rate schedules, as functions of the optimizer step `k = 0, 1, ...`.
//!
//! Step `k` is the `(k+1)`-th update; a schedule gives the rate it uses. These match PyTorch's
//! `LambdaLR`/`StepLR` stepped once after every optimizer step (not once per epoch).

use crate::error::{Error, Result};

/// A learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    /// `lr`.
    Constant,
    /// `lr / sqrt(k + 1)`: the lecture's `c / sqrt(k)` with k counted from 1.
    InvSqrt,
    /// `lr * gamma^floor(k / step_size)`, as `StepLR`.
    Step { step_size: u64, gamma: f64 },
    /// `lr * (1 + cos(pi * k / K)) / 2` over the run's `K` steps (cosine annealing to 0
    /// without restarts, as `CosineAnnealingLR` with `eta_min = 0`).
    Cosine,
}

impl Schedule {
    /// The rate of step `k` (from 0) of a run of `total` steps, for base rate `lr`.
    pub fn lr(&self, lr: f64, k: u64, total: u64) -> f64 {
        match *self {
            Schedule::Constant => lr,
            Schedule::InvSqrt => lr / ((k + 1) as f64).sqrt(),
            Schedule::Step { step_size, gamma } => lr * gamma.powf((k / step_size) as f64),
            Schedule::Cosine => {
                let t = k as f64 / total.max(1) as f64;
                lr * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
        }
    }

    /// The command-line name.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::InvSqrt => "inv-sqrt",
            Schedule::Step { .. } => "step",
            Schedule::Cosine => "cosine",
        }
    }

    /// Refuses a step schedule with `step_size` 0 or a non-positive `gamma`.
    pub fn validate(&self) -> Result<()> {
        if let Schedule::Step { step_size, gamma } = *self {
            if step_size == 0 {
                return Err(Error::Config("--step-size must be at least 1".into()));
            }
            if !(gamma > 0.0 && gamma.is_finite()) {
                return Err(Error::Config(format!(
                    "--gamma must be a positive number, got {gamma}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every schedule against its closed form at a few steps (exact in f64: the same operations).
    // This pins the formulas down; that they are PyTorch's schedules is checked against
    // PyTorch's own rates step by step in tests/torch_reference.rs (LambdaLR, StepLR).
    #[test]
    fn schedules_follow_their_formulas() {
        let lr = 0.1;
        for k in [0u64, 1, 2, 5, 9, 10, 99] {
            assert_eq!(Schedule::Constant.lr(lr, k, 100), lr);
            assert_eq!(
                Schedule::InvSqrt.lr(lr, k, 100),
                lr / ((k + 1) as f64).sqrt()
            );
            let s = Schedule::Step {
                step_size: 5,
                gamma: 0.5,
            };
            assert_eq!(s.lr(lr, k, 100), lr * 0.5f64.powi((k / 5) as i32));
            let c = Schedule::Cosine.lr(lr, k, 100);
            let want = lr * (1.0 + (std::f64::consts::PI * k as f64 / 100.0).cos()) / 2.0;
            assert!((c - want).abs() < 1e-15);
        }
        assert_eq!(Schedule::Cosine.lr(lr, 0, 16), lr);
        assert!(Schedule::Cosine.lr(lr, 16, 16).abs() < 1e-15);
        assert_eq!(Schedule::InvSqrt.lr(lr, 3, 10), lr / 2.0);
    }

    #[test]
    fn bad_step_schedules_are_refused() {
        let zero = Schedule::Step {
            step_size: 0,
            gamma: 0.5,
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--step-size"));
        let neg = Schedule::Step {
            step_size: 3,
            gamma: -1.0,
        };
        assert!(neg.validate().unwrap_err().to_string().contains("--gamma"));
    }
}
