//! Host side of `shaders/matmul.wgsl`: strided `C = epilogue(A B)`.
//!
//! [`Operand`] describes where a matrix sits in a buffer (element offset and strides), so a
//! transposed operand is just swapped strides. [`Epilogue`] selects the fused bias, ReLU and ReLU
//! mask. The CPU reference is [`crate::reference::matmul`].

use std::sync::Arc;

use super::{div_ceil, Binding, Dispatch, Kernel, KernelSource};
use crate::error::Result;
use crate::gpu::Context;

/// Rows of C per workgroup: WG_Y (8) x TM (4) in the shader.
pub const TILE_M: usize = 32;
/// Columns of C per workgroup: WG_X (16) x TN (4) in the shader.
pub const TILE_N: usize = 64;

const SOURCE: KernelSource = KernelSource {
    name: "matmul",
    wgsl: include_str!("../../shaders/matmul.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Uniform,
        Binding::Read,      // a
        Binding::Read,      // b
        Binding::Read,      // bias
        Binding::Read,      // mask
        Binding::ReadWrite, // c
    ],
};

/// Mirrors `Params` in matmul.wgsl field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub m: u32,
    pub n: u32,
    pub kdim: u32,
    pub flags: u32,
    pub a_off: u32,
    pub a_rs: u32,
    pub a_cs: u32,
    pub b_off: u32,
    pub b_rs: u32,
    pub b_cs: u32,
    pub c_off: u32,
    pub c_rs: u32,
    pub bias_off: u32,
    pub mask_off: u32,
    pub mask_rs: u32,
    pub _pad: u32,
}

/// A matrix inside a buffer: element `(i, j)` is at `offset + i * row_stride + j * col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct Operand {
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Operand {
    /// A row-major `[rows, cols]` matrix at `offset`.
    pub fn row_major(offset: usize, cols: usize) -> Self {
        Operand {
            offset,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of the row-major `[rows, cols]` matrix at `offset`: a `[cols, rows]` view.
    pub fn transposed(offset: usize, cols: usize) -> Self {
        Operand {
            offset,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Index of element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> usize {
        self.offset + i * self.row_stride + j * self.col_stride
    }
}

/// What happens to each sum before it is stored.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Epilogue {
    /// Element offset of a `[n]` bias added to every row.
    pub bias: Option<usize>,
    /// Apply `max(x, 0)`.
    pub relu: bool,
    /// `(offset, row_stride)` of a `[m, n]` ReLU output: zero the result where it is not > 0.
    pub mask: Option<(usize, usize)>,
}

/// The shape of one product: `C [m, n] = A [m, k] B [k, n]`.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// The compiled matmul kernel.
pub async fn kernel(ctx: &Context) -> Result<Arc<Kernel>> {
    ctx.pipelines().get(ctx, &SOURCE).await
}

/// Buffers of one product. `bias` and `mask` may be any readable buffer when unused.
pub struct Buffers<'a> {
    pub a: &'a wgpu::Buffer,
    pub b: &'a wgpu::Buffer,
    pub bias: &'a wgpu::Buffer,
    pub mask: &'a wgpu::Buffer,
    pub c: &'a wgpu::Buffer,
}

/// Builds a replayable dispatch of `C = epilogue(A B)`, C row-major with row stride `c.1`.
#[allow(clippy::too_many_arguments)]
pub async fn dispatch(
    ctx: &Context,
    shape: Shape,
    a: Operand,
    b: Operand,
    c: (usize, usize),
    epilogue: Epilogue,
    buffers: Buffers<'_>,
) -> Result<Dispatch> {
    let params = params(shape, a, b, c, epilogue);
    let uniform = ctx.uniform("matmul params", &params);
    let groups = [div_ceil(shape.n, TILE_N), div_ceil(shape.m, TILE_M), 1];
    Ok(Dispatch::new(
        ctx,
        kernel(ctx).await?,
        Some(uniform),
        &[buffers.a, buffers.b, buffers.bias, buffers.mask, buffers.c],
        groups,
    ))
}

/// The shader's parameter block for one product.
pub fn params(shape: Shape, a: Operand, b: Operand, c: (usize, usize), e: Epilogue) -> Params {
    let flags = e.bias.map_or(0, |_| 1) | if e.relu { 2 } else { 0 } | e.mask.map_or(0, |_| 4);
    Params {
        m: shape.m as u32,
        n: shape.n as u32,
        kdim: shape.k as u32,
        flags,
        a_off: a.offset as u32,
        a_rs: a.row_stride as u32,
        a_cs: a.col_stride as u32,
        b_off: b.offset as u32,
        b_rs: b.row_stride as u32,
        b_cs: b.col_stride as u32,
        c_off: c.0 as u32,
        c_rs: c.1 as u32,
        bias_off: e.bias.unwrap_or(0) as u32,
        mask_off: e.mask.map_or(0, |m| m.0) as u32,
        mask_rs: e.mask.map_or(0, |m| m.1) as u32,
        _pad: 0,
    }
}
