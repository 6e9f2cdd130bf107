// Shared by matmul.wgsl and matmul_vec4.wgsl, which the host appends to this file before
// compiling (src/kernels/matmul/mod.rs): the parameter block, the output bindings and the epilogue.
//
// C[i, j] = c[c_off + i * c_rs + j], row-major; it is overwritten, never accumulated into.
// Epilogue, by bits of `flags`, applied in this order:
//   1 BIAS  add bias[bias_off + j]
//   2 RELU  max(x, 0)
//   4 MASK  multiply by (mask[mask_off + i * mask_rs + j] > 0): the ReLU backward, where `mask`
//           is the ReLU's forward output (PyTorch's threshold_backward uses the output too)
//   8 NCHW  store C[i, j] at c_off + (i / P) n P + j P + i % P, P = c_rs: row i = (b, q) of a
//           convolution's output positions and column j its channel, so that C lands in
//           NCHW order [b, n, P] (src/kernels/conv_gemm.rs); bias and ReLU as above
// Params mirrors `matmul::Params` in Rust field for field; the operand fields (a_*, b_*) are
// read by each kernel in its own units (see its header).

struct Params {
    m: u32,
    n: u32,
    kdim: u32,
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

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

// Element offset added to every store: a split-K slice's partial-sum rows (0 otherwise).
var<private> c_base: u32 = 0u;

// Applies the epilogue to row i, columns j0 .. j0+3 of a block, storing those inside C.
// Straight-line code, one branch per column past the edge: on llvmpipe a per-element loop here
// cost the 16x8 kernel of matmul_block8_sg.wgsl a third of its time at n = 256, and the
// narrow NCHW products of a convolution (n = 6 channels) more.
fn store_row(i: u32, j0: u32, acc: vec4<f32>) {
    if (i >= p.m || j0 >= p.n) {
        return;
    }
    // Columns j0 .. j0+3 that exist; bias and mask are read only for those.
    let inside = vec4<bool>(true, j0 + 1u < p.n, j0 + 2u < p.n, j0 + 3u < p.n);
    let whole = j0 + 3u < p.n;
    var v = acc;
    if ((p.flags & FLAG_BIAS) != 0u) {
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
    if ((p.flags & FLAG_RELU) != 0u) {
        v = max(v, vec4<f32>(0.0));
    }
    if ((p.flags & FLAG_MASK) != 0u) {
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
    // Consecutive columns are 1 apart in row-major C and P = c_rs apart in NCHW.
    var o = c_base + p.c_off + i * p.c_rs + j0;
    var step = 1u;
    if ((p.flags & FLAG_NCHW) != 0u) {
        let b = i / p.c_rs;
        o = p.c_off + b * p.n * p.c_rs + j0 * p.c_rs + (i - b * p.c_rs);
        step = p.c_rs;
    }
    c[o] = v.x;
    if (whole) {
        c[o + step] = v.y;
        c[o + 2u * step] = v.z;
        c[o + 3u * step] = v.w;
        return;
    }
    if (inside.y) {
        c[o + step] = v.y;
    }
    if (inside.z) {
        c[o + 2u * step] = v.z;
    }
}

// Stores a 4x4 block whose top-left element is C[row0, col0].
fn store_block(row0: u32, col0: u32, r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>) {
    store_row(row0, col0, r0);
    store_row(row0 + 1u, col0, r1);
    store_row(row0 + 2u, col0, r2);
    store_row(row0 + 3u, col0, r3);
}
