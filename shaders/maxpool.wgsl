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
@group(0) @binding(1) var<storage, read> x: array<f32>;
// forward: y [n, c, oh, ow] (written). backward: grad_y (read).
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;
// backward: grad_x [n, c, h, w] (written). forward: unused.
@group(0) @binding(4) var<storage, read_write> gx: array<f32>;

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
    var mx = x[base + best];
    for (var u = 0u; u < p.k; u++) {
        for (var v = 0u; v < p.k; v++) {
            let at = (i * p.stride + u) * p.w + j * p.stride + v;
            let val = x[base + at];
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
    if ((p.flags & FLAG_MASK) != 0u && !(x[p.x_off + e] > 0.0)) {
        s = 0.0;
    }
    gx[e] = s;
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
            if ((p.flags & FLAG_MASK) != 0u && !(x[p.x_off + e] > 0.0)) {
                s = 0.0;
            }
            gx[e] = s;
        }
    }
}
