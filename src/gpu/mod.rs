//! The GPU context: adapter choice, device creation with the adapter's real limits, buffer
//! uploads and downloads, and turning wgpu's errors into [`Result`]s.
//!
//! Every wait on the GPU is an `async fn`. On native targets the wait polls the device until the
//! work is done; on the web the browser drives the device and the future simply resolves. Only
//! the binary blocks on these futures (with `pollster`).

mod adapter;

pub use adapter::{describe_adapters, AdapterReport};

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::kernels::tune::{Tuning, TuningOptions};

/// How to choose the adapter.
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Case-insensitive substring of the adapter name to pick. `None` falls back to the
    /// `WGRAD_ADAPTER` environment variable, then to the best adapter found.
    pub adapter: Option<String>,
    /// Clock, forced variant and cached choices for picking kernel variants.
    pub tuning: TuningOptions,
}

/// An open device with its queue, the adapter it runs on, and the limits it was opened with.
///
/// Cloning is cheap: all clones share one device.
#[derive(Clone)]
pub struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pipelines: Arc<crate::kernels::PipelineCache>,
    tuning: Arc<Tuning>,
}

impl Context {
    /// Opens a device on the chosen adapter.
    ///
    /// A real GPU is preferred over a software adapter; see [`adapter`] for the order. The device
    /// is requested with the adapter's own limits, so storage bindings and buffers may be as large
    /// as the hardware allows rather than wgpu's portable defaults (128 MiB, 256 MiB).
    pub async fn new(options: &ContextOptions) -> Result<Self> {
        let wanted = options
            .adapter
            .clone()
            .or_else(|| std::env::var("WGRAD_ADAPTER").ok())
            .filter(|s| !s.is_empty());
        let adapter = adapter::choose(wanted.as_deref()).await?;
        let info = adapter.get_info();
        let limits = adapter.limits();

        // Subgroups and timestamps are only ever used by kernel variants that check for them.
        let optional = wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
        let features = adapter.features() & optional;

        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgrad"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::gpu(format!("opening a device on {}", info.name), e.to_string()))?;

        // wgpu's default handler panics on any error that no scope caught. Errors that matter
        // are caught by scopes around the calls that can fail; anything else is logged.
        device.on_uncaptured_error(Arc::new(|e| log::error!("uncaught GPU error: {e}")));

        log::debug!(
            "opened {} ({:?}, {:?})",
            info.name,
            info.backend,
            info.device_type
        );
        Ok(Context {
            device,
            queue,
            info,
            limits,
            features,
            pipelines: Arc::new(crate::kernels::PipelineCache::default()),
            tuning: Arc::new(Tuning::new(options.tuning.clone())),
        })
    }

    /// How this device picks kernel variants, and the choices made so far.
    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// The adapter, driver and backend, as kernel choices are keyed in the tuning cache.
    pub fn tuning_key(&self) -> String {
        format!(
            "{} | {} {} | {:?}",
            self.info.name, self.info.driver, self.info.driver_info, self.info.backend
        )
    }

    /// The compiled-pipeline cache of this device.
    pub(crate) fn pipelines(&self) -> &crate::kernels::PipelineCache {
        &self.pipelines
    }

    /// A short description of the adapter, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn adapter_name(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// The largest storage buffer a kernel may bind, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Creates a zeroed storage buffer of `len` f32-sized elements (rounded up to a multiple of
    /// 4), checked against the limits.
    ///
    /// `name` appears in the error when the buffer is too large for the adapter.
    pub fn storage(&self, name: &str, len: usize) -> Result<wgpu::Buffer> {
        // Whole vec4s, so that any buffer can be bound as array<vec4<f32>>.
        let bytes = (len.max(1).div_ceil(4) * 16) as u64;
        self.check_size(name, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }

    /// Creates a storage buffer holding `data`.
    pub fn storage_init<T: bytemuck::Pod>(&self, name: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let bytes = std::mem::size_of_val(data);
        let buffer = self.storage(name, bytes.div_ceil(4))?;
        // Queued before the next submit, like every other upload.
        self.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        Ok(buffer)
    }

    /// Creates a uniform buffer holding one parameter struct.
    pub fn uniform<T: bytemuck::Pod>(&self, name: &str, value: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(name),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Refuses a buffer larger than the adapter can bind.
    pub fn check_size(&self, name: &str, bytes: u64) -> Result<()> {
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(Error::Limit(format!(
                "tensor {name} needs {bytes} bytes ({:.1} MiB) but adapter {} binds at most \
                 {limit} bytes ({:.1} MiB) per buffer; use a smaller batch or model",
                bytes as f64 / 1048576.0,
                self.info.name,
                limit as f64 / 1048576.0
            )));
        }
        Ok(())
    }

    /// Copies `data` into `buffer` at element offset `offset` (queued before the next submit).
    pub fn write<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, offset: usize, data: &[T]) {
        if !data.is_empty() {
            let at = (offset * std::mem::size_of::<T>()) as u64;
            self.queue
                .write_buffer(buffer, at, bytemuck::cast_slice(data));
        }
    }

    /// Reads `len` elements of `buffer` starting at element `offset`.
    ///
    /// This is a full round trip (copy to a staging buffer, submit, map, wait), so the training
    /// loop calls it only when a value is really needed.
    pub async fn read<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        offset: usize,
        len: usize,
    ) -> Result<Vec<T>> {
        let size = std::mem::size_of::<T>();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let staging = self.copy_to_staging(&mut encoder, buffer, offset * size, len * size);
        self.queue.submit([encoder.finish()]);
        self.map_staging(&staging, len * size).await
    }

    /// Appends a copy of `bytes` bytes of `buffer` (from byte `at`) into a new staging buffer.
    ///
    /// Copies must be multiples of 4 bytes; every tensor in wgrad is f32 or u32, so they are.
    pub fn copy_to_staging(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        at: usize,
        bytes: usize,
    ) -> wgpu::Buffer {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: bytes.max(4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(buffer, at as u64, &staging, 0, bytes as u64);
        }
        staging
    }

    /// Waits for `staging` (filled by an already submitted copy) and returns its contents.
    pub async fn map_staging<T: bytemuck::Pod>(
        &self,
        staging: &wgpu::Buffer,
        bytes: usize,
    ) -> Result<Vec<T>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let slice = staging.slice(..bytes as u64);
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver lives until this callback has run; a send error cannot happen.
            let _ = sender.send(r);
        });
        self.wait().await?;
        match receiver.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::gpu("reading a buffer back", e.to_string())),
            None => {
                return Err(Error::gpu(
                    "reading a buffer back",
                    "the map request was dropped",
                ))
            }
        }
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::gpu("reading a buffer back", e.to_string()))?;
        let data = bytemuck::cast_slice::<u8, T>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(data)
    }

    /// Waits until all submitted work has finished (native); a no-op on the web.
    pub async fn wait(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu("waiting for the GPU", e.to_string()))?;
        Ok(())
    }

    /// Records work with `record` into one command buffer and submits it, inside error scopes:
    /// a validation or out-of-memory error of the recording or the submit comes back as an
    /// [`Error::Gpu`] naming `op` instead of being logged by the uncaptured-error handler.
    pub async fn submit<T>(
        &self,
        op: &str,
        record: impl FnOnce(&mut wgpu::CommandEncoder) -> T,
    ) -> Result<(wgpu::SubmissionIndex, T)> {
        let scope = self.scope();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let value = record(&mut encoder);
        let index = self.queue.submit([encoder.finish()]);
        scope.finish(op).await?;
        Ok((index, value))
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they catch into
    /// an [`Error::Gpu`] naming `op`.
    pub async fn checked<T>(&self, op: &str, f: impl FnOnce() -> T) -> Result<T> {
        let scope = self.scope();
        let value = f();
        scope.finish(op).await?;
        Ok(value)
    }

    /// Opens validation and out-of-memory error scopes; [`ErrorScope::finish`] closes them.
    pub fn scope(&self) -> ErrorScope {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        ErrorScope { oom, validation }
    }
}

/// Error scopes around a group of GPU calls (see [`Context::scope`]).
pub struct ErrorScope {
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
}

impl ErrorScope {
    /// Closes the scopes and returns the first error they caught, naming `op`.
    pub async fn finish(self, op: &str) -> Result<()> {
        // Scopes pop in reverse order of their pushes.
        let validation = self.validation.pop();
        let oom = self.oom.pop();
        if let Some(e) = validation.await {
            return Err(Error::gpu(op, e.to_string()));
        }
        if let Some(e) = oom.await {
            return Err(Error::gpu(op, format!("out of memory: {e}")));
        }
        Ok(())
    }
}
