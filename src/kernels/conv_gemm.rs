//! Convolution as matrix products: host side of `shaders/conv_gemm.wgsl`.
//!
//! Each pass of a convolution becomes a packing dispatch and an 8x8-block matmul
//! ([`matmul::dispatch_grids`], the block8 variants), so conv gets the matmul's tiling:
//!   forward      im2col(x) -> col;  pack W^T;  y = col W^T (+ bias, ReLU), stored NCHW
//!   grad_weight  planes(grad_y) -> grad_y' [oc, R];  grad_w = grad_y' col  (col from forward)
//!   grad_input   rows(grad_y) -> grad_y'' [R, oc];  pack W;  dcol = grad_y'' W;
//!                grad_x = col2im(dcol) (* ReLU mask)
//! where R = n oh ow. The bias gradient keeps conv2d.wgsl's reduction. Which way a convolution
//! runs (these products, conv_strip.wgsl's strips, or conv2d.wgsl's direct loops) is
//! [`choose`]'s decision.
//!
//! The CPU references are [`crate::reference::conv2d`] and [`crate::reference::conv2d_grads`].

use super::conv::ConvShape;
use super::conv_strip;
use super::matmul::{self, pack, Epilogue, Grid, GridLayout, Shape, Variant};
use super::{div_ceil, grid_2d, Binding, Dispatch, KernelSource};
use crate::error::Result;
use crate::gpu::Context;

/// Invocations per workgroup: `@workgroup_size(256)` in conv_gemm.wgsl.
const WG: u32 = 256;

/// Mirrors `Params` in conv_gemm.wgsl field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    ic: u32,
    h: u32,
    w: u32,
    oc: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    flags: u32,
    width: u32,
    height: u32,
    row_stride: u32,
    src_off: u32,
}

const BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,      // src
    Binding::Read,      // mask
    Binding::ReadWrite, // packed
    Binding::ReadWrite, // grad_x
];

fn source(entry: &'static str) -> KernelSource {
    KernelSource {
        name: match entry {
            "im2col" => "conv_gemm.im2col",
            "im2col_rows" => "conv_gemm.im2col_rows",
            "rows" => "conv_gemm.rows",
            "planes" => "conv_gemm.planes",
            _ => "conv_gemm.col2im",
        },
        wgsl: include_str!("../../shaders/conv_gemm.wgsl"),
        entry,
        bindings: BINDINGS,
    }
}

/// How a convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// conv2d.wgsl's direct loops: no scratch memory, works everywhere.
    Direct,
    /// The matrix products of this module, by this matmul variant (block8 or block8-sg).
    Gemm(Variant),
    /// conv_strip.wgsl's strips for the forward and the weight gradient; the input gradient
    /// as [`grad_input_by_strips`] says, else by this module's products with block8-sg.
    Strip,
}

/// The method for a convolution: `WGRAD_KERNEL=direct`, `block8` or `block8-sg` when forced;
/// else strips where [`conv_strip::fits`], the products with block8-sg where the adapter has
/// subgroups, block8 otherwise; direct when the im2col buffer would exceed the adapter's
/// binding limit.
///
/// TODO: time the methods per shape as matmul::choose does. On llvmpipe the products make a
/// LeNet-5 training step 2x faster than the direct loops, and strips make both its
/// convolutions faster again, so the static order is right there, but it is not measured per
/// adapter: on a GPU with workgroup memory the products may well beat the strips.
pub fn choose(ctx: &Context, shape: ConvShape) -> Method {
    let (r, _) = rows(shape);
    let too_big =
        (16 * r * texels(shape.ic * shape.kh * shape.kw)) as u64 > ctx.max_binding_bytes();
    let row = matmul::Operand::row_major(0, 4);
    let probe = Shape { m: 8, n: 8, k: 4 };
    let usable = |v: Variant| v.unsupported(ctx, probe, row, row).is_none();
    match ctx.tuning().forced.as_deref() {
        Some("direct") => return Method::Direct,
        Some("block8") if !too_big => return Method::Gemm(Variant::Block8),
        Some("block8-sg") if !too_big && usable(Variant::Block8Sg) => {
            return Method::Gemm(Variant::Block8Sg)
        }
        Some("block8" | "block8-sg") => {}
        _ if conv_strip::fits(ctx, shape) => return Method::Strip,
        _ => {}
    }
    if too_big {
        Method::Direct
    } else if usable(Variant::Block8Sg) {
        Method::Gemm(Variant::Block8Sg)
    } else {
        Method::Gemm(Variant::Block8)
    }
}

/// Whether the input gradient of a convolution that runs as strips or products runs as
/// strips ([`conv_strip::grad_input`]): where [`conv_strip::fits_grad_input`], unless
/// `WGRAD_KERNEL` forces a method. Else it is [`grad_input`]'s product and col2im.
pub fn grad_input_by_strips(ctx: &Context, shape: ConvShape) -> bool {
    let forced = matches!(
        ctx.tuning().forced.as_deref(),
        Some("direct" | "block8" | "block8-sg")
    );
    !forced && conv_strip::fits_grad_input(ctx, shape)
}

/// Rows of the position-major matrices (R = n oh ow) and R padded to the 8x8 kernels' blocks.
fn rows(shape: ConvShape) -> (usize, usize) {
    let (oh, ow) = shape.output().unwrap_or((0, 0));
    let r = shape.n * oh * ow;
    (r, r.div_ceil(8).max(1) * 8)
}

/// vec4 texels of a row of `cols` floats.
fn texels(cols: usize) -> usize {
    cols.div_ceil(4).max(1)
}

/// Floats of the im2col buffer a convolution of `shape` needs (shared by forward and
/// grad_weight: allocate one per convolution and batch size).
pub fn col_len(shape: ConvShape) -> usize {
    4 * texels(shape.ic * shape.kh * shape.kw) * rows(shape).1
}

fn params(ctx: &Context, shape: ConvShape, width: usize, height: usize) -> (Params, [u32; 3]) {
    let (oh, ow) = shape.output().unwrap_or((0, 0));
    let grid = grid_2d(ctx, div_ceil(width * height, WG as usize));
    let p = Params {
        n: shape.n as u32,
        ic: shape.ic as u32,
        h: shape.h as u32,
        w: shape.w as u32,
        oc: shape.oc as u32,
        kh: shape.kh as u32,
        kw: shape.kw as u32,
        stride: shape.stride as u32,
        pad: shape.pad as u32,
        oh: oh as u32,
        ow: ow as u32,
        flags: 0,
        width: width as u32,
        height: height as u32,
        row_stride: grid[0] * WG,
        src_off: 0,
    };
    (p, grid)
}

/// One dispatch of a conv_gemm.wgsl entry point: the pack entries write `out` as `packed`,
/// col2im writes it as `grad_x`. The writable binding an entry does not use gets a placeholder:
/// a buffer may not be bound for reading and writing in one dispatch.
async fn run(
    ctx: &Context,
    entry: &'static str,
    p: Params,
    grid: [u32; 3],
    (src, mask): (&wgpu::Buffer, &wgpu::Buffer),
    out: &wgpu::Buffer,
) -> Result<Dispatch> {
    let kernel = ctx.pipelines().get(ctx, &source(entry)).await?;
    let params = Some(ctx.uniform("conv_gemm params", &p));
    let unused = ctx.storage("unused", 4)?;
    let buffers = if entry == "col2im" {
        [src, mask, &unused, out]
    } else {
        [src, mask, out, &unused]
    };
    Ok(Dispatch::new(ctx, kernel, params, &buffers, grid))
}

/// Packs the weight `[oc, K]` at `w_off` as the matmul's B: transposed (`W^T`, [K, oc]) for the
/// forward, as is ([oc, K]) for grad_input.
async fn pack_weight(
    ctx: &Context,
    shape: ConvShape,
    params: &wgpu::Buffer,
    w_off: usize,
    transposed: bool,
) -> Result<(Dispatch, wgpu::Buffer, usize)> {
    let k = shape.ic * shape.kh * shape.kw;
    let (rows, cols, rs, cs) = if transposed {
        (k, shape.oc, 1, k)
    } else {
        (shape.oc, k, k, 1)
    };
    let width = cols.div_ceil(8).max(1) * 2;
    let p = pack::Pack {
        rows: rows as u32,
        cols: cols as u32,
        off: w_off as u32,
        rs: rs as u32,
        cs: cs as u32,
        width: width as u32,
        height: (4 * texels(rows)) as u32,
        ..Default::default()
    };
    let out = ctx.storage("packed conv weight", 4 * width * 4 * texels(rows))?;
    let d = pack::to_buffer(ctx, &p, params, &out).await?;
    Ok((d, out, width))
}

/// The im2col pass of the forward, `x -> col`: one invocation per texel of col, or with
/// `per_row` one per row. A CPU adapter runs each lane's loop as plain code, and there the row
/// form, which divides once per row instead of once per texel, measured 15-20% faster on
/// llvmpipe; a GPU wants neighbouring invocations on neighbouring texels, so that its stores
/// coalesce. The two write the same col, bit for bit.
pub async fn im2col(
    ctx: &Context,
    shape: ConvShape,
    x: &wgpu::Buffer,
    col: &wgpu::Buffer,
    per_row: bool,
) -> Result<Dispatch> {
    let k = shape.ic * shape.kh * shape.kw;
    let (kq, padded) = (texels(k), rows(shape).1);
    if per_row {
        let (p, grid) = self::params(ctx, shape, 1, padded);
        let p = Params {
            width: kq as u32,
            ..p
        };
        run(ctx, "im2col_rows", p, grid, (x, x), col).await
    } else {
        let (p, grid) = self::params(ctx, shape, kq, padded);
        run(ctx, "im2col", p, grid, (x, x), col).await
    }
}

/// The forward pass: `y = relu?(conv(x, W) + bias)` into `y` ([n, oc, oh, ow] from 0), through
/// `col` (at least [`col_len`] floats).
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    ctx: &Context,
    variant: Variant,
    shape: ConvShape,
    x: &wgpu::Buffer,
    params: &wgpu::Buffer,
    (w_off, b_off): (usize, usize),
    relu: bool,
    y: &wgpu::Buffer,
    col: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let (oh, ow) = shape.output()?;
    let k = shape.ic * shape.kh * shape.kw;
    let (r, _) = rows(shape);
    let kq = texels(k);
    let per_row = ctx.info.device_type == wgpu::DeviceType::Cpu;
    let im2col = im2col(ctx, shape, x, col, per_row).await?;
    let epilogue = Epilogue {
        bias: Some(b_off),
        relu,
        mask: None,
    };
    let plane = oh * ow;
    let col_grid = Grid {
        buffer: col,
        offset: 0,
        row_stride: kq,
        cols: kq,
    };
    // With subgroups, C^T = W col^T: the channels are the rows, so that a few of them still
    // fill the subgroup kernel's 16-row tiles, which reads col in place as B^T, and every four
    // positions are one vec4 of y. LeNet-5's second convolution (16 channels) took 2.7 ms this
    // way against 4.8 for col W^T by the 8x8 kernel in its tall layout, which needs no
    // subgroups and serves the other cases (a few output channels make a narrow C there,
    // which the subgroup kernel, whose lanes share rows, cannot serve).
    let transposed = variant == Variant::Block8Sg && plane % 4 == 0;
    let (pack_w, packed, width) = pack_weight(ctx, shape, params, w_off, !transposed).await?;
    let w_grid = Grid {
        buffer: &packed,
        offset: 0,
        row_stride: width,
        cols: width,
    };
    let (variant, product, a, b, layout) = if transposed {
        let product = Shape {
            m: shape.oc,
            n: r,
            k,
        };
        (variant, product, w_grid, col_grid, GridLayout::NchwT(plane))
    } else {
        let v = if shape.oc <= 32 {
            Variant::Block8
        } else {
            variant
        };
        let product = Shape {
            m: r,
            n: shape.oc,
            k,
        };
        (v, product, col_grid, w_grid, GridLayout::Nchw(plane))
    };
    let out = (params, params, y);
    let product =
        matmul::dispatch_grids(ctx, variant, product, a, b, (0, 0), epilogue, layout, out).await?;
    Ok([vec![im2col, pack_w], product]
        .into_iter()
        .flatten()
        .collect())
}

/// grad_w = grad_y' col into `grads` at `w_off` (`[oc, ic, kh, kw]`, overwritten), with `col`
/// as the forward of the same step left it.
pub async fn grad_weight(
    ctx: &Context,
    variant: Variant,
    shape: ConvShape,
    grad_y: &wgpu::Buffer,
    col: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    w_off: usize,
) -> Result<Vec<Dispatch>> {
    let k = shape.ic * shape.kh * shape.kw;
    let (r, _) = rows(shape);
    let rq = texels(r);
    let oc_rows = shape.oc.div_ceil(8) * 8;
    let planes = ctx.storage("grad_y planes", 4 * rq * oc_rows)?;
    let (p, grid) = params(ctx, shape, rq, oc_rows);
    let pack = run(ctx, "planes", p, grid, (grad_y, grad_y), &planes).await?;
    let kq = texels(k);
    let product = matmul::dispatch_grids(
        ctx,
        variant,
        Shape {
            m: shape.oc,
            n: k,
            k: r,
        },
        Grid {
            buffer: &planes,
            offset: 0,
            row_stride: rq,
            cols: rq,
        },
        Grid {
            buffer: col,
            offset: 0,
            row_stride: kq,
            cols: kq,
        },
        (w_off, k),
        Epilogue::default(),
        GridLayout::Plain,
        (col, col, grads),
    )
    .await?;
    Ok([vec![pack], product].into_iter().flatten().collect())
}

/// grad_x = col2im(grad_y'' W) into `grad_x` ([n, ic, h, w] from 0, overwritten), zeroed where
/// `mask` (the ReLU output that was this convolution's input) is not positive, when given.
#[allow(clippy::too_many_arguments)]
pub async fn grad_input(
    ctx: &Context,
    variant: Variant,
    shape: ConvShape,
    grad_y: &wgpu::Buffer,
    params: &wgpu::Buffer,
    w_off: usize,
    mask: Option<&wgpu::Buffer>,
    grad_x: &wgpu::Buffer,
) -> Result<Vec<Dispatch>> {
    let k = shape.ic * shape.kh * shape.kw;
    let (r, padded) = rows(shape);
    let ocq = texels(shape.oc);
    let gy_rows = ctx.storage("grad_y rows", 4 * ocq * padded)?;
    let (p, grid) = self::params(ctx, shape, ocq, padded);
    let pack = run(ctx, "rows", p, grid, (grad_y, grad_y), &gy_rows).await?;
    let (pack_w, packed, width) = pack_weight(ctx, shape, params, w_off, false).await?;
    // dcol's rows padded to whole vec4s, so that the product stores them as vec4s.
    let kp = 4 * texels(k);
    let dcol = ctx.storage("dcol", r * kp)?;
    // n = kp: the padding columns come out 0 (packed W is zero past k) and col2im skips them.
    let product = matmul::dispatch_grids(
        ctx,
        variant,
        Shape {
            m: r,
            n: kp,
            k: shape.oc,
        },
        Grid {
            buffer: &gy_rows,
            offset: 0,
            row_stride: ocq,
            cols: ocq,
        },
        Grid {
            buffer: &packed,
            offset: 0,
            row_stride: width,
            cols: width,
        },
        (0, kp),
        Epilogue::default(),
        GridLayout::Plain,
        (params, params, &dcol),
    )
    .await?;
    let elements = shape.n * shape.ic * shape.h * shape.w;
    let (mut p, grid) = self::params(ctx, shape, elements, 1);
    p.width = kp as u32;
    if mask.is_some() {
        p.flags = 4;
    }
    let mask = mask.unwrap_or(&dcol);
    let scatter = run(ctx, "col2im", p, grid, (&dcol, mask), grad_x).await?;
    Ok([vec![pack, pack_w], product, vec![scatter]]
        .into_iter()
        .flatten()
        .collect())
}
