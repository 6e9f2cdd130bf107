// Mean squared error over a batch, with its gradient (torch.nn.MSELoss, reduction "mean").
//
//   loss = sum_{i, j} (pred[i, j] - target[i, j])^2 / numel,     numel = rows * cols
//   grad_pred[i, j] = 2 (pred[i, j] - target[i, j]) / numel
//
// pred: [rows, cols] at element pred_off; truth (the target): [rows, cols] at element 0 (for an
// autoencoder, the input batch); grad: [rows, cols], overwritten when flags & 1.
// stats (f32), as softmax_xent.wgsl's: [0] = this batch's loss; [1] += loss * rows (so that
// [1] / [3] is the mean over every row seen); [2] unused; [3] += rows.
//
// One workgroup of 256 invocations: invocation t takes elements t, t + 256, .., and the
// partial sums are combined by a fixed tree, so the loss is deterministic. The host dispatches
// exactly one workgroup (src/kernels/loss.rs).

struct Params {
    rows: u32,
    cols: u32,
    pred_off: u32,
    flags: u32,
}

const WG: u32 = 256u;
const FLAG_GRAD: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> truth: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
    let numel = p.rows * p.cols;
    let scale = 2.0 / f32(numel);
    var s = 0.0;
    for (var e = t; e < numel; e += WG) {
        let d = pred[p.pred_off + e] - truth[e];
        s = fma(d, d, s);
        if ((p.flags & FLAG_GRAD) != 0u) {
            grad[e] = scale * d;
        }
    }
    part[t] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (t < k) {
            part[t] += part[t + k];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        let loss = part[0] / f32(numel);
        stats[0] = loss;
        stats[1] += loss * f32(p.rows);
        stats[3] += f32(p.rows);
    }
}
