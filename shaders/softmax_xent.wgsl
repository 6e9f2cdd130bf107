// Fused softmax cross-entropy over a batch: loss, logits gradient and accuracy counts.
//
//   loss_i = logsumexp(x_i) - x_i[y_i],     loss = mean_i loss_i       (PyTorch's reduction)
//   grad_x[i, j] = (softmax(x_i)[j] - [j == y_i]) / rows
//
// logits: [rows, classes] row-major at element logits_off; labels: [rows] u32, each < classes
// (checked on the host when the data set is built); grad: [rows, classes], overwritten when
// flags & 1 (training), untouched otherwise (evaluation).
// stats (f32): [0] = this batch's mean loss; [1] += sum of loss_i; [2] += number of rows whose
// first maximal logit is the label (torch.argmax's tie rule); [3] += rows. The host zeroes
// [1..3] at the start of an epoch or evaluation, so they accumulate across dispatches.
//
// Stability: every row subtracts its maximum before exp, so exp never overflows and the sum is
// at least 1. A row of -inf logits would give NaN, as it does in PyTorch.
//
// With flags & 2 (training a model whose last layer is linear) it also writes that layer's
// bias gradient, the column sums of grad: bias_grad[bias_off + j] = sum_i grad[i, j], summed in
// ascending i like bias_grad.wgsl, so the result is the same bit for bit and the step needs
// one dispatch fewer.
//
// One workgroup of 256 invocations handles the whole batch: invocation t takes rows t, t+256, ..
// and the per-invocation sums are combined by a fixed tree in workgroup memory, so the loss is
// deterministic and needs no atomics. The host dispatches exactly one workgroup
// (src/kernels/loss.rs); WG must equal the workgroup size below.

struct Params {
    rows: u32,
    classes: u32,
    logits_off: u32,
    flags: u32,
    bias_off: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;
const FLAG_GRAD: u32 = 1u;
const FLAG_BIAS_GRAD: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
// The packed parameter gradients (or a placeholder without flags & 2).
@group(0) @binding(5) var<storage, read_write> bias_grad: array<f32>;

var<workgroup> part_loss: array<f32, WG>;
var<workgroup> part_hits: array<f32, WG>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
    var loss = 0.0;
    var hits = 0.0;
    let scale = 1.0 / f32(p.rows);
    for (var i = t; i < p.rows; i += WG) {
        let base = p.logits_off + i * p.classes;
        let y = labels[i];

        var mx = logits[base];
        var arg = 0u;
        for (var j = 1u; j < p.classes; j++) {
            let v = logits[base + j];
            if (v > mx) {
                mx = v;
                arg = j;
            }
        }
        var sum = 0.0;
        for (var j = 0u; j < p.classes; j++) {
            sum += exp(logits[base + j] - mx);
        }
        loss += mx + log(sum) - logits[base + y];
        hits += select(0.0, 1.0, arg == y);

        if ((p.flags & FLAG_GRAD) != 0u) {
            let inv = 1.0 / sum;
            for (var j = 0u; j < p.classes; j++) {
                let soft = exp(logits[base + j] - mx) * inv;
                grad[i * p.classes + j] = (soft - select(0.0, 1.0, j == y)) * scale;
            }
        }
    }

    if ((p.flags & FLAG_BIAS_GRAD) != 0u) {
        // Every row's gradient is written before any column is summed.
        storageBarrier();
        for (var j = t; j < p.classes; j += WG) {
            var s = 0.0;
            for (var i = 0u; i < p.rows; i++) {
                s += grad[i * p.classes + j];
            }
            bias_grad[p.bias_off + j] = s;
        }
    }

    part_loss[t] = loss;
    part_hits[t] = hits;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            part_loss[t] += part_loss[t + s];
            part_hits[t] += part_hits[t + s];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        stats[0] = part_loss[0] * scale;
        stats[1] += part_loss[0];
        stats[2] += part_hits[0];
        stats[3] += f32(p.rows);
    }
}
