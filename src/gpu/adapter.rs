//! Finding adapters and choosing one.
//!
//! The primary backends (Vulkan, Metal, DX12, WebGPU) are searched first; OpenGL only when they
//! offer nothing, because the GL path is slower and its enumeration prints driver noise. Among
//! the adapters found, real GPUs come before software ones: discrete, integrated, virtual, then
//! CPU adapters such as Mesa's llvmpipe (lavapipe) or Microsoft's WARP.

use crate::error::{Error, Result};

/// What `wgrad info` prints about one adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub subgroups: bool,
    pub subgroup_size: (u32, u32),
    pub timestamp_query: bool,
    pub shader_f16: bool,
    /// Whether [`choose`] would pick this adapter when no name is given.
    pub default: bool,
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// All adapters on the primary backends, or on the secondary ones when there are none.
async fn enumerate() -> Vec<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env();
    if let Some(b) = backends {
        return instance(b).enumerate_adapters(b).await;
    }
    let primary = instance(wgpu::Backends::PRIMARY)
        .enumerate_adapters(wgpu::Backends::PRIMARY)
        .await;
    if !primary.is_empty() {
        return primary;
    }
    instance(wgpu::Backends::SECONDARY)
        .enumerate_adapters(wgpu::Backends::SECONDARY)
        .await
}

/// Lower is better: real GPUs first, then software adapters.
fn rank(info: &wgpu::AdapterInfo) -> u32 {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::BrowserWebGpu => 0,
        _ => 1,
    };
    kind * 2 + backend
}

fn no_adapter_help() -> String {
    if cfg!(target_os = "linux") {
        "wgpu found no adapter. On Linux without a GPU install Mesa's Vulkan driver, which \
         provides the llvmpipe (lavapipe) software adapter: `sudo apt-get install \
         mesa-vulkan-drivers` (Debian/Ubuntu) or `dnf install mesa-vulkan-drivers` (Fedora)."
            .to_string()
    } else if cfg!(target_os = "windows") {
        "wgpu found no adapter. Update the GPU driver; without a GPU, the WARP software adapter \
         ships with Windows' DirectX 12."
            .to_string()
    } else {
        "wgpu found no adapter. Install or update the GPU's Vulkan or Metal driver.".to_string()
    }
}

/// Picks the adapter named by `wanted` (a case-insensitive substring of its name and backend,
/// searched on every backend, best first, so that any adapter `wgrad info` lists can be
/// named), or the best one.
pub(super) async fn choose(wanted: Option<&str>) -> Result<wgpu::Adapter> {
    let mut adapters = match wanted {
        None => enumerate().await,
        Some(_) => {
            let all = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
            instance(all).enumerate_adapters(all).await
        }
    };
    if adapters.is_empty() {
        return Err(Error::NoAdapter(no_adapter_help()));
    }
    adapters.sort_by_key(|a| rank(&a.get_info()));
    match wanted {
        None => Ok(adapters.swap_remove(0)),
        Some(name) => {
            let needle = name.to_lowercase();
            // The name and the backend, so that `--adapter gl` can pick the GL adapter of a
            // device that also has a Vulkan one.
            let label = |a: &wgpu::Adapter| {
                let info = a.get_info();
                format!("{} ({:?})", info.name, info.backend)
            };
            let names: Vec<String> = adapters.iter().map(label).collect();
            match adapters
                .into_iter()
                .find(|a| label(a).to_lowercase().contains(&needle))
            {
                Some(a) => Ok(a),
                None => Err(Error::NoAdapter(format!(
                    "no adapter name contains {name:?} (from --adapter or WGRAD_ADAPTER); \
                     adapters found: {}",
                    names.join(", ")
                ))),
            }
        }
    }
}

/// Describes every adapter on every backend, best first; the one [`choose`] would pick when
/// no name is given is marked `default`.
pub async fn describe_adapters() -> Result<Vec<AdapterReport>> {
    let chosen = enumerate()
        .await
        .into_iter()
        .min_by_key(|a| rank(&a.get_info()))
        .map(|a| a.get_info());
    let all = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let mut adapters = instance(all).enumerate_adapters(all).await;
    if adapters.is_empty() {
        return Err(Error::NoAdapter(no_adapter_help()));
    }
    adapters.sort_by_key(|a| rank(&a.get_info()));
    Ok(adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            let limits = a.limits();
            let features = a.features();
            AdapterReport {
                name: info.name.clone(),
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: info.driver.clone(),
                driver_info: info.driver_info.clone(),
                max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
                max_buffer_size: limits.max_buffer_size,
                max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
                max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
                max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
                subgroups: features.contains(wgpu::Features::SUBGROUP),
                subgroup_size: (info.subgroup_min_size, info.subgroup_max_size),
                timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
                shader_f16: features.contains(wgpu::Features::SHADER_F16),
                default: chosen.as_ref() == Some(&info),
            }
        })
        .collect())
}
