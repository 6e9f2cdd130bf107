//! Host side of `shaders/matmul_pack.wgsl`: copies a strided operand into the zero-padded vec4
//! grid the 8x8 kernels read, as an rgba32float texture or a storage buffer.

use super::super::{Binding, Dispatch, KernelSource};
use crate::error::Result;
use crate::gpu::Context;

/// Mirrors `Pack` in matmul_pack.wgsl field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Pack {
    pub rows: u32,
    pub cols: u32,
    pub off: u32,
    pub rs: u32,
    pub cs: u32,
    /// Texels per packed row (4 * width >= cols).
    pub width: u32,
    /// Packed rows (>= rows).
    pub height: u32,
    /// [`FLAG_VEC4`] or 0; set by [`prepare`].
    pub flags: u32,
    /// Invocations per grid row; set by [`prepare`].
    pub row_stride: u32,
}

/// Rows are contiguous, 16-byte aligned vec4s: one load per texel.
pub const FLAG_VEC4: u32 = 1;

/// Invocations per workgroup: `@workgroup_size(256)` in matmul_pack_*.wgsl.
const WORKGROUP: u32 = 256;

const TEX: KernelSource = KernelSource {
    name: "matmul_pack.tex",
    wgsl: concat!(
        include_str!("../../../shaders/matmul_pack.wgsl"),
        include_str!("../../../shaders/matmul_pack_tex.wgsl")
    ),
    entry: "main",
    bindings: &[
        Binding::Uniform,
        Binding::Read,
        Binding::StorageTexture,
        Binding::Read,
    ],
};

const BUF: KernelSource = KernelSource {
    name: "matmul_pack.buf",
    wgsl: concat!(
        include_str!("../../../shaders/matmul_pack.wgsl"),
        include_str!("../../../shaders/matmul_pack_buf.wgsl")
    ),
    entry: "main",
    bindings: &[
        Binding::Uniform,
        Binding::Read,
        Binding::ReadWrite,
        Binding::Read,
    ],
};

/// Fills in the flags and grid layout of `p`; returns the grid.
fn prepare(ctx: &Context, p: &mut Pack) -> [u32; 3] {
    let q = |v: u32| v % 4 == 0;
    p.flags = if p.cs == 1 && q(p.off) && q(p.rs) && q(p.cols) {
        FLAG_VEC4
    } else {
        0
    };
    let groups = (p.width * p.height).div_ceil(WORKGROUP);
    let grid = super::super::grid_2d(ctx, groups);
    p.row_stride = grid[0] * WORKGROUP;
    grid
}

/// A texture to pack `p` into.
pub fn texture(ctx: &Context, name: &str, p: &Pack) -> wgpu::Texture {
    ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(name),
        size: wgpu::Extent3d {
            width: p.width,
            height: p.height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
        view_formats: &[],
    })
}

/// Packs `src` as described by `p` into `dst` (made by [`texture`]).
pub async fn to_texture(
    ctx: &Context,
    p: &Pack,
    src: &wgpu::Buffer,
    dst: &wgpu::Texture,
) -> Result<Dispatch> {
    let kernel = ctx.pipelines().get(ctx, &TEX).await?;
    let view = dst.create_view(&Default::default());
    let resources = vec![
        src.as_entire_binding(),
        wgpu::BindingResource::TextureView(&view),
        src.as_entire_binding(),
    ];
    let mut p = *p;
    let grid = prepare(ctx, &mut p);
    let params = Some(ctx.uniform("pack params", &p));
    Ok(Dispatch::bind(ctx, kernel, params, resources, grid))
}

/// Packs `src` as described by `p` into the vec4 buffer `dst` (width x height vec4s).
pub async fn to_buffer(
    ctx: &Context,
    p: &Pack,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Result<Dispatch> {
    let kernel = ctx.pipelines().get(ctx, &BUF).await?;
    let mut p = *p;
    let grid = prepare(ctx, &mut p);
    let params = Some(ctx.uniform("pack params", &p));
    Ok(Dispatch::new(ctx, kernel, params, &[src, dst, src], grid))
}
