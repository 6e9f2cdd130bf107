// Entry point of matmul_pack.wgsl (compiled in front) writing an rgba32float texture.

@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= q.width || gid.y >= q.height) {
        return;
    }
    textureStore(dst, vec2<u32>(gid.x, gid.y), texel(gid.x, gid.y));
}
