// Shared by matmul.wgsl and matmul_vec4.wgsl, which the host appends to this file before
// compiling (src/kernels/matmul/mod.rs): the parameter block, the output bindings and the epilogue.
//
// C[i, j] = c[c_off + i * c_rs + j], row-major; it is overwritten, never accumulated into.
// Epilogue, by bits of EPILOGUE (below; the host's copy is `flags`), applied in this order:
//   1 BIAS  add bias[bias_off + j]
//   2 RELU  max(x, 0)
//   4 MASK  multiply by (mask[mask_off + i * mask_rs + j] > 0): the ReLU backward, where `mask`
//           is the ReLU's forward output (PyTorch's threshold_backward uses the output too)
//   8 NCHW  store C[i, j] at c_off + (i / P) n P + j P + i % P, P = c_rs: row i = (b, q) of a
//           convolution's output positions and column j its channel, so that C lands in
//           NCHW order [b, n, P] (src/kernels/conv_gemm.rs); bias and ReLU as above
//  16 NCHW_T the transpose: row i is a channel and column j = (b, q) a position, C[i, j] stored
//           at c_off + (j / P) m P + i P + j % P, and the bias is bias[bias_off + i]. Only with
//           C_VEC4 (P, n and c_off multiples of 4), checked by the host
// Params mirrors `matmul::Params` in Rust field for field; the operand fields (a_*, b_*) are
// read by each kernel in its own units (see its header).

struct Params {
    m: u32,
    n: u32,
    kdim: u32,
    // The epilogue bits as the host set them; the kernels read the EPILOGUE constant instead.
    flags: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    c_off: u32,
    c_rs: u32,
    bias_off: u32,
    mask_off: u32,
    mask_rs: u32,
    // The 8x8 kernels only (matmul_block8.wgsl): how invocations map to blocks (0: 8x8 blocks
    // per workgroup, 1: wide, 1 x 64, for short C, 2: tall, 64 x 1, for narrow C), the number
    // of k slices (split-K: slice z = workgroup z sums its share of the k steps and stores the
    // raw partial sums as rows z m .. of a [split m, n] matrix; matmul_reduce.wgsl adds them
    // up), and the k steps per slice.
    block_layout: u32,
    split: u32,
    k_per_split: u32,
    _pad0: u32,
    _pad1: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_RELU: u32 = 2u;
const FLAG_MASK: u32 = 4u;
const FLAG_NCHW: u32 = 8u;
const FLAG_NCHW_T: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
// C as vec4s, so that an aligned row of four is one store: on llvmpipe every store runs a loop
// over the lanes, and one vec4 store costs little more than one scalar store. Every buffer is a
// whole number of vec4s (`Context::storage`).
@group(0) @binding(5) var<storage, read_write> c: array<vec4<f32>>;

// Element offset added to every store: a split-K slice's partial-sum rows (0 otherwise).
var<private> c_base: u32 = 0u;

// The epilogue, fixed when the pipeline is built (`matmul::specialize` in
// src/kernels/matmul/mod.rs): its FLAG_ bits (the host's p.flags), and C_VEC4, true when C's
// rows are whole aligned vec4s (n, c_rs and c_off multiples of 4, not NCHW), or, with NCHW,
// when every run of four rows is (the plane P = c_rs and c_off multiples of 4).
// Why not read p.flags: llvmpipe runs both sides of every branch, lanes masked, even when the
// condition is the same for all of them, so a branch on a uniform flag costs its whole body:
// the unused bias and mask loads, the NCHW division and the scalar stores ran on every store
// and took two thirds of a 12800x128x16 product. Constants let the compiler drop them.
override EPILOGUE: u32 = 0u;
override C_VEC4: bool = false;

fn has(flag: u32) -> bool {
    return (EPILOGUE & flag) != 0u;
}

// Bias, ReLU and mask applied to row i, columns j0 .. j0+3; `inside` marks the columns that
// exist (bias and mask are read only for those).
fn finish(i: u32, j0: u32, acc: vec4<f32>, inside: vec4<bool>) -> vec4<f32> {
    let whole = all(inside);
    var v = acc;
    if (has(FLAG_BIAS) && has(FLAG_NCHW_T)) {
        v += vec4<f32>(bias[p.bias_off + i]);
    } else if (has(FLAG_BIAS)) {
        let b = p.bias_off + j0;
        if (whole) {
            v += vec4<f32>(bias[b], bias[b + 1u], bias[b + 2u], bias[b + 3u]);
        } else {
            for (var t = 0u; t < 4u; t++) {
                if (inside[t]) {
                    v[t] += bias[b + t];
                }
            }
        }
    }
    if (has(FLAG_RELU)) {
        v = max(v, vec4<f32>(0.0));
    }
    if (has(FLAG_MASK)) {
        let o = p.mask_off + i * p.mask_rs + j0;
        var m4 = vec4<f32>(0.0);
        if (whole) {
            m4 = vec4<f32>(mask[o], mask[o + 1u], mask[o + 2u], mask[o + 3u]);
        } else {
            for (var t = 0u; t < 4u; t++) {
                if (inside[t]) {
                    m4[t] = mask[o + t];
                }
            }
        }
        v = select(vec4<f32>(0.0), v, m4 > vec4<f32>(0.0));
    }
    return v;
}

// Columns j0 .. j0+3 that exist.
fn columns(j0: u32) -> vec4<bool> {
    return vec4<bool>(true, j0 + 1u < p.n, j0 + 2u < p.n, j0 + 3u < p.n);
}

// Stores element o of C (as floats).
fn store_one(o: u32, v: f32) {
    c[o >> 2u][o & 3u] = v;
}

// Applies the epilogue to row i, columns j0 .. j0+3 of a block (j0 a multiple of 4), storing
// those inside C: one vec4 store when C_VEC4, else one store per column, with one branch per
// column past the edge.
fn store_row(i: u32, j0: u32, acc: vec4<f32>) {
    if (i >= p.m || j0 >= p.n) {
        return;
    }
    if (C_VEC4 && has(FLAG_NCHW_T)) {
        // Four positions of one image (P is a multiple of 4), consecutive in C.
        let v = finish(i, j0, acc, vec4<bool>(true));
        let b = j0 / p.c_rs;
        c[(p.c_off + (b * p.m + i) * p.c_rs + j0 - b * p.c_rs) >> 2u] = v;
        return;
    }
    if (C_VEC4 && !has(FLAG_NCHW)) {
        // n is a multiple of 4, so all four columns exist.
        let v = finish(i, j0, acc, vec4<bool>(true));
        c[(c_base + p.c_off + i * p.c_rs + j0) >> 2u] = v;
        return;
    }
    let inside = columns(j0);
    let v = finish(i, j0, acc, inside);
    // Consecutive columns are 1 apart in row-major C and P = c_rs apart in NCHW.
    var o = c_base + p.c_off + i * p.c_rs + j0;
    var step = 1u;
    if (has(FLAG_NCHW)) {
        let b = i / p.c_rs;
        o = p.c_off + b * p.n * p.c_rs + j0 * p.c_rs + (i - b * p.c_rs);
        step = p.c_rs;
    }
    store_one(o, v.x);
    if (inside.w) {
        store_one(o + step, v.y);
        store_one(o + 2u * step, v.z);
        store_one(o + 3u * step, v.w);
        return;
    }
    if (inside.y) {
        store_one(o + step, v.y);
    }
    if (inside.z) {
        store_one(o + 2u * step, v.z);
    }
}

// Stores a 4x4 block whose top-left element is C[row0, col0], row0 and col0 multiples of 4.
// NCHW with C_VEC4: the four rows are four consecutive positions of one image (P is a multiple
// of 4), so each column of the block is one vec4 in C, and the image is divided out once.
fn store_block(row0: u32, col0: u32, r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>) {
    if (C_VEC4 && has(FLAG_NCHW)) {
        // m = images x P is a multiple of 4 too, so all four rows exist when the first does.
        if (row0 >= p.m || col0 >= p.n) {
            return;
        }
        let inside = columns(col0);
        let v0 = finish(row0, col0, r0, inside);
        let v1 = finish(row0 + 1u, col0, r1, inside);
        let v2 = finish(row0 + 2u, col0, r2, inside);
        let v3 = finish(row0 + 3u, col0, r3, inside);
        let b = row0 / p.c_rs;
        let o = (p.c_off + b * p.n * p.c_rs + col0 * p.c_rs + (row0 - b * p.c_rs)) >> 2u;
        let step = p.c_rs >> 2u;
        c[o] = vec4<f32>(v0.x, v1.x, v2.x, v3.x);
        if (inside.y) {
            c[o + step] = vec4<f32>(v0.y, v1.y, v2.y, v3.y);
        }
        if (inside.z) {
            c[o + 2u * step] = vec4<f32>(v0.z, v1.z, v2.z, v3.z);
        }
        if (inside.w) {
            c[o + 3u * step] = vec4<f32>(v0.w, v1.w, v2.w, v3.w);
        }
        return;
    }
    store_row(row0, col0, r0);
    store_row(row0 + 1u, col0, r1);
    store_row(row0 + 2u, col0, r2);
    store_row(row0 + 3u, col0, r3);
}
