// Operand loads of matmul_block8.wgsl from packed rgba32float textures (matmul_pack.wgsl).
// On llvmpipe a texel fetch is markedly cheaper than a storage-buffer load of the same vec4
// (about 1.3-1.6x on the whole kernel, shared/notes); on other adapters the tuner decides.

@group(0) @binding(1) var a_tex: texture_2d<f32>;
@group(0) @binding(2) var b_tex: texture_2d<f32>;

// A texel (x, y) = A[y, 4x .. 4x+3].
fn load_a(x: u32, y: u32) -> vec4<f32> {
    return textureLoad(a_tex, vec2<u32>(x, y), 0);
}

// B texel (x, y) = B[y, 4x .. 4x+3].
fn load_b(x: u32, y: u32) -> vec4<f32> {
    return textureLoad(b_tex, vec2<u32>(x, y), 0);
}
