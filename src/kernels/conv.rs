//! Host side of `shaders/conv2d.wgsl`: 2-D convolution and its gradients (NCHW, PyTorch's
//! layouts). The CPU references are [`crate::reference::conv2d`] and its `_grad_*` siblings.

use super::{div_ceil, grid_2d, Binding, Dispatch, KernelSource};
use crate::error::{Error, Result};
use crate::gpu::Context;

/// Invocations per workgroup; equals `@workgroup_size` in conv2d.wgsl.
pub const WG: usize = 256;

pub const FLAG_BIAS: u32 = 1;
pub const FLAG_RELU: u32 = 2;
pub const FLAG_MASK: u32 = 4;

const BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,      // x
    Binding::Read,      // weight and bias
    Binding::Read,      // grad_y
    Binding::ReadWrite, // out
];

/// Which pass (entry point of conv2d.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    GradInput,
    GradWeight,
    GradBias,
}

fn source(pass: Pass) -> KernelSource {
    let (name, entry) = match pass {
        Pass::Forward => ("conv2d.forward", "forward"),
        Pass::GradInput => ("conv2d.grad_input", "grad_input"),
        Pass::GradWeight => ("conv2d.grad_weight", "grad_weight"),
        Pass::GradBias => ("conv2d.grad_bias", "grad_bias"),
    };
    KernelSource {
        name,
        wgsl: include_str!("../../shaders/conv2d.wgsl"),
        entry,
        bindings: BINDINGS,
    }
}

/// The geometry of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub n: usize,
    pub ic: usize,
    pub h: usize,
    pub w: usize,
    pub oc: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    /// Output height and width, or an error when the kernel does not fit the padded input.
    pub fn output(&self) -> Result<(usize, usize)> {
        let (ph, pw) = (self.h + 2 * self.pad, self.w + 2 * self.pad);
        if self.stride == 0 || self.kh == 0 || self.kw == 0 || self.kh > ph || self.kw > pw {
            return Err(Error::Shape(format!(
                "conv2d: kernel {}x{} stride {} does not fit input {}x{} with padding {}",
                self.kh, self.kw, self.stride, self.h, self.w, self.pad
            )));
        }
        Ok((
            (ph - self.kh) / self.stride + 1,
            (pw - self.kw) / self.stride + 1,
        ))
    }
}

/// Mirrors `Params` in conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub ic: u32,
    pub h: u32,
    pub w: u32,
    pub oc: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    pub oh: u32,
    pub ow: u32,
    pub flags: u32,
    pub x_off: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub out_off: u32,
    pub row_stride: u32,
    pub _pad: [u32; 3],
}

/// Where the operands of a pass live. Unused ones may be any readable buffer.
pub struct Buffers<'a> {
    /// `[n, ic, h, w]` at element `x.1`.
    pub x: (&'a wgpu::Buffer, usize),
    /// The buffer holding the weight `[oc, ic, kh, kw]` at `weight.1` and the bias `[oc]` at
    /// `weight.2`.
    pub weight: (&'a wgpu::Buffer, usize, usize),
    /// `grad_y [n, oc, oh, ow]` from element 0.
    pub grad_y: &'a wgpu::Buffer,
    /// The pass's output, written from element `out.1`.
    pub out: (&'a wgpu::Buffer, usize),
}

/// Builds a dispatch of `pass`, with `flags` (FLAG_*) for the forward epilogue or the
/// grad_input ReLU mask.
pub async fn dispatch(
    ctx: &Context,
    pass: Pass,
    shape: ConvShape,
    flags: u32,
    b: Buffers<'_>,
) -> Result<Dispatch> {
    let (oh, ow) = shape.output()?;
    // Invocations: forward and grad_input take blocks of 4 channels (conv2d.wgsl).
    let outputs = match pass {
        Pass::Forward => shape.n * shape.oc.div_ceil(4) * oh * ow,
        Pass::GradInput => shape.n * shape.ic.div_ceil(4) * shape.h * shape.w,
        Pass::GradWeight => shape.oc * shape.ic * shape.kh * shape.kw,
        Pass::GradBias => shape.oc,
    };
    let groups = grid_2d(ctx, div_ceil(outputs, WG));
    let params = Params {
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
        flags,
        x_off: b.x.1 as u32,
        w_off: b.weight.1 as u32,
        b_off: b.weight.2 as u32,
        out_off: b.out.1 as u32,
        row_stride: groups[0] * WG as u32,
        _pad: [0; 3],
    };
    let kernel = ctx.pipelines().get(ctx, &source(pass)).await?;
    Ok(Dispatch::new(
        ctx,
        kernel,
        Some(ctx.uniform("conv2d params", &params)),
        &[b.x.0, b.weight.0, b.grad_y, b.out.0],
        groups,
    ))
}
