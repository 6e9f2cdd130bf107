//! Where a step's time goes: GPU time of each dispatch, from timestamp queries.
//!
//! Each dispatch is recorded in a compute pass of its own with timestamps written at the pass's
//! start and end, so the figures include a little per-pass overhead that a real step (one pass)
//! does not pay. Adapters without `TIMESTAMP_QUERY` give `None`.

use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernels::Dispatch;

/// GPU time of one dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// Position in the profiled sequence.
    pub index: usize,
    /// The kernel's cache name, e.g. `matmul_block8.tex.sg`.
    pub kernel: &'static str,
    pub seconds: f64,
}

/// Runs `dispatches` once, in order, and returns each one's GPU time.
pub async fn time_dispatches(
    ctx: &Context,
    dispatches: &[&Dispatch],
) -> Result<Option<Vec<KernelTime>>> {
    if !ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) || dispatches.is_empty() {
        return Ok(None);
    }
    let count = 2 * dispatches.len() as u32;
    if count > wgpu::QUERY_SET_MAX_QUERIES {
        return Err(Error::Config(format!(
            "cannot profile {} dispatches at once (at most {})",
            dispatches.len(),
            wgpu::QUERY_SET_MAX_QUERIES / 2
        )));
    }
    let scope = ctx.scope();
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("profile"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let bytes = 8 * count as usize;
    let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile timestamps"),
        size: bytes as u64,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    for (i, d) in dispatches.iter().enumerate() {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(d.kernel.name),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            }),
        });
        d.record(&mut pass);
    }
    encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
    let staging = ctx.copy_to_staging(&mut encoder, &resolved, 0, bytes);
    ctx.queue.submit([encoder.finish()]);
    let ticks: Vec<u64> = ctx.map_staging(&staging, bytes).await?;
    scope.finish("profiling a step").await?;
    let period = ctx.queue.get_timestamp_period() as f64 * 1e-9;
    Ok(Some(
        dispatches
            .iter()
            .enumerate()
            .map(|(i, d)| KernelTime {
                index: i,
                kernel: d.kernel.name,
                seconds: ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period,
            })
            .collect(),
    ))
}
