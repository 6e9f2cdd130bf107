// 2-D max-pooling (torch.nn.MaxPool2d, floor mode, no padding) with its argmax, and the
// backward pass that sends each upstream gradient to that one input.
//
//   x       [n, c, h, w] at element x_off;   y, argmax [n, c, oh, ow]
//   oh = (h - k) / stride + 1 (floor: a trailing row or column that no window covers is
//   dropped), likewise ow
//   y[n, c, i, j] = max over the k x k window at (i * stride, j * stride);
//   argmax[n, c, i, j] = r * w + q of that maximum within its plane. Ties go to the first
//   maximum in row-major window order, and a NaN wins, as in PyTorch's CPU kernel.
//
// forward   one invocation per output element; writes y and argmax.
// backward  one invocation per input element: grad_x[n, c, r, q] = sum of grad_y over the
//           windows covering (r, q) whose argmax is (r, q). Gathering instead of scattering
//           needs no atomics and fixes the order when windows overlap. With flags & 1 the
//           result is zeroed where x <= 0: the backward of a ReLU whose output is this pool's
//           input (PyTorch's ReLU backward also tests its output). grad_x is overwritten.
// tiled     the same result when the windows tile the input exactly (k = stride, h and w
//           multiples of k: every input element in one window), one invocation per window,
//           writing its k x k inputs: a quarter of the invocations for k = 2, and no search
//           for the covering windows. On llvmpipe it took LeNet-5's first pool backward from
//           9-11 ms to 3-5.5 (batch 128, three runs each, interleaved).
//
// forward_pairs, tiled_pairs
//           forward and tiled for 2x2 windows with stride 2 over rows of a multiple of 4
//           (x_off too): one invocation per two neighbouring windows, which read (and the
//           backward writes) their 2x4 inputs as two vec4s. On llvmpipe each load or store is a
//           loop over the lanes, so 2 vec4 accesses in place of 8 or 10 scalar ones pay.
//
// Invocation index = gid.y * row_stride + gid.x over 256-wide workgroups (src/kernels/pool.rs).

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    k: u32,
    stride: u32,
    oh: u32,
    ow: u32,
    x_off: u32,
    flags: u32,
    row_stride: u32,
    _pad: u32,
}

const FLAG_MASK: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
// As vec4s for the pairs entries; the others read single floats, x[i / 4][i % 4].
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
// forward: y [n, c, oh, ow] (written). backward: grad_y (read).
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;
// backward: grad_x [n, c, h, w] (written). forward: unused.
@group(0) @binding(4) var<storage, read_write> gx: array<vec4<f32>>;

fn x_at(i: u32) -> f32 {
    return x[i / 4u][i % 4u];
}

fn store_gx(i: u32, v: f32) {
    gx[i / 4u][i % 4u] = v;
}

fn index(gid: vec3<u32>) -> u32 {
    return gid.y * p.row_stride + gid.x;
}

// Output element o of y [n, c, oh, ow] as (plane, i, j), plane = b c + channel.
fn output_position(o: u32) -> vec3<u32> {
    return vec3<u32>(o / (p.ow * p.oh), (o / p.ow) % p.oh, o % p.ow);
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = index(gid);
    if (e >= p.n * p.c * p.oh * p.ow) {
        return;
    }
    let at_out = output_position(e);
    let plane = at_out.x;
    let i = at_out.y;
    let j = at_out.z;
    let base = p.x_off + plane * p.h * p.w;
    var best = i * p.stride * p.w + j * p.stride;
    var mx = x_at(base + best);
    for (var u = 0u; u < p.k; u++) {
        for (var v = 0u; v < p.k; v++) {
            let at = (i * p.stride + u) * p.w + j * p.stride + v;
            let val = x_at(base + at);
            // Strictly greater keeps the first maximum; val != val is NaN.
            if (val > mx || (val != val && mx == mx)) {
                mx = val;
                best = at;
            }
        }
    }
    y[e] = mx;
    argmax[e] = best;
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = index(gid);
    if (e >= p.n * p.c * p.h * p.w) {
        return;
    }
    let q = e % p.w;
    let r = (e / p.w) % p.h;
    let plane = e / (p.w * p.h);
    let at = r * p.w + q;
    // Windows i with i * stride <= r < i * stride + k, clipped to the output.
    let i_lo = select(0u, (r + 1u - p.k + p.stride - 1u) / p.stride, r + 1u >= p.k);
    let i_hi = min(r / p.stride, p.oh - 1u);
    let j_lo = select(0u, (q + 1u - p.k + p.stride - 1u) / p.stride, q + 1u >= p.k);
    let j_hi = min(q / p.stride, p.ow - 1u);
    var s = 0.0;
    for (var i = i_lo; i <= i_hi && i < p.oh; i++) {
        for (var j = j_lo; j <= j_hi && j < p.ow; j++) {
            let o = (plane * p.oh + i) * p.ow + j;
            if (argmax[o] == at) {
                s += y[o];
            }
        }
    }
    if ((p.flags & FLAG_MASK) != 0u && !(x_at(p.x_off + e) > 0.0)) {
        s = 0.0;
    }
    store_gx(e, s);
}

@compute @workgroup_size(256)
fn tiled(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = index(gid);
    if (o >= p.n * p.c * p.oh * p.ow) {
        return;
    }
    let at_out = output_position(o);
    let plane = at_out.x;
    let i = at_out.y;
    let j = at_out.z;
    let best = argmax[o];
    let g = y[o];
    let top = i * p.k * p.w + j * p.k;
    for (var u = 0u; u < p.k; u++) {
        for (var v = 0u; v < p.k; v++) {
            let at = top + u * p.w + v;
            let e = plane * p.h * p.w + at;
            var s = select(0.0, g, at == best);
            if ((p.flags & FLAG_MASK) != 0u && !(x_at(p.x_off + e) > 0.0)) {
                s = 0.0;
            }
            store_gx(e, s);
        }
    }
}

// The maximum of a window and where it is (its plane index).
struct WindowMax {
    value: f32,
    at: u32,
}

// Max and argmax of the 2x2 window whose top-left input is `top` in its plane: a, b the top
// row, c, d the bottom row, taken in forward's order with its rule for ties and NaN.
fn window4(a: f32, b: f32, c: f32, d: f32, top: u32) -> WindowMax {
    var m = WindowMax(a, top);
    if (b > m.value || (b != b && m.value == m.value)) {
        m = WindowMax(b, top + 1u);
    }
    if (c > m.value || (c != c && m.value == m.value)) {
        m = WindowMax(c, top + p.w);
    }
    if (d > m.value || (d != d && m.value == m.value)) {
        m = WindowMax(d, top + p.w + 1u);
    }
    return m;
}

// The pairs entries' first output o (even) as (plane offset of its image and channel in x, the
// plane index of its window's top-left input), whose first row is 4-aligned.
fn pair_origin(o: u32) -> vec2<u32> {
    let at_out = output_position(o);
    return vec2<u32>(at_out.x * p.h * p.w, 2u * at_out.y * p.w + 2u * at_out.z);
}

@compute @workgroup_size(256)
fn forward_pairs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = 2u * index(gid);
    if (e >= p.n * p.c * p.oh * p.ow) {
        return;
    }
    let origin = pair_origin(e);
    let top = origin.y;
    let row = (p.x_off + origin.x + top) / 4u;
    let r0 = x[row];
    let r1 = x[row + p.w / 4u];
    let w0 = window4(r0.x, r0.y, r1.x, r1.y, top);
    let w1 = window4(r0.z, r0.w, r1.z, r1.w, top + 2u);
    y[e] = w0.value;
    y[e + 1u] = w1.value;
    argmax[e] = w0.at;
    argmax[e + 1u] = w1.at;
}

@compute @workgroup_size(256)
fn tiled_pairs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = 2u * index(gid);
    if (o >= p.n * p.c * p.oh * p.ow) {
        return;
    }
    let origin = pair_origin(o);
    let plane = origin.x;
    let top = origin.y;
    let b0 = argmax[o];
    let b1 = argmax[o + 1u];
    let g0 = y[o];
    let g1 = y[o + 1u];
    let at = vec4<u32>(top, top + 1u, top + 2u, top + 3u);
    let g = vec4<f32>(g0, g0, g1, g1);
    let best = vec4<u32>(b0, b0, b1, b1);
    var s0 = select(vec4<f32>(0.0), g, at == best);
    var s1 = select(vec4<f32>(0.0), g, at + vec4<u32>(p.w) == best);
    // The ReLU mask, branch-free: a load under a branch costs as much on llvmpipe.
    let masked = (p.flags & FLAG_MASK) != 0u;
    let row = (p.x_off + plane + top) / 4u;
    let m0 = vec4<bool>(masked) & !(x[row] > vec4<f32>(0.0));
    let m1 = vec4<bool>(masked) & !(x[row + p.w / 4u] > vec4<f32>(0.0));
    s0 = select(s0, vec4<f32>(0.0), m0);
    s1 = select(s1, vec4<f32>(0.0), m1);
    gx[(plane + top) / 4u] = s0;
    gx[(plane + top + p.w) / 4u] = s1;
}
