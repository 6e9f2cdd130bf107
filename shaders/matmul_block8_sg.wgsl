// The subgroup entry points of matmul_block8.wgsl (compiled in front of this file; they need
// the adapter's SUBGROUP feature): a 16x8 block of C per invocation, one group of 8 per
// workgroup.
//
// Invocation `li` of workgroup (x, y) computes rows 16 y .. 16 y + 15 and columns 8 (8x + li) ..
// + 7, so a workgroup covers a 16x64 tile (SG_TILE_M x BLOCK8_TILE in src/kernels/matmul/mod.rs).
// The eight invocations compute the same sixteen rows: each loads the A texels of two of them
// (rows r and r + 8, r = li) and `subgroupShuffle` hands every row to all eight. Per step of
// four k that is 2 A and 8 B loads for 128 vec4 FMAs, where `main` needs 16 loads for 64.
//
// Why these sizes, on llvmpipe: the 16x8 block beat 8x4 and 8x8 ones by 1.3x to 1.6x at n =
// 1024, and larger ones (24x8, 32x8, 16x12) by nothing measurable (timed in a standalone
// harness, medians of 5, several runs each because the 2 cores are noisy). One group of 8 per
// workgroup rather than 4 was as fast on large products and up to 6x faster on the MLP's
// 128x64x784 forward product, which then has 8 workgroups instead of 2: llvmpipe runs a
// dispatch of one or two workgroups far below its speed on many.
//
// `sg` reads B texels (x, y) = B[y, 4x ..]. `sg_bt` reads B transposed in place: texel (x, j) =
// B[4x .. 4x+3, j], a row of the operand as stored (a linear layer's weight [out, in] for
// X W^T), so that no packing dispatch is needed; it loads 8 texels per step as `sg` does and
// regroups them by column, which costs nothing once the compiler has scalarised the vectors.
//
// Split-K as in matmul_block8.wgsl. Invocations past the edge still run, because every lane
// must shuffle: they clamp their loads and drop their stores. The 32 accumulators and their
// FMAs are written out long-hand, as in matmul_block8.wgsl; c{i}a / c{i}b hold row row0 + i,
// columns col0 .. +3 and col0 + 4 .. +7. Each step's FMAs go row by row, each accumulator
// taking its four k in a row: on llvmpipe a lane's vec4 is four SIMD registers, so the 128
// accumulator registers spill, and in this order a spilled one is loaded and stored once per
// four FMAs rather than once per FMA (1.03x to 1.09x at n = 1024 against k by k).
//
// This assumes that the eight are lanes 8h .. 8h+7 of one subgroup, in order (the subgroups of a
// 1-D workgroup are runs of consecutive invocations on every adapter we know of); the tuner
// checks each variant's result against the portable kernel before it may be chosen, so an
// adapter that breaks the assumption only loses this variant.

@compute @workgroup_size(8)
fn sg(@builtin(workgroup_id) wid: vec3<u32>,
      @builtin(local_invocation_index) li: u32,
      @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * 16u;
    let col0 = (wid.x * 8u + li) * 8u;
    let slice = k_slice(wid.z);
    let last = p.m - 1u;
    let mine0 = min(row0 + li, last);
    let mine1 = min(row0 + 8u + li, last);
    let base = lane & ~7u;
    let bx = min(col0 / 4u, p.b_cs - 1u);
    let bx1 = min(bx + 1u, p.b_cs - 1u);
    var c0a = vec4<f32>(0.0);
    var c0b = vec4<f32>(0.0);
    var c1a = vec4<f32>(0.0);
    var c1b = vec4<f32>(0.0);
    var c2a = vec4<f32>(0.0);
    var c2b = vec4<f32>(0.0);
    var c3a = vec4<f32>(0.0);
    var c3b = vec4<f32>(0.0);
    var c4a = vec4<f32>(0.0);
    var c4b = vec4<f32>(0.0);
    var c5a = vec4<f32>(0.0);
    var c5b = vec4<f32>(0.0);
    var c6a = vec4<f32>(0.0);
    var c6b = vec4<f32>(0.0);
    var c7a = vec4<f32>(0.0);
    var c7b = vec4<f32>(0.0);
    var c8a = vec4<f32>(0.0);
    var c8b = vec4<f32>(0.0);
    var c9a = vec4<f32>(0.0);
    var c9b = vec4<f32>(0.0);
    var c10a = vec4<f32>(0.0);
    var c10b = vec4<f32>(0.0);
    var c11a = vec4<f32>(0.0);
    var c11b = vec4<f32>(0.0);
    var c12a = vec4<f32>(0.0);
    var c12b = vec4<f32>(0.0);
    var c13a = vec4<f32>(0.0);
    var c13b = vec4<f32>(0.0);
    var c14a = vec4<f32>(0.0);
    var c14b = vec4<f32>(0.0);
    var c15a = vec4<f32>(0.0);
    var c15b = vec4<f32>(0.0);
    for (var q = slice.x; q < slice.y; q++) {
        let lo = load_a(q, mine0);
        let hi = load_a(q, mine1);
        let k = 4u * q;
        let b0a = load_b(bx, k + 0u);
        let b0b = load_b(bx1, k + 0u);
        let b1a = load_b(bx, k + 1u);
        let b1b = load_b(bx1, k + 1u);
        let b2a = load_b(bx, k + 2u);
        let b2b = load_b(bx1, k + 2u);
        let b3a = load_b(bx, k + 3u);
        let b3b = load_b(bx1, k + 3u);
        let a0 = subgroupShuffle(lo, base | 0u);
        c0a = fma(vec4<f32>(a0.x), b0a, c0a);
        c0a = fma(vec4<f32>(a0.y), b1a, c0a);
        c0a = fma(vec4<f32>(a0.z), b2a, c0a);
        c0a = fma(vec4<f32>(a0.w), b3a, c0a);
        c0b = fma(vec4<f32>(a0.x), b0b, c0b);
        c0b = fma(vec4<f32>(a0.y), b1b, c0b);
        c0b = fma(vec4<f32>(a0.z), b2b, c0b);
        c0b = fma(vec4<f32>(a0.w), b3b, c0b);
        let a1 = subgroupShuffle(lo, base | 1u);
        c1a = fma(vec4<f32>(a1.x), b0a, c1a);
        c1a = fma(vec4<f32>(a1.y), b1a, c1a);
        c1a = fma(vec4<f32>(a1.z), b2a, c1a);
        c1a = fma(vec4<f32>(a1.w), b3a, c1a);
        c1b = fma(vec4<f32>(a1.x), b0b, c1b);
        c1b = fma(vec4<f32>(a1.y), b1b, c1b);
        c1b = fma(vec4<f32>(a1.z), b2b, c1b);
        c1b = fma(vec4<f32>(a1.w), b3b, c1b);
        let a2 = subgroupShuffle(lo, base | 2u);
        c2a = fma(vec4<f32>(a2.x), b0a, c2a);
        c2a = fma(vec4<f32>(a2.y), b1a, c2a);
        c2a = fma(vec4<f32>(a2.z), b2a, c2a);
        c2a = fma(vec4<f32>(a2.w), b3a, c2a);
        c2b = fma(vec4<f32>(a2.x), b0b, c2b);
        c2b = fma(vec4<f32>(a2.y), b1b, c2b);
        c2b = fma(vec4<f32>(a2.z), b2b, c2b);
        c2b = fma(vec4<f32>(a2.w), b3b, c2b);
        let a3 = subgroupShuffle(lo, base | 3u);
        c3a = fma(vec4<f32>(a3.x), b0a, c3a);
        c3a = fma(vec4<f32>(a3.y), b1a, c3a);
        c3a = fma(vec4<f32>(a3.z), b2a, c3a);
        c3a = fma(vec4<f32>(a3.w), b3a, c3a);
        c3b = fma(vec4<f32>(a3.x), b0b, c3b);
        c3b = fma(vec4<f32>(a3.y), b1b, c3b);
        c3b = fma(vec4<f32>(a3.z), b2b, c3b);
        c3b = fma(vec4<f32>(a3.w), b3b, c3b);
        let a4 = subgroupShuffle(lo, base | 4u);
        c4a = fma(vec4<f32>(a4.x), b0a, c4a);
        c4a = fma(vec4<f32>(a4.y), b1a, c4a);
        c4a = fma(vec4<f32>(a4.z), b2a, c4a);
        c4a = fma(vec4<f32>(a4.w), b3a, c4a);
        c4b = fma(vec4<f32>(a4.x), b0b, c4b);
        c4b = fma(vec4<f32>(a4.y), b1b, c4b);
        c4b = fma(vec4<f32>(a4.z), b2b, c4b);
        c4b = fma(vec4<f32>(a4.w), b3b, c4b);
        let a5 = subgroupShuffle(lo, base | 5u);
        c5a = fma(vec4<f32>(a5.x), b0a, c5a);
        c5a = fma(vec4<f32>(a5.y), b1a, c5a);
        c5a = fma(vec4<f32>(a5.z), b2a, c5a);
        c5a = fma(vec4<f32>(a5.w), b3a, c5a);
        c5b = fma(vec4<f32>(a5.x), b0b, c5b);
        c5b = fma(vec4<f32>(a5.y), b1b, c5b);
        c5b = fma(vec4<f32>(a5.z), b2b, c5b);
        c5b = fma(vec4<f32>(a5.w), b3b, c5b);
        let a6 = subgroupShuffle(lo, base | 6u);
        c6a = fma(vec4<f32>(a6.x), b0a, c6a);
        c6a = fma(vec4<f32>(a6.y), b1a, c6a);
        c6a = fma(vec4<f32>(a6.z), b2a, c6a);
        c6a = fma(vec4<f32>(a6.w), b3a, c6a);
        c6b = fma(vec4<f32>(a6.x), b0b, c6b);
        c6b = fma(vec4<f32>(a6.y), b1b, c6b);
        c6b = fma(vec4<f32>(a6.z), b2b, c6b);
        c6b = fma(vec4<f32>(a6.w), b3b, c6b);
        let a7 = subgroupShuffle(lo, base | 7u);
        c7a = fma(vec4<f32>(a7.x), b0a, c7a);
        c7a = fma(vec4<f32>(a7.y), b1a, c7a);
        c7a = fma(vec4<f32>(a7.z), b2a, c7a);
        c7a = fma(vec4<f32>(a7.w), b3a, c7a);
        c7b = fma(vec4<f32>(a7.x), b0b, c7b);
        c7b = fma(vec4<f32>(a7.y), b1b, c7b);
        c7b = fma(vec4<f32>(a7.z), b2b, c7b);
        c7b = fma(vec4<f32>(a7.w), b3b, c7b);
        let a8 = subgroupShuffle(hi, base | 0u);
        c8a = fma(vec4<f32>(a8.x), b0a, c8a);
        c8a = fma(vec4<f32>(a8.y), b1a, c8a);
        c8a = fma(vec4<f32>(a8.z), b2a, c8a);
        c8a = fma(vec4<f32>(a8.w), b3a, c8a);
        c8b = fma(vec4<f32>(a8.x), b0b, c8b);
        c8b = fma(vec4<f32>(a8.y), b1b, c8b);
        c8b = fma(vec4<f32>(a8.z), b2b, c8b);
        c8b = fma(vec4<f32>(a8.w), b3b, c8b);
        let a9 = subgroupShuffle(hi, base | 1u);
        c9a = fma(vec4<f32>(a9.x), b0a, c9a);
        c9a = fma(vec4<f32>(a9.y), b1a, c9a);
        c9a = fma(vec4<f32>(a9.z), b2a, c9a);
        c9a = fma(vec4<f32>(a9.w), b3a, c9a);
        c9b = fma(vec4<f32>(a9.x), b0b, c9b);
        c9b = fma(vec4<f32>(a9.y), b1b, c9b);
        c9b = fma(vec4<f32>(a9.z), b2b, c9b);
        c9b = fma(vec4<f32>(a9.w), b3b, c9b);
        let a10 = subgroupShuffle(hi, base | 2u);
        c10a = fma(vec4<f32>(a10.x), b0a, c10a);
        c10a = fma(vec4<f32>(a10.y), b1a, c10a);
        c10a = fma(vec4<f32>(a10.z), b2a, c10a);
        c10a = fma(vec4<f32>(a10.w), b3a, c10a);
        c10b = fma(vec4<f32>(a10.x), b0b, c10b);
        c10b = fma(vec4<f32>(a10.y), b1b, c10b);
        c10b = fma(vec4<f32>(a10.z), b2b, c10b);
        c10b = fma(vec4<f32>(a10.w), b3b, c10b);
        let a11 = subgroupShuffle(hi, base | 3u);
        c11a = fma(vec4<f32>(a11.x), b0a, c11a);
        c11a = fma(vec4<f32>(a11.y), b1a, c11a);
        c11a = fma(vec4<f32>(a11.z), b2a, c11a);
        c11a = fma(vec4<f32>(a11.w), b3a, c11a);
        c11b = fma(vec4<f32>(a11.x), b0b, c11b);
        c11b = fma(vec4<f32>(a11.y), b1b, c11b);
        c11b = fma(vec4<f32>(a11.z), b2b, c11b);
        c11b = fma(vec4<f32>(a11.w), b3b, c11b);
        let a12 = subgroupShuffle(hi, base | 4u);
        c12a = fma(vec4<f32>(a12.x), b0a, c12a);
        c12a = fma(vec4<f32>(a12.y), b1a, c12a);
        c12a = fma(vec4<f32>(a12.z), b2a, c12a);
        c12a = fma(vec4<f32>(a12.w), b3a, c12a);
        c12b = fma(vec4<f32>(a12.x), b0b, c12b);
        c12b = fma(vec4<f32>(a12.y), b1b, c12b);
        c12b = fma(vec4<f32>(a12.z), b2b, c12b);
        c12b = fma(vec4<f32>(a12.w), b3b, c12b);
        let a13 = subgroupShuffle(hi, base | 5u);
        c13a = fma(vec4<f32>(a13.x), b0a, c13a);
        c13a = fma(vec4<f32>(a13.y), b1a, c13a);
        c13a = fma(vec4<f32>(a13.z), b2a, c13a);
        c13a = fma(vec4<f32>(a13.w), b3a, c13a);
        c13b = fma(vec4<f32>(a13.x), b0b, c13b);
        c13b = fma(vec4<f32>(a13.y), b1b, c13b);
        c13b = fma(vec4<f32>(a13.z), b2b, c13b);
        c13b = fma(vec4<f32>(a13.w), b3b, c13b);
        let a14 = subgroupShuffle(hi, base | 6u);
        c14a = fma(vec4<f32>(a14.x), b0a, c14a);
        c14a = fma(vec4<f32>(a14.y), b1a, c14a);
        c14a = fma(vec4<f32>(a14.z), b2a, c14a);
        c14a = fma(vec4<f32>(a14.w), b3a, c14a);
        c14b = fma(vec4<f32>(a14.x), b0b, c14b);
        c14b = fma(vec4<f32>(a14.y), b1b, c14b);
        c14b = fma(vec4<f32>(a14.z), b2b, c14b);
        c14b = fma(vec4<f32>(a14.w), b3b, c14b);
        let a15 = subgroupShuffle(hi, base | 7u);
        c15a = fma(vec4<f32>(a15.x), b0a, c15a);
        c15a = fma(vec4<f32>(a15.y), b1a, c15a);
        c15a = fma(vec4<f32>(a15.z), b2a, c15a);
        c15a = fma(vec4<f32>(a15.w), b3a, c15a);
        c15b = fma(vec4<f32>(a15.x), b0b, c15b);
        c15b = fma(vec4<f32>(a15.y), b1b, c15b);
        c15b = fma(vec4<f32>(a15.z), b2b, c15b);
        c15b = fma(vec4<f32>(a15.w), b3b, c15b);
    }
    store_block(row0 + 0u, col0, c0a, c1a, c2a, c3a);
    store_block(row0 + 0u, col0 + 4u, c0b, c1b, c2b, c3b);
    store_block(row0 + 4u, col0, c4a, c5a, c6a, c7a);
    store_block(row0 + 4u, col0 + 4u, c4b, c5b, c6b, c7b);
    store_block(row0 + 8u, col0, c8a, c9a, c10a, c11a);
    store_block(row0 + 8u, col0 + 4u, c8b, c9b, c10b, c11b);
    store_block(row0 + 12u, col0, c12a, c13a, c14a, c15a);
    store_block(row0 + 12u, col0 + 4u, c12b, c13b, c14b, c15b);
}

@compute @workgroup_size(8)
fn sg_bt(@builtin(workgroup_id) wid: vec3<u32>,
      @builtin(local_invocation_index) li: u32,
      @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * 16u;
    let col0 = (wid.x * 8u + li) * 8u;
    let slice = k_slice(wid.z);
    let last = p.m - 1u;
    let mine0 = min(row0 + li, last);
    let mine1 = min(row0 + 8u + li, last);
    let base = lane & ~7u;
    // Rows of B^T (columns of B) col0 .. col0 + 7, clamped.
    let j0 = min(col0 + 0u, p.n - 1u);
    let j1 = min(col0 + 1u, p.n - 1u);
    let j2 = min(col0 + 2u, p.n - 1u);
    let j3 = min(col0 + 3u, p.n - 1u);
    let j4 = min(col0 + 4u, p.n - 1u);
    let j5 = min(col0 + 5u, p.n - 1u);
    let j6 = min(col0 + 6u, p.n - 1u);
    let j7 = min(col0 + 7u, p.n - 1u);
    var c0a = vec4<f32>(0.0);
    var c0b = vec4<f32>(0.0);
    var c1a = vec4<f32>(0.0);
    var c1b = vec4<f32>(0.0);
    var c2a = vec4<f32>(0.0);
    var c2b = vec4<f32>(0.0);
    var c3a = vec4<f32>(0.0);
    var c3b = vec4<f32>(0.0);
    var c4a = vec4<f32>(0.0);
    var c4b = vec4<f32>(0.0);
    var c5a = vec4<f32>(0.0);
    var c5b = vec4<f32>(0.0);
    var c6a = vec4<f32>(0.0);
    var c6b = vec4<f32>(0.0);
    var c7a = vec4<f32>(0.0);
    var c7b = vec4<f32>(0.0);
    var c8a = vec4<f32>(0.0);
    var c8b = vec4<f32>(0.0);
    var c9a = vec4<f32>(0.0);
    var c9b = vec4<f32>(0.0);
    var c10a = vec4<f32>(0.0);
    var c10b = vec4<f32>(0.0);
    var c11a = vec4<f32>(0.0);
    var c11b = vec4<f32>(0.0);
    var c12a = vec4<f32>(0.0);
    var c12b = vec4<f32>(0.0);
    var c13a = vec4<f32>(0.0);
    var c13b = vec4<f32>(0.0);
    var c14a = vec4<f32>(0.0);
    var c14b = vec4<f32>(0.0);
    var c15a = vec4<f32>(0.0);
    var c15b = vec4<f32>(0.0);
    for (var q = slice.x; q < slice.y; q++) {
        let lo = load_a(q, mine0);
        let hi = load_a(q, mine1);
        let t0 = load_b(q, j0);
        let t1 = load_b(q, j1);
        let t2 = load_b(q, j2);
        let t3 = load_b(q, j3);
        let t4 = load_b(q, j4);
        let t5 = load_b(q, j5);
        let t6 = load_b(q, j6);
        let t7 = load_b(q, j7);
        let b0a = vec4<f32>(t0.x, t1.x, t2.x, t3.x);
        let b0b = vec4<f32>(t4.x, t5.x, t6.x, t7.x);
        let b1a = vec4<f32>(t0.y, t1.y, t2.y, t3.y);
        let b1b = vec4<f32>(t4.y, t5.y, t6.y, t7.y);
        let b2a = vec4<f32>(t0.z, t1.z, t2.z, t3.z);
        let b2b = vec4<f32>(t4.z, t5.z, t6.z, t7.z);
        let b3a = vec4<f32>(t0.w, t1.w, t2.w, t3.w);
        let b3b = vec4<f32>(t4.w, t5.w, t6.w, t7.w);
        let a0 = subgroupShuffle(lo, base | 0u);
        c0a = fma(vec4<f32>(a0.x), b0a, c0a);
        c0a = fma(vec4<f32>(a0.y), b1a, c0a);
        c0a = fma(vec4<f32>(a0.z), b2a, c0a);
        c0a = fma(vec4<f32>(a0.w), b3a, c0a);
        c0b = fma(vec4<f32>(a0.x), b0b, c0b);
        c0b = fma(vec4<f32>(a0.y), b1b, c0b);
        c0b = fma(vec4<f32>(a0.z), b2b, c0b);
        c0b = fma(vec4<f32>(a0.w), b3b, c0b);
        let a1 = subgroupShuffle(lo, base | 1u);
        c1a = fma(vec4<f32>(a1.x), b0a, c1a);
        c1a = fma(vec4<f32>(a1.y), b1a, c1a);
        c1a = fma(vec4<f32>(a1.z), b2a, c1a);
        c1a = fma(vec4<f32>(a1.w), b3a, c1a);
        c1b = fma(vec4<f32>(a1.x), b0b, c1b);
        c1b = fma(vec4<f32>(a1.y), b1b, c1b);
        c1b = fma(vec4<f32>(a1.z), b2b, c1b);
        c1b = fma(vec4<f32>(a1.w), b3b, c1b);
        let a2 = subgroupShuffle(lo, base | 2u);
        c2a = fma(vec4<f32>(a2.x), b0a, c2a);
        c2a = fma(vec4<f32>(a2.y), b1a, c2a);
        c2a = fma(vec4<f32>(a2.z), b2a, c2a);
        c2a = fma(vec4<f32>(a2.w), b3a, c2a);
        c2b = fma(vec4<f32>(a2.x), b0b, c2b);
        c2b = fma(vec4<f32>(a2.y), b1b, c2b);
        c2b = fma(vec4<f32>(a2.z), b2b, c2b);
        c2b = fma(vec4<f32>(a2.w), b3b, c2b);
        let a3 = subgroupShuffle(lo, base | 3u);
        c3a = fma(vec4<f32>(a3.x), b0a, c3a);
        c3a = fma(vec4<f32>(a3.y), b1a, c3a);
        c3a = fma(vec4<f32>(a3.z), b2a, c3a);
        c3a = fma(vec4<f32>(a3.w), b3a, c3a);
        c3b = fma(vec4<f32>(a3.x), b0b, c3b);
        c3b = fma(vec4<f32>(a3.y), b1b, c3b);
        c3b = fma(vec4<f32>(a3.z), b2b, c3b);
        c3b = fma(vec4<f32>(a3.w), b3b, c3b);
        let a4 = subgroupShuffle(lo, base | 4u);
        c4a = fma(vec4<f32>(a4.x), b0a, c4a);
        c4a = fma(vec4<f32>(a4.y), b1a, c4a);
        c4a = fma(vec4<f32>(a4.z), b2a, c4a);
        c4a = fma(vec4<f32>(a4.w), b3a, c4a);
        c4b = fma(vec4<f32>(a4.x), b0b, c4b);
        c4b = fma(vec4<f32>(a4.y), b1b, c4b);
        c4b = fma(vec4<f32>(a4.z), b2b, c4b);
        c4b = fma(vec4<f32>(a4.w), b3b, c4b);
        let a5 = subgroupShuffle(lo, base | 5u);
        c5a = fma(vec4<f32>(a5.x), b0a, c5a);
        c5a = fma(vec4<f32>(a5.y), b1a, c5a);
        c5a = fma(vec4<f32>(a5.z), b2a, c5a);
        c5a = fma(vec4<f32>(a5.w), b3a, c5a);
        c5b = fma(vec4<f32>(a5.x), b0b, c5b);
        c5b = fma(vec4<f32>(a5.y), b1b, c5b);
        c5b = fma(vec4<f32>(a5.z), b2b, c5b);
        c5b = fma(vec4<f32>(a5.w), b3b, c5b);
        let a6 = subgroupShuffle(lo, base | 6u);
        c6a = fma(vec4<f32>(a6.x), b0a, c6a);
        c6a = fma(vec4<f32>(a6.y), b1a, c6a);
        c6a = fma(vec4<f32>(a6.z), b2a, c6a);
        c6a = fma(vec4<f32>(a6.w), b3a, c6a);
        c6b = fma(vec4<f32>(a6.x), b0b, c6b);
        c6b = fma(vec4<f32>(a6.y), b1b, c6b);
        c6b = fma(vec4<f32>(a6.z), b2b, c6b);
        c6b = fma(vec4<f32>(a6.w), b3b, c6b);
        let a7 = subgroupShuffle(lo, base | 7u);
        c7a = fma(vec4<f32>(a7.x), b0a, c7a);
        c7a = fma(vec4<f32>(a7.y), b1a, c7a);
        c7a = fma(vec4<f32>(a7.z), b2a, c7a);
        c7a = fma(vec4<f32>(a7.w), b3a, c7a);
        c7b = fma(vec4<f32>(a7.x), b0b, c7b);
        c7b = fma(vec4<f32>(a7.y), b1b, c7b);
        c7b = fma(vec4<f32>(a7.z), b2b, c7b);
        c7b = fma(vec4<f32>(a7.w), b3b, c7b);
        let a8 = subgroupShuffle(hi, base | 0u);
        c8a = fma(vec4<f32>(a8.x), b0a, c8a);
        c8a = fma(vec4<f32>(a8.y), b1a, c8a);
        c8a = fma(vec4<f32>(a8.z), b2a, c8a);
        c8a = fma(vec4<f32>(a8.w), b3a, c8a);
        c8b = fma(vec4<f32>(a8.x), b0b, c8b);
        c8b = fma(vec4<f32>(a8.y), b1b, c8b);
        c8b = fma(vec4<f32>(a8.z), b2b, c8b);
        c8b = fma(vec4<f32>(a8.w), b3b, c8b);
        let a9 = subgroupShuffle(hi, base | 1u);
        c9a = fma(vec4<f32>(a9.x), b0a, c9a);
        c9a = fma(vec4<f32>(a9.y), b1a, c9a);
        c9a = fma(vec4<f32>(a9.z), b2a, c9a);
        c9a = fma(vec4<f32>(a9.w), b3a, c9a);
        c9b = fma(vec4<f32>(a9.x), b0b, c9b);
        c9b = fma(vec4<f32>(a9.y), b1b, c9b);
        c9b = fma(vec4<f32>(a9.z), b2b, c9b);
        c9b = fma(vec4<f32>(a9.w), b3b, c9b);
        let a10 = subgroupShuffle(hi, base | 2u);
        c10a = fma(vec4<f32>(a10.x), b0a, c10a);
        c10a = fma(vec4<f32>(a10.y), b1a, c10a);
        c10a = fma(vec4<f32>(a10.z), b2a, c10a);
        c10a = fma(vec4<f32>(a10.w), b3a, c10a);
        c10b = fma(vec4<f32>(a10.x), b0b, c10b);
        c10b = fma(vec4<f32>(a10.y), b1b, c10b);
        c10b = fma(vec4<f32>(a10.z), b2b, c10b);
        c10b = fma(vec4<f32>(a10.w), b3b, c10b);
        let a11 = subgroupShuffle(hi, base | 3u);
        c11a = fma(vec4<f32>(a11.x), b0a, c11a);
        c11a = fma(vec4<f32>(a11.y), b1a, c11a);
        c11a = fma(vec4<f32>(a11.z), b2a, c11a);
        c11a = fma(vec4<f32>(a11.w), b3a, c11a);
        c11b = fma(vec4<f32>(a11.x), b0b, c11b);
        c11b = fma(vec4<f32>(a11.y), b1b, c11b);
        c11b = fma(vec4<f32>(a11.z), b2b, c11b);
        c11b = fma(vec4<f32>(a11.w), b3b, c11b);
        let a12 = subgroupShuffle(hi, base | 4u);
        c12a = fma(vec4<f32>(a12.x), b0a, c12a);
        c12a = fma(vec4<f32>(a12.y), b1a, c12a);
        c12a = fma(vec4<f32>(a12.z), b2a, c12a);
        c12a = fma(vec4<f32>(a12.w), b3a, c12a);
        c12b = fma(vec4<f32>(a12.x), b0b, c12b);
        c12b = fma(vec4<f32>(a12.y), b1b, c12b);
        c12b = fma(vec4<f32>(a12.z), b2b, c12b);
        c12b = fma(vec4<f32>(a12.w), b3b, c12b);
        let a13 = subgroupShuffle(hi, base | 5u);
        c13a = fma(vec4<f32>(a13.x), b0a, c13a);
        c13a = fma(vec4<f32>(a13.y), b1a, c13a);
        c13a = fma(vec4<f32>(a13.z), b2a, c13a);
        c13a = fma(vec4<f32>(a13.w), b3a, c13a);
        c13b = fma(vec4<f32>(a13.x), b0b, c13b);
        c13b = fma(vec4<f32>(a13.y), b1b, c13b);
        c13b = fma(vec4<f32>(a13.z), b2b, c13b);
        c13b = fma(vec4<f32>(a13.w), b3b, c13b);
        let a14 = subgroupShuffle(hi, base | 6u);
        c14a = fma(vec4<f32>(a14.x), b0a, c14a);
        c14a = fma(vec4<f32>(a14.y), b1a, c14a);
        c14a = fma(vec4<f32>(a14.z), b2a, c14a);
        c14a = fma(vec4<f32>(a14.w), b3a, c14a);
        c14b = fma(vec4<f32>(a14.x), b0b, c14b);
        c14b = fma(vec4<f32>(a14.y), b1b, c14b);
        c14b = fma(vec4<f32>(a14.z), b2b, c14b);
        c14b = fma(vec4<f32>(a14.w), b3b, c14b);
        let a15 = subgroupShuffle(hi, base | 7u);
        c15a = fma(vec4<f32>(a15.x), b0a, c15a);
        c15a = fma(vec4<f32>(a15.y), b1a, c15a);
        c15a = fma(vec4<f32>(a15.z), b2a, c15a);
        c15a = fma(vec4<f32>(a15.w), b3a, c15a);
        c15b = fma(vec4<f32>(a15.x), b0b, c15b);
        c15b = fma(vec4<f32>(a15.y), b1b, c15b);
        c15b = fma(vec4<f32>(a15.z), b2b, c15b);
        c15b = fma(vec4<f32>(a15.w), b3b, c15b);
    }
    store_block(row0 + 0u, col0, c0a, c1a, c2a, c3a);
    store_block(row0 + 0u, col0 + 4u, c0b, c1b, c2b, c3b);
    store_block(row0 + 4u, col0, c4a, c5a, c6a, c7a);
    store_block(row0 + 4u, col0 + 4u, c4b, c5b, c6b, c7b);
    store_block(row0 + 8u, col0, c8a, c9a, c10a, c11a);
    store_block(row0 + 8u, col0 + 4u, c8b, c9b, c10b, c11b);
    store_block(row0 + 12u, col0, c12a, c13a, c14a, c15a);
    store_block(row0 + 12u, col0 + 4u, c12b, c13b, c14b, c15b);
}
