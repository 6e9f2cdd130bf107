//! Opening the device for a command, with kernel tuning wired to the host: the clock, the
//! `WGRAD_KERNEL` override and the on-disk cache of kernel choices.
//!
//! The cache is `kernels.json` in `$WGRAD_CACHE_DIR`, else `$XDG_CACHE_HOME/wgrad`, else
//! `~/.cache/wgrad`. A missing or unreadable cache only means tuning again (logged at debug);
//! it is written back atomically when a run added choices. `WGRAD_TUNE=0` turns timing off:
//! every kernel then takes the cached choice or the static preference order, which makes runs
//! repeatable without a cache (the tests use it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use wgrad::gpu::{Context, ContextOptions};
use wgrad::kernels::tune::{Clock, TuneCache, TuningOptions};

/// Where kernel choices are cached, if a home for them can be found.
pub fn cache_path() -> Option<PathBuf> {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = env("WGRAD_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("wgrad")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("wgrad")))?;
    Some(dir.join("kernels.json"))
}

fn load_cache() -> TuneCache {
    let Some(path) = cache_path() else {
        return TuneCache::default();
    };
    let parsed = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(cache) => cache,
        Err(e) => {
            log::debug!("no kernel cache read from {}: {e}", path.display());
            TuneCache::default()
        }
    }
}

/// Opens the device on `adapter` (or the default), tuning kernels with the host clock.
pub async fn open(adapter: Option<String>) -> anyhow::Result<Context> {
    let start = Instant::now();
    let forced = std::env::var("WGRAD_KERNEL").ok().filter(|s| !s.is_empty());
    if let Some(name) = &forced {
        // Matmul variants, and `direct` for convolutions by conv2d.wgsl's loops.
        if wgrad::kernels::matmul::Variant::from_name(name).is_none() && name != "direct" {
            let mut known: Vec<&str> = wgrad::kernels::matmul::Variant::ALL
                .iter()
                .map(|v| v.name())
                .collect();
            known.push("direct");
            return Err(wgrad::Error::Config(format!(
                "WGRAD_KERNEL={name} names no kernel variant; expected one of {}",
                known.join(", ")
            ))
            .into());
        }
    }
    let timing = !matches!(std::env::var("WGRAD_TUNE").as_deref(), Ok("0" | "off"));
    let clock = Clock(Arc::new(move || start.elapsed().as_secs_f64()));
    let ctx = Context::new(&ContextOptions {
        adapter,
        tuning: TuningOptions {
            clock: timing.then_some(clock),
            forced,
            cache: load_cache(),
        },
    })
    .await?;
    Ok(ctx)
}

/// Writes the kernel choices back when this run made new ones. Failing to is only a warning:
/// the next run tunes again.
pub fn save_cache(ctx: &Context) {
    let (cache, changed) = ctx.tuning().snapshot();
    let Some(path) = cache_path() else {
        return;
    };
    if !changed {
        return;
    }
    let written = serde_json::to_vec_pretty(&cache)
        .map_err(|e| e.to_string())
        .and_then(|b| wgrad::checkpoint::write_atomic(&path, &b).map_err(|e| e.to_string()));
    match written {
        Ok(()) => log::debug!("kernel choices saved to {}", path.display()),
        Err(e) => log::warn!("could not save kernel choices to {}: {e}", path.display()),
    }
}
