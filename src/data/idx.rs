//! A reader for the IDX format that MNIST ships in, raw or gzipped.
//!
//! An IDX file is two zero bytes, a type byte, a byte giving the number of dimensions, then one
//! big-endian `u32` per dimension, then the elements in row-major order. MNIST uses only type
//! `0x08` (unsigned bytes), so that is the only type read here; any other is an explicit error.
//! Format reference: <http://yann.lecun.com/exdb/mnist/> ("THE IDX FILE FORMAT").
//!
//! The checks are strict (exact data length, no trailing bytes) because a short or padded file
//! most often means a broken download, and training on it would fail much later and less clearly.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// IDX type byte for unsigned 8-bit elements, the only type MNIST uses.
const TYPE_U8: u8 = 0x08;

/// The first two bytes of every gzip stream, used to hint at a file that was never unpacked.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A decoded IDX file of `u8` elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// Size of each dimension, outermost first (MNIST images: `[n, 28, 28]`).
    pub dims: Vec<usize>,
    /// The elements, row-major; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Reads and checks the IDX file at `path`, gunzipping it first when the name ends in `.gz`.
///
/// Every error is an [`Error::Data`] (or [`Error::Io`]) naming `path`.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let bytes = read_maybe_gz(path)?;
    parse_idx(path, bytes)
}

/// Reads the whole file at `path`, decompressing it when its name ends in `.gz`.
///
/// Concatenated gzip members are read as one stream, as `gunzip` does.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    if is_gz_name(path) {
        MultiGzDecoder::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::data(path, format!("cannot gunzip: {e}")))?;
    } else {
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(bytes)
}

/// Decodes the IDX bytes `bytes`, which came from `path` (used only in error messages).
///
/// Takes the buffer by value so the header can be cut off without copying the data.
pub fn parse_idx(path: &Path, mut bytes: Vec<u8>) -> Result<Idx> {
    // Magic: 00 00 <type> <ndim>.
    if bytes.len() < 4 {
        return Err(Error::data(
            path,
            format!(
                "file is {} bytes, too short for the 4-byte IDX magic 00 00 08 0N",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != TYPE_U8 || bytes[3] == 0 {
        return Err(Error::data(path, magic_message(&bytes[..4])));
    }

    // Dimensions: one big-endian u32 each.
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::data(
            path,
            format!(
                "header says {ndim} dims, which needs {header} header bytes, \
                 file has only {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();

    // Data: exactly the product of the dims, nothing more, nothing less.
    let shape = dims_string(&dims);
    let want = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::data(path, format!("header dims {shape} overflow usize")))?;
    let have = bytes.len() - header;
    if have < want {
        return Err(Error::data(
            path,
            format!(
                "truncated: header says {shape} = {want} bytes of data, \
                 file has {have} after the header"
            ),
        ));
    }
    if have > want {
        return Err(Error::data(
            path,
            format!(
                "header says {shape} = {want} bytes of data, file has {have} after the \
                 header ({} trailing bytes)",
                have - want
            ),
        ));
    }

    bytes.drain(..header);
    Ok(Idx { dims, data: bytes })
}

/// Formats dims as `60000x28x28`, the way the error messages show shapes.
pub(crate) fn dims_string(dims: &[usize]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    parts.join("x")
}

/// True when the file name ends in `.gz`.
fn is_gz_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Explains a bad 4-byte magic `found`, with a hint for the common causes.
fn magic_message(found: &[u8]) -> String {
    let hex: Vec<String> = found.iter().map(|b| format!("{b:02x}")).collect();
    let mut msg = format!("expected IDX magic 00 00 08 0N, found {}", hex.join(" "));
    if found[..2] == GZIP_MAGIC {
        msg.push_str(" (is it still gzipped? name it .gz or gunzip it)");
    } else if found[0] == 0 && found[1] == 0 && found[2] != TYPE_U8 {
        msg.push_str(&format!(
            " (element type 0x{:02x}; only 0x08, unsigned bytes, is supported)",
            found[2]
        ));
    } else if found[0] == 0 && found[1] == 0 && found[3] == 0 {
        msg.push_str(" (zero dimensions)");
    } else {
        msg.push_str(" (not an IDX file)");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Idx> {
        parse_idx(Path::new("x.idx"), bytes.to_vec())
    }

    #[test]
    fn parses_a_small_file() {
        let idx = parse(&[0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(idx.dims, vec![2, 3]);
        assert_eq!(idx.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn zero_sized_dim_is_empty_data() {
        let idx = parse(&[0, 0, 8, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!(idx.dims, vec![0]);
        assert!(idx.data.is_empty());
    }

    #[test]
    fn rejects_other_types_and_zero_dims() {
        let e = parse(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).unwrap_err().to_string();
        assert!(e.contains("found 00 00 0d 01") && e.contains("0x0d"), "{e}");
        let e = parse(&[0, 0, 8, 0]).unwrap_err().to_string();
        assert!(e.contains("zero dimensions"), "{e}");
    }

    #[test]
    fn short_header() {
        let e = parse(&[0, 0, 8, 3, 0, 0, 0, 1]).unwrap_err().to_string();
        assert!(e.contains("3 dims") && e.contains("16 header bytes"), "{e}");
        let e = parse(&[0, 0]).unwrap_err().to_string();
        assert!(e.contains("2 bytes"), "{e}");
    }

    #[test]
    fn dims_are_joined_with_x() {
        assert_eq!(dims_string(&[60000, 28, 28]), "60000x28x28");
        assert_eq!(dims_string(&[7]), "7");
    }
}
