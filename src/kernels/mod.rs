//! The WGSL kernels and what the host needs to run them.
//!
//! Each kernel has one WGSL file in `shaders/` (compiled into the binary with `include_str!`) and
//! one module here that owns its parameter struct, its binding list and its dispatch arithmetic:
//! [`matmul`], [`bias`], [`loss`] (softmax cross-entropy and MSE), [`head`] (a small classifier
//! head fused with its loss), [`optim`], [`conv`] (with [`conv_gemm`], convolutions as matrix
//! products, and [`conv_strip`], small ones as strips of outputs), [`pool`].
//! Their CPU references live together in [`crate::reference`].
//!
//! Pipelines are compiled once per device and set of override constants (matmul specialises
//! its epilogue that way, conv_strip its shape), on first use, and kept in the device's
//! [`PipelineCache`]. A [`Dispatch`] is a pipeline with its bind group and grid, built once
//! when a plan is built and replayed every step.

pub mod bias;
pub mod conv;
pub mod conv_gemm;
pub mod conv_strip;
pub mod head;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod tune;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::gpu::Context;

/// How a kernel sees one binding, in binding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Uniform,
    Read,
    ReadWrite,
    /// `texture_2d<f32>` read with `textureLoad` (rgba32float, so not filterable).
    Texture,
    /// `texture_storage_2d<rgba32float, write>`.
    StorageTexture,
}

/// A compiled compute pipeline and its bind-group layout.
pub struct Kernel {
    pub name: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    bindings: &'static [Binding],
}

/// What it takes to compile a kernel: its WGSL, the entry point and the binding list.
pub struct KernelSource {
    /// Unique key in the cache, e.g. `"optim.adam"`.
    pub name: &'static str,
    pub wgsl: &'static str,
    pub entry: &'static str,
    pub bindings: &'static [Binding],
}

/// A kernel's name and the values of its override constants: one compiled pipeline.
type PipelineKey = (&'static str, Vec<(&'static str, u32)>);

/// Compiled kernels of one device, keyed by name and override constants.
#[derive(Default)]
pub struct PipelineCache {
    kernels: Mutex<HashMap<PipelineKey, Arc<Kernel>>>,
}

impl PipelineCache {
    /// Returns the kernel compiled from `source`, compiling it on first use.
    pub async fn get(&self, ctx: &Context, source: &KernelSource) -> Result<Arc<Kernel>> {
        self.get_with(ctx, source, &[]).await
    }

    /// As [`PipelineCache::get`], with `constants` for the source's `override` declarations
    /// (those not named keep their defaults): one pipeline per distinct set.
    pub async fn get_with(
        &self,
        ctx: &Context,
        source: &KernelSource,
        constants: &[(&'static str, u32)],
    ) -> Result<Arc<Kernel>> {
        let key = (source.name, constants.to_vec());
        if let Some(k) = self
            .kernels
            .lock()
            .expect("pipeline cache poisoned")
            .get(&key)
        {
            return Ok(k.clone());
        }
        let kernel = Arc::new(compile(ctx, source, constants).await?);
        self.kernels
            .lock()
            .expect("pipeline cache poisoned")
            .insert(key, kernel.clone());
        Ok(kernel)
    }
}

fn binding_type(b: Binding) -> wgpu::BindingType {
    let buffer = |ty| wgpu::BindingType::Buffer {
        ty,
        has_dynamic_offset: false,
        min_binding_size: None,
    };
    match b {
        Binding::Uniform => buffer(wgpu::BufferBindingType::Uniform),
        Binding::Read => buffer(wgpu::BufferBindingType::Storage { read_only: true }),
        Binding::ReadWrite => buffer(wgpu::BufferBindingType::Storage { read_only: false }),
        Binding::Texture => wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        Binding::StorageTexture => wgpu::BindingType::StorageTexture {
            access: wgpu::StorageTextureAccess::WriteOnly,
            format: wgpu::TextureFormat::Rgba32Float,
            view_dimension: wgpu::TextureViewDimension::D2,
        },
    }
}

async fn compile(
    ctx: &Context,
    source: &KernelSource,
    constants: &[(&'static str, u32)],
) -> Result<Kernel> {
    let device = &ctx.device;
    ctx.checked(&format!("compiling kernel {}", source.name), || {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = source
            .bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: binding_type(*b),
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(source.name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(source.name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(source.name),
            source: wgpu::ShaderSource::Wgsl(source.wgsl.into()),
        };
        let module = device.create_shader_module(desc);
        let constants: Vec<(&str, f64)> = constants.iter().map(|&(k, v)| (k, v as f64)).collect();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(source.name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(source.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            // No wgpu pipeline cache. On llvmpipe a subgroup matmul pipeline takes about 1 s
            // to build, nearly all of it in lavapipe's own passes (Mesa's shader cache does not
            // shorten it), so a run's first steps wait for every pipeline its plan uses.
            cache: None,
        });
        Kernel {
            name: source.name,
            pipeline,
            layout,
            bindings: source.bindings,
        }
    })
    .await
}

/// One kernel launch, ready to replay: pipeline, bound buffers and grid.
pub struct Dispatch {
    pub kernel: Arc<Kernel>,
    pub bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
    /// Keeps the dispatch's own uniform buffer alive with it.
    _params: Option<wgpu::Buffer>,
}

impl Dispatch {
    /// Binds `buffers` (in binding order, the uniform first when the kernel has one).
    ///
    /// # Panics
    /// When the number of buffers differs from the kernel's bindings: that is a bug in the
    /// caller, not a user error.
    pub fn new(
        ctx: &Context,
        kernel: Arc<Kernel>,
        params: Option<wgpu::Buffer>,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Self {
        let resources: Vec<wgpu::BindingResource> =
            buffers.iter().map(|b| b.as_entire_binding()).collect();
        Self::bind(ctx, kernel, params, resources, groups)
    }

    /// As [`Dispatch::new`] with any resources (texture views too), in binding order after the
    /// uniform.
    pub fn bind(
        ctx: &Context,
        kernel: Arc<Kernel>,
        params: Option<wgpu::Buffer>,
        resources: Vec<wgpu::BindingResource<'_>>,
        groups: [u32; 3],
    ) -> Self {
        let all: Vec<wgpu::BindingResource> = params
            .iter()
            .map(|b| b.as_entire_binding())
            .chain(resources)
            .collect();
        assert_eq!(
            all.len(),
            kernel.bindings.len(),
            "internal error: kernel {} takes {} bindings, got {}",
            kernel.name,
            kernel.bindings.len(),
            all.len()
        );
        let entries: Vec<wgpu::BindGroupEntry> = all
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name),
            layout: &kernel.layout,
            entries: &entries,
        });
        Dispatch {
            kernel,
            bind_group,
            groups,
            _params: params,
        }
    }

    /// Records this dispatch into an open compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// Records `dispatches` in order into one compute pass of `encoder`.
///
/// wgpu orders the dispatches of a pass: each one sees the writes of those before it.
pub fn record_all<'a>(
    encoder: &mut wgpu::CommandEncoder,
    dispatches: impl IntoIterator<Item = &'a Dispatch>,
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("wgrad"),
        timestamp_writes: None,
    });
    for d in dispatches {
        d.record(&mut pass);
    }
}

/// Integer ceil-div, for dispatch grids.
pub fn div_ceil(n: usize, d: usize) -> u32 {
    n.div_ceil(d) as u32
}

/// A grid of `groups` workgroups laid out as `[x, y, 1]` with `x` within the per-dimension limit.
///
/// Kernels that take such a grid compute their linear index as `y * (x_groups * wg) + x`.
pub fn grid_2d(ctx: &Context, groups: u32) -> [u32; 3] {
    let max = ctx.limits.max_compute_workgroups_per_dimension.max(1);
    if groups <= max {
        [groups.max(1), 1, 1]
    } else {
        let y = groups.div_ceil(max);
        [groups.div_ceil(y), y, 1]
    }
}
