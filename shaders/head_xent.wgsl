// A small classifier head in two passes: the last linear layer's forward, softmax
// cross-entropy, and that layer's backward (src/kernels/head.rs picks it when the head is small).
//
//   forward   z = h W^T + b                        z: [rows, classes]
//   loss      loss_i = logsumexp(z_i) - z_i[y_i],  loss = mean_i loss_i   (PyTorch's reduction)
//   backward  dz = (softmax(z) - onehot(y)) / rows
//             dW = dz^T h,  db = sum_i dz_i,  dh = (dz W) * (h > 0)
//
// Bindings (f32 unless said, row-major; feat is a multiple of 4, the host checks):
//   h:         [rows, feat] as vec4s, the head's input (the output of the op below, after its
//              ReLU)
//   params:    the packed parameters as vec4s: W [classes, feat] at element w_off and
//              b [classes] at b_off (PyTorch's Linear layout; w_off is a multiple of 4)
//   labels:    [rows] u32, each < classes (checked on the host when the batch is uploaded)
//   dz:        [rows, groups] vec4s, groups = ceil(classes / 4): dz with each row padded by
//              zeros to whole vec4s; written by pass 1, read by pass 2
//   row_stats: [rows, 2], each row's loss and hit (1 when its first maximal logit is the
//              label, torch.argmax's tie rule), from pass 1 to pass 2
//   stats:     [0] = the batch's mean loss; [1] += sum of loss_i; [2] += hits; [3] += rows
//              (as softmax_xent.wgsl)
//   grads:     dW at w_off and db at b_off, overwritten; with flags & BELOW_BIAS also the bias
//              gradient of the linear op below, sum_i dh[i, f], at below_bias_off
//   dh:        with flags & DH the input gradient, overwritten: [rows, feat], or its transpose
//              [feat, rows] with flags & DH_T (what the weight gradient below reads directly).
//              With flags & MASK it is multiplied by (h > 0), the ReLU backward of the op below.
//
// Pass 1 (`rows`) gives each invocation four rows and pass 2 (`columns`) one column of h, and
// both read vec4s, so that every load serves several multiply-adds: on llvmpipe each load is a
// separate access per lane, and loads, not arithmetic, are what these passes spend. Every sum
// has a fixed order (ascending rows, then ascending features or classes), so the result is
// deterministic without atomics. WG_ROWS, WG_COLUMNS and R are mirrored in src/kernels/head.rs,
// which sizes both grids.

struct Params {
    rows: u32,
    classes: u32,
    feat: u32,
    flags: u32,
    w_off: u32,
    b_off: u32,
    below_bias_off: u32,
    _pad: u32,
}

// Workgroup sizes of the two passes, and rows per invocation of pass 1. Pass 1's are small
// because a batch of 128 gives it only 32 invocations and llvmpipe runs each workgroup on one
// thread; pass 2 measured no faster with 8 than with 32.
const WG_ROWS: u32 = 8u;
const WG_COLUMNS: u32 = 32u;
const R: u32 = 4u;
const MAX_C: u32 = 16u;
const FLAG_DH: u32 = 1u;
const FLAG_DH_T: u32 = 2u;
const FLAG_MASK: u32 = 4u;
const FLAG_BELOW_BIAS: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> h: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> dz: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> row_stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> grads: array<f32>;
@group(0) @binding(8) var<storage, read_write> dh: array<f32>;

// Element e of the packed parameters, from their vec4 view.
fn param(e: u32) -> f32 {
    return params[e / 4u][e % 4u];
}

// Pass 1: invocation g takes rows 4g .. 4g+3, one per vec4 component, so that each weight it
// loads serves four rows. Rows past the batch repeat the last one and are not stored.
@compute @workgroup_size(WG_ROWS)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.x * R;
    if (i0 >= p.rows) {
        return;
    }
    let classes = p.classes;
    let f4 = p.feat / 4u;
    let groups = (classes + 3u) / 4u;
    let r = min(vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u), vec4<u32>(p.rows - 1u));
    let row = r * f4;

    // z[c][k]: logit c of row r[k]. The loops over c have the constant bound MAX_C, so the
    // compiler can unroll them and keep z in registers; `c < classes` is the same everywhere.
    var z: array<vec4<f32>, MAX_C>;
    for (var c = 0u; c < MAX_C; c++) {
        if (c < classes) {
            z[c] = vec4<f32>(param(p.b_off + c));
        }
    }
    for (var f = 0u; f < f4; f++) {
        let h0 = h[row.x + f];
        let h1 = h[row.y + f];
        let h2 = h[row.z + f];
        let h3 = h[row.w + f];
        for (var c = 0u; c < MAX_C; c++) {
            if (c < classes) {
                let w = params[p.w_off / 4u + c * f4 + f];
                z[c] += vec4<f32>(dot(h0, w), dot(h1, w), dot(h2, w), dot(h3, w));
            }
        }
    }

    // Subtract each row's maximum before exp: no overflow, and the sum is at least 1. The
    // first maximal logit is the prediction (torch.argmax's tie rule).
    let y = vec4<u32>(labels[r.x], labels[r.y], labels[r.z], labels[r.w]);
    var mx = z[0];
    var arg = vec4<u32>(0u);
    for (var c = 1u; c < MAX_C; c++) {
        if (c < classes) {
            let better = z[c] > mx;
            mx = select(mx, z[c], better);
            arg = select(arg, vec4<u32>(c), better);
        }
    }
    var sum = vec4<f32>(0.0);
    var zy = vec4<f32>(0.0);
    for (var c = 0u; c < MAX_C; c++) {
        if (c < classes) {
            zy = select(zy, z[c], vec4<u32>(c) == y);
            z[c] = exp(z[c] - mx);
            sum += z[c];
        }
    }
    let loss = mx + log(sum) - zy;
    let hit = select(vec4<f32>(0.0), vec4<f32>(1.0), arg == y);
    let inv = 1.0 / sum;
    let scale = 1.0 / f32(p.rows);
    // dz[c] = (softmax - onehot) / rows, zero in the padding classes.
    for (var c = 0u; c < MAX_C; c++) {
        if (c < classes) {
            let one = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(c) == y);
            z[c] = (z[c] * inv - one) * scale;
        } else {
            z[c] = vec4<f32>(0.0);
        }
    }
    for (var k = 0u; k < R; k++) {
        let i = i0 + k;
        if (i < p.rows) {
            row_stats[2u * i] = loss[k];
            row_stats[2u * i + 1u] = hit[k];
            for (var g = 0u; g < MAX_C / 4u; g++) {
                if (g < groups) {
                    let c = 4u * g;
                    dz[i * groups + g] = vec4<f32>(z[c][k], z[c + 1u][k], z[c + 2u][k],
                        z[c + 3u][k]);
                }
            }
        }
    }
}

// Pass 2: invocation j < feat takes column j of h; the next `classes` invocations sum a column
// of dz each (db); the one after them adds up the loss.
@compute @workgroup_size(WG_COLUMNS)
fn columns(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let classes = p.classes;
    let feat = p.feat;
    let groups = (classes + 3u) / 4u;
    if (j >= feat + classes + 1u) {
        return;
    }
    if (j == feat + classes) {
        var loss = 0.0;
        var hits = 0.0;
        for (var i = 0u; i < p.rows; i++) {
            loss += row_stats[2u * i];
            hits += row_stats[2u * i + 1u];
        }
        stats[0] = loss / f32(p.rows);
        stats[1] += loss;
        stats[2] += hits;
        stats[3] += f32(p.rows);
        return;
    }
    if (j >= feat) {
        let c = j - feat;
        var s = 0.0;
        for (var i = 0u; i < p.rows; i++) {
            s += dz[i * groups + c / 4u][c % 4u];
        }
        grads[p.b_off + c] = s;
        return;
    }

    // w[g][m] = W[4g + m, f] and dw[g][m] accumulates dW[4g + m, f] (0 past `classes`).
    let f = j;
    var w: array<vec4<f32>, MAX_C / 4u>;
    var dw: array<vec4<f32>, MAX_C / 4u>;
    for (var g = 0u; g < MAX_C / 4u; g++) {
        for (var m = 0u; m < 4u; m++) {
            let c = 4u * g + m;
            if (c < classes) {
                w[g][m] = param(p.w_off + c * feat + f);
            }
        }
    }
    let f4 = feat / 4u;
    let lane = f % 4u;
    var db_below = 0.0;
    for (var i = 0u; i < p.rows; i++) {
        let hv = h[i * f4 + f / 4u][lane];
        var g = 0.0;
        for (var q = 0u; q < MAX_C / 4u; q++) {
            if (q < groups) {
                let d = dz[i * groups + q];
                dw[q] = fma(d, vec4<f32>(hv), dw[q]);
                g += dot(d, w[q]);
            }
        }
        if ((p.flags & FLAG_DH) != 0u) {
            if ((p.flags & FLAG_MASK) != 0u) {
                g *= select(0.0, 1.0, hv > 0.0);
            }
            db_below += g;
            if ((p.flags & FLAG_DH_T) != 0u) {
                dh[f * p.rows + i] = g;
            } else {
                dh[i * feat + f] = g;
            }
        }
    }
    for (var g = 0u; g < MAX_C / 4u; g++) {
        for (var m = 0u; m < 4u; m++) {
            let c = 4u * g + m;
            if (c < classes) {
                grads[p.w_off + c * feat + f] = dw[g][m];
            }
        }
    }
    if ((p.flags & FLAG_BELOW_BIAS) != 0u) {
        grads[p.below_bias_off + f] = db_below;
    }
}
