//! Model descriptions: a list of layers, checked and resolved into shapes, parameter tensors
//! with PyTorch's names and layouts, and PyTorch's default initialisation.
//!
//! A [`ModelSpec`] says what the network is; [`crate::graph::Network`] puts it on the GPU.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// One layer, appended in order. The input width of each layer is the output of the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layer {
    /// `y = x W^T + b`, `W: [out, in]`, `b: [out]`, as `torch.nn.Linear`.
    Linear { out: usize },
    /// `max(x, 0)`, elementwise.
    Relu,
}

/// A network: input width, layers, and the loss on its output.
///
/// The loss is softmax cross-entropy over the last layer's outputs, which are the classes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    /// Preset name (`mlp`), used in checkpoint metadata.
    pub name: String,
    /// Features per input row (784 for MNIST).
    pub input: usize,
    pub layers: Vec<Layer>,
}

impl ModelSpec {
    /// The multi-layer perceptron `input -> hidden[0] -> ... -> classes`, ReLU after every
    /// hidden layer and none after the last: PyTorch names `fc1 .. fcN`.
    pub fn mlp(input: usize, hidden: &[usize], classes: usize) -> Self {
        let mut layers = Vec::new();
        for &h in hidden {
            layers.push(Layer::Linear { out: h });
            layers.push(Layer::Relu);
        }
        layers.push(Layer::Linear { out: classes });
        ModelSpec {
            name: "mlp".into(),
            input,
            layers,
        }
    }

    /// Checks the layer list and resolves it into linear ops with their shapes and names.
    pub fn resolve(&self) -> Result<Vec<LinearOp>> {
        if self.input == 0 {
            return Err(Error::Shape("model input width is 0".into()));
        }
        let mut ops: Vec<LinearOp> = Vec::new();
        let mut width = self.input;
        for (i, layer) in self.layers.iter().enumerate() {
            match *layer {
                Layer::Linear { out } => {
                    if out == 0 {
                        return Err(Error::Shape(format!("layer {i} (linear) has 0 outputs")));
                    }
                    ops.push(LinearOp {
                        name: format!("fc{}", ops.len() + 1),
                        input: width,
                        output: out,
                        relu: false,
                    });
                    width = out;
                }
                Layer::Relu => match ops.last_mut() {
                    Some(op) if !op.relu => op.relu = true,
                    Some(_) => {
                        return Err(Error::Shape(format!(
                            "layer {i} (relu) follows another relu"
                        )))
                    }
                    None => {
                        return Err(Error::Shape(format!(
                            "layer {i} (relu) comes before any linear layer"
                        )))
                    }
                },
            }
        }
        match ops.last() {
            None => Err(Error::Shape("model has no linear layer".into())),
            Some(op) if op.relu => Err(Error::Shape(
                "the last layer is a relu; the loss needs raw logits from a linear layer".into(),
            )),
            Some(_) => Ok(ops),
        }
    }

    /// Number of classes (outputs of the last layer).
    pub fn classes(&self) -> Result<usize> {
        Ok(self.resolve()?.last().map(|op| op.output).unwrap_or(0))
    }

    /// A one-line description, e.g. `mlp 784-64-10`.
    pub fn describe(&self) -> String {
        let mut widths = vec![self.input.to_string()];
        for l in &self.layers {
            if let Layer::Linear { out } = l {
                widths.push(out.to_string());
            }
        }
        format!("{} {}", self.name, widths.join("-"))
    }
}

/// A linear layer after resolution, with the ReLU that follows it fused in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearOp {
    /// PyTorch attribute name, `fc1`, `fc2`, ...
    pub name: String,
    pub input: usize,
    pub output: usize,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// A named host tensor, row-major, in a PyTorch `state_dict` layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Where one parameter tensor lives in the packed buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub shape: Vec<usize>,
    /// Element offset, a multiple of [`ALIGN`].
    pub offset: usize,
    pub len: usize,
}

/// Every tensor starts at a multiple of 64 elements (256 bytes): the optimizer's vec4 loads need
/// 4, and 256 bytes is wgpu's usual storage-binding offset alignment, so a tensor can later be
/// bound on its own.
pub const ALIGN: usize = 64;

/// The packed layout of all parameters (and, identically, gradients and optimizer state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    pub slots: Vec<Slot>,
    /// Total elements including padding, a multiple of [`ALIGN`].
    pub len: usize,
}

impl ParamLayout {
    /// Lays out `fcK.weight [out, in]` then `fcK.bias [out]` for each op in order.
    pub fn new(ops: &[LinearOp]) -> Self {
        let mut slots = Vec::new();
        let mut len = 0;
        for op in ops {
            for (suffix, shape) in [
                ("weight", vec![op.output, op.input]),
                ("bias", vec![op.output]),
            ] {
                let n: usize = shape.iter().product();
                slots.push(Slot {
                    name: format!("{}.{suffix}", op.name),
                    shape,
                    offset: len,
                    len: n,
                });
                len += n.div_ceil(ALIGN) * ALIGN;
            }
        }
        ParamLayout { slots, len }
    }

    /// The slot called `name`.
    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.name == name)
    }

    /// Number of real parameters (without padding).
    pub fn count(&self) -> usize {
        self.slots.iter().map(|s| s.len).sum()
    }

    /// Splits a packed buffer into named tensors.
    pub fn unpack(&self, packed: &[f32]) -> Vec<Tensor> {
        self.slots
            .iter()
            .map(|s| Tensor {
                name: s.name.clone(),
                shape: s.shape.clone(),
                data: packed[s.offset..s.offset + s.len].to_vec(),
            })
            .collect()
    }

    /// Packs named tensors, checking that every slot is present with its shape and nothing else
    /// is; the error names the first tensor that does not match.
    pub fn pack(&self, tensors: &[Tensor]) -> Result<Vec<f32>> {
        let mut packed = vec![0.0; self.len];
        for s in &self.slots {
            let t = tensors.iter().find(|t| t.name == s.name).ok_or_else(|| {
                Error::Shape(format!("tensor {} {:?} is missing", s.name, s.shape))
            })?;
            if t.shape != s.shape {
                return Err(Error::Shape(format!(
                    "tensor {} has shape {:?}, the model expects {:?}",
                    s.name, t.shape, s.shape
                )));
            }
            if t.data.len() != s.len {
                return Err(Error::Shape(format!(
                    "tensor {} holds {} values, its shape {:?} needs {}",
                    s.name,
                    t.data.len(),
                    s.shape,
                    s.len
                )));
            }
            packed[s.offset..s.offset + s.len].copy_from_slice(&t.data);
        }
        if let Some(extra) = tensors.iter().find(|t| self.slot(&t.name).is_none()) {
            return Err(Error::Shape(format!(
                "tensor {} is not a parameter of this model (expected {})",
                extra.name,
                self.slots
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(packed)
    }
}

/// PyTorch's default initialisation of `nn.Linear`: weight and bias uniform in
/// `[-1/sqrt(fan_in), 1/sqrt(fan_in)]` (kaiming_uniform with a = sqrt(5) gives that bound for the
/// weight). Drawn from ChaCha8 seeded with `seed`, in slot order: the same seed gives the same
/// weights on every machine. (PyTorch's own generator differs; use `--init` to start both from
/// one set of weights.)
pub fn init_params(layout: &ParamLayout, ops: &[LinearOp], seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut packed = vec![0.0f32; layout.len];
    for op in ops {
        let bound = 1.0 / (op.input as f32).sqrt();
        for suffix in ["weight", "bias"] {
            let slot = layout
                .slot(&format!("{}.{suffix}", op.name))
                .expect("internal error: layout lacks a slot of its own ops");
            for v in &mut packed[slot.offset..slot.offset + slot.len] {
                *v = rng.random_range(-bound..bound);
            }
        }
    }
    packed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_resolves_to_named_ops() {
        let ops = ModelSpec::mlp(784, &[64, 32], 10).resolve().unwrap();
        let names: Vec<_> = ops
            .iter()
            .map(|o| (o.name.as_str(), o.input, o.output, o.relu))
            .collect();
        assert_eq!(
            names,
            [
                ("fc1", 784, 64, true),
                ("fc2", 64, 32, true),
                ("fc3", 32, 10, false)
            ]
        );
    }

    #[test]
    fn layout_is_aligned_and_packs_round_trip() {
        let ops = ModelSpec::mlp(5, &[3], 2).resolve().unwrap();
        let layout = ParamLayout::new(&ops);
        assert!(layout.slots.iter().all(|s| s.offset % ALIGN == 0));
        assert_eq!(layout.count(), 3 * 5 + 3 + 2 * 3 + 2);
        let packed = init_params(&layout, &ops, 7);
        let tensors = layout.unpack(&packed);
        assert_eq!(layout.pack(&tensors).unwrap(), packed);
        for t in &tensors {
            let bound = 1.0 / (t.shape.last().copied().unwrap_or(1) as f32).sqrt();
            let fan_in = if t.name.starts_with("fc1") {
                5.0f32
            } else {
                3.0
            };
            assert!(
                t.data.iter().all(|v| v.abs() <= 1.0 / fan_in.sqrt()),
                "{bound}"
            );
        }
    }

    #[test]
    fn pack_names_the_first_mismatch() {
        let ops = ModelSpec::mlp(5, &[3], 2).resolve().unwrap();
        let layout = ParamLayout::new(&ops);
        let mut tensors = layout.unpack(&vec![0.0; layout.len]);
        tensors[2].shape = vec![3, 4];
        let err = layout.pack(&tensors).unwrap_err().to_string();
        assert!(
            err.contains("fc2.weight") && err.contains("[3, 4]"),
            "{err}"
        );
        tensors.remove(2);
        let err = layout.pack(&tensors).unwrap_err().to_string();
        assert!(
            err.contains("fc2.weight") && err.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn bad_layer_lists_are_refused() {
        let spec = |layers| ModelSpec {
            name: "custom".into(),
            input: 4,
            layers,
        };
        assert!(spec(vec![Layer::Relu]).resolve().is_err());
        assert!(spec(vec![Layer::Linear { out: 3 }, Layer::Relu])
            .resolve()
            .is_err());
        assert!(spec(vec![Layer::Linear { out: 0 }]).resolve().is_err());
        assert!(spec(vec![]).resolve().is_err());
    }
}
