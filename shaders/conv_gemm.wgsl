// Convolution as matrix products (implicit GEMM through an explicit im2col): the layouts that
// turn conv2d's three passes into the 8x8-block matmuls of matmul_block8.wgsl, and back.
//
// Shapes, PyTorch's NCHW, all contiguous: x [n, ic, h, w], weight [oc, ic, kh, kw] = W [oc, K]
// with K = ic kh kw, y and grad_y [n, oc, oh, ow]; P = oh ow positions, R = n P rows.
//   col [R, K]: col[(b, i, j), (c, u, v)] = x[b, c, i stride + u - pad, j stride + v - pad]
//               (0 outside the image), so that  y[b, o, i, j] = (col W^T)[(b, i, j), o] + bias
//   grad_w = grad_y' col    with grad_y' [oc, R]: grad_y'[o, (b, p)] = grad_y[b, o, p]
//   dcol = grad_y'' W       with grad_y'' [R, oc] (its transpose), and grad_x = col2im(dcol)
// Every matrix written here is in the vec4 layout the 8x8 kernels read: texel (x, y) holds
// columns 4x .. 4x+3 of row y, at index y * width + x, zero past the matrix (rows padded to a
// multiple of 8, columns to a multiple of 4), so padded products add zeros. col is both the
// forward's A and grad_weight's B (B [k = R, n = K] in the same layout).
//
// Entry points, one invocation per output texel (pack) or element (col2im), 1-D numbering
// i = gid.y * row_stride + gid.x over 256-wide workgroups (the host's grid in
// src/kernels/conv_gemm.rs):
//   im2col      x -> col                     width = ceil(K / 4), height = rows of col
//   im2col_rows the same, one invocation per row of col (the host's choice on a CPU adapter)
//   rows        grad_y -> grad_y'' [R, oc]    width = ceil(oc / 4)
//   planes      grad_y -> grad_y' [oc, R]     width = ceil(R / 4)
//   col2im      dcol [R, K] (row-major floats, row stride `width` = K rounded up to a multiple
//               of 4, so that the product before it stores vec4s) -> grad_x, each element the sum
//               over the (u, v) that reach it, in ascending order (deterministic, no atomics);
//               with flags & 4 zeroed where mask (the ReLU output that fed this conv) <= 0

struct Params {
    n: u32,
    ic: u32,
    h: u32,
    w: u32,
    oc: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    flags: u32,
    // Texels per packed row and packed rows (pack entries); col2im: the row stride of dcol.
    width: u32,
    height: u32,
    row_stride: u32,
    // Element offset of the source tensor.
    src_off: u32,
}

const FLAG_MASK: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
// col2im's ReLU mask, [n, ic, h, w]; unused by the pack entries.
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> packed: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> grad_x: array<f32>;

fn index(gid: vec3<u32>) -> u32 {
    return gid.y * p.row_stride + gid.x;
}

// The col value of tap (c, u, v) = (tap.x, tap.y, tap.z) for the patch whose corner is (y0, x0)
// in padded coordinates of image b: 0 outside the image, past ic, or for a padding row (!live).
// Loaded from a valid index and then selected, not loaded under a branch that differs between
// lanes, which costs more on llvmpipe.
fn tap_value(b: u32, y0: u32, x0: u32, tap: vec3<u32>, live: bool) -> f32 {
    // In padded coordinates, so that a negative position is a large unsigned one.
    let y = y0 + tap.y;
    let x = x0 + tap.z;
    let inside = live && tap.x < p.ic && y >= p.pad && x >= p.pad && y - p.pad < p.h
        && x - p.pad < p.w;
    let at = select(0u, ((b * p.ic + tap.x) * p.h + y - p.pad) * p.w + x - p.pad, inside);
    return select(0.0, src[p.src_off + at], inside);
}

// The tap after `tap` in (c, u, v) order, without dividing.
fn next_tap(tap: vec3<u32>) -> vec3<u32> {
    var t = tap + vec3<u32>(0u, 0u, 1u);
    if (t.z == p.kw) {
        t = vec3<u32>(t.x, t.y + 1u, 0u);
        if (t.y == p.kh) {
            t = vec3<u32>(t.x + 1u, 0u, 0u);
        }
    }
    return t;
}

@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.width * p.height) {
        return;
    }
    // The row's image and output position, and the first column's tap, are taken apart once
    // per texel; the four columns then step through (c, u, v) without dividing again.
    let r = i / p.width;
    let k0 = 4u * (i % p.width);
    let positions = p.oh * p.ow;
    let kk = p.kh * p.kw;
    let b = r / positions;
    let q = r % positions;
    let y0 = (q / p.ow) * p.stride;
    let x0 = (q % p.ow) * p.stride;
    var tap = vec3<u32>(k0 / kk, (k0 % kk) / p.kw, k0 % p.kw);
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        v[e] = tap_value(b, y0, x0, tap, r < p.n * positions);
        tap = next_tap(tap);
    }
    packed[i] = v;
}

@compute @workgroup_size(256)
fn im2col_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    // As im2col, one invocation per row of col: the row's image and position are taken apart
    // once, and its `width` texels follow by stepping (c, u, v), with no division per texel.
    let r = index(gid);
    if (r >= p.height) {
        return;
    }
    let positions = p.oh * p.ow;
    let live = r < p.n * positions;
    let b = r / positions;
    let q = r % positions;
    let y0 = (q / p.ow) * p.stride;
    let x0 = (q % p.ow) * p.stride;
    var tap = vec3<u32>(0u);
    for (var k = 0u; k < p.width; k++) {
        var v = vec4<f32>(0.0);
        for (var e = 0u; e < 4u; e++) {
            v[e] = tap_value(b, y0, x0, tap, live);
            tap = next_tap(tap);
        }
        packed[r * p.width + k] = v;
    }
}

// grad_y[b, o, q] (row r = b P + q of the position-major matrices), 0 past the tensor. Callers
// take r apart once per texel and step (b, q) themselves: integer division is a slow loop per
// lane on llvmpipe, and these passes are nothing but index arithmetic and copies.
fn grad_y_at(b: u32, q: u32, o: u32) -> f32 {
    if (b >= p.n || o >= p.oc) {
        return 0.0;
    }
    return src[p.src_off + (b * p.oc + o) * p.oh * p.ow + q];
}

@compute @workgroup_size(256)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.width * p.height) {
        return;
    }
    let r = i / p.width;
    let o = 4u * (i % p.width);
    let positions = p.oh * p.ow;
    let b = r / positions;
    let q = r % positions;
    packed[i] = vec4<f32>(grad_y_at(b, q, o), grad_y_at(b, q, o + 1u), grad_y_at(b, q, o + 2u),
                          grad_y_at(b, q, o + 3u));
}

@compute @workgroup_size(256)
fn planes(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.width * p.height) {
        return;
    }
    let o = i / p.width;
    let r = 4u * (i % p.width);
    let positions = p.oh * p.ow;
    var b = r / positions;
    var q = r % positions;
    var v = vec4<f32>(0.0);
    for (var t = 0u; t < 4u; t++) {
        v[t] = grad_y_at(b, q, o);
        q += 1u;
        if (q == positions) {
            q = 0u;
            b += 1u;
        }
    }
    packed[i] = v;
}

// dcol is `src` here: [R, K] row-major floats from src_off.
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = index(gid);
    if (e >= p.n * p.ic * p.h * p.w) {
        return;
    }
    let xx = e % p.w;
    let yy = (e / p.w) % p.h;
    let c = (e / (p.w * p.h)) % p.ic;
    let b = e / (p.w * p.h * p.ic);
    let kdim = p.width;
    var sum = 0.0;
    // Output row i reaches input row yy through kernel row u when i stride + u = yy + pad: the
    // u of one residue modulo stride, from the largest i down (ascending u). Each step of u by
    // stride lowers i by one, so only the first i is divided out. Likewise for columns.
    let ty = yy + p.pad;
    let tx = xx + p.pad;
    let v0 = tx % p.stride;
    let j0 = (tx - v0) / p.stride;
    var u = ty % p.stride;
    var i = (ty - u) / p.stride;
    for (; u < p.kh && u <= ty; u += p.stride) {
        if (i < p.oh) {
            let row = (b * p.oh + i) * p.ow;
            let base = p.src_off + (c * p.kh + u) * p.kw;
            var j = j0;
            for (var v = v0; v < p.kw && v <= tx; v += p.stride) {
                // Loaded from a valid index and then selected, not loaded under a branch that
                // differs between lanes (dearer on llvmpipe).
                let inside = j < p.ow;
                let at = select(0u, (row + j) * kdim, inside);
                sum += select(0.0, src[base + at + v], inside);
                j -= 1u;
            }
        }
        i -= 1u;
    }
    if ((p.flags & FLAG_MASK) != 0u && !(mask[e] > 0.0)) {
        sum = 0.0;
    }
    grad_x[e] = sum;
}
