// Matrix product with an 8x8 register block per invocation, on packed vec4 operands:
//
//   C[i, j] = epilogue( sum_k A[i, k] * B[k, j] ),   i < m, j < n, k < kdim
//
// The operands are vec4 grids, read through `load_a` / `load_b` from the operand file compiled
// in front of this one (textures or storage buffers, matmul_operands_*.wgsl):
//   A texel (x, y) = A[y, 4x .. 4x+3]   x < a_cs = ceil(kdim / 4), y < m
//   B texel (x, y) = B[y, 4x .. 4x+3]   x < b_cs = ceil(n / 4), y < 4 a_cs
// Either packed by matmul_pack.wgsl (zero-padded past the edges, so partial texels along k
// add zeros), or, for buffers, the operand itself when its rows are aligned vec4s and kdim is a
// multiple of 4. For these kernels a_off, a_rs, b_off, b_rs are offsets and row strides in
// vec4s, a_cs the number of steps of four k, b_cs the texel columns of B.
// matmul_common.wgsl, compiled first, has the parameter block, C and the epilogue.
//
// Invocation `li` of workgroup (x, y) computes the 8x8 block at rows 8 (8y + li / 8) .., columns 8
// (8x + li % 8) ..: a 64-invocation workgroup covers a 64x64 tile of C (BLOCK8_TILE in
// src/kernels/matmul/mod.rs); the wide and tall layouts (matmul_common.wgsl) make it 8x512 or
// 512x8, so that a C of a few rows or columns does not leave most invocations idle. With split-K,
// workgroup z sums only its slice of the k steps. Per step of four k it loads 8 A texels and 8 B
// texels and does 64 vec4 FMAs, so it does 4 FMAs per loaded component where the 4x4 kernels do 2;
// the `sg` entry points (matmul_block8_sg.wgsl, 16x8 blocks) share the A texels across lanes.
// The k loop runs in ascending order, so sums are deterministic. Rows and columns past the edge
// are clamped on load and dropped on store. 1-D workgroup, as the sg file needs; no workgroup
// memory, which made every variant slower on llvmpipe (shared/notes measurements).

// The first row and column of the block invocation `li` of workgroup `wid` computes, for
// blocks of 8 rows and `cols` columns, by p.block_layout (matmul_common.wgsl).
fn block_origin(wid: vec3<u32>, li: u32, cols: u32) -> vec2<u32> {
    var rb = wid.y * 8u + li / 8u;
    var cb = wid.x * 8u + li % 8u;
    if (p.block_layout == 1u) {
        rb = wid.y;
        cb = wid.x * 64u + li;
    } else if (p.block_layout == 2u) {
        rb = wid.y * 64u + li;
        cb = wid.x;
    }
    return vec2<u32>(rb * 8u, cb * cols);
}

// Split-K: the k steps [x, y) of slice z; points this invocation's stores at the slice's rows
// of partial sums when the product is split.
fn k_slice(z: u32) -> vec2<u32> {
    let q0 = z * p.k_per_split;
    if (p.split > 1u) {
        c_base = z * p.m * p.n;
    }
    return vec2<u32>(q0, min(p.a_cs, q0 + p.k_per_split));
}

// Every invocation loads its own eight A texels per step. The block is written out as 16 named
// accumulators, not arrays or structs behind pointers, so that the shader compiler keeps it in
// registers (the struct form ran 4x slower on llvmpipe).
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let origin = block_origin(wid, li, 8u);
    let row0 = origin.x;
    let col0 = origin.y;
    let slice = k_slice(wid.z);
    let q0 = slice.x;
    let q1 = slice.y;
    // Invocations past the edge clamp their loads and drop their stores.
    let last = p.m - 1u;
    let y0 = min(row0, last);
    let y1 = min(row0 + 1u, last);
    let y2 = min(row0 + 2u, last);
    let y3 = min(row0 + 3u, last);
    let y4 = min(row0 + 4u, last);
    let y5 = min(row0 + 5u, last);
    let y6 = min(row0 + 6u, last);
    let y7 = min(row0 + 7u, last);
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
    for (var q = q0; q < q1; q++) {
        let k = 4u * q;
        let a0 = load_a(q, y0);
        let a1 = load_a(q, y1);
        let a2 = load_a(q, y2);
        let a3 = load_a(q, y3);
        let a4 = load_a(q, y4);
        let a5 = load_a(q, y5);
        let a6 = load_a(q, y6);
        let a7 = load_a(q, y7);
        let b0a = load_b(bx, k + 0u);
        let b0b = load_b(bx1, k + 0u);
        c0a = fma(vec4<f32>(a0.x), b0a, c0a);
        c0b = fma(vec4<f32>(a0.x), b0b, c0b);
        c1a = fma(vec4<f32>(a1.x), b0a, c1a);
        c1b = fma(vec4<f32>(a1.x), b0b, c1b);
        c2a = fma(vec4<f32>(a2.x), b0a, c2a);
        c2b = fma(vec4<f32>(a2.x), b0b, c2b);
        c3a = fma(vec4<f32>(a3.x), b0a, c3a);
        c3b = fma(vec4<f32>(a3.x), b0b, c3b);
        c4a = fma(vec4<f32>(a4.x), b0a, c4a);
        c4b = fma(vec4<f32>(a4.x), b0b, c4b);
        c5a = fma(vec4<f32>(a5.x), b0a, c5a);
        c5b = fma(vec4<f32>(a5.x), b0b, c5b);
        c6a = fma(vec4<f32>(a6.x), b0a, c6a);
        c6b = fma(vec4<f32>(a6.x), b0b, c6b);
        c7a = fma(vec4<f32>(a7.x), b0a, c7a);
        c7b = fma(vec4<f32>(a7.x), b0b, c7b);
        let b1a = load_b(bx, k + 1u);
        let b1b = load_b(bx1, k + 1u);
        c0a = fma(vec4<f32>(a0.y), b1a, c0a);
        c0b = fma(vec4<f32>(a0.y), b1b, c0b);
        c1a = fma(vec4<f32>(a1.y), b1a, c1a);
        c1b = fma(vec4<f32>(a1.y), b1b, c1b);
        c2a = fma(vec4<f32>(a2.y), b1a, c2a);
        c2b = fma(vec4<f32>(a2.y), b1b, c2b);
        c3a = fma(vec4<f32>(a3.y), b1a, c3a);
        c3b = fma(vec4<f32>(a3.y), b1b, c3b);
        c4a = fma(vec4<f32>(a4.y), b1a, c4a);
        c4b = fma(vec4<f32>(a4.y), b1b, c4b);
        c5a = fma(vec4<f32>(a5.y), b1a, c5a);
        c5b = fma(vec4<f32>(a5.y), b1b, c5b);
        c6a = fma(vec4<f32>(a6.y), b1a, c6a);
        c6b = fma(vec4<f32>(a6.y), b1b, c6b);
        c7a = fma(vec4<f32>(a7.y), b1a, c7a);
        c7b = fma(vec4<f32>(a7.y), b1b, c7b);
        let b2a = load_b(bx, k + 2u);
        let b2b = load_b(bx1, k + 2u);
        c0a = fma(vec4<f32>(a0.z), b2a, c0a);
        c0b = fma(vec4<f32>(a0.z), b2b, c0b);
        c1a = fma(vec4<f32>(a1.z), b2a, c1a);
        c1b = fma(vec4<f32>(a1.z), b2b, c1b);
        c2a = fma(vec4<f32>(a2.z), b2a, c2a);
        c2b = fma(vec4<f32>(a2.z), b2b, c2b);
        c3a = fma(vec4<f32>(a3.z), b2a, c3a);
        c3b = fma(vec4<f32>(a3.z), b2b, c3b);
        c4a = fma(vec4<f32>(a4.z), b2a, c4a);
        c4b = fma(vec4<f32>(a4.z), b2b, c4b);
        c5a = fma(vec4<f32>(a5.z), b2a, c5a);
        c5b = fma(vec4<f32>(a5.z), b2b, c5b);
        c6a = fma(vec4<f32>(a6.z), b2a, c6a);
        c6b = fma(vec4<f32>(a6.z), b2b, c6b);
        c7a = fma(vec4<f32>(a7.z), b2a, c7a);
        c7b = fma(vec4<f32>(a7.z), b2b, c7b);
        let b3a = load_b(bx, k + 3u);
        let b3b = load_b(bx1, k + 3u);
        c0a = fma(vec4<f32>(a0.w), b3a, c0a);
        c0b = fma(vec4<f32>(a0.w), b3b, c0b);
        c1a = fma(vec4<f32>(a1.w), b3a, c1a);
        c1b = fma(vec4<f32>(a1.w), b3b, c1b);
        c2a = fma(vec4<f32>(a2.w), b3a, c2a);
        c2b = fma(vec4<f32>(a2.w), b3b, c2b);
        c3a = fma(vec4<f32>(a3.w), b3a, c3a);
        c3b = fma(vec4<f32>(a3.w), b3b, c3b);
        c4a = fma(vec4<f32>(a4.w), b3a, c4a);
        c4b = fma(vec4<f32>(a4.w), b3b, c4b);
        c5a = fma(vec4<f32>(a5.w), b3a, c5a);
        c5b = fma(vec4<f32>(a5.w), b3b, c5b);
        c6a = fma(vec4<f32>(a6.w), b3a, c6a);
        c6b = fma(vec4<f32>(a6.w), b3b, c6b);
        c7a = fma(vec4<f32>(a7.w), b3a, c7a);
        c7b = fma(vec4<f32>(a7.w), b3b, c7b);
    }
    store_block(row0 + 0u, col0, c0a, c1a, c2a, c3a);
    store_block(row0 + 0u, col0 + 4u, c0b, c1b, c2b, c3b);
    store_block(row0 + 4u, col0, c4a, c5a, c6a, c7a);
    store_block(row0 + 4u, col0 + 4u, c4b, c5b, c6b, c7b);
}
