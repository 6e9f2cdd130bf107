//! Host side of `shaders/head_xent.wgsl`: a small classifier head (the last linear layer,
//! softmax cross-entropy and that layer's backward) in two dispatches.
//!
//! Unfused, the head of the 784-64-10 MLP takes six dispatches: the logits, the loss, the
//! weight gradient, the input gradient, its transpose for the weight gradient below, and the
//! bias gradient below. Each is a few hundred thousand multiply-adds that cannot fill an
//! adapter, so each costs about its fixed launch time. The fused passes do the same work in
//! two: pass 1 per row (logits, loss, dz), pass 2 per input column (dW, dh, the bias gradient
//! below) and per class (db). Pass 2 loops over every row, so the head is fused only while its
//! work stays small ([`fits`]); larger heads keep the separate kernels. The CPU reference is the
//! unfused chain, [`crate::reference::network_gradients`].

use super::{div_ceil, Binding, Dispatch, KernelSource};
use crate::error::Result;
use crate::gpu::Context;

/// Largest class count the kernel keeps in registers; equals `MAX_C` in head_xent.wgsl.
pub const MAX_CLASSES: usize = 16;

/// Most multiply-adds of one pass (`rows * classes * feat`) for which the head is fused. Pass
/// 2 gives each input column one invocation that walks all rows, so its time grows with the
/// batch while the unfused kernels spread over more workgroups. Measured on llvmpipe with the
/// MLP (784-64-10), in paired runs against a build that never fuses: the fused step was faster
/// at batch 512, 1,024 and 1,536 (2^20 allows 1,638), e.g. 26-30 ms against 31-32 ms at 1,536,
/// where pass 2 takes 1.9 ms. Larger heads were not measured, so they keep the unfused kernels.
const MAX_WORK: usize = 1 << 20;

/// Workgroup sizes of the two passes and rows per invocation of the first; equal `WG_ROWS`,
/// `WG_COLUMNS` and `R` in head_xent.wgsl.
const WG_ROWS: usize = 8;
const WG_COLUMNS: usize = 32;
const R: usize = 4;

const BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,      // h
    Binding::Read,      // params
    Binding::Read,      // labels
    Binding::ReadWrite, // dz
    Binding::ReadWrite, // row_stats
    Binding::ReadWrite, // stats
    Binding::ReadWrite, // grads
    Binding::ReadWrite, // dh
];

const ROWS: KernelSource = KernelSource {
    name: "head_xent.rows",
    wgsl: include_str!("../../shaders/head_xent.wgsl"),
    entry: "rows",
    bindings: BINDINGS,
};

const COLUMNS: KernelSource = KernelSource {
    name: "head_xent.columns",
    wgsl: include_str!("../../shaders/head_xent.wgsl"),
    entry: "columns",
    bindings: BINDINGS,
};

// Flags of head_xent.wgsl.
const FLAG_DH: u32 = 1;
const FLAG_DH_T: u32 = 2;
const FLAG_MASK: u32 = 4;
const FLAG_BELOW_BIAS: u32 = 8;

/// Mirrors `Params` in head_xent.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub classes: u32,
    pub feat: u32,
    pub flags: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub below_bias_off: u32,
    pub _pad: u32,
}

/// Whether a head of `classes` outputs over `feat` inputs on `rows` rows runs fused.
pub fn fits(rows: usize, classes: usize, feat: usize) -> bool {
    // The kernel reads h and W as vec4s: whole texels per row.
    (1..=MAX_CLASSES).contains(&classes) && feat % 4 == 0 && rows * classes * feat <= MAX_WORK
}

/// The input gradient the head writes for the op below.
pub struct Below<'a> {
    /// `[rows, feat]`, or `[feat, rows]` when `transposed`.
    pub dh: &'a wgpu::Buffer,
    pub transposed: bool,
    /// Multiply by `h > 0` (the op below ends in a ReLU).
    pub masked: bool,
    /// Element offset in `grads` of the op below's bias, when it is a linear layer whose bias
    /// gradient (the sums of `dh` over rows) the head writes too.
    pub bias_off: Option<usize>,
}

/// The buffers of one head dispatch.
pub struct Buffers<'a> {
    /// `[rows, feat]`, the head's input.
    pub h: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
    pub labels: &'a wgpu::Buffer,
    pub stats: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    /// None when the head is the first op (its input is the data: no gradient needed).
    pub below: Option<Below<'a>>,
}

/// Builds the head's dispatch for `rows x feat -> rows x classes`, with the layer's weight and
/// bias at `(w_off, b_off)` of both the parameter and the gradient buffers.
pub async fn dispatch(
    ctx: &Context,
    rows: usize,
    classes: usize,
    feat: usize,
    (w_off, b_off): (usize, usize),
    buffers: Buffers<'_>,
) -> Result<Vec<Dispatch>> {
    assert!(
        fits(rows, classes, feat),
        "internal error: head of {rows}x{feat}->{classes} is too large to fuse"
    );
    let below = buffers.below.as_ref();
    let flag = |on: bool, f: u32| if on { f } else { 0 };
    let flags = below.map_or(0, |b| {
        FLAG_DH
            | flag(b.transposed, FLAG_DH_T)
            | flag(b.masked, FLAG_MASK)
            | flag(b.bias_off.is_some(), FLAG_BELOW_BIAS)
    });
    let params = Params {
        rows: rows as u32,
        classes: classes as u32,
        feat: feat as u32,
        flags,
        w_off: w_off as u32,
        b_off: b_off as u32,
        below_bias_off: below.and_then(|b| b.bias_off).unwrap_or(0) as u32,
        _pad: 0,
    };
    // Without an op below the dh binding is unused; it still needs a buffer of its own.
    let placeholder;
    let dh = match below {
        Some(b) => b.dh,
        None => {
            placeholder = ctx.storage("head_xent placeholder", 4)?;
            &placeholder
        }
    };
    // From the first pass to the second: dz with its rows padded to whole vec4s, and each
    // row's loss and hit.
    let dz = ctx.storage("head_xent logits gradient", rows * classes.div_ceil(4) * 4)?;
    let row_stats = ctx.storage("head_xent row stats", 2 * rows)?;
    let bound = [
        buffers.h,
        buffers.params,
        buffers.labels,
        &dz,
        &row_stats,
        buffers.stats,
        buffers.grads,
        dh,
    ];
    let mut passes = Vec::new();
    // Pass 1: R rows per invocation; pass 2: one invocation per column of h, one per column of
    // dz and one for the loss.
    let grids = [
        div_ceil(rows, R * WG_ROWS),
        div_ceil(feat + classes + 1, WG_COLUMNS),
    ];
    for (source, groups) in [&ROWS, &COLUMNS].into_iter().zip(grids) {
        let kernel = ctx.pipelines().get(ctx, source).await?;
        passes.push(Dispatch::new(
            ctx,
            kernel,
            Some(ctx.uniform("head_xent params", &params)),
            &bound,
            [groups, 1, 1],
        ));
    }
    Ok(passes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_small_heads_only() {
        assert!(fits(128, 10, 64));
        assert!(fits(1, MAX_CLASSES, 4));
        // Rows of h must be whole vec4s.
        assert!(!fits(128, 10, 62));
        assert!(!fits(128, MAX_CLASSES + 1, 64));
        assert!(!fits(128, 0, 64));
        // The MLP's head up to a batch of 1,638 rows.
        assert!(fits(1638, 10, 64));
        assert!(!fits(1639, 10, 64));
    }
}
