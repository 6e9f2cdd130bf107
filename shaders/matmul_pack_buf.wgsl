// Entry point of matmul_pack.wgsl (compiled in front) writing a storage buffer of vec4s,
// texel (x, y) at index y * width + x.

@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= q.width || gid.y >= q.height) {
        return;
    }
    dst[gid.y * q.width + gid.x] = texel(gid.x, gid.y);
}
