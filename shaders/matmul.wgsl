// Register-blocked matrix product with a fused epilogue, on strided storage-buffer operands.
//
//   C[i, j] = epilogue( sum_k A[i, k] * B[k, j] ),   i < m, j < n, k < kdim
//
// Operands are addressed through element offsets and strides, so one kernel serves all three
// products of a linear layer without transposing anything in memory:
//   A[i, k] = a[a_off + i * a_rs + k * a_cs]      B[k, j] = b[b_off + k * b_rs + j * b_cs]
//   C[i, j] = c[c_off + i * c_rs + j]             (C rows are contiguous)
// forward  Y = X W^T + bias:  A = X [batch, in], B = W^T (W is [out, in], so b_rs = 1, b_cs = in)
// grad_x   dX = dY W:         A = dY [batch, out], B = W [out, in]
// grad_w   dW = dY^T X:       A = dY^T (a_rs = 1, a_cs = out), B = X [batch, in]
//
// The epilogue (bias, ReLU, ReLU mask) and C's bindings are in matmul_common.wgsl, which is
// compiled in front of this file.
//
// Invocation (x, y) computes the 4x4 block of C at rows 4y.., columns 4x.., with the k loop in
// ascending order, so every result is a fixed-order sum: the kernel is deterministic. Rows and
// columns past the edge are clamped on load (the values are discarded on store), so every load
// is in bounds and no branch sits in the inner loop.
//
// Workgroup 16x8 covers a 32-row x 64-column tile of C; the host's ceil-div dispatch in
// src/kernels/matmul/mod.rs uses TILE_M = 32 and TILE_N = 64 and must change with the workgroup
// size (16, 8) and the block TM x TN (4 x 4) here and in matmul_vec4.wgsl.
// No workgroup memory: on llvmpipe it made every variant slower (shared/notes measurements).

const TM: u32 = 4u;
const TN: u32 = 4u;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

@compute @workgroup_size(16, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * TM;
    let col0 = gid.x * TN;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }

    // Clamped row and column indices: loads stay inside the operands. The 4x4 block is
    // written out by hand rather than as private arrays indexed in loops, which a shader
    // compiler may keep in memory instead of registers.
    let last_row = p.m - 1u;
    let a0 = p.a_off + min(row0, last_row) * p.a_rs;
    let a1 = p.a_off + min(row0 + 1u, last_row) * p.a_rs;
    let a2 = p.a_off + min(row0 + 2u, last_row) * p.a_rs;
    let a3 = p.a_off + min(row0 + 3u, last_row) * p.a_rs;
    let last_col = p.n - 1u;
    let b0 = p.b_off + min(col0, last_col) * p.b_cs;
    let b1 = p.b_off + min(col0 + 1u, last_col) * p.b_cs;
    let b2 = p.b_off + min(col0 + 2u, last_col) * p.b_cs;
    let b3 = p.b_off + min(col0 + 3u, last_col) * p.b_cs;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var ak = 0u;
    var bk = 0u;
    for (var k = 0u; k < p.kdim; k++) {
        let bv = vec4<f32>(b[b0 + bk], b[b1 + bk], b[b2 + bk], b[b3 + bk]);
        acc0 = fma(vec4<f32>(a[a0 + ak]), bv, acc0);
        acc1 = fma(vec4<f32>(a[a1 + ak]), bv, acc1);
        acc2 = fma(vec4<f32>(a[a2 + ak]), bv, acc2);
        acc3 = fma(vec4<f32>(a[a3 + ak]), bv, acc3);
        ak += p.a_cs;
        bk += p.b_rs;
    }

    store_block(row0, col0, acc0, acc1, acc2, acc3);
}
