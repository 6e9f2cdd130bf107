// Packs a strided matrix M [rows, cols] into the vec4 layout the 8x8-block matmul kernels read
// (matmul_block8.wgsl), as a texture or as a storage buffer:
//
//   texel (x, y) = (M[y, 4x], M[y, 4x + 1], M[y, 4x + 2], M[y, 4x + 3])
//   M[i, j] = src[off + i * rs + j * cs]
//
// over a `width` x `height` grid of texels that is padded past the matrix (height >= rows,
// 4 * width >= cols) with zeros, so the matmul reads whole blocks without bounds checks on k and
// padded sums stay exact. Any strides work, so a transposed operand (a weight read as W^T, or
// dY^T) is packed straight from its row-major buffer.
//
// Invocation (x, y) writes texel (x, y). The workgroup is 64 wide in x: rows of packed operands
// are 2 to 2048 texels, and one row of workgroups per texel row keeps the index arithmetic
// trivial. The host (src/kernels/matmul/pack.rs) dispatches ceil(width / 64) x height groups.
// Both entry points share this file; each is compiled with only its own output binding.

struct Pack {
    rows: u32,
    cols: u32,
    off: u32,
    rs: u32,
    cs: u32,
    width: u32,
    height: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> q: Pack;
@group(0) @binding(1) var<storage, read> src: array<f32>;

fn texel(x: u32, y: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (y < q.rows) {
        for (var t = 0u; t < 4u; t++) {
            let j = 4u * x + t;
            if (j < q.cols) {
                v[t] = src[q.off + y * q.rs + j * q.cs];
            }
        }
    }
    return v;
}
