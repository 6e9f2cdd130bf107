// Entry point of matmul_pack.wgsl (compiled in front) writing a storage buffer of vec4s,
// texel (x, y) at index y * width + x.

@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = texel_of(gid);
    if (t.y >= q.height) {
        return;
    }
    dst[t.y * q.width + t.x] = texel(t.x, t.y);
}
