#!/usr/bin/env python3
"""Makes tests/data/mnist-subset/: the first rows of the real MNIST, as gzipped IDX files.

This script wrote the committed files in tests/data/mnist-subset/. They hold the first 5000
training images and labels and the first 1000 test images and labels, under the canonical MNIST
names plus ".gz", so that the tests in tests/data.rs (and any quick training run) have real data
without a download.

Usage: python3 tests/data/make_subset.py [SOURCE_DIR]

SOURCE_DIR holds the four full MNIST .gz files; it defaults to ../shared/data/mnist next to the
crate root. Only the standard library is used. The output is reproducible: the gzip header
carries mtime 0 and no file name, so rerunning on the same source gives the same bytes (given
the same zlib).

The script also prints the label counts of each subset; tests/data.rs asserts the same numbers.
"""

import gzip
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data", "mnist"))
OUT_DIR = os.path.join(HERE, "mnist-subset")

# (images file, labels file, rows kept)
SPLITS = [
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 5000),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 1000),
]


def read_idx(path):
    """Returns (dims, data bytes) of a gzipped u8 IDX file, checking the header."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[0:3] != b"\x00\x00\x08":
        sys.exit(f"{path}: expected IDX magic 00 00 08 0N, found {raw[0:4].hex(' ')}")
    ndim = raw[3]
    dims = list(struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim]))
    data = raw[4 + 4 * ndim :]
    size = 1
    for d in dims:
        size *= d
    if len(data) != size:
        sys.exit(f"{path}: header says {dims} = {size} bytes, file has {len(data)}")
    return dims, data


def write_idx_gz(path, dims, data):
    """Writes a u8 IDX file, gzipped with a fixed header so the bytes are reproducible."""
    header = bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    with open(path, "wb") as out:
        # filename="" keeps the source name out of the header; mtime=0 keeps the clock out.
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=out, mtime=0) as gz:
            gz.write(header)
            gz.write(data)


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SOURCE
    os.makedirs(OUT_DIR, exist_ok=True)
    for images_name, labels_name, n in SPLITS:
        dims, pixels = read_idx(os.path.join(source, images_name + ".gz"))
        row = 1
        for d in dims[1:]:
            row *= d
        write_idx_gz(os.path.join(OUT_DIR, images_name + ".gz"), [n] + dims[1:], pixels[: n * row])

        _, labels = read_idx(os.path.join(source, labels_name + ".gz"))
        kept = labels[:n]
        write_idx_gz(os.path.join(OUT_DIR, labels_name + ".gz"), [n], kept)

        counts = [kept.count(c) for c in range(10)]
        print(f"{labels_name}: first {n} rows, first labels {list(kept[:10])}, counts {counts}")


if __name__ == "__main__":
    main()
