// Convolutions with few filters (LeNet-5's first: one input channel, six 5x5 filters; and the
// input gradient of its second) as direct loops over strips of four output positions: the
// forward and the weight and bias gradients, with no im2col buffer. For stride 1 (the host's
// `conv_strip::fits` and `fits_grad_input` in src/kernels/conv_strip.rs have the full lists).
//
// Layouts, PyTorch's NCHW as in conv2d.wgsl: x [n, IC, h, w], weight [OC, IC, KH, KW],
// bias [OC], y and grad_y [n, OC, oh, ow]; a strip is y[b, :, i, j0 .. j0+3], j0 = 4 s.
//
// Entry points:
//   forward      one invocation per tile of four strips (b, rows i .. i + 3, s), i = 4 t: all
//                OC channels, bias and ReLU (flag) fused, each strip stored as one vec4 per
//                channel (OUT_VEC4) or as up to four floats where ow is not a multiple of 4.
//                With TRANSPOSED it is the input gradient of a convolution instead, as the
//                convolution of grad_y with the flipped, transposed kernel: x is grad_y
//                [n, IC, h, w] (IC = the convolution's filters), y is grad_x [n, OC, oh, ow]
//                (OC = its input channels), weight[c, o, KH-1-u, KW-1-v] stands in for
//                [o, c, u, v], the padding is K - 1 - pad per side, and there is no bias. With
//                MASK, grad_x is zeroed where the convolution's input (src, the ReLU output
//                below) is not positive.
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
// all KW taps of the four positions and, in the forward, the kernel rows of the tile's four
// output rows it lies under; the OC x KW weights of a kernel row are loaded once per subgroup,
// eight per load, and handed out with `subgroupShuffle`; each x value then feeds OC vec4 FMAs
// and each weight four. Tiles of four rows made the forward 1.4x (LeNet-5's conv1) to 1.9x
// (conv2's input gradient) faster than single strips, which loaded each window KH times.
// The shapes are override constants, and the taps and filters are written out up to the
// capacity below (8 each), each guarded by a constant condition: the compiler drops what the
// shape does not use, and every array index is a constant, so the accumulators are plain
// values (registers, or stack slots where they spill) rather than indexed memory. Written as
// loops over OC and KW the forward ran 3x to 5x slower (LeNet-5's conv1: 16 ms against 3 to
// 5): llvmpipe's compiler did not unroll them, and dynamically indexed private arrays are slow
// there.
//
// Invocation index = gid.y * row_stride + gid.x over 1-D workgroups (the host's grid), 64 wide.
// Invocations past the end still run: every lane of a subgroup must shuffle. They clamp their
// loads and drop their stores. reduce's workgroups are 8 wide: it has only OC (IC KH KW + 1)
// invocations, and small workgroups spread them over more cores.

override IC: u32 = 1u;
override KH: u32 = 5u;
override KW: u32 = 5u;
override OC: u32 = 6u;

// 0 or 1, see the entry points above. forward's OUT_VEC4 needs ow a multiple of 4.
override TRANSPOSED: u32 = 0u;
override OUT_VEC4: u32 = 1u;
override MASK: u32 = 0u;

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
    // Zero padding above and below (pad), left and right (pad_w).
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
    pad_w: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// The packed parameters: weight at w_off, bias at b_off.
@group(0) @binding(2) var<storage, read> wt: array<f32>;
// grad_y (grad_weight), the partial sums (reduce) or the ReLU output that MASK reads, as vec4s.
@group(0) @binding(3) var<storage, read> src: array<vec4<f32>>;
// y (forward), the partial sums (grad_weight) or the gradient buffer (reduce).
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

fn index(gid: vec3<u32>) -> u32 {
    return gid.y * p.row_stride + gid.x;
}

// The window of a strip's input row: padded columns j0 .. j0 + KW + 2 of row y (padded
// coordinates) of channel c of image b, 0 outside the image.
alias Window = array<f32, MAX_KW + 3u>;

// Column j0 + t of the window (t < KW + 3, else unused and 0). Loaded from a valid index and
// selected, not loaded under a branch (llvmpipe runs both sides of a branch).
fn window_value(base: u32, row_ok: bool, j0: u32, t: u32) -> f32 {
    let col = j0 + t;
    let ok = t < KW + 3u && row_ok && col >= p.pad_w && col - p.pad_w < p.w;
    return select(0.0, x[select(0u, base + col - p.pad_w, ok)], ok);
}

fn load_window(b: u32, c: u32, y: u32, j0: u32) -> Window {
    let row_ok = y >= p.pad && y - p.pad < p.h;
    let base = p.x_off + ((b * IC + c) * p.h + select(0u, y - p.pad, row_ok)) * p.w;
    return Window(
        window_value(base, row_ok, j0, 0u),
        window_value(base, row_ok, j0, 1u),
        window_value(base, row_ok, j0, 2u),
        window_value(base, row_ok, j0, 3u),
        window_value(base, row_ok, j0, 4u),
        window_value(base, row_ok, j0, 5u),
        window_value(base, row_ok, j0, 6u),
        window_value(base, row_ok, j0, 7u),
        window_value(base, row_ok, j0, 8u),
        window_value(base, row_ok, j0, 9u),
        window_value(base, row_ok, j0, 10u),
    );
}

// Taps v .. v + 3 of window w: the input of tap column v for a strip's four positions.
fn taps(w: Window, v: u32) -> vec4<f32> {
    return vec4<f32>(w[v], w[v + 1u], w[v + 2u], w[v + 3u]);
}

// forward: an invocation computes a tile of four strips, output rows i .. i + 3 (TILE_ROWS).
// acc[o][r] = y[b, o, i + r, j0 .. j0 + 3]. At kernel row u, rows[r] is the window of input
// row i + r + u, which kernel row u applies to output row i + r: each window is loaded once
// and serves the KH kernel rows of the four outputs rows it lies under, and each shuffled
// weight feeds four FMAs. wl[k] = weight tap q = l + 8 k (q = o KW + v) of the current kernel
// row, held by lane l of each group of eight.
const TILE_ROWS: u32 = 4u;
var<private> acc: array<mat4x4<f32>, MAX_OC>;
var<private> rows: array<Window, TILE_ROWS>;
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
    let o = q / KW;
    let v = q % KW;
    if (TRANSPOSED != 0u) {
        return wt[p.w_off + ((c * OC + o) * KH + KH - 1u - u) * KW + KW - 1u - v];
    }
    return wt[p.w_off + ((o * IC + c) * KH + u) * KW + v];
}

// acc[o][r] += rows[r] taps v * weight[o, c, u, v], for filter o, if it exists.
fn filter_tap(o: u32, v: u32, xv: mat4x4<f32>, base: u32) {
    if (o < OC) {
        let q = o * KW + v;
        let w = vec4<f32>(subgroupShuffle(wl[q / 8u], base + q % 8u));
        acc[o][0] = fma(xv[0], w, acc[o][0]);
        acc[o][1] = fma(xv[1], w, acc[o][1]);
        acc[o][2] = fma(xv[2], w, acc[o][2]);
        acc[o][3] = fma(xv[3], w, acc[o][3]);
    }
}

// Tap column v of every filter, if the kernel has it, for the tile's four rows.
fn tap_column(v: u32, base: u32) {
    if (v < KW) {
        let xv = mat4x4<f32>(taps(rows[0], v), taps(rows[1], v), taps(rows[2], v),
                             taps(rows[3], v));
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
    let strips = (p.ow + 3u) / 4u;
    let tiles = (p.oh + TILE_ROWS - 1u) / TILE_ROWS;
    let total = p.n * tiles * strips;
    let live = e < total;
    let ee = min(e, total - 1u);
    let s = ee % strips;
    let i = TILE_ROWS * ((ee / strips) % tiles);
    let b = ee / (strips * tiles);
    let j0 = 4u * s;
    let l = lane & 7u;
    let base = lane & ~7u;
    var bias_l = 0.0;
    if (TRANSPOSED == 0u) {
        bias_l = wt[p.b_off + min(l, OC - 1u)];
    }
    acc[0] = start(bias_l, base + 0u);
    acc[1] = start(bias_l, base + 1u);
    acc[2] = start(bias_l, base + 2u);
    acc[3] = start(bias_l, base + 3u);
    acc[4] = start(bias_l, base + 4u);
    acc[5] = start(bias_l, base + 5u);
    acc[6] = start(bias_l, base + 6u);
    acc[7] = start(bias_l, base + 7u);
    for (var c = 0u; c < IC; c++) {
        rows[1] = load_window(b, c, i, j0);
        rows[2] = load_window(b, c, i + 1u, j0);
        rows[3] = load_window(b, c, i + 2u, j0);
        for (var u = 0u; u < KH; u++) {
            load_weights(l, c, u);
            rows[0] = rows[1];
            rows[1] = rows[2];
            rows[2] = rows[3];
            rows[3] = load_window(b, c, i + u + 3u, j0);
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
    store_row(0u, b, i, j0, live);
    store_row(1u, b, i, j0, live);
    store_row(2u, b, i, j0, live);
    store_row(3u, b, i, j0, live);
}

// Every row of a tile's accumulator starts at the bias held by lane `holder`.
fn start(bias_l: f32, holder: u32) -> mat4x4<f32> {
    let v = vec4<f32>(subgroupShuffle(bias_l, holder));
    return mat4x4<f32>(v, v, v, v);
}

// Row i + r of the tile, if it is inside the output.
fn store_row(r: u32, b: u32, i: u32, j0: u32, live: bool) {
    let ok = live && i + r < p.oh;
    store_strip(0u, r, b, i + r, j0, ok);
    store_strip(1u, r, b, i + r, j0, ok);
    store_strip(2u, r, b, i + r, j0, ok);
    store_strip(3u, r, b, i + r, j0, ok);
    store_strip(4u, r, b, i + r, j0, ok);
    store_strip(5u, r, b, i + r, j0, ok);
    store_strip(6u, r, b, i + r, j0, ok);
    store_strip(7u, r, b, i + r, j0, ok);
}

fn store_strip(o: u32, r: u32, b: u32, i: u32, j0: u32, live: bool) {
    if (o < OC && live) {
        var y = select(acc[o][r], max(acc[o][r], vec4<f32>(0.0)), p.relu != 0u);
        let at = p.out_off + ((b * OC + o) * p.oh + i) * p.ow + j0;
        if (OUT_VEC4 != 0u) {
            if (MASK != 0u) {
                y = select(vec4<f32>(0.0), y, src[at / 4u] > vec4<f32>(0.0));
            }
            out[at / 4u] = y;
        } else {
            // The strip's columns j0 + t inside the row; the last strip of a row is partial.
            store_one(at, y.x, true);
            store_one(at + 1u, y.y, j0 + 1u < p.ow);
            store_one(at + 2u, y.z, j0 + 2u < p.ow);
            store_one(at + 3u, y.w, j0 + 3u < p.ow);
        }
    }
}

fn store_one(at: u32, v: f32, inside: bool) {
    if (inside) {
        var y = v;
        if (MASK != 0u) {
            y = select(0.0, v, src[at / 4u][at % 4u] > 0.0);
        }
        out[at / 4u][at % 4u] = y;
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
        let xv = taps(rows[0], v);
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
            rows[0] = load_window(b, c, i + u, 4u * s);
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
