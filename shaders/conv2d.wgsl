// 2-D convolution (cross-correlation, as torch.nn.Conv2d: no kernel flip) with zero padding and
// a stride, and its three gradients. Direct loops, one output element per invocation.
//
// Layouts, all row-major and contiguous, PyTorch's:
//   x       [n, ic, h, w]        at element x_off of `x`
//   weight  [oc, ic, kh, kw]     at element w_off of `wt`
//   bias    [oc]                 at element b_off of `wt`
//   y       [n, oc, oh, ow]      oh = (h + 2 pad - kh) / stride + 1, likewise ow
//   y[n, o, i, j] = bias[o] + sum_{c, u, v} x[n, c, i*stride + u - pad, j*stride + v - pad]
//                                        * weight[o, c, u, v]       (x outside the image is 0)
//
// Entry points (each overwrites its output; none accumulates):
//   forward      out = y, epilogue by `flags`: 1 adds the bias, 2 applies ReLU
//   grad_input   out = grad_x [n, ic, h, w]: sum over (o, u, v) of grad_y * weight where
//                (y_i, y_j) = ((r + pad - u) / stride, (s + pad - v) / stride) is a whole output
//                position inside [oh, ow]; with flags & 4 the sum is zeroed where x <= 0, the
//                backward of a ReLU whose output is this convolution's input
//   grad_weight  out = grad_w [oc, ic, kh, kw]: sum over (n, i, j) of grad_y * x
//   grad_bias    out = grad_b [oc]: sum over (n, i, j) of grad_y
// `src` is the upstream tensor of each pass: x for forward and grad_weight's second operand,
// grad_y otherwise; see the bindings below. Every sum runs in a fixed loop order, so the
// results are deterministic.
//
// Invocation index = gid.y * row_stride + gid.x over a 2-D grid of 256-wide workgroups (the
// host's grid in src/kernels/conv.rs). forward computes 4 output channels at one position,
// grad_input 4 input channels at one position (blocks of 4 channels: the host's count in
// conv.rs must match), grad_weight and grad_bias one element each.

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
    x_off: u32,
    w_off: u32,
    b_off: u32,
    out_off: u32,
    row_stride: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_RELU: u32 = 2u;
const FLAG_MASK: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
// The input x: read by forward and grad_weight, and by grad_input as its ReLU mask.
@group(0) @binding(1) var<storage, read> x: array<f32>;
// weight and bias (the packed parameters).
@group(0) @binding(2) var<storage, read> wt: array<f32>;
// grad_input, grad_weight, grad_bias: grad_y [n, oc, oh, ow] from element 0. forward: unused.
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn index(gid: vec3<u32>) -> u32 {
    return gid.y * p.row_stride + gid.x;
}

// Channel index `c` clamped to `count - 1`: loads of a block that overhangs the last channel
// stay in bounds; their results are never stored.
fn clamp_ch(c: u32, count: u32) -> u32 {
    return min(c, count - 1u);
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    // One invocation: output channels o0 .. o0+3 at one position, so that each input value is
    // loaded once for four filters.
    let e = index(gid);
    let blocks = (p.oc + 3u) / 4u;
    let total = p.n * blocks * p.oh * p.ow;
    if (e >= total) {
        return;
    }
    let j = e % p.ow;
    let i = (e / p.ow) % p.oh;
    let o0 = ((e / (p.ow * p.oh)) % blocks) * 4u;
    let b = e / (p.ow * p.oh * blocks);
    // Taps inside the image: u with 0 <= i * stride + u - pad < h, likewise v; computed once
    // so that the inner loops carry no branch.
    let r0 = i * p.stride;
    let q0 = j * p.stride;
    let u_lo = select(0u, p.pad - r0, r0 < p.pad);
    let u_hi = select(0u, min(p.kh, p.h + p.pad - r0), p.h + p.pad > r0);
    let v_lo = select(0u, p.pad - q0, q0 < p.pad);
    let v_hi = select(0u, min(p.kw, p.w + p.pad - q0), p.w + p.pad > q0);
    let taps = p.kh * p.kw;
    // Weight rows [o, c, :, :] of the four filters, for c = 0; c adds `taps` to each.
    let f = vec4<u32>(
        clamp_ch(o0, p.oc),
        clamp_ch(o0 + 1u, p.oc),
        clamp_ch(o0 + 2u, p.oc),
        clamp_ch(o0 + 3u, p.oc),
    ) * (p.ic * taps) + vec4<u32>(p.w_off);
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < p.ic; c++) {
        let xc = p.x_off + (b * p.ic + c) * p.h * p.w;
        let wc = f + vec4<u32>(c * taps);
        for (var u = u_lo; u < u_hi; u++) {
            let xr = xc + (r0 + u - p.pad) * p.w + q0 - p.pad;
            let wr = wc + vec4<u32>(u * p.kw);
            for (var v = v_lo; v < v_hi; v++) {
                let wv = vec4<f32>(wt[wr.x + v], wt[wr.y + v], wt[wr.z + v], wt[wr.w + v]);
                s = fma(vec4<f32>(x[xr + v]), wv, s);
            }
        }
    }
    for (var t = 0u; t < 4u; t++) {
        let o = o0 + t;
        if (o >= p.oc) {
            break;
        }
        var y = s[t];
        if ((p.flags & FLAG_BIAS) != 0u) {
            y += wt[p.b_off + o];
        }
        if ((p.flags & FLAG_RELU) != 0u) {
            y = max(y, 0.0);
        }
        out[p.out_off + ((b * p.oc + o) * p.oh + i) * p.ow + j] = y;
    }
}

@compute @workgroup_size(256)
fn grad_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    // One invocation: input channels c0 .. c0+3 at one position, so that each upstream
    // gradient value is loaded once for four channels.
    let e = index(gid);
    let blocks = (p.ic + 3u) / 4u;
    let total = p.n * blocks * p.h * p.w;
    if (e >= total) {
        return;
    }
    let q = e % p.w;
    let r = (e / p.w) % p.h;
    let c0 = ((e / (p.w * p.h)) % blocks) * 4u;
    let b = e / (p.w * p.h * blocks);
    // Taps u with i = (r + pad - u) / stride a whole output row in [0, oh): u runs from the
    // smallest such value in steps of stride; likewise v. Computed once, so the inner loops
    // carry no branch.
    let rp = r + p.pad;
    let qp = q + p.pad;
    // Smallest u >= 0 with (rp - u) % stride == 0 and (rp - u) / stride <= oh - 1.
    var u_lo = rp % p.stride;
    let over_r = (p.oh - 1u) * p.stride;
    if (rp > over_r) {
        u_lo = max(u_lo, rp - over_r);
    }
    var v_lo = qp % p.stride;
    let over_q = (p.ow - 1u) * p.stride;
    if (qp > over_q) {
        v_lo = max(v_lo, qp - over_q);
    }
    let u_hi = min(p.kh, rp + 1u);
    let v_hi = min(p.kw, qp + 1u);
    let taps = p.kh * p.kw;
    // Weight planes [0, c, :, :] of the four channels; filter o adds ic * taps.
    let f = vec4<u32>(
        clamp_ch(c0, p.ic),
        clamp_ch(c0 + 1u, p.ic),
        clamp_ch(c0 + 2u, p.ic),
        clamp_ch(c0 + 3u, p.ic),
    ) * taps + vec4<u32>(p.w_off);
    var s = vec4<f32>(0.0);
    for (var o = 0u; o < p.oc; o++) {
        let gyo = (b * p.oc + o) * p.oh * p.ow;
        let wc = f + vec4<u32>(o * p.ic * taps);
        for (var u = u_lo; u < u_hi; u += p.stride) {
            let gr = gyo + ((rp - u) / p.stride) * p.ow;
            let wr = wc + vec4<u32>(u * p.kw);
            for (var v = v_lo; v < v_hi; v += p.stride) {
                let wv = vec4<f32>(wt[wr.x + v], wt[wr.y + v], wt[wr.z + v], wt[wr.w + v]);
                s = fma(vec4<f32>(gy[gr + (qp - v) / p.stride]), wv, s);
            }
        }
    }
    for (var t = 0u; t < 4u; t++) {
        let c = c0 + t;
        if (c >= p.ic) {
            break;
        }
        let at = ((b * p.ic + c) * p.h + r) * p.w + q;
        var g = s[t];
        if ((p.flags & FLAG_MASK) != 0u && !(x[p.x_off + at] > 0.0)) {
            g = 0.0;
        }
        out[p.out_off + at] = g;
    }
}

@compute @workgroup_size(256)
fn grad_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = index(gid);
    let total = p.oc * p.ic * p.kh * p.kw;
    if (e >= total) {
        return;
    }
    let v = e % p.kw;
    let u = (e / p.kw) % p.kh;
    let c = (e / (p.kw * p.kh)) % p.ic;
    let o = e / (p.kw * p.kh * p.ic);
    // Output positions whose tap (u, v) lands inside the image: i * stride + u - pad in
    // [0, h), likewise j; computed once, so the inner loops carry no branch.
    let i_lo = select(0u, (p.pad - u + p.stride - 1u) / p.stride, u < p.pad);
    let i_hi = select(0u, min(p.oh, (p.h + p.pad - u + p.stride - 1u) / p.stride), p.h + p.pad > u);
    let j_lo = select(0u, (p.pad - v + p.stride - 1u) / p.stride, v < p.pad);
    let j_hi = select(0u, min(p.ow, (p.w + p.pad - v + p.stride - 1u) / p.stride), p.w + p.pad > v);
    var s = 0.0;
    for (var b = 0u; b < p.n; b++) {
        let xc = p.x_off + (b * p.ic + c) * p.h * p.w;
        let gyo = (b * p.oc + o) * p.oh * p.ow;
        for (var i = i_lo; i < i_hi; i++) {
            let xr = xc + (i * p.stride + u - p.pad) * p.w + v - p.pad;
            let gr = gyo + i * p.ow;
            for (var j = j_lo; j < j_hi; j++) {
                s = fma(gy[gr + j], x[xr + j * p.stride], s);
            }
        }
    }
    out[p.out_off + e] = s;
}

@compute @workgroup_size(256)
fn grad_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = index(gid);
    if (o >= p.oc) {
        return;
    }
    var s = 0.0;
    let hw = p.oh * p.ow;
    for (var b = 0u; b < p.n; b++) {
        let base = (b * p.oc + o) * hw;
        for (var k = 0u; k < hw; k++) {
            s += gy[base + k];
        }
    }
    out[p.out_off + o] = s;
}
