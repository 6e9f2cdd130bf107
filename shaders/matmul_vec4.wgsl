// Matrix products with vec4 loads, for operands whose rows are contiguous and 16-byte aligned.
// Same products, block shape, epilogue and workgroup as matmul.wgsl (read its header first);
// only the loads differ. matmul_common.wgsl (epilogue, C) is compiled in front of it. Each
// entry point covers one layout of a linear layer's products:
//
//   nt  C[i, j] = sum_k A[i, k] B[j, k]   A [m, k] rows along k, B [n, k] rows along k
//       (forward Y = X W^T: both rows are read as vec4 along k; 16 dot products per step)
//   tn  C[i, j] = sum_k A[k, i] B[k, j]   A [k, m], B [k, n], rows along i and j
//       (grad_w dW = dY^T X: one vec4 of A and one of B give a 4x4 outer product per k)
//   nn  C[i, j] = sum_k A[i, k] B[k, j]   A [m, k] scalar loads, B [k, n] vec4 along j
//       (grad_x dX = dY W)
// Requirements, checked by the host (src/kernels/matmul/mod.rs) before it picks an entry point:
// every offset and row stride that is read as vec4 is a multiple of 4, and so is the vec4
// dimension (k for nt; m and n for tn; n for nn). `a_rs`, `b_rs`, `a_off`, `b_off` below count
// vec4s where the operand is read as vec4, floats otherwise.
//
// Sums run in ascending k (nt: four k at a time, combined by dot), so results are
// deterministic, but they round differently from matmul.wgsl; tests compare both with the
// CPU reference.
//
// Invocation (x, y) computes the 4x4 block at rows 4y.., columns 4x..; workgroup 16x8 covers
// 32x64 of C, as in matmul.wgsl (TILE_M, TILE_N in src/kernels/matmul/mod.rs).

@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
// The same buffer as `a4`, read as floats by `nn`.
@group(0) @binding(6) var<storage, read> a1: array<f32>;

@compute @workgroup_size(16, 8)
fn nt(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    // Row bases in vec4 units, clamped to the last row/column so every load is in bounds.
    let lr = p.m - 1u;
    let lc = p.n - 1u;
    let a0 = p.a_off + min(row0, lr) * p.a_rs;
    let a1r = p.a_off + min(row0 + 1u, lr) * p.a_rs;
    let a2 = p.a_off + min(row0 + 2u, lr) * p.a_rs;
    let a3 = p.a_off + min(row0 + 3u, lr) * p.a_rs;
    let b0 = p.b_off + min(col0, lc) * p.b_rs;
    let b1 = p.b_off + min(col0 + 1u, lc) * p.b_rs;
    let b2 = p.b_off + min(col0 + 2u, lc) * p.b_rs;
    let b3 = p.b_off + min(col0 + 3u, lc) * p.b_rs;

    var r0 = vec4<f32>(0.0);
    var r1 = vec4<f32>(0.0);
    var r2 = vec4<f32>(0.0);
    var r3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.kdim / 4u; k++) {
        let w0 = b4[b0 + k];
        let w1 = b4[b1 + k];
        let w2 = b4[b2 + k];
        let w3 = b4[b3 + k];
        let x0 = a4[a0 + k];
        let x1 = a4[a1r + k];
        let x2 = a4[a2 + k];
        let x3 = a4[a3 + k];
        r0 += vec4<f32>(dot(x0, w0), dot(x0, w1), dot(x0, w2), dot(x0, w3));
        r1 += vec4<f32>(dot(x1, w0), dot(x1, w1), dot(x1, w2), dot(x1, w3));
        r2 += vec4<f32>(dot(x2, w0), dot(x2, w1), dot(x2, w2), dot(x2, w3));
        r3 += vec4<f32>(dot(x3, w0), dot(x3, w1), dot(x3, w2), dot(x3, w3));
    }
    store_block(row0, col0, r0, r1, r2, r3);
}

@compute @workgroup_size(16, 8)
fn tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    // m and n are multiples of 4, so the block's vec4 never runs past a row.
    let ai = p.a_off + row0 / 4u;
    let bj = p.b_off + col0 / 4u;
    var r0 = vec4<f32>(0.0);
    var r1 = vec4<f32>(0.0);
    var r2 = vec4<f32>(0.0);
    var r3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.kdim; k++) {
        let av = a4[ai + k * p.a_rs];
        let bv = b4[bj + k * p.b_rs];
        r0 = fma(vec4<f32>(av.x), bv, r0);
        r1 = fma(vec4<f32>(av.y), bv, r1);
        r2 = fma(vec4<f32>(av.z), bv, r2);
        r3 = fma(vec4<f32>(av.w), bv, r3);
    }
    store_block(row0, col0, r0, r1, r2, r3);
}

@compute @workgroup_size(16, 8)
fn nn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    // A is read as floats (a_off, a_rs in floats); B as vec4 (n a multiple of 4).
    let lr = p.m - 1u;
    let a0 = p.a_off + min(row0, lr) * p.a_rs;
    let a1r = p.a_off + min(row0 + 1u, lr) * p.a_rs;
    let a2 = p.a_off + min(row0 + 2u, lr) * p.a_rs;
    let a3 = p.a_off + min(row0 + 3u, lr) * p.a_rs;
    let bj = p.b_off + col0 / 4u;
    var r0 = vec4<f32>(0.0);
    var r1 = vec4<f32>(0.0);
    var r2 = vec4<f32>(0.0);
    var r3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.kdim; k++) {
        let bv = b4[bj + k * p.b_rs];
        r0 = fma(vec4<f32>(a1[a0 + k]), bv, r0);
        r1 = fma(vec4<f32>(a1[a1r + k]), bv, r1);
        r2 = fma(vec4<f32>(a1[a2 + k]), bv, r2);
        r3 = fma(vec4<f32>(a1[a3 + k]), bv, r3);
    }
    store_block(row0, col0, r0, r1, r2, r3);
}
