//! Model descriptions: a list of layers, checked and resolved into shapes, parameter tensors
//! with PyTorch's names and layouts, and PyTorch's default initialisation.
//!
//! A [`ModelSpec`] says what the network is (build one with a preset or a [`Builder`]);
//! [`ModelSpec::resolve`] infers every shape and refuses layers that do not fit, naming the
//! layer; [`crate::graph::Network`] puts the resolved [`Op`]s on the GPU.
//!
//! Activations are per sample, row-major: `[c, h, w]` (NCHW without the batch) for images,
//! `[d]` for flat vectors. A flatten is free: `[c, h, w]` row-major is `[c * h * w]` in (C, H, W)
//! order, the order of `torch.flatten(x, 1)`, so `fc1.weight` lines up with PyTorch's.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::kernels::conv::ConvShape;
use crate::kernels::pool::PoolShape;

/// One layer, appended in order. Each layer's input is the output of the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layer {
    /// `y = x W^T + b`, `W: [out, in]`, `b: [out]`, as `torch.nn.Linear`; takes a flat input.
    Linear { out: usize },
    /// `torch.nn.Conv2d(in, out, kernel, stride, padding)`: square kernel, zero padding;
    /// weight `[out, in, k, k]`, bias `[out]`; takes `[c, h, w]`.
    Conv2d {
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    /// `torch.nn.MaxPool2d(kernel, stride)`, floor mode; takes `[c, h, w]`.
    MaxPool2d { kernel: usize, stride: usize },
    /// `[c, h, w] -> [c * h * w]`.
    Flatten,
    /// `max(x, 0)`, fused into the layer before it.
    Relu,
}

impl Layer {
    fn describe(&self) -> String {
        match *self {
            Layer::Linear { out } => format!("linear {out}"),
            Layer::Conv2d {
                out,
                kernel,
                stride,
                padding,
            } => format!("conv {out} kernel {kernel} stride {stride} padding {padding}"),
            Layer::MaxPool2d { kernel, stride } => format!("maxpool {kernel} stride {stride}"),
            Layer::Flatten => "flatten".into(),
            Layer::Relu => "relu".into(),
        }
    }
}

/// The loss on the network's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Loss {
    /// Softmax cross-entropy against class labels; the output is `[classes]`.
    CrossEntropy,
    /// Mean squared error against the input itself (an autoencoder); the output has the
    /// input's size.
    Reconstruction,
}

/// A network: input shape, layers, and the loss on its output.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    /// Preset name (`mlp`, `lenet5`, `autoencoder`, `custom`), used in checkpoint metadata.
    pub name: String,
    /// Shape of one input row: `[d]` or `[c, h, w]`.
    pub input: Vec<usize>,
    pub layers: Vec<Layer>,
    pub loss: Loss,
}

impl ModelSpec {
    /// The multi-layer perceptron `input -> hidden[0] -> ... -> classes`, ReLU after every
    /// hidden layer and none after the last: PyTorch names `fc1 .. fcN`.
    pub fn mlp(input: usize, hidden: &[usize], classes: usize) -> Self {
        let mut b = Builder::new("mlp", &[input]);
        for &h in hidden {
            b = b.linear(h).relu();
        }
        b.linear(classes).spec(Loss::CrossEntropy)
    }

    /// LeNet-5 for 28x28 MNIST: conv 1->6 5x5 padding 2, ReLU, max-pool 2, conv 6->16 5x5, ReLU,
    /// max-pool 2, flatten 400, fc 120, ReLU, fc 84, ReLU, fc 10. Names `conv1`, `conv2`,
    /// `fc1` .. `fc3`.
    pub fn lenet5() -> Self {
        Builder::new("lenet5", &[1, 28, 28])
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
            .spec(Loss::CrossEntropy)
    }

    /// An autoencoder `input -> hidden[0] -> .. -> hidden[last] -> .. -> hidden[0] -> input`
    /// (the decoder mirrors the encoder), ReLU after every layer but the last (a linear
    /// output), trained with MSE against its input. Names `fc1 .. fcN` in order.
    pub fn autoencoder(input: usize, hidden: &[usize]) -> Self {
        let mut b = Builder::new("autoencoder", &[input]);
        let widths: Vec<usize> = hidden
            .iter()
            .chain(hidden.iter().rev().skip(1))
            .copied()
            .collect();
        for w in widths {
            b = b.linear(w).relu();
        }
        b.linear(input).spec(Loss::Reconstruction)
    }

    /// A builder for a model of any layers on inputs of `shape`.
    pub fn builder(name: &str, shape: &[usize]) -> Builder {
        Builder::new(name, shape)
    }

    /// Features per input row.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Checks the layer list and resolves it into ops with their shapes and names. The error
    /// names the first layer that does not fit, with the shape it was given.
    pub fn resolve(&self) -> Result<Vec<Op>> {
        if self.input.is_empty() || self.input.contains(&0) || self.input.len() == 2 {
            return Err(Error::Shape(format!(
                "model input shape {:?}: expected [features] or [channels, height, width]",
                self.input
            )));
        }
        let mut ops: Vec<Op> = Vec::new();
        let mut shape = self.input.clone();
        let (mut fcs, mut convs, mut pools) = (0, 0, 0);
        for (i, layer) in self.layers.iter().enumerate() {
            let bad = |msg: String| {
                Err(Error::Shape(format!(
                    "layer {} ({}): {msg}",
                    i + 1,
                    layer.describe()
                )))
            };
            match *layer {
                Layer::Linear { out } => {
                    if out == 0 {
                        return bad("has 0 outputs".into());
                    }
                    if shape.len() != 1 {
                        return bad(format!(
                            "takes a flat input but gets {shape:?}; flatten first"
                        ));
                    }
                    fcs += 1;
                    ops.push(Op::new(
                        format!("fc{fcs}"),
                        OpKind::Linear,
                        &shape,
                        vec![out],
                    ));
                    shape = vec![out];
                }
                Layer::Conv2d {
                    out,
                    kernel,
                    stride,
                    padding,
                } => {
                    let &[c, h, w] = shape.as_slice() else {
                        return bad(format!(
                            "takes [channels, height, width] but gets {shape:?}"
                        ));
                    };
                    if out == 0 || kernel == 0 || stride == 0 {
                        return bad(
                            "needs at least 1 output channel, kernel size and stride".into()
                        );
                    }
                    if kernel > h + 2 * padding || kernel > w + 2 * padding {
                        return bad(format!(
                            "kernel {kernel} is larger than its padded input {shape:?}"
                        ));
                    }
                    let oh = (h + 2 * padding - kernel) / stride + 1;
                    let ow = (w + 2 * padding - kernel) / stride + 1;
                    convs += 1;
                    let kind = OpKind::Conv {
                        kernel,
                        stride,
                        padding,
                    };
                    ops.push(Op::new(
                        format!("conv{convs}"),
                        kind,
                        &[c, h, w],
                        vec![out, oh, ow],
                    ));
                    shape = vec![out, oh, ow];
                }
                Layer::MaxPool2d { kernel, stride } => {
                    let &[c, h, w] = shape.as_slice() else {
                        return bad(format!(
                            "takes [channels, height, width] but gets {shape:?}"
                        ));
                    };
                    if kernel == 0 || stride == 0 || kernel > h || kernel > w {
                        return bad(format!("window {kernel} does not fit its input {shape:?}"));
                    }
                    let out = vec![c, (h - kernel) / stride + 1, (w - kernel) / stride + 1];
                    pools += 1;
                    ops.push(Op::new(
                        format!("pool{pools}"),
                        OpKind::Pool { kernel, stride },
                        &shape,
                        out.clone(),
                    ));
                    shape = out;
                }
                Layer::Flatten => shape = vec![shape.iter().product()],
                Layer::Relu => match ops.last_mut() {
                    Some(op) if op.relu => return bad("follows another relu".into()),
                    Some(op) if matches!(op.kind, OpKind::Pool { .. }) => {
                        return bad(
                            "follows a max-pool; put it before the pool (they commute)".into()
                        )
                    }
                    Some(op) => op.relu = true,
                    None => return bad("comes before any linear or conv layer".into()),
                },
            }
        }
        let Some(last) = ops.last() else {
            return Err(Error::Shape("model has no linear or conv layer".into()));
        };
        if last.relu && self.loss == Loss::CrossEntropy {
            return Err(Error::Shape(
                "the last layer is a relu; the loss needs raw logits".into(),
            ));
        }
        match self.loss {
            Loss::CrossEntropy if shape.len() != 1 => Err(Error::Shape(format!(
                "the output {shape:?} is not a flat vector of class scores; end with a linear layer"
            ))),
            Loss::Reconstruction if shape.iter().product::<usize>() != self.input_len() => {
                Err(Error::Shape(format!(
                    "the output {shape:?} does not have the input's {} values to reconstruct",
                    self.input_len()
                )))
            }
            _ => Ok(ops),
        }
    }

    /// A one-line description, e.g. `mlp 784-64-10`.
    pub fn describe(&self) -> String {
        if self.name == "mlp" || self.name == "autoencoder" {
            let mut widths = vec![self.input_len().to_string()];
            for l in &self.layers {
                if let Layer::Linear { out } = l {
                    widths.push(out.to_string());
                }
            }
            return format!("{} {}", self.name, widths.join("-"));
        }
        let layers: Vec<String> = self.layers.iter().map(Layer::describe).collect();
        format!("{} {:?} {}", self.name, self.input, layers.join(", "))
    }
}

/// Appends layers in order; [`Builder::build`] infers and checks every shape.
///
/// ```
/// use wgrad::model::{Loss, ModelSpec};
/// let lenet = ModelSpec::builder("custom", &[1, 28, 28])
///     .conv(6, 5, 1, 2).relu().maxpool(2, 2)
///     .conv(16, 5, 1, 0).relu().maxpool(2, 2)
///     .flatten().linear(120).relu().linear(84).relu().linear(10)
///     .build(Loss::CrossEntropy)
///     .unwrap();
/// // conv1, pool1, conv2, pool2, then fc1 takes the flattened 16 x 5 x 5.
/// assert_eq!(lenet.resolve().unwrap()[4].input, 400);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    name: String,
    input: Vec<usize>,
    layers: Vec<Layer>,
}

impl Builder {
    /// A model called `name` taking inputs of `shape` (`[d]` or `[c, h, w]`).
    pub fn new(name: &str, shape: &[usize]) -> Self {
        Builder {
            name: name.into(),
            input: shape.to_vec(),
            layers: Vec::new(),
        }
    }

    /// Appends any layer.
    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    pub fn linear(self, out: usize) -> Self {
        self.layer(Layer::Linear { out })
    }

    pub fn conv(self, out: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        self.layer(Layer::Conv2d {
            out,
            kernel,
            stride,
            padding,
        })
    }

    pub fn maxpool(self, kernel: usize, stride: usize) -> Self {
        self.layer(Layer::MaxPool2d { kernel, stride })
    }

    pub fn flatten(self) -> Self {
        self.layer(Layer::Flatten)
    }

    pub fn relu(self) -> Self {
        self.layer(Layer::Relu)
    }

    /// The spec without checking it (presets, whose shapes are known to fit).
    fn spec(self, loss: Loss) -> ModelSpec {
        ModelSpec {
            name: self.name,
            input: self.input,
            layers: self.layers,
            loss,
        }
    }

    /// The spec, with every shape inferred and checked: the error names the first layer that
    /// does not fit.
    pub fn build(self, loss: Loss) -> Result<ModelSpec> {
        let spec = self.spec(loss);
        spec.resolve()?;
        Ok(spec)
    }
}

/// What an op computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Linear,
    Conv {
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Pool {
        kernel: usize,
        stride: usize,
    },
}

/// A layer after resolution, with its shapes and the ReLU that follows it fused in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// PyTorch attribute name: `fc1`, `conv2`, ... (`pool1` for pools, which have no weights).
    pub name: String,
    pub kind: OpKind,
    /// Per-sample input and output shapes.
    pub in_shape: Vec<usize>,
    pub out_shape: Vec<usize>,
    /// Per-sample input and output lengths.
    pub input: usize,
    pub output: usize,
    /// Whether a ReLU follows.
    pub relu: bool,
}

impl Op {
    fn new(name: String, kind: OpKind, in_shape: &[usize], out_shape: Vec<usize>) -> Self {
        Op {
            name,
            kind,
            input: in_shape.iter().product(),
            output: out_shape.iter().product(),
            in_shape: in_shape.to_vec(),
            out_shape,
            relu: false,
        }
    }

    /// The op's parameter tensors as `(name, shape)`, weight first, with PyTorch's layouts.
    pub fn params(&self) -> Vec<(String, Vec<usize>)> {
        match self.kind {
            OpKind::Linear => vec![
                (
                    format!("{}.weight", self.name),
                    vec![self.output, self.input],
                ),
                (format!("{}.bias", self.name), vec![self.output]),
            ],
            OpKind::Conv { kernel, .. } => {
                let (ic, oc) = (self.in_shape[0], self.out_shape[0]);
                vec![
                    (
                        format!("{}.weight", self.name),
                        vec![oc, ic, kernel, kernel],
                    ),
                    (format!("{}.bias", self.name), vec![oc]),
                ]
            }
            OpKind::Pool { .. } => Vec::new(),
        }
    }

    /// The kernel geometry of a conv op over `batch` rows.
    ///
    /// # Panics
    /// On an op that is not a convolution (an internal error).
    pub fn conv_shape(&self, batch: usize) -> ConvShape {
        let OpKind::Conv {
            kernel,
            stride,
            padding,
        } = self.kind
        else {
            panic!(
                "internal error: conv_shape of {} ({:?})",
                self.name, self.kind
            );
        };
        ConvShape {
            n: batch,
            ic: self.in_shape[0],
            h: self.in_shape[1],
            w: self.in_shape[2],
            oc: self.out_shape[0],
            kh: kernel,
            kw: kernel,
            stride,
            pad: padding,
        }
    }

    /// The kernel geometry of a max-pool op over `batch` rows.
    ///
    /// # Panics
    /// On an op that is not a pool (an internal error).
    pub fn pool_shape(&self, batch: usize) -> PoolShape {
        let OpKind::Pool { kernel, stride } = self.kind else {
            panic!(
                "internal error: pool_shape of {} ({:?})",
                self.name, self.kind
            );
        };
        PoolShape {
            n: batch,
            c: self.in_shape[0],
            h: self.in_shape[1],
            w: self.in_shape[2],
            k: kernel,
            stride,
        }
    }

    /// PyTorch's fan-in of the weight: inputs per output unit.
    pub fn fan_in(&self) -> usize {
        match self.kind {
            OpKind::Linear => self.input,
            OpKind::Conv { kernel, .. } => self.in_shape[0] * kernel * kernel,
            OpKind::Pool { .. } => 0,
        }
    }
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
    /// Lays out each op's weight then bias (`fc1.weight [out, in]`, `fc1.bias [out]`,
    /// `conv1.weight [oc, ic, k, k]`, ...) in op order.
    pub fn new(ops: &[Op]) -> Self {
        let mut slots = Vec::new();
        let mut len = 0;
        for (name, shape) in ops.iter().flat_map(Op::params) {
            let n: usize = shape.iter().product();
            slots.push(Slot {
                name,
                shape,
                offset: len,
                len: n,
            });
            len += n.div_ceil(ALIGN) * ALIGN;
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

/// PyTorch's default initialisation of `nn.Linear` and `nn.Conv2d`: weight and bias uniform in
/// `[-1/sqrt(fan_in), 1/sqrt(fan_in)]` (kaiming_uniform with a = sqrt(5) gives that bound for the
/// weight), fan_in = inputs for linear, in_channels * k * k for conv. Drawn from ChaCha8 seeded
/// with `seed`, in slot order: the same seed gives the same weights on every machine.
/// (PyTorch's own generator differs; use `--init` to start both from one set of weights.)
pub fn init_params(layout: &ParamLayout, ops: &[Op], seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut packed = vec![0.0f32; layout.len];
    for op in ops {
        let bound = 1.0 / (op.fan_in() as f32).sqrt();
        for (name, _) in op.params() {
            let slot = layout
                .slot(&name)
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
    fn presets_have_pytorch_names_and_shapes() {
        let lenet = ModelSpec::lenet5();
        let layout = ParamLayout::new(&lenet.resolve().unwrap());
        let got: Vec<(&str, &[usize])> = layout
            .slots
            .iter()
            .map(|s| (s.name.as_str(), s.shape.as_slice()))
            .collect();
        let want: Vec<(&str, &[usize])> = vec![
            ("conv1.weight", &[6, 1, 5, 5]),
            ("conv1.bias", &[6]),
            ("conv2.weight", &[16, 6, 5, 5]),
            ("conv2.bias", &[16]),
            ("fc1.weight", &[120, 400]),
            ("fc1.bias", &[120]),
            ("fc2.weight", &[84, 120]),
            ("fc2.bias", &[84]),
            ("fc3.weight", &[10, 84]),
            ("fc3.bias", &[10]),
        ];
        assert_eq!(got, want);
        let ae = ModelSpec::autoencoder(784, &[128, 32]).resolve().unwrap();
        let widths: Vec<_> = ae
            .iter()
            .map(|o| (o.name.as_str(), o.input, o.output, o.relu))
            .collect();
        assert_eq!(
            widths,
            [
                ("fc1", 784, 128, true),
                ("fc2", 128, 32, true),
                ("fc3", 32, 128, true),
                ("fc4", 128, 784, false)
            ]
        );
    }

    #[test]
    fn bad_layer_lists_are_refused_naming_the_layer() {
        let err = |b: Builder| b.build(Loss::CrossEntropy).unwrap_err().to_string();
        let img = || Builder::new("custom", &[1, 28, 28]);
        let e = err(img().conv(6, 5, 1, 0).relu().linear(10));
        assert!(
            e.contains("layer 3 (linear 10)") && e.contains("[6, 24, 24]"),
            "{e}"
        );
        let e = err(img().conv(6, 29, 1, 0));
        assert!(e.contains("layer 1") && e.contains("kernel 29"), "{e}");
        let e = err(Builder::new("custom", &[784]).conv(6, 5, 1, 0));
        assert!(e.contains("layer 1 (conv 6") && e.contains("[784]"), "{e}");
        let e = err(img().maxpool(2, 2).relu());
        assert!(
            e.contains("layer 2 (relu)") && e.contains("max-pool"),
            "{e}"
        );
        let e = err(img().conv(4, 3, 1, 1).relu().relu());
        assert!(e.contains("layer 3 (relu)"), "{e}");
        let e = err(img().conv(4, 3, 1, 1));
        assert!(e.contains("not a flat vector"), "{e}");
        assert!(err(Builder::new("custom", &[4]).relu()).contains("layer 1 (relu)"));
        assert!(err(Builder::new("custom", &[4]).linear(3).relu()).contains("relu"));
        assert!(err(Builder::new("custom", &[4]).linear(0)).contains("0 outputs"));
        assert!(err(Builder::new("custom", &[4])).contains("no linear"));
        let e = Builder::new("custom", &[8])
            .linear(3)
            .build(Loss::Reconstruction);
        assert!(e.unwrap_err().to_string().contains("8 values"));
    }
}
