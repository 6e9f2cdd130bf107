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
// Invocation i (global x + y * 65535 * 256, a 2-D grid only past the per-dimension limit)
// writes texel (i % width, i / width). A 1-D numbering keeps workgroups full whatever the row
// width: packing W^T of a 64-wide layer gives 16-texel rows, and a grid of one workgroup per
// row left three quarters of each idle (6x slower on llvmpipe). Workgroup 256, as for the other
// elementwise kernels (WORKGROUP in src/kernels/matmul/pack.rs). Where a row is contiguous and
// 16-byte aligned (cs == 1, flag VEC4) a texel is one vec4 load, else four scalar loads.
// Both entry points share this file; each is compiled with only its own output binding.

struct Pack {
    rows: u32,
    cols: u32,
    off: u32,
    rs: u32,
    cs: u32,
    width: u32,
    height: u32,
    // 1: rows are contiguous vec4s (cs == 1; off, rs and cols multiples of 4).
    flags: u32,
    // Invocations per grid row (x groups * 256).
    row_stride: u32,
}

const FLAG_VEC4: u32 = 1u;

@group(0) @binding(0) var<uniform> q: Pack;
@group(0) @binding(1) var<storage, read> src: array<f32>;
// The same buffer as `src`, for the vec4 path.
@group(0) @binding(3) var<storage, read> src4: array<vec4<f32>>;

// The texel invocation `gid` writes, or none past the end.
fn texel_of(gid: vec3<u32>) -> vec2<u32> {
    let i = gid.y * q.row_stride + gid.x;
    return vec2<u32>(i % q.width, i / q.width);
}

fn texel(x: u32, y: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if ((q.flags & FLAG_VEC4) != 0u) {
        if (y < q.rows && 4u * x < q.cols) {
            v = src4[(q.off + y * q.rs) / 4u + x];
        }
        return v;
    }
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
