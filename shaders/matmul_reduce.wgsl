// The last step of a split-K product (matmul_block8.wgsl with `split` > 1): adds the slices'
// partial sums and applies the epilogue, compiled after matmul_common.wgsl.
//
//   C[i, j] = epilogue( sum_{z < split} part[(z m + i) n + j] )   in ascending z (deterministic)
//
// Invocation (x, y) writes C[y, 4x .. 4x+3] through store_row; workgroup 64 along x (REDUCE_WG
// in src/kernels/matmul/mod.rs), one grid row per row of C.

@group(0) @binding(1) var<storage, read> part: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y;
    let j0 = 4u * gid.x;
    if (i >= p.m || j0 >= p.n) {
        return;
    }
    var acc = vec4<f32>(0.0);
    for (var z = 0u; z < p.split; z++) {
        let row = (z * p.m + i) * p.n;
        for (var t = 0u; t < 4u; t++) {
            if (j0 + t < p.n) {
                acc[t] += part[row + j0 + t];
            }
        }
    }
    store_row(i, j0, acc);
}
