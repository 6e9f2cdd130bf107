//! Small convolutions as strips of four outputs: host side of `shaders/conv_strip.wgsl`.
//!
//! The forward and the weight and bias gradients of a convolution with few filters and taps
//! (LeNet-5's first), without the im2col buffer of [`super::conv_gemm`]: on llvmpipe that
//! buffer's writes and reads cost more than the products. Which convolutions take this path is
//! [`fits`]'s decision, made in [`super::conv_gemm::choose`].
//!
//! The input gradient of a convolution with few input channels (LeNet-5's second) runs as the
//! forward of the transposed convolution ([`grad_input`]), whichever method its forward takes:
//! [`super::conv_gemm::grad_input_by_strips`] decides.
//!
//! The CPU references are [`crate::reference::conv2d`] and [`crate::reference::conv2d_grads`].

use super::conv::ConvShape;
use super::{div_ceil, grid_2d, Binding, Dispatch, KernelSource};
use crate::error::Result;
use crate::gpu::Context;

/// `@workgroup_size` of the forward and grad_weight entry points; reduce's is 8.
const WG: usize = 64;
const REDUCE_WG: usize = 8;

/// Mirrors `Params` in conv_strip.wgsl field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    pad: u32,
    relu: u32,
    x_off: u32,
    w_off: u32,
    b_off: u32,
    out_off: u32,
    row_stride: u32,
    rows: u32,
    bands: u32,
    pad_w: u32,
    _pad: u32,
}

const BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,      // x
    Binding::Read,      // weight and bias
    Binding::Read,      // grad_y or partial sums, as vec4s
    Binding::ReadWrite, // y, partial sums or gradients
];

fn source(entry: &'static str) -> KernelSource {
    KernelSource {
        name: match entry {
            "forward" => "conv_strip.forward",
            "grad_weight" => "conv_strip.grad_weight",
            _ => "conv_strip.reduce",
        },
        wgsl: include_str!("../../shaders/conv_strip.wgsl"),
        entry,
        bindings: BINDINGS,
    }
}

/// Whether `shape` runs as strips here: stride 1, an output width that is a multiple of 4 (a
/// strip is one vec4 of y), at most 8 filters of at most 8 columns (the shader's private
/// arrays), and subgroups of at least 8 lanes (the weights are shared with shuffles).
pub fn fits(ctx: &Context, shape: ConvShape) -> bool {
    let Ok((_, ow)) = shape.output() else {
        return false;
    };
    ctx.features.contains(wgpu::Features::SUBGROUP)
        && ctx.info.subgroup_min_size >= 8
        && shape.stride == 1
        && ow % 4 == 0
        && shape.oc <= 8
        && shape.kw <= 8
}

/// Whether the input gradient of `shape` runs as strips here (conv_strip.wgsl's forward with
/// TRANSPOSED): stride 1, at most 8 input channels (the transposed convolution's filters), at
/// most 8 kernel columns, padding below the kernel's size (the transposed padding K - 1 - pad
/// is then not negative), and subgroups of at least 8 lanes. Any width.
pub fn fits_grad_input(ctx: &Context, shape: ConvShape) -> bool {
    ctx.features.contains(wgpu::Features::SUBGROUP)
        && ctx.info.subgroup_min_size >= 8
        && shape.output().is_ok()
        && shape.stride == 1
        && shape.ic <= 8
        && shape.kw <= 8
        && shape.pad < shape.kh.min(shape.kw)
}

/// Floats per row of partial sums: eight columns of taps per filter, then eight biases (PROW
/// in conv_strip.wgsl).
fn partial_row(shape: ConvShape) -> usize {
    8 * shape.oc + 8
}

/// The override constants of conv_strip.wgsl for the strip convolution `shape` (for an input
/// gradient, the transposed convolution: see [`grad_input`]) of output width `ow`, and its modes.
fn constants(
    shape: ConvShape,
    ow: usize,
    transposed: bool,
    masked: bool,
) -> Vec<(&'static str, u32)> {
    vec![
        ("IC", shape.ic as u32),
        ("KH", shape.kh as u32),
        ("KW", shape.kw as u32),
        ("OC", shape.oc as u32),
        ("TRANSPOSED", transposed as u32),
        ("OUT_VEC4", (ow % 4 == 0) as u32),
        ("MASK", masked as u32),
    ]
}

fn params(shape: ConvShape, relu: bool, (w_off, b_off): (usize, usize)) -> Result<Params> {
    let (oh, ow) = shape.output()?;
    Ok(Params {
        n: shape.n as u32,
        h: shape.h as u32,
        w: shape.w as u32,
        oh: oh as u32,
        ow: ow as u32,
        pad: shape.pad as u32,
        pad_w: shape.pad as u32,
        relu: relu as u32,
        w_off: w_off as u32,
        b_off: b_off as u32,
        rows: (shape.n * oh.div_ceil(4) * shape.ic * shape.kh) as u32,
        bands: oh.div_ceil(4) as u32,
        ..Default::default()
    })
}

/// One dispatch of `entry` over `invocations`, workgroups of `wg`.
async fn run(
    ctx: &Context,
    entry: &'static str,
    constants: &[(&'static str, u32)],
    mut p: Params,
    (invocations, wg): (usize, usize),
    buffers: [&wgpu::Buffer; 4],
) -> Result<Dispatch> {
    let groups = grid_2d(ctx, div_ceil(invocations, wg));
    p.row_stride = groups[0] * wg as u32;
    let kernel = ctx
        .pipelines()
        .get_with(ctx, &source(entry), constants)
        .await?;
    let params = Some(ctx.uniform("conv_strip params", &p));
    Ok(Dispatch::new(ctx, kernel, params, &buffers, groups))
}

/// y = conv(x) + bias, ReLU'd when `relu`, into `y` ([n, oc, oh, ow] from 0, overwritten);
/// weight and bias at `at` in `params`. `x` is `[n, ic, h, w]` from 0.
pub async fn forward(
    ctx: &Context,
    shape: ConvShape,
    x: &wgpu::Buffer,
    params: &wgpu::Buffer,
    at: (usize, usize),
    relu: bool,
    y: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let p = self::params(shape, relu, at)?;
    let strips = shape.n * (p.oh as usize).div_ceil(4) * (p.ow as usize).div_ceil(4);
    let constants = constants(shape, p.ow as usize, false, false);
    let d = run(
        ctx,
        "forward",
        &constants,
        p,
        (strips, WG),
        [x, params, params, y],
    )
    .await?;
    Ok(vec![d])
}

/// grad_x of the convolution into `grad_x` (`[n, ic, h, w]` from 0, overwritten), zeroed where
/// `mask` (the ReLU output that was the convolution's input) is not positive, when given;
/// from `grad_y` (`[n, oc, oh, ow]` from 0) and the weight at `w_off` in `params`.
///
/// This is the forward over grad_y of the transposed convolution: oc input channels, ic
/// filters, the same kernel flipped, padding K - 1 - pad, output [h, w]. Needs
/// [`fits_grad_input`].
pub async fn grad_input(
    ctx: &Context,
    shape: ConvShape,
    grad_y: &wgpu::Buffer,
    (params, w_off): (&wgpu::Buffer, usize),
    mask: Option<&wgpu::Buffer>,
    grad_x: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let (oh, ow) = shape.output()?;
    let t = ConvShape {
        n: shape.n,
        ic: shape.oc,
        h: oh,
        w: ow,
        oc: shape.ic,
        kh: shape.kh,
        kw: shape.kw,
        stride: 1,
        pad: shape.kh - 1 - shape.pad,
    };
    // The transposed padding per side, and with it the output [h, w].
    let mut p = self::params(t, false, (w_off, 0))?;
    p.pad_w = (shape.kw - 1 - shape.pad) as u32;
    p.oh = shape.h as u32;
    p.ow = shape.w as u32;
    let strips = shape.n * shape.h.div_ceil(4) * shape.w.div_ceil(4);
    let constants = constants(t, shape.w, true, mask.is_some());
    let src = mask.unwrap_or(params);
    let d = run(
        ctx,
        "forward",
        &constants,
        p,
        (strips, WG),
        [grad_y, params, src, grad_x],
    )
    .await?;
    Ok(vec![d])
}

/// grad_w and grad_b of the convolution into `grads` at `at` (weight, bias), overwritten, from
/// `grad_y` (`[n, oc, oh, ow]` from 0) and its input `x`.
pub async fn grad_weight(
    ctx: &Context,
    shape: ConvShape,
    grad_y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    at: (usize, usize),
) -> Result<Vec<Dispatch>> {
    let p = self::params(shape, false, at)?;
    let rows = p.rows as usize;
    let partial = ctx.storage("conv partial sums", rows * partial_row(shape))?;
    let constants = constants(shape, p.ow as usize, false, false);
    let sums = run(
        ctx,
        "grad_weight",
        &constants,
        p,
        (rows, WG),
        [x, x, grad_y, &partial],
    )
    .await?;
    let outputs = shape.oc * shape.ic * shape.kh * shape.kw + shape.oc;
    let io = [x, x, &partial, grads];
    let reduce = run(ctx, "reduce", &constants, p, (outputs, REDUCE_WG), io).await?;
    Ok(vec![sums, reduce])
}
