//! The one logging facility: `log` macros, printed by env_logger to stderr.
//!
//! Progress is logged at `info` and printed as the bare message, so that it reads as plain
//! lines; warnings and errors carry a prefix. `RUST_LOG` overrides the level set by `-v`.

use std::io::Write;

/// Installs the logger: `info` by default, `debug` with -v, `trace` with -vv, `warn` with
/// `--quiet` (whose final line is printed to stdout instead).
pub fn init(verbose: u8, quiet: bool) {
    let level = match verbose {
        0 if quiet => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // wgpu and naga log every pipeline at info; keep them at warn unless asked for.
    let default = format!("warn,wgrad={level}");
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|buf, record| match record.level() {
            log::Level::Info => writeln!(buf, "{}", record.args()),
            log::Level::Error => writeln!(buf, "error: {}", record.args()),
            log::Level::Warn => writeln!(buf, "warning: {}", record.args()),
            l => writeln!(buf, "[{}] {}", l.as_str().to_lowercase(), record.args()),
        })
        .init();
}

/// An error with all its causes, one per line after the first.
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        out.push_str(&format!("\n  caused by: {cause}"));
    }
    out
}
