//! Integration tests for the data pipeline: the IDX reader, MNIST loading and fetching.
//!
//! None of them need a GPU or the network. They read the committed subset in
//! `tests/data/mnist-subset/` (made by `tests/data/make_subset.py`), write small hand-made IDX
//! files into temporary folders, and, when the full MNIST is present in `../shared/data/mnist`
//! next to the crate, fetch from a local copy of it. Without that folder those tests skip with a
//! printed reason, except under CI (`CI` set), where its absence is a failure.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use wgrad::data::fetch::{self, Source};
use wgrad::data::idx::read_idx;
use wgrad::data::mnist::{self, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use wgrad::Error;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fresh, uniquely named folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "wgrad-test-{tag}-{}-{nanos}-{n}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover folder in the temp dir does no harm.
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The committed subset: 5000 training and 1000 test rows of the real MNIST.
fn subset_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist-subset")
}

/// The full MNIST `.gz` files next to the crate, or `None` (with a printed reason) when they
/// are absent. Under CI their absence fails the test instead.
fn shared_mnist(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    let complete = mnist::FILES
        .iter()
        .all(|name| dir.join(format!("{name}.gz")).is_file());
    if complete {
        return Some(dir);
    }
    let reason = format!("{test}: full MNIST not found in {}", dir.display());
    if std::env::var_os("CI").is_some() {
        panic!("{reason}; CI is set, so this is a failure, not a skip");
    }
    eprintln!("skipping {reason}");
    None
}

/// The bytes of a u8 IDX file with the given dims and data.
fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn gunzip_file(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Names in `dir`, sorted, hidden temporary files included.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that `msg` contains every one of `parts`, showing the whole message otherwise.
fn assert_mentions(msg: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            msg.contains(part),
            "expected {part:?} in the error, got:\n{msg}"
        );
    }
}

/// Writes a labels file and an images file of `n` blank images with the given labels.
fn write_split(dir: &Path, n: u32, labels: &[u8]) -> (PathBuf, PathBuf) {
    let images = dir.join("images-idx3-ubyte");
    let label_file = dir.join("labels-idx1-ubyte");
    let pixels = vec![0u8; n as usize * 784];
    fs::write(&images, idx_bytes(&[n, 28, 28], &pixels)).unwrap();
    fs::write(&label_file, idx_bytes(&[labels.len() as u32], labels)).unwrap();
    (images, label_file)
}

// ---------------------------------------------------------------------------------------------
// The committed subset
// ---------------------------------------------------------------------------------------------

#[test]
fn subset_loads_with_expected_shapes_and_values() {
    let data = mnist::load(&subset_dir()).unwrap();
    let (train, test) = (&data.train, &data.test);

    assert_eq!((train.len(), test.len()), (5000, 1000));
    for set in [train, test] {
        assert_eq!((set.dim, set.classes), (784, 10));
        assert_eq!(set.features.len(), set.len() * 784);
        let bad = set.features.iter().position(|&p| !(0.0..=1.0).contains(&p));
        assert_eq!(bad, None, "pixel outside [0, 1]");
    }

    // Labels as printed by tests/data/make_subset.py: the first ten, then the count per digit.
    assert_eq!(&train.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(&test.labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let counts = |labels: &[u32]| {
        let mut c = [0usize; 10];
        labels.iter().for_each(|&l| c[l as usize] += 1);
        c
    };
    assert_eq!(
        counts(&train.labels),
        [479, 563, 488, 493, 535, 434, 501, 550, 462, 495]
    );
    assert_eq!(
        counts(&test.labels),
        [85, 126, 116, 107, 110, 87, 87, 99, 89, 94]
    );

    // Pixels are byte / 255 of the file, read here independently of the crate's IDX reader
    // (16 header bytes: magic and three dims).
    let raw = gunzip_file(&subset_dir().join(format!("{TRAIN_IMAGES}.gz")));
    assert_eq!(raw.len(), 16 + 5000 * 784);
    let last = 5000 * 784 - 1;
    for i in [0, 152, 153, 7 * 784 + 300, 1234 * 784 + 407, last] {
        let want = raw[16 + i] as f32 / 255.0;
        assert_eq!(train.features[i], want, "pixel {i}: byte {}", raw[16 + i]);
    }
    // Real digits: both ink extremes occur, and the first image is not blank.
    assert!(train.features.contains(&1.0) && train.features.contains(&0.0));
    assert!(train.row(0).iter().sum::<f32>() > 50.0);
}

#[test]
fn subset_is_the_first_rows_of_full_mnist() {
    let Some(full_dir) = shared_mnist("subset_is_the_first_rows_of_full_mnist") else {
        return;
    };
    let full = mnist::load(&full_dir).unwrap();
    let subset = mnist::load(&subset_dir()).unwrap();
    assert_eq!((full.train.len(), full.test.len()), (60000, 10000));

    let head = full.train.take(5000);
    assert_eq!(head.labels, subset.train.labels);
    assert!(
        head.features == subset.train.features,
        "training pixels differ"
    );
    let head = full.test.take(1000);
    assert_eq!(head.labels, subset.test.labels);
    assert!(head.features == subset.test.features, "test pixels differ");
}

// ---------------------------------------------------------------------------------------------
// IDX format errors
// ---------------------------------------------------------------------------------------------

#[test]
fn idx_round_trips_raw_and_gzipped() {
    let dir = TempDir::new("idx-ok");
    let bytes = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    fs::write(dir.join("a-idx2-ubyte"), &bytes).unwrap();
    fs::write(dir.join("a-idx2-ubyte.gz"), gzip(&bytes)).unwrap();
    for name in ["a-idx2-ubyte", "a-idx2-ubyte.gz"] {
        let idx = read_idx(&dir.join(name)).unwrap();
        assert_eq!(idx.dims, vec![2, 3], "{name}");
        assert_eq!(idx.data, vec![1, 2, 3, 4, 5, 6], "{name}");
    }
}

#[test]
fn truncated_idx_names_file_and_sizes() {
    let dir = TempDir::new("idx-short");
    let path = dir.join(TRAIN_IMAGES);
    fs::write(&path, idx_bytes(&[60000, 28, 28], &[7; 1000])).unwrap();
    let msg = read_idx(&path).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &[
            &path.display().to_string(),
            "truncated",
            "60000x28x28 = 47040000",
            "has 1000 after the header",
        ],
    );
}

#[test]
fn trailing_bytes_are_an_error() {
    let dir = TempDir::new("idx-long");
    let path = dir.join("long-idx1-ubyte");
    fs::write(&path, idx_bytes(&[4], &[1, 2, 3, 4, 5, 6])).unwrap();
    let msg = read_idx(&path).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &["long-idx1-ubyte", "4 = 4 bytes", "has 6", "2 trailing"],
    );
}

#[test]
fn gzipped_file_under_raw_name_is_recognised() {
    let dir = TempDir::new("idx-magic");
    let path = dir.join(TRAIN_LABELS);
    fs::write(&path, gzip(&idx_bytes(&[3], &[1, 2, 3]))).unwrap();
    let msg = read_idx(&path).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &[
            TRAIN_LABELS,
            "expected IDX magic 00 00 08 0N",
            "found 1f 8b 08 00",
            "gzipped",
        ],
    );
}

#[test]
fn wrong_magic_and_element_type() {
    let dir = TempDir::new("idx-type");
    let text = dir.join("text-idx1-ubyte");
    fs::write(&text, b"hello, world").unwrap();
    let msg = read_idx(&text).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &["text-idx1-ubyte", "found 68 65 6c 6c", "not an IDX file"],
    );

    // Type 0x0d is f32 in the IDX spec: valid IDX, but not something MNIST uses.
    let floats = dir.join("floats-idx1-ubyte");
    fs::write(&floats, [0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
    let msg = read_idx(&floats).unwrap_err().to_string();
    assert_mentions(&msg, &["floats-idx1-ubyte", "found 00 00 0d 01", "0x0d"]);
}

#[test]
fn broken_gzip_names_file() {
    let dir = TempDir::new("idx-gz");
    let path = dir.join(&format!("{TEST_LABELS}.gz"));
    let mut gz = gzip(&idx_bytes(&[100], &[3; 100]));
    gz.truncate(gz.len() / 2);
    fs::write(&path, gz).unwrap();
    let msg = read_idx(&path).unwrap_err().to_string();
    assert_mentions(&msg, &[&format!("{TEST_LABELS}.gz"), "cannot gunzip"]);
}

// ---------------------------------------------------------------------------------------------
// MNIST structure errors
// ---------------------------------------------------------------------------------------------

#[test]
fn image_and_label_counts_must_agree() {
    let dir = TempDir::new("count");
    let (images, labels) = write_split(dir.path(), 3, &[1, 2, 3, 4]);
    let msg = mnist::load_split(&images, &labels).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &[
            "labels-idx1-ubyte",
            "4 labels",
            "images-idx3-ubyte",
            "3 images",
        ],
    );
}

#[test]
fn label_out_of_range_names_index_and_value() {
    let dir = TempDir::new("label");
    let (images, labels) = write_split(dir.path(), 3, &[0, 9, 10]);
    let msg = mnist::load_split(&images, &labels).unwrap_err().to_string();
    assert_mentions(&msg, &["labels-idx1-ubyte", "index 2 is 10", "0..=9"]);
}

#[test]
fn wrong_dims_name_file_and_shape() {
    let dir = TempDir::new("dims");
    let (_, labels) = write_split(dir.path(), 2, &[0, 1]);

    // Flattened rows instead of 28x28 images.
    let flat = dir.join("flat-idx2-ubyte");
    fs::write(&flat, idx_bytes(&[2, 784], &[0; 2 * 784])).unwrap();
    let msg = mnist::load_split(&flat, &labels).unwrap_err().to_string();
    assert_mentions(&msg, &["flat-idx2-ubyte", "[n, 28, 28]", "2 dims: 2x784"]);

    // Right rank, wrong width.
    let narrow = dir.join("narrow-idx3-ubyte");
    fs::write(&narrow, idx_bytes(&[2, 28, 27], &[0; 2 * 28 * 27])).unwrap();
    let msg = mnist::load_split(&narrow, &labels).unwrap_err().to_string();
    assert_mentions(&msg, &["narrow-idx3-ubyte", "3 dims: 2x28x27"]);

    // Labels must be one-dimensional.
    let (images, _) = write_split(dir.path(), 2, &[0, 1]);
    let square = dir.join("square-idx2-ubyte");
    fs::write(&square, idx_bytes(&[2, 1], &[0, 1])).unwrap();
    let msg = mnist::load_split(&images, &square).unwrap_err().to_string();
    assert_mentions(&msg, &["square-idx2-ubyte", "expected shape [n]", "2x1"]);
}

#[test]
fn missing_files_and_raw_before_gz() {
    let dir = TempDir::new("missing");
    assert_eq!(mnist::missing_files(dir.path()), mnist::FILES.to_vec());
    let msg = mnist::load(dir.path()).unwrap_err().to_string();
    assert_mentions(&msg, &[TRAIN_IMAGES, "missing", "ensure_mnist"]);

    // The subset as .gz, plus a raw test-labels file that differs from the .gz: the raw file
    // must win, and the set is then complete.
    for name in mnist::FILES {
        let gz = format!("{name}.gz");
        fs::copy(subset_dir().join(&gz), dir.join(&gz)).unwrap();
    }
    assert!(mnist::missing_files(dir.path()).is_empty());
    let labels = vec![3u8; 1000];
    fs::write(dir.join(TEST_LABELS), idx_bytes(&[1000], &labels)).unwrap();
    let data = mnist::load(dir.path()).unwrap();
    assert!(
        data.test.labels.iter().all(|&l| l == 3),
        "raw labels file was not preferred"
    );
    assert_eq!(data.train.labels[0], 5, "training labels come from the .gz");
}

// ---------------------------------------------------------------------------------------------
// Fetching
// ---------------------------------------------------------------------------------------------

/// The raw SHA-256 sums published next to the full data, as (name, hex) pairs.
fn published_sums(shared: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(shared.join("SHA256SUMS.raw")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(h, n)| (n.trim().to_string(), h.to_string()))
        .collect()
}

/// Asserts that `dir` holds exactly the four raw files and that each has its published hash.
fn assert_installed(dir: &Path, shared: &Path) {
    let mut want: Vec<String> = mnist::FILES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listing(dir), want, "unexpected files in {}", dir.display());
    let sums = published_sums(shared);
    assert_eq!(sums.len(), 4);
    for (name, hash) in sums {
        let got = sha256_hex(&fs::read(dir.join(&name)).unwrap());
        assert_eq!(got, hash, "{name}");
    }
}

#[test]
fn fetch_from_folder_installs_verified_raw_files() {
    let Some(shared) = shared_mnist("fetch_from_folder_installs_verified_raw_files") else {
        return;
    };
    // The source mixes three .gz files with one raw file, both of which a source may hold.
    let src = TempDir::new("fetch-src");
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES] {
        let gz = format!("{name}.gz");
        fs::copy(shared.join(&gz), src.join(&gz)).unwrap();
    }
    let raw_labels = gunzip_file(&shared.join(format!("{TEST_LABELS}.gz")));
    fs::write(src.join(TEST_LABELS), raw_labels).unwrap();

    let dest = TempDir::new("fetch-dest");
    let installed = fetch::fetch_from(dest.path(), &Source::Folder(src.0.clone())).unwrap();
    assert_eq!(installed, mnist::FILES.to_vec());
    assert_installed(dest.path(), &shared);

    let data = mnist::load(dest.path()).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (60000, 10000));

    // Nothing is missing now, so a second fetch does nothing, even from a source that is gone.
    let gone = Source::Folder(dest.join("no-such-folder"));
    assert!(fetch::fetch_from(dest.path(), &gone).unwrap().is_empty());
}

/// A destination that already holds every file but the test labels (the subset's), so that a
/// fetch has exactly one file to get.
fn dest_lacking_test_labels() -> TempDir {
    let dest = TempDir::new("corrupt-dest");
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES] {
        let gz = format!("{name}.gz");
        fs::copy(subset_dir().join(&gz), dest.join(&gz)).unwrap();
    }
    dest
}

/// The genuine raw test labels when the full data is present, else the subset's, which the
/// hash check must refuse just the same.
fn test_labels_raw() -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    let gz = full.join(format!("{TEST_LABELS}.gz"));
    if gz.is_file() {
        gunzip_file(&gz)
    } else {
        eprintln!("full MNIST absent: corrupting the subset's test labels instead");
        gunzip_file(&subset_dir().join(format!("{TEST_LABELS}.gz")))
    }
}

#[test]
fn corrupt_raw_source_is_refused_and_not_installed() {
    let dest = dest_lacking_test_labels();
    let before = listing(dest.path());
    let src = TempDir::new("corrupt-src");
    let mut raw = test_labels_raw();
    // Flip one label byte: still a well-formed IDX file, so only the hash can tell.
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    let bad = src.join(TEST_LABELS);
    fs::write(&bad, &raw).unwrap();

    let err = fetch::fetch_from(dest.path(), &Source::Folder(src.0.clone())).unwrap_err();
    let msg = err.to_string();
    assert_mentions(
        &msg,
        &[
            &bad.display().to_string(),
            "SHA-256 mismatch for t10k-labels-idx1-ubyte",
            fetch::expected_sha256(TEST_LABELS).unwrap(),
            "not installed",
        ],
    );
    // Neither the real name nor a leftover temporary file appeared.
    assert_eq!(listing(dest.path()), before);
    assert_eq!(mnist::missing_files(dest.path()), vec![TEST_LABELS]);
}

#[test]
fn corrupt_gz_source_is_refused_and_not_installed() {
    let dest = dest_lacking_test_labels();
    let before = listing(dest.path());
    let src = TempDir::new("corrupt-gz-src");
    let mut gz = gzip(&test_labels_raw());
    // A byte in the middle of the deflate stream: gunzip's CRC or the SHA-256 must catch it.
    let mid = gz.len() / 2;
    gz[mid] ^= 0x10;
    let bad = src.join(&format!("{TEST_LABELS}.gz"));
    fs::write(&bad, &gz).unwrap();

    let msg = fetch::fetch_from(dest.path(), &Source::Folder(src.0.clone()))
        .unwrap_err()
        .to_string();
    assert_mentions(&msg, &[&bad.display().to_string()]);
    assert!(
        msg.contains("cannot gunzip") || msg.contains("SHA-256 mismatch"),
        "expected a gzip or hash failure, got:\n{msg}"
    );
    assert_eq!(listing(dest.path()), before);
}

#[test]
fn every_failed_source_gets_a_line() {
    let dest = dest_lacking_test_labels();
    let nowhere = dest.join("no-such-folder");
    let empty = TempDir::new("empty-src");
    let sources = [
        Source::Folder(nowhere.clone()),
        Source::Folder(empty.0.clone()),
    ];
    let err = fetch::ensure_mnist_from(dest.path(), &sources).unwrap_err();
    let Error::Fetch { what, tried } = &err else {
        panic!("expected Error::Fetch, got {err:?}");
    };
    assert_eq!(what, "MNIST");
    let lines: Vec<&str> = tried.lines().collect();
    assert_eq!(lines.len(), 2, "one line per source:\n{tried}");
    assert_mentions(
        lines[0],
        &[&format!("folder {}", nowhere.display()), "is not a folder"],
    );
    assert_mentions(
        lines[1],
        &[
            &format!("folder {}", empty.path().display()),
            "holds neither t10k-labels-idx1-ubyte.gz nor t10k-labels-idx1-ubyte",
        ],
    );
    assert!(
        err.to_string().starts_with("could not fetch MNIST:\n"),
        "{err}"
    );
}

/// The only test that touches `WGRAD_MNIST_SOURCE`: environment variables are process-wide and
/// the tests run in parallel, so every other test passes its source explicitly.
#[test]
fn ensure_mnist_installs_from_env_source() {
    let Some(shared) = shared_mnist("ensure_mnist_installs_from_env_source") else {
        return;
    };
    let src = TempDir::new("env-src");
    for name in mnist::FILES {
        let gz = format!("{name}.gz");
        fs::copy(shared.join(&gz), src.join(&gz)).unwrap();
    }
    let dest = TempDir::new("env-dest");

    std::env::set_var(fetch::SOURCE_ENV, src.path());
    let result = fetch::ensure_mnist(dest.path());
    std::env::remove_var(fetch::SOURCE_ENV);
    result.unwrap();
    assert_installed(dest.path(), &shared);

    // Complete now: no source is consulted at all.
    fetch::ensure_mnist(dest.path()).unwrap();
}
