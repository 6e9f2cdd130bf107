//! Host side of `shaders/optim.wgsl`: the fused optimizer updates over packed buffers.
//!
//! The per-step scalars (learning rate, bias corrections) are computed by
//! [`crate::optim::Optimizer`] and written into this kernel's uniform before each step. The CPU
//! reference is [`crate::reference::optim_step`].

use std::sync::Arc;

use super::{div_ceil, grid_2d, Binding, Dispatch, Kernel, KernelSource};
use crate::error::Result;
use crate::gpu::Context;

/// Invocations per workgroup; equals `@workgroup_size` in optim.wgsl.
pub const WG: usize = 256;

pub const FLAG_FIRST: u32 = 1;
pub const FLAG_NESTEROV: u32 = 2;
pub const FLAG_EPS_INSIDE: u32 = 4;
pub const FLAG_MOMENTUM: u32 = 8;

const BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::ReadWrite, // param
    Binding::Read,      // grad
    Binding::ReadWrite, // state1
    Binding::ReadWrite, // state2
];

/// Which update rule (entry point of optim.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Sgd,
    Adagrad,
    Adam,
}

fn source(rule: Rule) -> KernelSource {
    let (name, entry) = match rule {
        Rule::Sgd => ("optim.sgd", "sgd"),
        Rule::Adagrad => ("optim.adagrad", "adagrad"),
        Rule::Adam => ("optim.adam", "adam"),
    };
    KernelSource {
        name,
        wgsl: include_str!("../../shaders/optim.wgsl"),
        entry,
        bindings: BINDINGS,
    }
}

/// Mirrors `Params` in optim.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub len4: u32,
    pub row_stride: u32,
    pub flags: u32,
    pub _pad: u32,
    pub lr: f32,
    pub weight_decay: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub step_size: f32,
    pub bc2: f32,
    pub bc2_sqrt: f32,
    pub decay: f32,
    pub clr: f32,
    pub one_minus_beta1: f32,
    pub one_minus_beta2: f32,
    pub one_minus_dampening: f32,
    pub _pad1: u32,
}

/// The compiled kernel of `rule`.
pub async fn kernel(ctx: &Context, rule: Rule) -> Result<Arc<Kernel>> {
    ctx.pipelines().get(ctx, &source(rule)).await
}

/// `dst = src` over `len` elements (a multiple of 4) with the updates' grid and access pattern:
/// the entry `copy` of optim.wgsl, which measures the adapter's shader copy ceiling for them.
/// `uniform` holds [`Params`] with `len4` and `row_stride` set as [`grid`] gives them.
pub async fn copy_dispatch(
    ctx: &Context,
    len: usize,
    uniform: wgpu::Buffer,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
) -> Result<Dispatch> {
    let source = KernelSource {
        name: "optim.copy",
        wgsl: include_str!("../../shaders/optim.wgsl"),
        entry: "copy",
        bindings: &BINDINGS[..3],
    };
    let kernel = ctx.pipelines().get(ctx, &source).await?;
    let (groups, _) = grid(ctx, len);
    Ok(Dispatch::new(
        ctx,
        kernel,
        Some(uniform),
        &[dst, src],
        groups,
    ))
}

/// The grid for `len` f32 elements (`len` a multiple of 4) and the row stride it implies.
pub fn grid(ctx: &Context, len: usize) -> ([u32; 3], u32) {
    let groups = grid_2d(ctx, div_ceil(len / 4, WG));
    (groups, groups[0] * WG as u32)
}

/// Buffers of an update; `state1`/`state2` may be small placeholders when the rule has no state.
pub struct Buffers<'a> {
    pub uniform: wgpu::Buffer,
    pub param: &'a wgpu::Buffer,
    pub grad: &'a wgpu::Buffer,
    pub state1: &'a wgpu::Buffer,
    pub state2: &'a wgpu::Buffer,
}

/// Builds the replayable update dispatch over `len` elements.
pub async fn dispatch(ctx: &Context, rule: Rule, len: usize, b: Buffers<'_>) -> Result<Dispatch> {
    let (groups, _) = grid(ctx, len);
    Ok(Dispatch::new(
        ctx,
        kernel(ctx, rule).await?,
        Some(b.uniform),
        &[b.param, b.grad, b.state1, b.state2],
        groups,
    ))
}
