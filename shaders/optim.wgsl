// Fused optimizer updates over the packed parameter buffer, one vec4 per invocation.
//
// param, grad, state1, state2: the packed buffers of src/graph (every tensor of the model, one
// after the other, each padded to a multiple of 64 elements), read as arrays of vec4 of length
// `len4`. The padding holds zeros in param and grad, and stays zero under every rule below.
// Each invocation reads and writes only its own vec4: no ordering question arises.
//
// Formulas are PyTorch's single-tensor (foreach=False) paths, with the same operation order:
// https://pytorch.org/docs/stable/optim.html (SGD, Adagrad, Adam, AdamW)
//   sgd:      g += wd p;  b = g on the first step, else b = mu b + (1 - dampening) g;
//             g = nesterov ? g + mu b : b   (only when mu != 0);  p += -lr g
//   adagrad:  g += wd p;  s += g g;  p += -clr g / (sqrt(s) + eps)
//   adam:     p *= decay (AdamW: 1 - lr wd; Adam: 1);  g += wd p (Adam's coupled L2; 0 for AdamW)
//             m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g g
//             p += -step_size m / (sqrt(v) / bc2_sqrt + eps)
//             or, with eps inside the root:  p += -step_size m / sqrt(v / bc2 + eps)
// The host computes the per-step scalars once (src/optim), in f64 like PyTorch's Python floats,
// and rounds each to f32 once: step_size = lr / (1 - beta1^t), bc2 = 1 - beta2^t,
// bc2_sqrt = sqrt(bc2), clr = lr / (1 + (t - 1) lr_decay), decay, and 1 - beta1, 1 - beta2,
// 1 - dampening (in f32, 1 - f32(0.999) would be 1.3e-5 off PyTorch's value).
//
// Workgroup 256 over vec4s: on llvmpipe this reached the shader-copy ceiling (8.2 GB/s against
// 3.5 to 5.3 for f32 elements). Large buffers use a 2-D grid: invocation (x, y) takes vec4
// y * row_stride + x, where row_stride = 256 * groups in x (set by src/kernels/optim.rs).

struct Params {
    len4: u32,
    row_stride: u32,
    flags: u32,
    _pad: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    dampening: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,
    bc2: f32,
    bc2_sqrt: f32,
    decay: f32,
    clr: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    one_minus_dampening: f32,
    _pad1: u32,
}

const FLAG_FIRST: u32 = 1u;
const FLAG_NESTEROV: u32 = 2u;
const FLAG_EPS_INSIDE: u32 = 4u;
const FLAG_MOMENTUM: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> state1: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> state2: array<vec4<f32>>;

fn index(gid: vec3<u32>) -> u32 {
    return gid.y * p.row_stride + gid.x;
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.len4) {
        return;
    }
    let w = param[i];
    var g = grad[i] + p.weight_decay * w;
    if ((p.flags & FLAG_MOMENTUM) != 0u) {
        var b: vec4<f32>;
        if ((p.flags & FLAG_FIRST) != 0u) {
            b = g;
        } else {
            b = p.momentum * state1[i] + p.one_minus_dampening * g;
        }
        state1[i] = b;
        if ((p.flags & FLAG_NESTEROV) != 0u) {
            g = g + p.momentum * b;
        } else {
            g = b;
        }
    }
    param[i] = w + (-p.lr) * g;
}

@compute @workgroup_size(256)
fn adagrad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.len4) {
        return;
    }
    let w = param[i];
    let g = grad[i] + p.weight_decay * w;
    let s = state1[i] + g * g;
    state1[i] = s;
    param[i] = w + (-p.clr) * g / (sqrt(s) + p.eps);
}

// torch.lerp(start, end, weight) on the CPU switches formula at weight 0.5 for accuracy.
fn lerp(start: vec4<f32>, end: vec4<f32>, weight: f32) -> vec4<f32> {
    if (weight < 0.5) {
        return start + weight * (end - start);
    }
    return end - (end - start) * (1.0 - weight);
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.len4) {
        return;
    }
    let w0 = param[i];
    let w = w0 * p.decay;
    let g = grad[i] + p.weight_decay * w0;
    let m = lerp(state1[i], g, p.one_minus_beta1);
    let v = p.beta2 * state2[i] + p.one_minus_beta2 * g * g;
    state1[i] = m;
    state2[i] = v;
    var denom: vec4<f32>;
    if ((p.flags & FLAG_EPS_INSIDE) != 0u) {
        denom = sqrt(v / p.bc2 + p.eps);
    } else {
        denom = sqrt(v) / p.bc2_sqrt + p.eps;
    }
    param[i] = w + (-p.step_size) * m / denom;
}

// Not an update: param = grad, vec4 for vec4 over the same grid, for `wgrad bench optim` to set
// the updates' GB/s beside the adapter's shader copy ceiling (8 bytes per element moved).
@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.len4) {
        return;
    }
    param[i] = grad[i];
}
