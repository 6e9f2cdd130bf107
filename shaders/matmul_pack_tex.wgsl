// Entry point of matmul_pack.wgsl (compiled in front) writing an rgba32float texture.

@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = texel_of(gid);
    if (t.y >= q.height) {
        return;
    }
    textureStore(dst, t, texel(t.x, t.y));
}
