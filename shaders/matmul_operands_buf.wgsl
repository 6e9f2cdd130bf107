// Operand loads of matmul_block8.wgsl from vec4 storage buffers: A texel (x, y) is
// a4[a_off + y * a_rs + x] and B texel (x, y) is b4[b_off + y * b_rs + x] (offsets and row
// strides in vec4s, see matmul_block8.wgsl). The buffers are either packed copies
// (matmul_pack.wgsl) or, where an operand's rows are already contiguous aligned vec4s, the
// operand itself, which saves the packing dispatch.

@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;

fn load_a(x: u32, y: u32) -> vec4<f32> {
    return a4[p.a_off + y * p.a_rs + x];
}

fn load_b(x: u32, y: u32) -> vec4<f32> {
    return b4[p.b_off + y * p.b_rs + x];
}
