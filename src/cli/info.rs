//! `wgrad info`: every adapter wgpu finds, its backend, type, driver and training limits.

use clap::Args;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Print one JSON object per adapter instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: InfoArgs) -> anyhow::Result<()> {
    let adapters = wgrad::gpu::describe_adapters().await?;
    for a in &adapters {
        if args.json {
            println!("{}", serde_json::to_string(a)?);
            continue;
        }
        let mib = |b: u64| b as f64 / 1048576.0;
        println!("{}{}", a.name, if a.default { "  (default)" } else { "" });
        println!("  backend                  {}", a.backend);
        println!("  device type              {}", a.device_type);
        println!("  driver                   {} {}", a.driver, a.driver_info);
        println!(
            "  max storage binding      {} bytes ({:.0} MiB)",
            a.max_storage_buffer_binding_size,
            mib(a.max_storage_buffer_binding_size)
        );
        println!(
            "  max buffer               {} bytes ({:.0} MiB)",
            a.max_buffer_size,
            mib(a.max_buffer_size)
        );
        println!(
            "  storage buffers/stage    {}",
            a.max_storage_buffers_per_shader_stage
        );
        println!(
            "  workgroup memory         {} bytes",
            a.max_compute_workgroup_storage_size
        );
        println!(
            "  invocations/workgroup    {}",
            a.max_compute_invocations_per_workgroup
        );
        println!(
            "  workgroups/dimension     {}",
            a.max_compute_workgroups_per_dimension
        );
        println!(
            "  subgroups                {} (size {}..{})",
            a.subgroups, a.subgroup_size.0, a.subgroup_size.1
        );
        println!("  timestamp queries        {}", a.timestamp_query);
        println!("  shader f16               {}", a.shader_f16);
    }
    Ok(())
}
