//! Host side of `shaders/matmul.wgsl` (strided, any layout) and `shaders/matmul_vec4.wgsl`
//! (vec4 loads, for contiguous aligned rows): `C = epilogue(A B)`.
//!
//! [`Operand`] describes where a matrix sits in a buffer (element offset and strides), so a
//! transposed operand is just swapped strides. [`Epilogue`] selects the fused bias, ReLU and ReLU
//! mask. [`dispatch`] picks the vec4 kernel when the layout allows it (3-4x faster on llvmpipe)
//! and the strided one otherwise; [`dispatch_variant`] forces one, for tests and benches. The
//! CPU reference is [`crate::reference::matmul`].

use std::sync::Arc;

use super::{div_ceil, Binding, Dispatch, Kernel, KernelSource};
use crate::error::{Error, Result};
use crate::gpu::Context;

/// Rows of C per workgroup: workgroup height 8 x block rows TM 4 in both matmul shaders (change
/// them together).
pub const TILE_M: usize = 32;
/// Columns of C per workgroup: workgroup width 16 x block columns TN 4 in both matmul shaders.
pub const TILE_N: usize = 64;

const SOURCE: KernelSource = KernelSource {
    name: "matmul",
    wgsl: concat!(
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/matmul.wgsl")
    ),
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

const VEC4_BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,      // a, as vec4
    Binding::Read,      // b, as vec4
    Binding::Read,      // bias
    Binding::Read,      // mask
    Binding::ReadWrite, // c
    Binding::Read,      // a, as f32 (the nn entry point)
];

fn vec4_source(entry: &'static str) -> KernelSource {
    KernelSource {
        name: match entry {
            "nt" => "matmul_vec4.nt",
            "tn" => "matmul_vec4.tn",
            _ => "matmul_vec4.nn",
        },
        wgsl: concat!(
            include_str!("../../shaders/matmul_common.wgsl"),
            include_str!("../../shaders/matmul_vec4.wgsl")
        ),
        entry,
        bindings: VEC4_BINDINGS,
    }
}

/// Which kernel computes a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// matmul.wgsl: scalar loads through any strides. Works for every layout.
    Strided,
    /// matmul_vec4.wgsl: vec4 loads along contiguous, 16-byte aligned rows.
    Vec4,
}

/// Mirrors `Params` in matmul_common.wgsl field for field.
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

/// Builds a replayable dispatch of `C = epilogue(A B)`, C row-major with row stride `c.1`,
/// with the fastest kernel the layout allows.
pub async fn dispatch(
    ctx: &Context,
    shape: Shape,
    a: Operand,
    b: Operand,
    c: (usize, usize),
    epilogue: Epilogue,
    buffers: Buffers<'_>,
) -> Result<Dispatch> {
    let variant = if vec4_layout(shape, a, b).is_some() {
        Variant::Vec4
    } else {
        Variant::Strided
    };
    dispatch_variant(ctx, variant, shape, a, b, c, epilogue, buffers).await
}

/// The vec4 entry point and its parameters in vec4 units, when `a` and `b` allow one: see the
/// requirements in matmul_vec4.wgsl's header.
fn vec4_layout(shape: Shape, a: Operand, b: Operand) -> Option<(&'static str, Params)> {
    let q = |v: usize| v % 4 == 0;
    let mut p = Params {
        m: shape.m as u32,
        n: shape.n as u32,
        kdim: shape.k as u32,
        ..Params::default()
    };
    if a.col_stride == 1 && b.row_stride == 1 {
        // nt: rows of A and columns of B both run along k.
        if !(q(shape.k) && q(a.offset) && q(a.row_stride) && q(b.offset) && q(b.col_stride)) {
            return None;
        }
        (p.a_off, p.a_rs) = ((a.offset / 4) as u32, (a.row_stride / 4) as u32);
        (p.b_off, p.b_rs) = ((b.offset / 4) as u32, (b.col_stride / 4) as u32);
        return Some(("nt", p));
    }
    if a.row_stride == 1 && b.col_stride == 1 {
        // tn: A runs along i and B along j, one vec4 of each per k.
        let aligned = q(a.offset) && q(a.col_stride) && q(b.offset) && q(b.row_stride);
        if !(q(shape.m) && q(shape.n) && aligned) {
            return None;
        }
        (p.a_off, p.a_rs) = ((a.offset / 4) as u32, (a.col_stride / 4) as u32);
        (p.b_off, p.b_rs) = ((b.offset / 4) as u32, (b.row_stride / 4) as u32);
        return Some(("tn", p));
    }
    if a.col_stride == 1 && b.col_stride == 1 {
        // nn: A read as floats, B as vec4 along j.
        if !(q(shape.n) && q(b.offset) && q(b.row_stride)) {
            return None;
        }
        (p.a_off, p.a_rs) = (a.offset as u32, a.row_stride as u32);
        (p.b_off, p.b_rs) = ((b.offset / 4) as u32, (b.row_stride / 4) as u32);
        return Some(("nn", p));
    }
    None
}

/// As [`dispatch`] with the kernel chosen by the caller.
///
/// # Errors
/// [`Error::Config`] when `Variant::Vec4` is asked for a layout it cannot read.
#[allow(clippy::too_many_arguments)]
pub async fn dispatch_variant(
    ctx: &Context,
    variant: Variant,
    shape: Shape,
    a: Operand,
    b: Operand,
    c: (usize, usize),
    epilogue: Epilogue,
    buffers: Buffers<'_>,
) -> Result<Dispatch> {
    log::trace!("matmul {shape:?} A {a:?} B {b:?}: {variant:?} kernel");
    let groups = [div_ceil(shape.n, TILE_N), div_ceil(shape.m, TILE_M), 1];
    let strided = params(shape, a, b, c, epilogue);
    let all = [buffers.a, buffers.b, buffers.bias, buffers.mask, buffers.c];
    match variant {
        Variant::Strided => Ok(Dispatch::new(
            ctx,
            kernel(ctx).await?,
            Some(ctx.uniform("matmul params", &strided)),
            &all,
            groups,
        )),
        Variant::Vec4 => {
            let (entry, p) = vec4_layout(shape, a, b).ok_or_else(|| {
                Error::Config(format!(
                    "the vec4 matmul cannot read {shape:?} with A {a:?} and B {b:?}"
                ))
            })?;
            // Output and epilogue fields are the same in both kernels, in floats.
            let p = Params {
                flags: strided.flags,
                c_off: strided.c_off,
                c_rs: strided.c_rs,
                bias_off: strided.bias_off,
                mask_off: strided.mask_off,
                mask_rs: strided.mask_rs,
                ..p
            };
            let kernel = ctx.pipelines().get(ctx, &vec4_source(entry)).await?;
            Ok(Dispatch::new(
                ctx,
                kernel,
                Some(ctx.uniform("matmul params", &p)),
                &[all[0], all[1], all[2], all[3], all[4], buffers.a],
                groups,
            ))
        }
    }
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
