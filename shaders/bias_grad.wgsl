// Bias gradient of a linear layer: the column sums of the upstream gradient.
//
//   Y = X W^T + bias  =>  grad_bias[j] = sum_i grad_y[i, j]
//
// grad_y: [rows, cols] row-major, starting at element src_off of `src`.
// out:    grad_bias [cols] written (overwritten, not accumulated) at element dst_off of `dst`.
//
// Invocation j sums column j over the rows in ascending order, so the sum is fixed-order and
// deterministic. Workgroup 64: the widths this runs on are 10 to a few thousand columns; the host
// in src/kernels/bias.rs dispatches ceil(cols / 64) workgroups.

struct Params {
    rows: u32,
    cols: u32,
    src_off: u32,
    dst_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.cols) {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < p.rows; i++) {
        s += src[p.src_off + i * p.cols + j];
    }
    dst[p.dst_off + j] = s;
}
