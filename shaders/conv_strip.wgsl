// Small convolutions (LeNet-5's first: one input channel, six 5x5 filters) as direct loops over
// strips of four output positions: the forward and the weight and bias gradients, with no
// im2col buffer. For stride 1 and output widths that are a multiple of 4 (the host's
// `conv_strip::fits` in src/kernels/conv_strip.rs has the full list).
//
// Layouts, PyTorch's NCHW as in conv2d.wgsl: x [n, IC, h, w], weight [OC, IC, KH, KW],
// bias [OC], y and grad_y [n, OC, oh, ow]; a strip is y[b, :, i, j0 .. j0+3], j0 = 4 s.
//
// Entry points:
//   forward      one invocation per strip (b, i, s): all OC channels of the strip, bias and
//                ReLU (flag) fused, stored as one vec4 per channel.
//   grad_weight  one invocation per row r = ((b bands + q) IC + c) KH + u: over the strips of
//                output rows 4 q .. 4 q + 3 of image b, the partial sums of grad_w[o, c, u, v]
//                and of grad_b[o], stored as row r of `out` [rows, PROW]: columns 8 o + v, then
//                8 OC + o. Four output rows per invocation make a quarter of the partial sums
//                that `reduce`, with too few invocations to fill the cores, must add up.
//   reduce       one invocation per weight or bias element: the sum of its partials over
//                (b, q) in ascending order, stored into the gradient buffer. Deterministic.
//
// Why this shape, on llvmpipe: every load is a loop over the lanes, so the aim is few loads
// per multiply-add. Input row i + u - pad of a strip is one window of KW + 3 loads that serves
// all KW taps of the four positions; the OC x KW weights of a kernel row are loaded once per
// subgroup, eight per load, and handed out with `subgroupShuffle`; each x value then feeds OC
// vec4 FMAs. The shapes are override constants, and the taps and filters are written out up to
// the capacity below (8 each), each guarded by a constant condition: the compiler drops what the
// shape does not use, and every array index is a constant, so the accumulators stay in
// registers. Written as loops over OC and KW the forward ran 3x to 5x slower (LeNet-5's conv1:
// 16 ms against 3 to 5): llvmpipe's compiler did not unroll them, and dynamically indexed
// private arrays are slow there.
//
// Invocation index = gid.y * row_stride + gid.x over 1-D workgroups (the host's grid), 64 wide.
// Invocations past the end still run: every lane of a subgroup must shuffle. They clamp their
// loads and drop their stores. reduce's workgroups are 8 wide: it has only OC (IC KH KW + 1)
// invocations, and small workgroups spread them over more cores.

override IC: u32 = 1u;
override KH: u32 = 5u;
override KW: u32 = 5u;
override OC: u32 = 6u;

// Capacities: fits() in conv_strip.rs keeps OC <= 8 and KW <= 8.
const MAX_OC: u32 = 8u;
const MAX_KW: u32 = 8u;
// Floats per partial-sum row: grad_w[o, c, u, 0 .. 7] for o < OC (zeros past KW), then the 8
// bias sums (zeros past OC).
override PROW: u32 = 8u * OC + 8u;

struct Params {
    n: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    pad: u32,
    relu: u32,
    x_off: u32,
    w_off: u32,
    b_off: u32,
    out_off: u32,
    row_stride: u32,
    // Partial-sum rows, n bands IC KH, and bands of four output rows, ceil(oh / 4).
    rows: u32,
    bands: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// The packed parameters: weight at w_off, bias at b_off.
@group(0) @binding(2) var<storage, read> wt: array<f32>;
// grad_y (grad_weight) or the partial sums (reduce), as vec4s.
@group(0) @binding(3) var<storage, read> src: array<vec4<f32>>;
// y (forward), the partial sums (grad_weight) or the gradient buffer (reduce).
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

fn index(gid: vec3<u32>) -> u32 {
    return gid.y * p.row_stride + gid.x;
}

// The window of a strip's input row: padded columns j0 .. j0 + KW + 2 of row y (padded
// coordinates) of channel c of image b, 0 outside the image.
var<private> win: array<f32, MAX_KW + 3u>;

// Column j0 + t of the window (t < KW + 3, else unused and 0). Loaded from a valid index and
// selected, not loaded under a branch (llvmpipe runs both sides of a branch).
fn window_value(base: u32, row_ok: bool, j0: u32, t: u32) -> f32 {
    let col = j0 + t;
    let ok = t < KW + 3u && row_ok && col >= p.pad && col - p.pad < p.w;
    return select(0.0, x[select(0u, base + col - p.pad, ok)], ok);
}

fn load_window(b: u32, c: u32, y: u32, j0: u32) {
    let row_ok = y >= p.pad && y - p.pad < p.h;
    let base = p.x_off + ((b * IC + c) * p.h + select(0u, y - p.pad, row_ok)) * p.w;
    win[0] = window_value(base, row_ok, j0, 0u);
    win[1] = window_value(base, row_ok, j0, 1u);
    win[2] = window_value(base, row_ok, j0, 2u);
    win[3] = window_value(base, row_ok, j0, 3u);
    win[4] = window_value(base, row_ok, j0, 4u);
    win[5] = window_value(base, row_ok, j0, 5u);
    win[6] = window_value(base, row_ok, j0, 6u);
    win[7] = window_value(base, row_ok, j0, 7u);
    win[8] = window_value(base, row_ok, j0, 8u);
    win[9] = window_value(base, row_ok, j0, 9u);
    win[10] = window_value(base, row_ok, j0, 10u);
}

// Taps v .. v + 3 of the window: the input of tap column v for the strip's four positions.
fn taps(v: u32) -> vec4<f32> {
    return vec4<f32>(win[v], win[v + 1u], win[v + 2u], win[v + 3u]);
}

// forward: acc[o] = y[b, o, i, j0 .. j0+3]; wl[k] = weight tap q = l + 8 k (q = o KW + v) of
// the current kernel row, held by lane l of each group of eight.
var<private> acc: array<vec4<f32>, MAX_OC>;
var<private> wl: array<f32, 8>;

// Loads this lane's share of kernel row (c, u) of the weights into wl.
fn load_weights(l: u32, c: u32, u: u32) {
    wl[0] = weight_share(0u, l, c, u);
    wl[1] = weight_share(1u, l, c, u);
    wl[2] = weight_share(2u, l, c, u);
    wl[3] = weight_share(3u, l, c, u);
    wl[4] = weight_share(4u, l, c, u);
    wl[5] = weight_share(5u, l, c, u);
    wl[6] = weight_share(6u, l, c, u);
    wl[7] = weight_share(7u, l, c, u);
}

// Tap q = l + 8 k of kernel row (c, u); 0, with no load, where no lane needs share k.
fn weight_share(k: u32, l: u32, c: u32, u: u32) -> f32 {
    if (8u * k >= OC * KW) {
        return 0.0;
    }
    let q = min(l + 8u * k, OC * KW - 1u);
    return wt[p.w_off + (((q / KW) * IC + c) * KH + u) * KW + q % KW];
}

// acc[o] += xv * weight[o, c, u, v] for filter o, if it exists.
fn filter_tap(o: u32, v: u32, xv: vec4<f32>, base: u32) {
    if (o < OC) {
        let q = o * KW + v;
        acc[o] = fma(xv, vec4<f32>(subgroupShuffle(wl[q / 8u], base + q % 8u)), acc[o]);
    }
}

// Tap column v of every filter, if the kernel has it.
fn tap_column(v: u32, base: u32) {
    if (v < KW) {
        let xv = taps(v);
        filter_tap(0u, v, xv, base);
        filter_tap(1u, v, xv, base);
        filter_tap(2u, v, xv, base);
        filter_tap(3u, v, xv, base);
        filter_tap(4u, v, xv, base);
        filter_tap(5u, v, xv, base);
        filter_tap(6u, v, xv, base);
        filter_tap(7u, v, xv, base);
    }
}

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(subgroup_invocation_id) lane: u32) {
    let e = index(gid);
    let strips = p.ow / 4u;
    let total = p.n * p.oh * strips;
    let live = e < total;
    let ee = min(e, total - 1u);
    let s = ee % strips;
    let i = (ee / strips) % p.oh;
    let b = ee / (strips * p.oh);
    let j0 = 4u * s;
    let l = lane & 7u;
    let base = lane & ~7u;
    let bias_l = wt[p.b_off + min(l, OC - 1u)];
    acc[0] = vec4<f32>(subgroupShuffle(bias_l, base + 0u));
    acc[1] = vec4<f32>(subgroupShuffle(bias_l, base + 1u));
    acc[2] = vec4<f32>(subgroupShuffle(bias_l, base + 2u));
    acc[3] = vec4<f32>(subgroupShuffle(bias_l, base + 3u));
    acc[4] = vec4<f32>(subgroupShuffle(bias_l, base + 4u));
    acc[5] = vec4<f32>(subgroupShuffle(bias_l, base + 5u));
    acc[6] = vec4<f32>(subgroupShuffle(bias_l, base + 6u));
    acc[7] = vec4<f32>(subgroupShuffle(bias_l, base + 7u));
    for (var c = 0u; c < IC; c++) {
        for (var u = 0u; u < KH; u++) {
            load_weights(l, c, u);
            load_window(b, c, i + u, j0);
            tap_column(0u, base);
            tap_column(1u, base);
            tap_column(2u, base);
            tap_column(3u, base);
            tap_column(4u, base);
            tap_column(5u, base);
            tap_column(6u, base);
            tap_column(7u, base);
        }
    }
    store_strip(0u, b, i, j0, live);
    store_strip(1u, b, i, j0, live);
    store_strip(2u, b, i, j0, live);
    store_strip(3u, b, i, j0, live);
    store_strip(4u, b, i, j0, live);
    store_strip(5u, b, i, j0, live);
    store_strip(6u, b, i, j0, live);
    store_strip(7u, b, i, j0, live);
}

fn store_strip(o: u32, b: u32, i: u32, j0: u32, live: bool) {
    if (o < OC && live) {
        let y = select(acc[o], max(acc[o], vec4<f32>(0.0)), p.relu != 0u);
        out[(p.out_off + ((b * OC + o) * p.oh + i) * p.ow + j0) / 4u] = y;
    }
}

// grad_weight: gacc[8 o + v] = the row's partial sum of grad_w[o, c, u, v], bacc[o] of grad_b[o];
// dy[o] = grad_y[b, o, i, j0 .. j0+3].
var<private> gacc: array<f32, 64>;
var<private> bacc: array<f32, MAX_OC>;
var<private> dy: array<vec4<f32>, MAX_OC>;

fn load_grad(o: u32, b: u32, i: u32, s: u32, strips: u32) {
    if (o < OC) {
        dy[o] = src[((b * OC + o) * p.oh + i) * strips + s];
        bacc[o] += dot(dy[o], vec4<f32>(1.0));
    }
}

fn grad_tap(o: u32, v: u32, xv: vec4<f32>) {
    if (o < OC) {
        gacc[8u * o + v] += dot(dy[o], xv);
    }
}

fn grad_column(v: u32) {
    if (v < KW) {
        let xv = taps(v);
        grad_tap(0u, v, xv);
        grad_tap(1u, v, xv);
        grad_tap(2u, v, xv);
        grad_tap(3u, v, xv);
        grad_tap(4u, v, xv);
        grad_tap(5u, v, xv);
        grad_tap(6u, v, xv);
        grad_tap(7u, v, xv);
    }
}

// Stores filter o's partial sums: two vec4s at vec4 index at.
fn store_partials(o: u32, at: u32) {
    if (o < OC) {
        let g = 8u * o;
        out[at + 2u * o] = vec4<f32>(gacc[g], gacc[g + 1u], gacc[g + 2u], gacc[g + 3u]);
        out[at + 2u * o + 1u] = vec4<f32>(gacc[g + 4u], gacc[g + 5u], gacc[g + 6u], gacc[g + 7u]);
    }
}

@compute @workgroup_size(64)
fn grad_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = index(gid);
    if (r >= p.rows) {
        return;
    }
    let u = r % KH;
    let c = (r / KH) % IC;
    let band = (r / (KH * IC)) % p.bands;
    let b = r / (KH * IC * p.bands);
    let strips = p.ow / 4u;
    for (var i = 4u * band; i < min(4u * band + 4u, p.oh); i++) {
        for (var s = 0u; s < strips; s++) {
            load_grad(0u, b, i, s, strips);
            load_grad(1u, b, i, s, strips);
            load_grad(2u, b, i, s, strips);
            load_grad(3u, b, i, s, strips);
            load_grad(4u, b, i, s, strips);
            load_grad(5u, b, i, s, strips);
            load_grad(6u, b, i, s, strips);
            load_grad(7u, b, i, s, strips);
            load_window(b, c, i + u, 4u * s);
            grad_column(0u);
            grad_column(1u);
            grad_column(2u);
            grad_column(3u);
            grad_column(4u);
            grad_column(5u);
            grad_column(6u);
            grad_column(7u);
        }
    }
    let at = r * (PROW / 4u);
    store_partials(0u, at);
    store_partials(1u, at);
    store_partials(2u, at);
    store_partials(3u, at);
    store_partials(4u, at);
    store_partials(5u, at);
    store_partials(6u, at);
    store_partials(7u, at);
    out[at + 2u * OC] = vec4<f32>(bacc[0], bacc[1], bacc[2], bacc[3]);
    out[at + 2u * OC + 1u] = vec4<f32>(bacc[4], bacc[5], bacc[6], bacc[7]);
}

@compute @workgroup_size(8)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let f = index(gid);
    let weights = OC * IC * KH * KW;
    if (f >= weights + OC) {
        return;
    }
    // Element f of the weight, [o, c, u, v], or bias o: its partial-sum column and the first
    // of its rows of partials, IC KH rows apart.
    var col = 8u * OC + (f - min(f, weights));
    var first = 0u;
    var dst = p.b_off + f - min(f, weights);
    if (f < weights) {
        let v = f % KW;
        let u = (f / KW) % KH;
        let c = (f / (KW * KH)) % IC;
        let o = f / (KW * KH * IC);
        col = 8u * o + v;
        first = c * KH + u;
        dst = p.w_off + f;
    }
    var sum = 0.0;
    let images_rows = p.rows / (IC * KH);
    for (var bi = 0u; bi < images_rows; bi++) {
        let at = (bi * IC * KH + first) * PROW + col;
        sum += src[at / 4u][at % 4u];
    }
    out[dst / 4u][dst % 4u] = sum;
}
