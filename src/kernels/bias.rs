//! Host side of `shaders/bias_grad.wgsl`: column sums, the bias gradient of a linear layer.
//! The CPU reference is [`crate::reference::column_sums`].

use super::{div_ceil, Binding, Dispatch, KernelSource};
use crate::error::Result;
use crate::gpu::Context;

/// Invocations per workgroup; equals `@workgroup_size` in bias_grad.wgsl.
pub const WG: usize = 64;

const SOURCE: KernelSource = KernelSource {
    name: "bias_grad",
    wgsl: include_str!("../../shaders/bias_grad.wgsl"),
    entry: "main",
    bindings: &[Binding::Uniform, Binding::Read, Binding::ReadWrite],
};

/// Mirrors `Params` in bias_grad.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub cols: u32,
    pub src_off: u32,
    pub dst_off: u32,
}

/// Builds a dispatch writing `dst[dst_off + j] = sum_i src[src_off + i * cols + j]`.
pub async fn dispatch(
    ctx: &Context,
    rows: usize,
    cols: usize,
    (src, src_off): (&wgpu::Buffer, usize),
    (dst, dst_off): (&wgpu::Buffer, usize),
) -> Result<Dispatch> {
    let params = Params {
        rows: rows as u32,
        cols: cols as u32,
        src_off: src_off as u32,
        dst_off: dst_off as u32,
    };
    let kernel = ctx.pipelines().get(ctx, &SOURCE).await?;
    Ok(Dispatch::new(
        ctx,
        kernel,
        Some(ctx.uniform("bias_grad params", &params)),
        &[src, dst],
        [div_ceil(cols, WG), 1, 1],
    ))
}
