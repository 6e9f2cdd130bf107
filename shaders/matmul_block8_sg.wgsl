// The subgroup entry points of matmul_block8.wgsl (compiled in front of this file; they need
// the adapter's SUBGROUP feature): a block of SG_ROWS x 8 of C per invocation (16 or 32 rows:
// variants block8-sg and block8-sg32, tex8-sg and tex8-sg32), one group of 8 per workgroup.
//
// Invocation `li` of workgroup (x, y) computes rows SG_ROWS y .. + SG_ROWS - 1 and columns
// 8 (8x + li) .. + 7, so a workgroup covers a SG_ROWS x 64 tile (Variant::sg_rows x BLOCK8_TILE
// in src/kernels/matmul/mod.rs). The eight invocations compute the same rows: each loads the A
// texels of SG_ROWS / 8 of them (rows r, r + 8, .., r = li) and `subgroupShuffle` hands every
// row to all eight. Per step of four k that is SG_ROWS / 8 A loads and 8 B loads for SG_ROWS x
// 8 vec4 FMAs, where `main` needs 16 loads for 64.
//
// Why these sizes, on llvmpipe: a lane's vec4 is four SIMD registers there, so the 32 or 64
// accumulator vec4s spill to the stack whatever the block, and what counts is the loads per
// FMA and how often a spilled accumulator is reloaded. Each step's FMAs therefore go row by
// row (`step_row`), each accumulator taking its four k at once, so that it is loaded and
// stored once per four FMAs: 1.03x to 1.09x at n = 1024 for 16 rows against the k-by-k order,
// and what made taller blocks pay: 32 rows ran 1.4x faster than 16 at n = 1024, 48 and 64 rows
// slower than 32 (timed in `wgrad bench matmul`, paired runs). A 32-row tile has half as many
// workgroups, which starves small products (llvmpipe runs a dispatch of few workgroups far
// below its speed), so both heights are variants and the tuner picks per shape. One group of
// 8 per workgroup rather than 4 was as fast on large products and up to 6x faster on the MLP's
// 128x64x784 forward product, for the same reason.
//
// `sg` reads B texels (x, y) = B[y, 4x ..]. `sg_bt` reads B transposed in place: texel (x, j) =
// B[4x .. 4x+3, j], a row of the operand as stored (a linear layer's weight [out, in] for
// X W^T), so that no packing dispatch is needed; it loads 8 texels per step as `sg` does and
// regroups them by column, which costs nothing once the compiler has scalarised the vectors.
//
// Split-K as in matmul_block8.wgsl. Invocations past the edge still run, because every lane
// must shuffle: they clamp their loads and drop their stores. acc[2 i] and acc[2 i + 1] hold
// row row0 + i, columns col0 .. +3 and col0 + 4 .. +7; every index into it is a constant once
// the helpers are inlined, and rows past SG_ROWS sit under constant guards the compiler drops.
//
// This assumes that the eight are lanes 8h .. 8h+7 of one subgroup, in order (the subgroups of a
// 1-D workgroup are runs of consecutive invocations on every adapter we know of); the tuner
// checks each variant's result against the portable kernel before it may be chosen, so an
// adapter that breaks the assumption only loses this variant.

// Rows per block: 16 or 32 (the host's `Variant::sg_rows`).
override SG_ROWS: u32 = 16u;
const SG_MAX_ROWS: u32 = 32u;

var<private> acc: array<vec4<f32>, 2u * SG_MAX_ROWS>;

// One step of four k of B: row k + t, columns col0 .. +3 (lo[t]) and col0 + 4 .. +7 (hi[t]).
struct BStep {
    lo: array<vec4<f32>, 4>,
    hi: array<vec4<f32>, 4>,
}

// Row i of the block over one step: the lane holding it (texel `mine` of lane i % 8, the
// group i / 8 of the caller's A loads) hands its A texel to all eight, and the row's two
// accumulators take the step's four k in turn.
fn step_row(i: u32, mine: vec4<f32>, b: BStep, base: u32) {
    if (i < SG_ROWS) {
        let a = subgroupShuffle(mine, base | (i % 8u));
        var lo = acc[2u * i];
        var hi = acc[2u * i + 1u];
        lo = fma(vec4<f32>(a.x), b.lo[0], lo);
        lo = fma(vec4<f32>(a.y), b.lo[1], lo);
        lo = fma(vec4<f32>(a.z), b.lo[2], lo);
        lo = fma(vec4<f32>(a.w), b.lo[3], lo);
        hi = fma(vec4<f32>(a.x), b.hi[0], hi);
        hi = fma(vec4<f32>(a.y), b.hi[1], hi);
        hi = fma(vec4<f32>(a.z), b.hi[2], hi);
        hi = fma(vec4<f32>(a.w), b.hi[3], hi);
        acc[2u * i] = lo;
        acc[2u * i + 1u] = hi;
    }
}

// The eight rows 8 g .. 8 g + 7, whose A texels the lanes loaded as `mine`.
fn step_group(g: u32, mine: vec4<f32>, b: BStep, base: u32) {
    step_row(8u * g + 0u, mine, b, base);
    step_row(8u * g + 1u, mine, b, base);
    step_row(8u * g + 2u, mine, b, base);
    step_row(8u * g + 3u, mine, b, base);
    step_row(8u * g + 4u, mine, b, base);
    step_row(8u * g + 5u, mine, b, base);
    step_row(8u * g + 6u, mine, b, base);
    step_row(8u * g + 7u, mine, b, base);
}

// The A texel of row r of the block for step q: rows past m repeat the last one.
fn block_a(q: u32, row0: u32, r: u32) -> vec4<f32> {
    return load_a(q, min(row0 + r, p.m - 1u));
}

// One step of four k for the whole block; rows 16 .. 31 only in 32-row blocks.
fn step_block(q: u32, row0: u32, li: u32, b: BStep, base: u32) {
    step_group(0u, block_a(q, row0, li), b, base);
    step_group(1u, block_a(q, row0, 8u + li), b, base);
    if (SG_ROWS > 16u) {
        step_group(2u, block_a(q, row0, 16u + li), b, base);
        step_group(3u, block_a(q, row0, 24u + li), b, base);
    }
}

// Rows 4 j .. 4 j + 3 of the block through the epilogue.
fn store_rows(j: u32, row0: u32, col0: u32) {
    if (4u * j < SG_ROWS) {
        let r = 8u * j;
        store_block(row0 + 4u * j, col0, acc[r], acc[r + 2u], acc[r + 4u], acc[r + 6u]);
        let h = r + 1u;
        store_block(row0 + 4u * j, col0 + 4u, acc[h], acc[h + 2u], acc[h + 4u], acc[h + 6u]);
    }
}

fn store_all(row0: u32, col0: u32) {
    store_rows(0u, row0, col0);
    store_rows(1u, row0, col0);
    store_rows(2u, row0, col0);
    store_rows(3u, row0, col0);
    store_rows(4u, row0, col0);
    store_rows(5u, row0, col0);
    store_rows(6u, row0, col0);
    store_rows(7u, row0, col0);
}

@compute @workgroup_size(8)
fn sg(@builtin(workgroup_id) wid: vec3<u32>,
      @builtin(local_invocation_index) li: u32,
      @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * SG_ROWS;
    let col0 = (wid.x * 8u + li) * 8u;
    let slice = k_slice(wid.z);
    let base = lane & ~7u;
    let bx = min(col0 / 4u, p.b_cs - 1u);
    let bx1 = min(bx + 1u, p.b_cs - 1u);
    acc = array<vec4<f32>, 2u * SG_MAX_ROWS>();
    for (var q = slice.x; q < slice.y; q++) {
        let k = 4u * q;
        var b: BStep;
        b.lo = array<vec4<f32>, 4>(load_b(bx, k), load_b(bx, k + 1u), load_b(bx, k + 2u),
                                   load_b(bx, k + 3u));
        b.hi = array<vec4<f32>, 4>(load_b(bx1, k), load_b(bx1, k + 1u), load_b(bx1, k + 2u),
                                   load_b(bx1, k + 3u));
        step_block(q, row0, li, b, base);
    }
    store_all(row0, col0);
}

@compute @workgroup_size(8)
fn sg_bt(@builtin(workgroup_id) wid: vec3<u32>,
      @builtin(local_invocation_index) li: u32,
      @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * SG_ROWS;
    let col0 = (wid.x * 8u + li) * 8u;
    let slice = k_slice(wid.z);
    let base = lane & ~7u;
    // Rows of B^T (columns of B) col0 .. col0 + 7, clamped.
    let last = p.n - 1u;
    let j0 = min(col0 + 0u, last);
    let j1 = min(col0 + 1u, last);
    let j2 = min(col0 + 2u, last);
    let j3 = min(col0 + 3u, last);
    let j4 = min(col0 + 4u, last);
    let j5 = min(col0 + 5u, last);
    let j6 = min(col0 + 6u, last);
    let j7 = min(col0 + 7u, last);
    acc = array<vec4<f32>, 2u * SG_MAX_ROWS>();
    for (var q = slice.x; q < slice.y; q++) {
        let t0 = load_b(q, j0);
        let t1 = load_b(q, j1);
        let t2 = load_b(q, j2);
        let t3 = load_b(q, j3);
        let t4 = load_b(q, j4);
        let t5 = load_b(q, j5);
        let t6 = load_b(q, j6);
        let t7 = load_b(q, j7);
        var b: BStep;
        b.lo = array<vec4<f32>, 4>(vec4<f32>(t0.x, t1.x, t2.x, t3.x),
                                   vec4<f32>(t0.y, t1.y, t2.y, t3.y),
                                   vec4<f32>(t0.z, t1.z, t2.z, t3.z),
                                   vec4<f32>(t0.w, t1.w, t2.w, t3.w));
        b.hi = array<vec4<f32>, 4>(vec4<f32>(t4.x, t5.x, t6.x, t7.x),
                                   vec4<f32>(t4.y, t5.y, t6.y, t7.y),
                                   vec4<f32>(t4.z, t5.z, t6.z, t7.z),
                                   vec4<f32>(t4.w, t5.w, t6.w, t7.w));
        step_block(q, row0, li, b, base);
    }
    store_all(row0, col0);
}
