// Convolutions with few filters (both of LeNet-5's, and the input gradient of its second) as
// direct loops over strips of four output positions: the forward and the weight and bias
// gradients, with no im2col buffer. For stride 1 (the host's
// `conv_strip::fits` and `fits_grad_input` in src/kernels/conv_strip.rs have the full lists).
//
// Layouts, PyTorch's NCHW as in conv2d.wgsl: x [n, IC, h, w], weight [OC, IC, KH, KW],
// bias [OC], y and grad_y [n, OC, oh, ow]; a strip is y[b, :, i, j0 .. j0+3], j0 = 4 s.
//
// Filters come in groups of GROUP = min(OC, 8) (the capacity of the private arrays): filter
// o = 8 g + f is number f of group g, and each entry point's invocations are repeated per group.
//
// Entry points:
//   forward      one invocation per tile of four strips and group (g, b, rows i .. i + 3, s),
//                i = 4 t, each group's run padded to a multiple of 8: the group's channels,
//                bias and ReLU (flag) fused, each strip stored as one vec4 per channel
//                (OUT_VEC4) or as up to four floats where ow is not a multiple of 4.
//                With TRANSPOSED it is the input gradient of a convolution instead, as the
//                convolution of grad_y with the flipped, transposed kernel: x is grad_y
//                [n, IC, h, w] (IC = the convolution's filters), y is grad_x [n, OC, oh, ow]
//                (OC = its input channels), weight[c, o, KH-1-u, KW-1-v] stands in for
//                [o, c, u, v], the padding is K - 1 - pad per side, and there is no bias. With
//                MASK, grad_x is zeroed where the convolution's input (src, the ReLU output
//                below) is not positive.
//   grad_weight  one invocation per row r = ((b bands + q) IC + c) GROUPS + g: over the
//                strips of output rows q band_rows .. (q + 1) band_rows - 1 of image b, the
//                partial sums of grad_w[8 g + f, c, u, v] and of grad_b[8 g + f], stored as
//                row r of `out` [rows, PROW]: columns (f KH + u) 8 + v, then 8 GROUP KH + f.
//                The bands split an image's rows so that there are enough invocations.
//   reduce       one invocation per weight or bias element: the sum of its partials over
//                (b, q) in ascending order, stored into the gradient buffer. Deterministic.
//
// Why this shape, on llvmpipe: every load is a loop over the lanes, so the aim is few loads
// per multiply-add. Input row i + u - pad of a strip is one window of KW + 3 floats (at most
// four texel loads) that serves all KW taps of the four positions and, in the forward, the
// kernel rows of the tile's four output rows it lies under; the GROUP x KW weights of a kernel
// row are loaded once per subgroup, eight per load, and handed out with `subgroupShuffle`;
// each x value then feeds GROUP vec4 FMAs and each weight four. Tiles of four rows made the
// forward 1.4x (LeNet-5's conv1) to 1.9x (conv2's input gradient) faster than single strips,
// which loaded each window KH times; windows from texels and the FMAs ordered filter by
// filter (`filter_row`) gave 3-8% more.
// grad_weight walks down a column of strips the same way: each input row's window is loaded
// once, and the grad_y strips of the KH output rows above it wait in a ring, so that every
// load feeds all the KH KW GROUP taps it touches.
//
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
// invocations, and small workgroups spread them over more cores (llvmpipe runs a workgroup
// on one thread). grad_weight's are 64 wide like the forward's: with 8 the step ran as fast,
// but llvmpipe's timestamps of the whole profiled step came out scrambled.

override IC: u32 = 1u;
override KH: u32 = 5u;
override KW: u32 = 5u;
override OC: u32 = 6u;
// Filters per group, min(OC, MAX_OC), and groups, ceil(OC / GROUP).
override GROUP: u32 = 6u;
override GROUPS: u32 = 1u;

// 0 or 1, see the entry points above. OUT_VEC4: rows of y (forward) or grad_y (grad_weight)
// are whole vec4s, ow a multiple of 4.
override TRANSPOSED: u32 = 0u;
override OUT_VEC4: u32 = 1u;
override MASK: u32 = 0u;

// Capacities: fits() in conv_strip.rs keeps KH and KW <= 8.
const MAX_OC: u32 = 8u;
const MAX_KH: u32 = 8u;
const MAX_KW: u32 = 8u;
// Floats per partial-sum row: grad_w[8 g + f, c, u, 0 .. 7] for f < GROUP, u < KH (zeros past
// KW), then the GROUP bias sums, padded to 8.
override PROW: u32 = 8u * GROUP * KH + 8u;

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
    // grad_weight: partial-sum rows, n bands IC GROUPS, and bands per image of band_rows
    // output rows each.
    rows: u32,
    bands: u32,
    band_rows: u32,
    pad_w: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
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

// The floats of four texels of x from texel t0 (texels past either end of x read its first or
// last; they are never selected). Only the texels a window can reach at any shift are loaded.
alias Span = array<f32, 16>;

fn texel(k: u32, t0: i32) -> vec4<f32> {
    if (4u * k >= KW + 6u) {
        return vec4<f32>(0.0);
    }
    return x[u32(clamp(t0 + i32(k), 0, i32(arrayLength(&x)) - 1))];
}

fn load_span(t0: i32) -> Span {
    let a = texel(0u, t0);
    let b = texel(1u, t0);
    let c = texel(2u, t0);
    let d = texel(3u, t0);
    return Span(a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w, c.x, c.y, c.z, c.w, d.x, d.y, d.z, d.w);
}

// Float sh + t of the span (sh < 4), with constant indices and selects: a dynamic index into a
// private array is slow on llvmpipe.
fn pick(s: Span, t: u32, sh: u32) -> f32 {
    let lo = select(s[t], s[t + 1u], sh == 1u);
    let hi = select(s[t + 2u], s[t + 3u], sh == 3u);
    return select(lo, hi, sh >= 2u);
}

// Column j0 + t of the window (t < KW + 3, else unused and 0), from the span.
fn window_value(s: Span, sh: u32, row_ok: bool, j0: u32, t: u32) -> f32 {
    if (t >= KW + 3u) {
        return 0.0;
    }
    let col = j0 + t;
    let ok = row_ok && col >= p.pad_w && col - p.pad_w < p.w;
    return select(0.0, pick(s, t, sh), ok);
}

// The window's floats come from the (at most four) aligned texels around them: a vec4 load costs
// about a third more than a float's on llvmpipe, so this is about half the loads of one per
// float. Out-of-image columns and rows are loaded from wherever the index falls and selected
// away (llvmpipe runs both sides of a branch, so a branch would not save the load).
fn load_window(b: u32, c: u32, y: u32, j0: u32) -> Window {
    let row_ok = y >= p.pad && y - p.pad < p.h;
    let base = p.x_off + ((b * IC + c) * p.h + select(0u, y - p.pad, row_ok)) * p.w;
    // Float index of window column 0, which may lie before x's start in the padding.
    let first = i32(base + j0) - i32(p.pad_w);
    let s = load_span(first >> 2u);
    let sh = u32(first & 3);
    return Window(
        window_value(s, sh, row_ok, j0, 0u),
        window_value(s, sh, row_ok, j0, 1u),
        window_value(s, sh, row_ok, j0, 2u),
        window_value(s, sh, row_ok, j0, 3u),
        window_value(s, sh, row_ok, j0, 4u),
        window_value(s, sh, row_ok, j0, 5u),
        window_value(s, sh, row_ok, j0, 6u),
        window_value(s, sh, row_ok, j0, 7u),
        window_value(s, sh, row_ok, j0, 8u),
        window_value(s, sh, row_ok, j0, 9u),
        window_value(s, sh, row_ok, j0, 10u),
    );
}

// Taps v .. v + 3 of window w: the input of tap column v for a strip's four positions.
fn taps(w: Window, v: u32) -> vec4<f32> {
    return vec4<f32>(w[v], w[v + 1u], w[v + 2u], w[v + 3u]);
}

// forward: an invocation computes a tile of four strips, output rows i .. i + 3 (TILE_ROWS).
// acc[o][r] = y[b, o, i + r, j0 .. j0 + 3]. At kernel row u, rows[r] is the window of input
// row i + r + u, which kernel row u applies to output row i + r: each window is loaded once
// and serves the KH kernel rows of the four output rows it lies under, and each shuffled
// weight feeds four FMAs. wl[k] = weight tap q = l + 8 k (q = o KW + v) of the current kernel
// row, held by lane l of each group of eight.
const TILE_ROWS: u32 = 4u;
var<private> acc: array<mat4x4<f32>, MAX_OC>;
var<private> rows: array<Window, TILE_ROWS>;
var<private> wl: array<f32, 8>;

// Loads this lane's share of kernel row (c, u) of group g's weights into wl.
fn load_weights(l: u32, c: u32, u: u32, g: u32) {
    wl[0] = weight_share(0u, l, c, u, g);
    wl[1] = weight_share(1u, l, c, u, g);
    wl[2] = weight_share(2u, l, c, u, g);
    wl[3] = weight_share(3u, l, c, u, g);
    wl[4] = weight_share(4u, l, c, u, g);
    wl[5] = weight_share(5u, l, c, u, g);
    wl[6] = weight_share(6u, l, c, u, g);
    wl[7] = weight_share(7u, l, c, u, g);
}

// Tap q = l + 8 k (q = f KW + v) of kernel row (c, u) of group g's filters; 0, with no load,
// where no lane needs share k. Filters past OC (in a last group that is not full) read the
// last one's; their sums are not stored.
fn weight_share(k: u32, l: u32, c: u32, u: u32, g: u32) -> f32 {
    if (8u * k >= GROUP * KW) {
        return 0.0;
    }
    let q = min(l + 8u * k, GROUP * KW - 1u);
    let o = min(8u * g + q / KW, OC - 1u);
    let v = q % KW;
    if (TRANSPOSED != 0u) {
        return wt[p.w_off + ((c * OC + o) * KH + KH - 1u - u) * KW + KW - 1u - v];
    }
    return wt[p.w_off + ((o * IC + c) * KH + u) * KW + v];
}

// Weight tap v of filter o of the current kernel row, from the lane that holds it.
fn weight_tap(o: u32, v: u32, base: u32) -> f32 {
    let q = o * KW + v;
    return subgroupShuffle(wl[q / 8u], base + q % 8u);
}

// The weights of filter o's current kernel row, 0 past KW.
fn filter_weights(o: u32, base: u32) -> array<f32, MAX_KW> {
    var w: array<f32, MAX_KW>;
    w[0] = weight_tap(o, 0u, base);
    if (KW > 1u) { w[1] = weight_tap(o, 1u, base); }
    if (KW > 2u) { w[2] = weight_tap(o, 2u, base); }
    if (KW > 3u) { w[3] = weight_tap(o, 3u, base); }
    if (KW > 4u) { w[4] = weight_tap(o, 4u, base); }
    if (KW > 5u) { w[5] = weight_tap(o, 5u, base); }
    if (KW > 6u) { w[6] = weight_tap(o, 6u, base); }
    if (KW > 7u) { w[7] = weight_tap(o, 7u, base); }
    return w;
}

// acc[o][r] += the KW taps of rows[r] against w, all in a row, so that a spilled accumulator
// is loaded and stored once per kernel row rather than once per tap.
fn row_taps(o: u32, r: u32, w: array<f32, MAX_KW>) {
    var a = acc[o][r];
    let x = rows[r];
    a = fma(taps(x, 0u), vec4<f32>(w[0]), a);
    if (KW > 1u) { a = fma(taps(x, 1u), vec4<f32>(w[1]), a); }
    if (KW > 2u) { a = fma(taps(x, 2u), vec4<f32>(w[2]), a); }
    if (KW > 3u) { a = fma(taps(x, 3u), vec4<f32>(w[3]), a); }
    if (KW > 4u) { a = fma(taps(x, 4u), vec4<f32>(w[4]), a); }
    if (KW > 5u) { a = fma(taps(x, 5u), vec4<f32>(w[5]), a); }
    if (KW > 6u) { a = fma(taps(x, 6u), vec4<f32>(w[6]), a); }
    if (KW > 7u) { a = fma(taps(x, 7u), vec4<f32>(w[7]), a); }
    acc[o][r] = a;
}

// The current kernel row of filter o of the group, if it exists, over the tile's four rows.
fn filter_row(o: u32, base: u32) {
    if (o < GROUP) {
        let w = filter_weights(o, base);
        row_taps(o, 0u, w);
        row_taps(o, 1u, w);
        row_taps(o, 2u, w);
        row_taps(o, 3u, w);
    }
}

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(subgroup_invocation_id) lane: u32) {
    let e = index(gid);
    let strips = (p.ow + 3u) / 4u;
    let tiles = (p.oh + TILE_ROWS - 1u) / TILE_ROWS;
    // Each group's tiles take a whole number of subgroups of 8 (span), so that the lanes
    // that share weights share a group.
    let total = p.n * tiles * strips;
    let span = (total + 7u) / 8u * 8u;
    let g = min(e / span, GROUPS - 1u);
    let live = e < GROUPS * span && e % span < total;
    let ee = min(e % span, total - 1u);
    let s = ee % strips;
    let i = TILE_ROWS * ((ee / strips) % tiles);
    let b = ee / (strips * tiles);
    let j0 = 4u * s;
    let l = lane & 7u;
    let base = lane & ~7u;
    var bias_l = 0.0;
    if (TRANSPOSED == 0u) {
        bias_l = wt[p.b_off + min(8u * g + l, OC - 1u)];
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
            load_weights(l, c, u, g);
            rows[0] = rows[1];
            rows[1] = rows[2];
            rows[2] = rows[3];
            rows[3] = load_window(b, c, i + u + 3u, j0);
            filter_row(0u, base);
            filter_row(1u, base);
            filter_row(2u, base);
            filter_row(3u, base);
            filter_row(4u, base);
            filter_row(5u, base);
            filter_row(6u, base);
            filter_row(7u, base);
        }
    }
    let ch = 8u * g;
    store_row(0u, b, ch, i, j0, live);
    store_row(1u, b, ch, i, j0, live);
    store_row(2u, b, ch, i, j0, live);
    store_row(3u, b, ch, i, j0, live);
}

// Every row of a tile's accumulator starts at the bias held by lane `holder`.
fn start(bias_l: f32, holder: u32) -> mat4x4<f32> {
    let v = vec4<f32>(subgroupShuffle(bias_l, holder));
    return mat4x4<f32>(v, v, v, v);
}

// Row i + r of the tile, if it is inside the output; ch = 8 g, the group's first channel.
fn store_row(r: u32, b: u32, ch: u32, i: u32, j0: u32, live: bool) {
    let ok = live && i + r < p.oh;
    store_strip(0u, r, b, ch, i + r, j0, ok);
    store_strip(1u, r, b, ch, i + r, j0, ok);
    store_strip(2u, r, b, ch, i + r, j0, ok);
    store_strip(3u, r, b, ch, i + r, j0, ok);
    store_strip(4u, r, b, ch, i + r, j0, ok);
    store_strip(5u, r, b, ch, i + r, j0, ok);
    store_strip(6u, r, b, ch, i + r, j0, ok);
    store_strip(7u, r, b, ch, i + r, j0, ok);
}

fn store_strip(o: u32, r: u32, b: u32, ch: u32, i: u32, j0: u32, live: bool) {
    if (o < GROUP && live && ch + o < OC) {
        var y = select(acc[o][r], max(acc[o][r], vec4<f32>(0.0)), p.relu != 0u);
        let at = p.out_off + ((b * OC + ch + o) * p.oh + i) * p.ow + j0;
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

// grad_weight: gacc[(f MAX_KH + u) MAX_KW + v] = the row's partial sum of grad_w[8 g + f, c,
// u, v], bacc[f] of grad_b[8 g + f]. At input row t (padded coordinates) of strip column s,
// ring[u][f] = grad_y[b, 8 g + f, t - u, j0 .. j0 + 3]: the output row that kernel row u lays
// on input row t; 0 where that row is outside the band.
var<private> gacc: array<f32, MAX_OC * MAX_KH * MAX_KW>;
var<private> bacc: array<f32, MAX_OC>;
var<private> ring: array<array<vec4<f32>, MAX_OC>, MAX_KH>;

// grad_y[b, o, i, j0 .. j0 + 3] for o = ch + f, 0 past the row's end or where `inside` is false.
fn grad_strip(b: u32, o: u32, i: u32, j0: u32, inside: bool) -> vec4<f32> {
    let at = ((b * OC + min(o, OC - 1u)) * p.oh + min(i, p.oh - 1u)) * p.ow + j0;
    if (OUT_VEC4 != 0u) {
        return select(vec4<f32>(0.0), src[at / 4u], inside);
    }
    let cols = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
    let ok = cols < vec4<u32>(p.ow) & vec4<bool>(inside);
    let last = ((b * OC + min(o, OC - 1u)) * p.oh + min(i, p.oh - 1u) + 1u) * p.ow - 1u;
    let i0 = min(at, last);
    let i1 = min(at + 1u, last);
    let i2 = min(at + 2u, last);
    let i3 = min(at + 3u, last);
    let v = vec4<f32>(src[i0 / 4u][i0 % 4u], src[i1 / 4u][i1 % 4u], src[i2 / 4u][i2 % 4u],
                      src[i3 / 4u][i3 % 4u]);
    return select(vec4<f32>(0.0), v, ok);
}

// The newest ring entry, for filter f: output row i of the band, or 0.
fn load_grad(f: u32, b: u32, ch: u32, i: u32, j0: u32, inside: bool) {
    if (f < GROUP) {
        ring[0][f] = grad_strip(b, ch + f, i, j0, inside && ch + f < OC);
        bacc[f] += dot(ring[0][f], vec4<f32>(1.0));
    }
}

// Moves ring entry u - 1 to u, for every filter of the group.
fn shift(u: u32) {
    if (u < KH) {
        ring[u] = ring[u - 1u];
    }
}

fn grad_tap(f: u32, u: u32, v: u32, xv: vec4<f32>) {
    if (f < GROUP) {
        let at = (f * MAX_KH + u) * MAX_KW + v;
        gacc[at] += dot(ring[u][f], xv);
    }
}

fn grad_column(u: u32, v: u32, w: Window) {
    if (v < KW) {
        let xv = taps(w, v);
        grad_tap(0u, u, v, xv);
        grad_tap(1u, u, v, xv);
        grad_tap(2u, u, v, xv);
        grad_tap(3u, u, v, xv);
        grad_tap(4u, u, v, xv);
        grad_tap(5u, u, v, xv);
        grad_tap(6u, u, v, xv);
        grad_tap(7u, u, v, xv);
    }
}

// Kernel row u against the window of input row t: with the output row t - u (ring[u]).
fn grad_row(u: u32, w: Window) {
    if (u < KH) {
        grad_column(u, 0u, w);
        grad_column(u, 1u, w);
        grad_column(u, 2u, w);
        grad_column(u, 3u, w);
        grad_column(u, 4u, w);
        grad_column(u, 5u, w);
        grad_column(u, 6u, w);
        grad_column(u, 7u, w);
    }
}

// Stores filter f's partial sums for kernel row u: two vec4s at vec4 index at.
fn store_partials(f: u32, u: u32, at: u32) {
    if (f < GROUP && u < KH) {
        let g = (f * MAX_KH + u) * MAX_KW;
        let to = at + 2u * (f * KH + u);
        out[to] = vec4<f32>(gacc[g], gacc[g + 1u], gacc[g + 2u], gacc[g + 3u]);
        out[to + 1u] = vec4<f32>(gacc[g + 4u], gacc[g + 5u], gacc[g + 6u], gacc[g + 7u]);
    }
}

fn store_filter(f: u32, at: u32) {
    store_partials(f, 0u, at);
    store_partials(f, 1u, at);
    store_partials(f, 2u, at);
    store_partials(f, 3u, at);
    store_partials(f, 4u, at);
    store_partials(f, 5u, at);
    store_partials(f, 6u, at);
    store_partials(f, 7u, at);
}

@compute @workgroup_size(64)
fn grad_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = index(gid);
    if (r >= p.rows) {
        return;
    }
    let g = r % GROUPS;
    let c = (r / GROUPS) % IC;
    let band = (r / (GROUPS * IC)) % p.bands;
    let b = r / (GROUPS * IC * p.bands);
    let ch = 8u * g;
    let first = band * p.band_rows;
    let end = min(first + p.band_rows, p.oh);
    let strips = (p.ow + 3u) / 4u;
    for (var s = 0u; s < strips; s++) {
        let j0 = 4u * s;
        ring = array<array<vec4<f32>, MAX_OC>, MAX_KH>();
        // Input rows t (padded) from the band's first output row to its last plus KH - 1.
        for (var t = first; t < end + KH - 1u; t++) {
            shift(7u);
            shift(6u);
            shift(5u);
            shift(4u);
            shift(3u);
            shift(2u);
            shift(1u);
            let inside = t < end;
            load_grad(0u, b, ch, t, j0, inside);
            load_grad(1u, b, ch, t, j0, inside);
            load_grad(2u, b, ch, t, j0, inside);
            load_grad(3u, b, ch, t, j0, inside);
            load_grad(4u, b, ch, t, j0, inside);
            load_grad(5u, b, ch, t, j0, inside);
            load_grad(6u, b, ch, t, j0, inside);
            load_grad(7u, b, ch, t, j0, inside);
            let w = load_window(b, c, t, j0);
            grad_row(0u, w);
            grad_row(1u, w);
            grad_row(2u, w);
            grad_row(3u, w);
            grad_row(4u, w);
            grad_row(5u, w);
            grad_row(6u, w);
            grad_row(7u, w);
        }
    }
    let at = r * (PROW / 4u);
    store_filter(0u, at);
    store_filter(1u, at);
    store_filter(2u, at);
    store_filter(3u, at);
    store_filter(4u, at);
    store_filter(5u, at);
    store_filter(6u, at);
    store_filter(7u, at);
    let bias_at = at + 2u * GROUP * KH;
    out[bias_at] = vec4<f32>(bacc[0], bacc[1], bacc[2], bacc[3]);
    out[bias_at + 1u] = vec4<f32>(bacc[4], bacc[5], bacc[6], bacc[7]);
}

@compute @workgroup_size(8)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = index(gid);
    let weights = OC * IC * KH * KW;
    if (e >= weights + OC) {
        return;
    }
    // Element e of the weight, [o, c, u, v], or bias o = e - weights: its group, its column of
    // the partial sums, and its input channel (the bias takes channel 0's rows).
    let o = select(e / (KW * KH * IC), e - min(e, weights), e >= weights);
    let f = o % MAX_OC;
    var col = 8u * GROUP * KH + f;
    var c = 0u;
    var dst = p.b_off + o;
    if (e < weights) {
        let v = e % KW;
        let u = (e / KW) % KH;
        c = (e / (KW * KH)) % IC;
        col = (f * KH + u) * 8u + v;
        dst = p.w_off + e;
    }
    var sum = 0.0;
    let images_bands = p.rows / (IC * GROUPS);
    for (var bq = 0u; bq < images_bands; bq++) {
        let at = ((bq * IC + c) * GROUPS + o / MAX_OC) * PROW + col;
        sum += src[at / 4u][at % 4u];
    }
    out[dst / 4u][dst % 4u] = sum;
}
