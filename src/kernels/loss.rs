//! Host side of the losses: `shaders/softmax_xent.wgsl` (fused softmax cross-entropy) and
//! `shaders/mse.wgsl` (mean squared error). The CPU references are
//! [`crate::reference::softmax_xent`] and [`crate::reference::mse`].

use super::{Binding, Dispatch, KernelSource};
use crate::error::Result;
use crate::gpu::Context;

/// Length of a stats buffer: `[batch mean loss, loss sum, correct rows, rows]`.
pub const STATS_LEN: usize = 4;

const SOURCE: KernelSource = KernelSource {
    name: "softmax_xent",
    wgsl: include_str!("../../shaders/softmax_xent.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Uniform,
        Binding::Read,      // logits
        Binding::Read,      // labels
        Binding::ReadWrite, // grad
        Binding::ReadWrite, // stats
        Binding::ReadWrite, // bias gradient
    ],
};

/// Flag of softmax_xent.wgsl: with the logits gradient, also its column sums (a linear last
/// layer's bias gradient).
const FLAG_BIAS_GRAD: u32 = 2;

/// Mirrors `Params` in softmax_xent.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub classes: u32,
    pub logits_off: u32,
    pub flags: u32,
    pub bias_off: u32,
    pub _pad: [u32; 3],
}

/// The buffers of one loss dispatch.
pub struct Buffers<'a> {
    /// `[rows, classes]` at element `logits_off`.
    pub logits: &'a wgpu::Buffer,
    /// `[rows]` u32 labels.
    pub labels: &'a wgpu::Buffer,
    /// `[rows, classes]`, written only when `with_grad`.
    pub grad: &'a wgpu::Buffer,
    /// `[STATS_LEN]`, see the shader.
    pub stats: &'a wgpu::Buffer,
    /// Where the column sums of the gradient go (buffer, element offset), when `with_grad`:
    /// the bias gradient of a linear last layer, written in the same dispatch.
    pub bias_grad: Option<(&'a wgpu::Buffer, usize)>,
}

/// Builds a dispatch of the loss over `rows` rows (one workgroup handles any batch).
pub async fn dispatch(
    ctx: &Context,
    rows: usize,
    classes: usize,
    logits_off: usize,
    with_grad: bool,
    buffers: Buffers<'_>,
) -> Result<Dispatch> {
    let bias = buffers.bias_grad.filter(|_| with_grad);
    let params = Params {
        rows: rows as u32,
        classes: classes as u32,
        logits_off: logits_off as u32,
        flags: u32::from(with_grad) | if bias.is_some() { FLAG_BIAS_GRAD } else { 0 },
        bias_off: bias.map_or(0, |b| b.1 as u32),
        _pad: [0; 3],
    };
    // Unused, the binding still needs a writable buffer other than grad and stats.
    let placeholder;
    let bias_buffer = match bias {
        Some((b, _)) => b,
        None => {
            placeholder = ctx.storage("softmax_xent placeholder", 4)?;
            &placeholder
        }
    };
    let kernel = ctx.pipelines().get(ctx, &SOURCE).await?;
    Ok(Dispatch::new(
        ctx,
        kernel,
        Some(ctx.uniform("softmax_xent params", &params)),
        &[
            buffers.logits,
            buffers.labels,
            buffers.grad,
            buffers.stats,
            bias_buffer,
        ],
        [1, 1, 1],
    ))
}

const MSE_SOURCE: KernelSource = KernelSource {
    name: "mse",
    wgsl: include_str!("../../shaders/mse.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Uniform,
        Binding::Read,      // pred
        Binding::Read,      // target
        Binding::ReadWrite, // grad
        Binding::ReadWrite, // stats
    ],
};

/// Mirrors `Params` in mse.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MseParams {
    pub rows: u32,
    pub cols: u32,
    pub pred_off: u32,
    pub flags: u32,
}

/// Buffers of one MSE dispatch.
pub struct MseBuffers<'a> {
    /// `[rows, cols]` at element `pred_off`.
    pub pred: &'a wgpu::Buffer,
    /// `[rows, cols]` from element 0.
    pub target: &'a wgpu::Buffer,
    /// `[rows, cols]`, written only when `with_grad`.
    pub grad: &'a wgpu::Buffer,
    /// `[STATS_LEN]`, see the shader.
    pub stats: &'a wgpu::Buffer,
}

/// Builds a dispatch of the MSE loss over `rows x cols` elements (one workgroup).
pub async fn mse_dispatch(
    ctx: &Context,
    rows: usize,
    cols: usize,
    pred_off: usize,
    with_grad: bool,
    buffers: MseBuffers<'_>,
) -> Result<Dispatch> {
    let params = MseParams {
        rows: rows as u32,
        cols: cols as u32,
        pred_off: pred_off as u32,
        flags: u32::from(with_grad),
    };
    let kernel = ctx.pipelines().get(ctx, &MSE_SOURCE).await?;
    Ok(Dispatch::new(
        ctx,
        kernel,
        Some(ctx.uniform("mse params", &params)),
        &[buffers.pred, buffers.target, buffers.grad, buffers.stats],
        [1, 1, 1],
    ))
}
