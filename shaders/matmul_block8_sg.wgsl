// The subgroup entry point of matmul_block8.wgsl (compiled in front of it; needs the adapter's
// SUBGROUP feature), with an 8x4 block per invocation: invocation `li` of workgroup (x, y)
// computes rows 8 (8y + li / 8) .., columns 4 (8x + li % 8) ..., so a workgroup covers 64 rows
// and 32 columns (BLOCK8_SG_TILE_N in src/kernels/matmul/mod.rs). The eight invocations
// li = 8g .. 8g+7 compute the same eight rows, so each loads one of those rows' A texels and
// `subgroupShuffle` hands every row to all eight: per step of four k, 1 A and 4 B loads for 32
// vec4 FMAs. Half the block of `main` keeps the accumulators in registers, which on llvmpipe
// beat the larger block by about a third.
//
// Layouts and split-K as in matmul_block8.wgsl, except the tall one, which would give the eight
// different rows (the host never asks for it here).
//
// This assumes that the eight are lanes 8h .. 8h+7 of one subgroup, in order (subgroups of a
// 1-D workgroup are runs of consecutive invocations on every adapter we know of); the tuner
// checks each variant's result against the portable kernel before it may be chosen, so an
// adapter that breaks the assumption only loses this variant.

@compute @workgroup_size(64)
fn sg(@builtin(workgroup_id) wid: vec3<u32>,
      @builtin(local_invocation_index) li: u32,
      @builtin(subgroup_invocation_id) lane: u32) {
    let origin = block_origin(wid, li, 4u);
    let row0 = origin.x;
    let col0 = origin.y;
    let slice = k_slice(wid.z);
    let q0 = slice.x;
    let q1 = slice.y;
    let mine = min(row0 + li % 8u, p.m - 1u);
    let base = lane & ~7u;
    let bx = min(col0 / 4u, p.b_cs - 1u);
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0);
    var c5 = vec4<f32>(0.0);
    var c6 = vec4<f32>(0.0);
    var c7 = vec4<f32>(0.0);
    for (var q = q0; q < q1; q++) {
        let k = 4u * q;
        let b0 = load_b(bx, k + 0u);
        let b1 = load_b(bx, k + 1u);
        let b2 = load_b(bx, k + 2u);
        let b3 = load_b(bx, k + 3u);
        let am = load_a(q, mine);
        let a0 = subgroupShuffle(am, base | 0u);
        let a1 = subgroupShuffle(am, base | 1u);
        let a2 = subgroupShuffle(am, base | 2u);
        let a3 = subgroupShuffle(am, base | 3u);
        let a4 = subgroupShuffle(am, base | 4u);
        let a5 = subgroupShuffle(am, base | 5u);
        let a6 = subgroupShuffle(am, base | 6u);
        let a7 = subgroupShuffle(am, base | 7u);
        c0 = fma(vec4<f32>(a0.x), b0, c0);
        c0 = fma(vec4<f32>(a0.y), b1, c0);
        c0 = fma(vec4<f32>(a0.z), b2, c0);
        c0 = fma(vec4<f32>(a0.w), b3, c0);
        c1 = fma(vec4<f32>(a1.x), b0, c1);
        c1 = fma(vec4<f32>(a1.y), b1, c1);
        c1 = fma(vec4<f32>(a1.z), b2, c1);
        c1 = fma(vec4<f32>(a1.w), b3, c1);
        c2 = fma(vec4<f32>(a2.x), b0, c2);
        c2 = fma(vec4<f32>(a2.y), b1, c2);
        c2 = fma(vec4<f32>(a2.z), b2, c2);
        c2 = fma(vec4<f32>(a2.w), b3, c2);
        c3 = fma(vec4<f32>(a3.x), b0, c3);
        c3 = fma(vec4<f32>(a3.y), b1, c3);
        c3 = fma(vec4<f32>(a3.z), b2, c3);
        c3 = fma(vec4<f32>(a3.w), b3, c3);
        c4 = fma(vec4<f32>(a4.x), b0, c4);
        c4 = fma(vec4<f32>(a4.y), b1, c4);
        c4 = fma(vec4<f32>(a4.z), b2, c4);
        c4 = fma(vec4<f32>(a4.w), b3, c4);
        c5 = fma(vec4<f32>(a5.x), b0, c5);
        c5 = fma(vec4<f32>(a5.y), b1, c5);
        c5 = fma(vec4<f32>(a5.z), b2, c5);
        c5 = fma(vec4<f32>(a5.w), b3, c5);
        c6 = fma(vec4<f32>(a6.x), b0, c6);
        c6 = fma(vec4<f32>(a6.y), b1, c6);
        c6 = fma(vec4<f32>(a6.z), b2, c6);
        c6 = fma(vec4<f32>(a6.w), b3, c6);
        c7 = fma(vec4<f32>(a7.x), b0, c7);
        c7 = fma(vec4<f32>(a7.y), b1, c7);
        c7 = fma(vec4<f32>(a7.z), b2, c7);
        c7 = fma(vec4<f32>(a7.w), b3, c7);
    }
    store_row(row0 + 0u, col0, c0);
    store_row(row0 + 1u, col0, c1);
    store_row(row0 + 2u, col0, c2);
    store_row(row0 + 3u, col0, c3);
    store_row(row0 + 4u, col0, c4);
    store_row(row0 + 5u, col0, c5);
    store_row(row0 + 6u, col0, c6);
    store_row(row0 + 7u, col0, c7);
}
