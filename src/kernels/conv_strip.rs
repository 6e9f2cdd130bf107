//! Small convolutions as strips of four outputs: host side of `shaders/conv_strip.wgsl`.
//!
//! The forward and the weight and bias gradients of a convolution with few filters and taps
//! (both of LeNet-5's), without the im2col buffer of [`super::conv_gemm`]: on llvmpipe that
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

/// `@workgroup_size` of the forward and grad_weight entry points; reduce's is SMALL_WG.
const WG: usize = 64;
const SMALL_WG: usize = 8;

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
    band_rows: u32,
    pad_w: u32,
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

/// The most filters (or, for an input gradient, input channels) a convolution may have to run
/// as strips. Each group of 8 repeats the loads of the input, so beyond a few groups the
/// products, which load each input once per 8x8 block, should win; 16 (LeNet-5's second
/// convolution, two groups) is where this was measured.
const MAX_FILTERS: usize = 16;

/// Whether `shape` runs as strips here: stride 1, at most [`MAX_FILTERS`] filters of at most
/// 8x8 taps (the shader's private arrays), and subgroups of at least 8 lanes (the weights are
/// shared with shuffles). Any width.
pub fn fits(ctx: &Context, shape: ConvShape) -> bool {
    ctx.features.contains(wgpu::Features::SUBGROUP)
        && ctx.info.subgroup_min_size >= 8
        && shape.output().is_ok()
        && shape.stride == 1
        && shape.oc <= MAX_FILTERS
        && shape.kh <= 8
        && shape.kw <= 8
}

/// Whether the input gradient of `shape` runs as strips here (conv_strip.wgsl's forward with
/// TRANSPOSED): as [`fits`], with the input channels (the transposed convolution's filters) in
/// place of the filters, and padding below the kernel's size (the transposed padding K - 1 -
/// pad is then not negative).
pub fn fits_grad_input(ctx: &Context, shape: ConvShape) -> bool {
    fits(
        ctx,
        ConvShape {
            oc: shape.ic,
            ..shape
        },
    ) && shape.pad < shape.kh.min(shape.kw)
}

/// Filters per group (GROUP in conv_strip.wgsl) and groups, for `oc` filters.
fn groups(oc: usize) -> (usize, usize) {
    let group = oc.min(8);
    (group, oc.div_ceil(group))
}

/// The forward's invocations for `filters` filters over `n` outputs of `(oh, ow)`: one per
/// tile of 4x4 outputs and group, each group's run padded to whole subgroups of 8.
fn invocations(filters: usize, n: usize, (oh, ow): (usize, usize)) -> usize {
    let tiles = n * oh.div_ceil(4) * ow.div_ceil(4);
    groups(filters).1 * tiles.next_multiple_of(8)
}

/// Floats per row of partial sums: eight columns per kernel row and filter of a group, then
/// eight biases (PROW in conv_strip.wgsl).
fn partial_row(shape: ConvShape) -> usize {
    8 * groups(shape.oc).0 * shape.kh + 8
}

/// grad_weight's bands per image: as few as keep about [`BAND_ROWS_TARGET`] partial-sum rows
/// (invocations), since each band loads KH - 1 input rows again; at most one per output row.
fn bands(shape: ConvShape, oh: usize) -> usize {
    let per_band = shape.n * shape.ic * groups(shape.oc).1;
    BAND_ROWS_TARGET.div_ceil(per_band).clamp(1, oh.max(1))
}

/// Enough grad_weight invocations to fill 64 subgroups of 8: LeNet-5's conv1 (128 images, one
/// channel) then takes 4 bands of 7 rows, conv2 (6 channels, two groups) one band.
const BAND_ROWS_TARGET: usize = 512;

/// The override constants of conv_strip.wgsl for the strip convolution `shape` (for an input
/// gradient, the transposed convolution: see [`grad_input`]) of output width `ow`, and its modes.
fn constants(
    shape: ConvShape,
    ow: usize,
    transposed: bool,
    masked: bool,
) -> Vec<(&'static str, u32)> {
    let (group, groups) = groups(shape.oc);
    vec![
        ("IC", shape.ic as u32),
        ("KH", shape.kh as u32),
        ("KW", shape.kw as u32),
        ("OC", shape.oc as u32),
        ("GROUP", group as u32),
        ("GROUPS", groups as u32),
        ("TRANSPOSED", transposed as u32),
        ("OUT_VEC4", (ow % 4 == 0) as u32),
        ("MASK", masked as u32),
    ]
}

fn params(shape: ConvShape, relu: bool, (w_off, b_off): (usize, usize)) -> Result<Params> {
    let (oh, ow) = shape.output()?;
    // Rounding the rows up can leave the last bands empty (5 rows in 4 bands: 2, 2, 1 and
    // none), so the bands are counted again from their rows.
    let band_rows = oh.div_ceil(bands(shape, oh));
    let bands = oh.div_ceil(band_rows);
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
        rows: (shape.n * bands * shape.ic * groups(shape.oc).1) as u32,
        bands: bands as u32,
        band_rows: band_rows as u32,
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
    let strips = invocations(shape.oc, shape.n, (p.oh as usize, p.ow as usize));
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
    // The transposed padding differs per axis for a kernel that is not square, which
    // ConvShape cannot say, so the forward's fields are written here rather than by `params`
    // (the forward reads no others), and the transposed shape below only names the channels
    // and taps for `constants`.
    let t = ConvShape {
        ic: shape.oc,
        oc: shape.ic,
        ..shape
    };
    let p = Params {
        n: shape.n as u32,
        h: oh as u32,
        w: ow as u32,
        oh: shape.h as u32,
        ow: shape.w as u32,
        pad: (shape.kh - 1 - shape.pad) as u32,
        pad_w: (shape.kw - 1 - shape.pad) as u32,
        w_off: w_off as u32,
        ..Default::default()
    };
    let strips = invocations(shape.ic, shape.n, (shape.h, shape.w));
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
    let reduce = run(ctx, "reduce", &constants, p, (outputs, SMALL_WG), io).await?;
    Ok(vec![sums, reduce])
}
