//! Host side of `shaders/maxpool.wgsl`: 2-D max-pooling with argmax, and its backward. The CPU
//! references are [`crate::reference::maxpool`] and [`crate::reference::maxpool_backward`].

use super::{div_ceil, grid_2d, Binding, Dispatch, KernelSource};
use crate::error::{Error, Result};
use crate::gpu::Context;

/// Invocations per workgroup; equals `@workgroup_size` in maxpool.wgsl.
pub const WG: usize = 256;

/// Backward: zero the gradient where the pool's input is not > 0 (a fused ReLU backward).
pub const FLAG_MASK: u32 = 1;

const BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,      // x
    Binding::ReadWrite, // y (forward) or grad_y (backward)
    Binding::ReadWrite, // argmax
    Binding::ReadWrite, // grad_x (backward)
];

/// The entry points of maxpool.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Forward,
    /// One invocation per input element, any geometry.
    Backward,
    /// One invocation per window, when the windows tile the input exactly.
    Tiled,
    /// Forward and Tiled over two neighbouring 2x2 windows, for rows of a multiple of 4.
    ForwardPairs,
    TiledPairs,
}

fn source(pass: Pass) -> KernelSource {
    let (name, entry) = match pass {
        Pass::Forward => ("maxpool.forward", "forward"),
        Pass::Backward => ("maxpool.backward", "backward"),
        Pass::Tiled => ("maxpool.backward_tiled", "tiled"),
        Pass::ForwardPairs => ("maxpool.forward_pairs", "forward_pairs"),
        Pass::TiledPairs => ("maxpool.backward_tiled_pairs", "tiled_pairs"),
    };
    KernelSource {
        name,
        wgsl: include_str!("../../shaders/maxpool.wgsl"),
        entry,
        bindings: BINDINGS,
    }
}

/// The geometry of one pooling: `[n, c, h, w]` input, `k x k` windows, `stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
}

impl PoolShape {
    /// Output height and width (floor mode), or an error when no window fits.
    pub fn output(&self) -> Result<(usize, usize)> {
        if self.k == 0 || self.stride == 0 || self.k > self.h || self.k > self.w {
            return Err(Error::Shape(format!(
                "max-pool: window {} stride {} does not fit input {}x{}",
                self.k, self.stride, self.h, self.w
            )));
        }
        Ok((
            (self.h - self.k) / self.stride + 1,
            (self.w - self.k) / self.stride + 1,
        ))
    }
}

/// Mirrors `Params` in maxpool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub k: u32,
    pub stride: u32,
    pub oh: u32,
    pub ow: u32,
    pub x_off: u32,
    pub flags: u32,
    pub row_stride: u32,
    pub _pad: u32,
}

/// Buffers of a pooling pass; `grad_x` may be any other buffer in the forward pass.
pub struct Buffers<'a> {
    /// `[n, c, h, w]` at element `x.1`.
    pub x: (&'a wgpu::Buffer, usize),
    /// Forward: the output y. Backward: grad_y. `[n, c, oh, ow]` from element 0.
    pub y: &'a wgpu::Buffer,
    /// `[n, c, oh, ow]` u32, written by the forward pass.
    pub argmax: &'a wgpu::Buffer,
    /// `[n, c, h, w]`, written by the backward pass.
    pub grad_x: &'a wgpu::Buffer,
}

/// Builds the forward (`forward`) or backward dispatch of a pooling.
pub async fn dispatch(
    ctx: &Context,
    forward: bool,
    shape: PoolShape,
    flags: u32,
    b: Buffers<'_>,
) -> Result<Dispatch> {
    let (oh, ow) = shape.output()?;
    let tiles = shape.k == shape.stride && shape.h % shape.k == 0 && shape.w % shape.k == 0;
    // 2x2 windows over rows of whole aligned vec4s: two windows per invocation.
    let pairs = tiles && shape.k == 2 && shape.w % 4 == 0 && b.x.1 % 4 == 0;
    let pass = match (forward, tiles, pairs) {
        (true, _, true) => Pass::ForwardPairs,
        (true, _, false) => Pass::Forward,
        (false, _, true) => Pass::TiledPairs,
        (false, true, false) => Pass::Tiled,
        (false, false, _) => Pass::Backward,
    };
    let outputs = match pass {
        Pass::Backward => shape.n * shape.c * shape.h * shape.w,
        Pass::ForwardPairs | Pass::TiledPairs => shape.n * shape.c * oh * ow / 2,
        _ => shape.n * shape.c * oh * ow,
    };
    let groups = grid_2d(ctx, div_ceil(outputs, WG));
    let params = Params {
        n: shape.n as u32,
        c: shape.c as u32,
        h: shape.h as u32,
        w: shape.w as u32,
        k: shape.k as u32,
        stride: shape.stride as u32,
        oh: oh as u32,
        ow: ow as u32,
        x_off: b.x.1 as u32,
        flags,
        row_stride: groups[0] * WG as u32,
        _pad: 0,
    };
    let kernel = ctx.pipelines().get(ctx, &source(pass)).await?;
    Ok(Dispatch::new(
        ctx,
        kernel,
        Some(ctx.uniform("maxpool params", &params)),
        &[b.x.0, b.y, b.argmax, b.grad_x],
        groups,
    ))
}
