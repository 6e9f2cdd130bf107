// Operand loads of matmul_block8.wgsl from packed vec4 storage buffers (matmul_pack.wgsl):
// texel (x, y) of A is a4[y * a_cs + x], of B b4[y * b_rs + x] (widths in texels, see
// matmul_block8.wgsl).

@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;

fn load_a(x: u32, y: u32) -> vec4<f32> {
    return a4[y * p.a_cs + x];
}

fn load_b(x: u32, y: u32) -> vec4<f32> {
    return b4[y * p.b_rs + x];
}
