//! Optimizers: their settings with PyTorch's defaults, validation, and the per-step scalars that
//! the fused update kernel (`shaders/optim.wgsl`) takes.
//!
//! References: SGD with momentum and Nesterov (Sutskever et al., 2013, as in `torch.optim.SGD`);
//! AdaGrad (Duchi et al., 2011); Adam (Kingma & Ba, 2015); AdamW (Loshchilov & Hutter, 2019).
//! The exact formulas are PyTorch's and are written out in the shader's header.

pub mod schedule;

pub use schedule::Schedule;

use crate::error::{Error, Result};
use crate::kernels::optim::{self as kernel, Params, Rule};

/// The optimizer family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `torch.optim.SGD`: plain, with momentum, or Nesterov; weight decay as coupled L2.
    Sgd,
    /// `torch.optim.Adagrad`.
    Adagrad,
    /// `torch.optim.Adam`; `weight_decay` adds `wd * p` to the gradient (coupled L2).
    Adam,
    /// `torch.optim.AdamW`; `weight_decay` shrinks the weights directly (decoupled).
    Adamw,
}

impl Kind {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sgd => "sgd",
            Kind::Adagrad => "adagrad",
            Kind::Adam => "adam",
            Kind::Adamw => "adamw",
        }
    }

    /// How many state buffers the size of the parameters the optimizer keeps.
    pub fn state_buffers(self, config: &Config) -> usize {
        match self {
            Kind::Sgd if config.momentum != 0.0 => 1,
            Kind::Sgd => 0,
            Kind::Adagrad => 1,
            Kind::Adam | Kind::Adamw => 2,
        }
    }
}

/// Hyper-parameters of one optimizer. Fields that do not apply to `kind` are ignored.
///
/// Build one with [`Config::sgd`], [`Config::adagrad`], [`Config::adam`] or [`Config::adamw`],
/// which set PyTorch's defaults, then change fields as needed and call [`Config::validate`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    pub kind: Kind,
    /// Base learning rate (before the schedule). PyTorch: SGD, Adam, AdamW 1e-3; AdaGrad 1e-2.
    pub lr: f64,
    /// SGD momentum `mu` (0 = none).
    pub momentum: f64,
    /// SGD dampening (PyTorch's default 0).
    pub dampening: f64,
    /// SGD Nesterov momentum: the step uses `g + mu * b`.
    pub nesterov: bool,
    /// L2 weight decay (coupled for SGD, AdaGrad and Adam; decoupled for AdamW, default 1e-2).
    pub weight_decay: f64,
    /// Adam's `beta1` (0.9).
    pub beta1: f64,
    /// Adam's `beta2` (0.999).
    pub beta2: f64,
    /// Denominator epsilon: Adam 1e-8, AdaGrad 1e-10.
    pub eps: f64,
    /// AdaGrad's learning-rate decay (PyTorch's `lr_decay`, default 0).
    pub lr_decay: f64,
    /// Adam: use `m / sqrt(v + eps)` (bias-corrected `v`) instead of `m / (sqrt(v) + eps)`, as
    /// the lecture and some texts write Adam. Not PyTorch's formula; off by default.
    pub eps_inside_sqrt: bool,
}

impl Config {
    fn base(kind: Kind, lr: f64) -> Self {
        Config {
            kind,
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            lr_decay: 0.0,
            eps_inside_sqrt: false,
        }
    }

    /// `torch.optim.SGD` defaults: lr 1e-3, no momentum, no weight decay.
    pub fn sgd() -> Self {
        Config::base(Kind::Sgd, 1e-3)
    }

    /// `torch.optim.Adagrad` defaults: lr 1e-2, eps 1e-10, accumulator starting at 0.
    pub fn adagrad() -> Self {
        Config {
            eps: 1e-10,
            ..Config::base(Kind::Adagrad, 1e-2)
        }
    }

    /// `torch.optim.Adam` defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adam() -> Self {
        Config::base(Kind::Adam, 1e-3)
    }

    /// `torch.optim.AdamW` defaults: as Adam, with weight decay 1e-2.
    pub fn adamw() -> Self {
        Config {
            weight_decay: 1e-2,
            ..Config::base(Kind::Adamw, 1e-3)
        }
    }

    /// The defaults of `kind`.
    pub fn default_for(kind: Kind) -> Self {
        match kind {
            Kind::Sgd => Config::sgd(),
            Kind::Adagrad => Config::adagrad(),
            Kind::Adam => Config::adam(),
            Kind::Adamw => Config::adamw(),
        }
    }

    /// Refuses settings PyTorch would refuse, naming the command-line flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr must be a positive number, got {}", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!(
                "--weight-decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return bad(format!("--eps must be >= 0, got {}", self.eps));
        }
        match self.kind {
            Kind::Sgd => {
                if !(self.momentum >= 0.0 && self.momentum.is_finite()) {
                    return bad(format!("--momentum must be >= 0, got {}", self.momentum));
                }
                if !(0.0..=1.0).contains(&self.dampening) {
                    return bad(format!(
                        "Config::dampening must be in [0, 1], got {}",
                        self.dampening
                    ));
                }
                if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
                    return bad(
                        "--nesterov needs a positive --momentum and zero dampening".to_string()
                    );
                }
            }
            Kind::Adagrad => {
                if self.lr_decay.is_nan() || self.lr_decay < 0.0 {
                    return bad(format!(
                        "Config::lr_decay must be >= 0, got {}",
                        self.lr_decay
                    ));
                }
            }
            Kind::Adam | Kind::Adamw => {
                for (flag, b) in [("--beta1", self.beta1), ("--beta2", self.beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return bad(format!("{flag} must be in [0, 1), got {b}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The kernel entry point this optimizer runs.
    pub fn rule(&self) -> Rule {
        match self.kind {
            Kind::Sgd => Rule::Sgd,
            Kind::Adagrad => Rule::Adagrad,
            Kind::Adam | Kind::Adamw => Rule::Adam,
        }
    }

    /// The update kernel's parameters for optimizer step `t` (counting from 1) at rate `lr`
    /// (the scheduled rate of this step), over `len` packed elements with grid row stride
    /// `row_stride`. Every scalar is computed here in f64, as PyTorch computes its Python
    /// floats, and rounded to f32 once.
    pub fn step_params(&self, t: u64, lr: f64, len: usize, row_stride: u32) -> Params {
        let mut flags = 0;
        if t == 1 {
            flags |= kernel::FLAG_FIRST;
        }
        if self.nesterov {
            flags |= kernel::FLAG_NESTEROV;
        }
        if self.eps_inside_sqrt {
            flags |= kernel::FLAG_EPS_INSIDE;
        }
        if self.momentum != 0.0 {
            flags |= kernel::FLAG_MOMENTUM;
        }
        let tf = t as f64;
        let bc1 = 1.0 - self.beta1.powf(tf);
        let bc2 = 1.0 - self.beta2.powf(tf);
        let (coupled_wd, decay) = match self.kind {
            Kind::Adamw => (0.0, 1.0 - lr * self.weight_decay),
            _ => (self.weight_decay, 1.0),
        };
        Params {
            len4: (len / 4) as u32,
            row_stride,
            flags,
            _pad: 0,
            lr: lr as f32,
            weight_decay: coupled_wd as f32,
            momentum: self.momentum as f32,
            dampening: self.dampening as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            eps: self.eps as f32,
            step_size: (lr / bc1) as f32,
            bc2: bc2 as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            decay: decay as f32,
            clr: (lr / (1.0 + (tf - 1.0) * self.lr_decay)) as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            one_minus_dampening: (1.0 - self.dampening) as f32,
            _pad1: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pytorch_defaults() {
        let a = Config::adamw();
        assert_eq!(
            (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay),
            (1e-3, 0.9, 0.999, 1e-8, 1e-2)
        );
        let g = Config::adagrad();
        assert_eq!((g.lr, g.eps, g.lr_decay), (1e-2, 1e-10, 0.0));
        let s = Config::sgd();
        assert_eq!((s.momentum, s.dampening, s.nesterov), (0.0, 0.0, false));
        assert_eq!(Config::adam().weight_decay, 0.0);
    }

    #[test]
    fn invalid_settings_name_their_flag() {
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    lr: 0.0,
                    ..Config::adam()
                },
                "--lr",
            ),
            (
                Config {
                    lr: -1.0,
                    ..Config::sgd()
                },
                "--lr",
            ),
            (
                Config {
                    beta1: 1.0,
                    ..Config::adam()
                },
                "--beta1",
            ),
            (
                Config {
                    beta2: -0.1,
                    ..Config::adamw()
                },
                "--beta2",
            ),
            (
                Config {
                    weight_decay: -1e-3,
                    ..Config::adamw()
                },
                "--weight-decay",
            ),
            (
                Config {
                    eps: -1e-8,
                    ..Config::adam()
                },
                "--eps",
            ),
            (
                Config {
                    momentum: -0.5,
                    ..Config::sgd()
                },
                "--momentum",
            ),
            (
                Config {
                    nesterov: true,
                    ..Config::sgd()
                },
                "--nesterov",
            ),
        ];
        for (config, flag) in cases {
            let err = config.validate().expect_err(flag).to_string();
            assert!(err.contains(flag), "{err:?} should name {flag}");
        }
        Config::adamw().validate().unwrap();
    }

    #[test]
    fn adam_scalars_are_bias_corrected() {
        let c = Config::adam();
        let p = c.step_params(3, 1e-3, 8, 256);
        let bc1 = 1.0 - 0.9f64.powi(3);
        let bc2 = 1.0 - 0.999f64.powi(3);
        assert_eq!(p.step_size, (1e-3 / bc1) as f32);
        assert_eq!(p.bc2_sqrt, bc2.sqrt() as f32);
        assert_eq!(p.decay, 1.0);
        let w = Config::adamw().step_params(1, 1e-3, 8, 256);
        assert_eq!((w.decay, w.weight_decay), ((1.0 - 1e-5f64) as f32, 0.0));
        assert_eq!(w.flags & kernel::FLAG_FIRST, kernel::FLAG_FIRST);
        // 1 - beta2 rounded once from f64, not computed in f32 (which is 1.3e-5 off).
        assert_eq!(w.one_minus_beta2, 0.001f32);
        assert_eq!(w.one_minus_beta1, 0.1f32);
        assert_ne!(w.one_minus_beta2, 1.0 - 0.999f32);
    }
}
