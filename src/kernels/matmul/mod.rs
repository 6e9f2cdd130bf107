//! Matrix products `C = epilogue(A B)` in several kernel variants, and the choice between them.
//!
//! [`Operand`] describes where a matrix sits in a buffer (element offset and strides), so a
//! transposed operand is just swapped strides. [`Epilogue`] selects the fused bias, ReLU and ReLU
//! mask. The variants ([`Variant`]):
//!   strided    matmul.wgsl: 4x4 blocks, scalar loads through any strides; works everywhere
//!   vec4       matmul_vec4.wgsl: 4x4 blocks, vec4 loads along contiguous aligned rows
//!   block8     matmul_block8.wgsl: 8x8 blocks on operands packed into vec4 storage buffers
//!   block8-sg  matmul_block8_sg.wgsl: 16x8 blocks, A shared across 8 lanes with
//!              subgroupShuffle (needs SUBGROUP)
//!   block8-sg32  the same kernel with 32x8 blocks: fewer loads per FMA, half the workgroups
//!   tex8       8x8 blocks on operands packed into rgba32float textures, read by textureLoad
//!   tex8-sg, tex8-sg32  the subgroup kernel on textures
//! The block8 and tex8 variants first pack A and B (matmul_pack.wgsl: one small dispatch each),
//! which also makes them layout-blind; the buffer variants skip the packing of an operand whose
//! rows are already aligned vec4s, and block8-sg(32) also of a B stored transposed (`sg_bt`).
//! [`dispatch`] picks one per shape through the device's tuning ([`choose`]);
//! [`dispatch_variant`] forces one, for tests and benches. All of them sum
//! in ascending k, so each is deterministic, but they round differently; tests compare every
//! variant with the CPU reference [`crate::reference::matmul`].

use std::sync::Arc;

use rand::{Rng, SeedableRng};

use super::tune::{self, Choice};
use super::{div_ceil, Binding, Dispatch, Kernel, KernelSource};
use crate::error::{Error, Result};
use crate::gpu::Context;

pub(crate) mod pack;

/// Rows of C per workgroup: workgroup height 8 x block rows TM 4 in both matmul shaders (change
/// them together).
pub const TILE_M: usize = 32;
/// Columns of C per workgroup: workgroup width 16 x block columns TN 4 in both matmul shaders.
pub const TILE_N: usize = 64;

const SOURCE: KernelSource = KernelSource {
    name: "matmul",
    wgsl: concat!(
        include_str!("../../../shaders/matmul_common.wgsl"),
        include_str!("../../../shaders/matmul.wgsl")
    ),
    entry: "main",
    bindings: &[
        Binding::Uniform,
        Binding::Read,      // a
        Binding::Read,      // b
        Binding::Read,      // bias
        Binding::Read,      // mask
        Binding::ReadWrite, // c
    ],
};

const VEC4_BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,      // a, as vec4
    Binding::Read,      // b, as vec4
    Binding::Read,      // bias
    Binding::Read,      // mask
    Binding::ReadWrite, // c
    Binding::Read,      // a, as f32 (the nn entry point)
];

fn vec4_source(entry: &'static str) -> KernelSource {
    KernelSource {
        name: match entry {
            "nt" => "matmul_vec4.nt",
            "tn" => "matmul_vec4.tn",
            _ => "matmul_vec4.nn",
        },
        wgsl: concat!(
            include_str!("../../../shaders/matmul_common.wgsl"),
            include_str!("../../../shaders/matmul_vec4.wgsl")
        ),
        entry,
        bindings: VEC4_BINDINGS,
    }
}

const BLOCK8_TEX_BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Texture, // packed A
    Binding::Texture, // packed B
    Binding::Read,    // bias
    Binding::Read,    // mask
    Binding::ReadWrite,
];

const BLOCK8_BUF_BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read, // packed A
    Binding::Read, // packed B
    Binding::Read, // bias
    Binding::Read, // mask
    Binding::ReadWrite,
];

macro_rules! block8_wgsl {
    ($operands:literal $(, $extra:literal)?) => {
        concat!(
            include_str!("../../../shaders/matmul_common.wgsl"),
            include_str!($operands),
            include_str!("../../../shaders/matmul_block8.wgsl"),
            $(include_str!($extra),)?
        )
    };
}

/// The kernel of an 8x8 variant; `bt`: the subgroup buffer kernel that reads B transposed in
/// place (entry `sg_bt` of matmul_block8_sg.wgsl).
fn block8_source(variant: Variant, bt: bool) -> KernelSource {
    if bt {
        assert!(
            variant.buffer_subgroups(),
            "internal error: only block8-sg and block8-sg32 read B^T"
        );
        return KernelSource {
            name: if variant == Variant::Block8Sg {
                "matmul_block8.buf.sg_bt"
            } else {
                "matmul_block8.buf.sg32_bt"
            },
            wgsl: block8_wgsl!(
                "../../../shaders/matmul_operands_buf.wgsl",
                "../../../shaders/matmul_block8_sg.wgsl"
            ),
            entry: "sg_bt",
            bindings: BLOCK8_BUF_BINDINGS,
        };
    }
    let (name, wgsl, entry, bindings) = match variant {
        Variant::Block8 => (
            "matmul_block8.buf",
            block8_wgsl!("../../../shaders/matmul_operands_buf.wgsl"),
            "main",
            BLOCK8_BUF_BINDINGS,
        ),
        Variant::Block8Sg | Variant::Block8Sg32 => (
            if variant == Variant::Block8Sg {
                "matmul_block8.buf.sg"
            } else {
                "matmul_block8.buf.sg32"
            },
            block8_wgsl!(
                "../../../shaders/matmul_operands_buf.wgsl",
                "../../../shaders/matmul_block8_sg.wgsl"
            ),
            "sg",
            BLOCK8_BUF_BINDINGS,
        ),
        Variant::Tex8 => (
            "matmul_block8.tex",
            block8_wgsl!("../../../shaders/matmul_operands_tex.wgsl"),
            "main",
            BLOCK8_TEX_BINDINGS,
        ),
        Variant::Tex8Sg | Variant::Tex8Sg32 => (
            if variant == Variant::Tex8Sg {
                "matmul_block8.tex.sg"
            } else {
                "matmul_block8.tex.sg32"
            },
            block8_wgsl!(
                "../../../shaders/matmul_operands_tex.wgsl",
                "../../../shaders/matmul_block8_sg.wgsl"
            ),
            "sg",
            BLOCK8_TEX_BINDINGS,
        ),
        _ => unreachable!("internal error: {variant:?} is not an 8x8 variant"),
    };
    KernelSource {
        name,
        wgsl,
        entry,
        bindings,
    }
}

/// Mirrors `Params` in matmul_common.wgsl field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub m: u32,
    pub n: u32,
    pub kdim: u32,
    pub flags: u32,
    pub a_off: u32,
    pub a_rs: u32,
    pub a_cs: u32,
    pub b_off: u32,
    pub b_rs: u32,
    pub b_cs: u32,
    pub c_off: u32,
    pub c_rs: u32,
    pub bias_off: u32,
    pub mask_off: u32,
    pub mask_rs: u32,
    /// The 8x8 kernels' block layout, split-K slices and k steps per slice (matmul_common.wgsl).
    pub block_layout: u32,
    pub split: u32,
    pub k_per_split: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// A matrix inside a buffer: element `(i, j)` is at `offset + i * row_stride + j * col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct Operand {
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Operand {
    /// A row-major `[rows, cols]` matrix at `offset`.
    pub fn row_major(offset: usize, cols: usize) -> Self {
        Operand {
            offset,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of the row-major `[rows, cols]` matrix at `offset`: a `[cols, rows]` view.
    pub fn transposed(offset: usize, cols: usize) -> Self {
        Operand {
            offset,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Index of element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> usize {
        self.offset + i * self.row_stride + j * self.col_stride
    }
}

/// What happens to each sum before it is stored.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Epilogue {
    /// Element offset of a `[n]` bias added to every row.
    pub bias: Option<usize>,
    /// Apply `max(x, 0)`.
    pub relu: bool,
    /// `(offset, row_stride)` of a `[m, n]` ReLU output: zero the result where it is not > 0.
    pub mask: Option<(usize, usize)>,
}

/// The shape of one product: `C [m, n] = A [m, k] B [k, n]`.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// The compiled strided matmul kernel, specialised for products with parameters `p`.
pub async fn kernel(ctx: &Context, p: &Params) -> Result<Arc<Kernel>> {
    ctx.pipelines().get_with(ctx, &SOURCE, &specialize(p)).await
}

/// The override constants of matmul_common.wgsl for a product with parameters `p`: its
/// epilogue flags, and whether C's rows (NCHW: its runs of four positions) are whole aligned
/// vec4s, so that the epilogue stores vec4s. See the header there for why.
fn specialize(p: &Params) -> [(&'static str, u32); 2] {
    let q = |v: u32| v % 4 == 0;
    let vec4 = if p.flags & FLAG_NCHW != 0 {
        // Rows are (image, position) with P = c_rs positions per image.
        q(p.c_rs) && q(p.c_off) && q(p.m)
    } else if p.flags & FLAG_NCHW_T != 0 {
        // Columns are (image, position); dispatch_grids checked the alignment.
        true
    } else {
        q(p.n) && q(p.c_rs) && q(p.c_off)
    };
    [("EPILOGUE", p.flags), ("C_VEC4", vec4 as u32)]
}

/// Buffers of one product. `bias` and `mask` may be any readable buffer when unused.
pub struct Buffers<'a> {
    pub a: &'a wgpu::Buffer,
    pub b: &'a wgpu::Buffer,
    pub bias: &'a wgpu::Buffer,
    pub mask: &'a wgpu::Buffer,
    pub c: &'a wgpu::Buffer,
}

/// Which kernel computes a product (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Strided,
    Vec4,
    Block8,
    Block8Sg,
    Block8Sg32,
    Tex8,
    Tex8Sg,
    Tex8Sg32,
}

impl Variant {
    /// Every variant, the portable ones first.
    pub const ALL: [Variant; 8] = [
        Variant::Strided,
        Variant::Vec4,
        Variant::Block8,
        Variant::Block8Sg,
        Variant::Block8Sg32,
        Variant::Tex8,
        Variant::Tex8Sg,
        Variant::Tex8Sg32,
    ];

    /// The name used by `WGRAD_KERNEL`, `wgrad bench` and the tuning cache.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Strided => "strided",
            Variant::Vec4 => "vec4",
            Variant::Block8 => "block8",
            Variant::Block8Sg => "block8-sg",
            Variant::Block8Sg32 => "block8-sg32",
            Variant::Tex8 => "tex8",
            Variant::Tex8Sg => "tex8-sg",
            Variant::Tex8Sg32 => "tex8-sg32",
        }
    }

    pub fn from_name(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }

    fn packed(self) -> bool {
        !matches!(self, Variant::Strided | Variant::Vec4)
    }

    fn textures(self) -> bool {
        matches!(self, Variant::Tex8 | Variant::Tex8Sg | Variant::Tex8Sg32)
    }

    fn subgroups(self) -> bool {
        self.sg_rows() > 0
    }

    /// Rows of C per block and per workgroup of a subgroup kernel (SG_ROWS in
    /// matmul_block8_sg.wgsl); 0 for the others.
    fn sg_rows(self) -> usize {
        match self {
            Variant::Block8Sg | Variant::Tex8Sg => 16,
            Variant::Block8Sg32 | Variant::Tex8Sg32 => 32,
            _ => 0,
        }
    }

    /// Whether this is block8-sg or block8-sg32, the buffer subgroup kernels, which also read a
    /// B stored transposed in place (`sg_bt`).
    fn buffer_subgroups(self) -> bool {
        matches!(self, Variant::Block8Sg | Variant::Block8Sg32)
    }

    /// Why this variant cannot compute `shape` with these operands on `ctx`, if it cannot.
    pub fn unsupported(
        self,
        ctx: &Context,
        shape: Shape,
        a: Operand,
        b: Operand,
    ) -> Option<String> {
        if self == Variant::Vec4 && vec4_layout(shape, a, b).is_none() {
            return Some("the operands' rows are not contiguous, 16-byte aligned vec4s".into());
        }
        if self.subgroups() {
            // The 8 invocations of a workgroup must share one subgroup.
            let (lo, hi) = (ctx.info.subgroup_min_size, ctx.info.subgroup_max_size);
            if !ctx.features.contains(wgpu::Features::SUBGROUP) {
                return Some("the adapter has no subgroup operations".into());
            }
            if lo < 8 {
                return Some(format!(
                    "subgroups of {lo} to {hi} lanes (at least 8 needed)"
                ));
            }
        }
        if self.packed() {
            let packed = Packed::of(shape);
            let max_groups = ctx.limits.max_compute_workgroups_per_dimension as usize;
            // Rows of C per workgroup: a subgroup kernel's block, else an 8x8 tile's.
            let tile_rows = match self.sg_rows() {
                0 => BLOCK8_TILE,
                rows => rows,
            };
            if shape.m.div_ceil(tile_rows) > max_groups {
                return Some(format!(
                    "{} rows need over {max_groups} workgroups",
                    shape.m
                ));
            }
            if self.textures() {
                let max = ctx.limits.max_texture_dimension_2d;
                let largest = [packed.a_rows, packed.a_width, packed.b_rows, packed.b_width];
                if largest.iter().any(|&d| d > max) {
                    return Some(format!("a packed operand is over {max} texels on a side"));
                }
            } else {
                let bytes =
                    16 * (packed.a_rows * packed.a_width).max(packed.b_rows * packed.b_width);
                if bytes as u64 > ctx.max_binding_bytes() {
                    return Some(format!("a packed operand needs {bytes} bytes"));
                }
            }
        }
        None
    }
}

/// Sizes of the packed operands of the 8x8 kernels, in texels (vec4s): A is `a_width` x
/// `a_rows`, B `b_width` x `b_rows` (see matmul_block8.wgsl). Rows of A are padded to a
/// multiple of 8, columns of B to a multiple of 8 (2 texels), k to a multiple of 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    a_width: u32,
    a_rows: u32,
    b_width: u32,
    b_rows: u32,
}

impl Packed {
    fn of(shape: Shape) -> Packed {
        let kq = shape.k.div_ceil(4).max(1) as u32;
        Packed {
            a_width: kq,
            a_rows: (shape.m.div_ceil(8) * 8).max(8) as u32,
            b_width: (shape.n.div_ceil(8) * 2).max(2) as u32,
            b_rows: 4 * kq,
        }
    }
}

/// Rows and columns of C one workgroup of the 8x8 kernels covers (64 invocations of 8x8), and
/// the columns of one of the subgroup kernels.
pub const BLOCK8_TILE: usize = 64;

/// Builds the replayable dispatches of `C = epilogue(A B)`, C row-major with row stride `c.1`,
/// with the variant the device's tuning picks for this shape ([`choose`]).
pub async fn dispatch(
    ctx: &Context,
    shape: Shape,
    a: Operand,
    b: Operand,
    c: (usize, usize),
    epilogue: Epilogue,
    buffers: Buffers<'_>,
) -> Result<Vec<Dispatch>> {
    let variant = choose(ctx, shape, a, b).await?;
    dispatch_variant(ctx, variant, shape, a, b, c, epilogue, buffers).await
}

/// The tuning cache key of a product: the shape and the operand layout.
fn key(ctx: &Context, shape: Shape, a: Operand, b: Operand) -> String {
    let layout = |o: Operand| match (o.row_stride, o.col_stride) {
        (_, 1) => "n",
        (1, _) => "t",
        _ => "s",
    };
    let aligned = vec4_layout(shape, a, b).map_or("-", |(entry, _)| entry);
    format!(
        "{} | matmul {}x{}x{} {}{} {aligned}",
        ctx.tuning_key(),
        shape.m,
        shape.n,
        shape.k,
        layout(a),
        layout(b)
    )
}

/// The variant for a product on this device: the forced one (`WGRAD_KERNEL`) where it applies,
/// else the cached choice, else the fastest correct candidate when the tuning has a clock (the
/// choice is then cached), else the static preference: block8-sg32, tex8-sg32, tex8-sg,
/// block8-sg, tex8, vec4, strided, the first that applies (about the order at n = 1024 on
/// llvmpipe, where the two 32-row kernels run within a few percent of each other and the tuner
/// took the buffer one for most of the models' products).
pub async fn choose(ctx: &Context, shape: Shape, a: Operand, b: Operand) -> Result<Variant> {
    if let Some(v) = known_choice(ctx, shape, a, b) {
        return Ok(v);
    }
    if ctx.tuning().clock.is_some() {
        let timings = time_variants(ctx, shape, a, b, 0.05).await?;
        return Ok(record_choice(ctx, shape, a, b, &timings));
    }
    let preference = [
        Variant::Block8Sg32,
        Variant::Tex8Sg32,
        Variant::Tex8Sg,
        Variant::Block8Sg,
        Variant::Tex8,
        Variant::Vec4,
        Variant::Strided,
    ];
    Ok(preference
        .into_iter()
        .find(|v| v.unsupported(ctx, shape, a, b).is_none())
        .unwrap_or(Variant::Strided))
}

/// The forced variant where it applies, else the cached choice: what [`choose`] takes without
/// timing anything.
pub fn known_choice(ctx: &Context, shape: Shape, a: Operand, b: Operand) -> Option<Variant> {
    let tuning = ctx.tuning();
    let usable = |v: &Variant| v.unsupported(ctx, shape, a, b).is_none();
    if let Some(v) = tuning.forced.as_deref().and_then(Variant::from_name) {
        if usable(&v) {
            return Some(v);
        }
        log::debug!(
            "WGRAD_KERNEL={} does not apply to matmul {shape:?}",
            v.name()
        );
    }
    tuning
        .lookup(&key(ctx, shape, a, b))
        .and_then(|c| Variant::from_name(&c.variant))
        .filter(usable)
}

/// Caches the fastest of `timings` as the choice for this product and returns it (strided when
/// none passed).
pub fn record_choice(
    ctx: &Context,
    shape: Shape,
    a: Operand,
    b: Operand,
    timings: &[Timing],
) -> Variant {
    let best = timings
        .iter()
        .min_by(|x, y| x.seconds.total_cmp(&y.seconds))
        .map_or(Variant::Strided, |t| t.variant);
    let key = key(ctx, shape, a, b);
    let choice = Choice {
        variant: best.name().into(),
        micros: timings
            .iter()
            .map(|t| (t.variant.name().to_string(), t.seconds * 1e6))
            .collect(),
    };
    log::debug!("tuned {key}: {} {:?}", choice.variant, choice.micros);
    ctx.tuning().record(key, choice);
    best
}

/// One candidate's measurements.
pub struct Timing {
    pub variant: Variant,
    /// Median seconds per run (all of the variant's dispatches, packing included).
    pub seconds: f64,
    /// Largest |C - C_strided|.
    pub max_error: f32,
}

/// Times every supported variant on `shape` with these layouts, on scratch buffers of seeded
/// random values, and returns the measurements of those whose result matches the strided
/// kernel's. Needs the tuning's clock.
pub async fn time_variants(
    ctx: &Context,
    shape: Shape,
    a: Operand,
    b: Operand,
    budget: f64,
) -> Result<Vec<Timing>> {
    let Some(clock) = ctx.tuning().clock.clone() else {
        return Err(Error::Config("timing kernels needs a clock".into()));
    };
    let now = || (clock.0)();
    let extent = |o: Operand, rows: usize, cols: usize| o.at(rows - 1, cols - 1) + 1;
    // Scratch operands keep the real layout (and offset modulo 4, which decides vec4 loads).
    let a = Operand {
        offset: a.offset % 4,
        ..a
    };
    let b = Operand {
        offset: b.offset % 4,
        ..b
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x7e57);
    let mut random =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let a_buf = ctx.storage_init("tuning A", &random(extent(a, shape.m, shape.k)))?;
    let b_buf = ctx.storage_init("tuning B", &random(extent(b, shape.k, shape.n)))?;
    let c_buf = ctx.storage("tuning C", shape.m * shape.n)?;
    let unused = ctx.storage("tuning bias", 4)?;
    let buffers = || Buffers {
        a: &a_buf,
        b: &b_buf,
        bias: &unused,
        mask: &unused,
        c: &c_buf,
    };
    let run = |dispatches: &[Dispatch], times: usize| {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        for _ in 0..times {
            super::record_all(&mut encoder, dispatches);
        }
        ctx.queue.submit([encoder.finish()]);
    };

    // Build and check every candidate first, then time them in interleaved rounds: the
    // adapter's speed drifts (by 30% and more on llvmpipe sharing its cores), and a drift
    // then falls on every variant alike instead of deciding the ranking.
    let mut reference: Option<Vec<f32>> = None;
    let mut candidates = Vec::new();
    for v in Variant::ALL {
        if let Some(why) = v.unsupported(ctx, shape, a, b) {
            log::trace!("matmul {shape:?}: {} skipped: {why}", v.name());
            continue;
        }
        let scope = ctx.scope();
        let built = dispatch_variant(
            ctx,
            v,
            shape,
            a,
            b,
            (0, shape.n),
            Epilogue::default(),
            buffers(),
        )
        .await;
        let built = match (built, scope.finish("building a matmul variant").await) {
            (Ok(d), Ok(())) => d,
            (Err(e), _) | (_, Err(e)) => {
                log::warn!("matmul variant {} does not build here: {e}", v.name());
                continue;
            }
        };
        // One run, checked against the strided kernel (always first); its time includes
        // compiling the shader on adapters that compile at first use, so a second is timed.
        run(&built, 1);
        let c: Vec<f32> = ctx.read(&c_buf, 0, shape.m * shape.n).await?;
        let t0 = now();
        run(&built, 1);
        ctx.wait().await?;
        let first = now() - t0;
        let max_error = match &reference {
            None => {
                reference = Some(c);
                0.0
            }
            Some(r) => r
                .iter()
                .zip(&c)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max),
        };
        // Sums of k products of values in [-1, 1]: rounding differences grow like sqrt(k) ulps
        // of sums up to k; 1e-5 k is far above them and far below a wrong element (~0.1 sqrt k).
        let tolerance = 1e-5 * shape.k.max(1) as f32;
        // NaN fails this too.
        if max_error.is_nan() || max_error > tolerance {
            log::warn!(
                "matmul variant {} is wrong here ({shape:?}: max error {max_error}); not used",
                v.name()
            );
            continue;
        }
        candidates.push((v, built, first, max_error));
    }
    // Hopeless candidates (2x slower than the best in one run; single runs vary by about 30%
    // on llvmpipe) are not timed further: on a first run the tuning is part of its wait.
    let best_first = candidates.iter().map(|c| c.2).fold(f64::INFINITY, f64::min);
    // (variant, its dispatches, runs per submit, max error, seconds per run of each round)
    type Timed = (Variant, Vec<Dispatch>, usize, f32, Vec<f64>);
    let mut timed: Vec<Timed> = Vec::new();
    let mut out = Vec::new();
    for (v, built, first, max_error) in candidates {
        if first >= 2.0 * best_first {
            out.push(Timing {
                variant: v,
                seconds: first,
                max_error,
            });
            continue;
        }
        // Short runs are replayed at least 4 times per submit, so that the submit and wait
        // (0.1-0.3 ms on llvmpipe) weigh as little as they do inside a training step.
        let least = if first < 0.01 { 4 } else { 1 };
        let repeat = ((budget / 5.0 / first.max(1e-6)) as usize).clamp(least, 64);
        timed.push((v, built, repeat, max_error, Vec::new()));
    }
    for _round in 0..5 {
        for (_, built, repeat, _, samples) in timed.iter_mut() {
            let t0 = now();
            run(built, *repeat);
            ctx.wait().await?;
            samples.push((now() - t0) / *repeat as f64);
        }
    }
    for (variant, _, _, max_error, mut samples) in timed {
        out.push(Timing {
            variant,
            seconds: tune::median(&mut samples),
            max_error,
        });
    }
    // In the order of Variant::ALL, as callers print them.
    out.sort_by_key(|t| Variant::ALL.iter().position(|&v| v == t.variant));
    Ok(out)
}

/// An operand already in the vec4 layout the 8x8 kernels read (matmul_block8.wgsl): texel
/// (x, y) = columns 4x .. 4x+3 of row y, at vec4 index `offset + y * row_stride + x`; `cols`
/// texel columns. Past the matrix along k it must hold zeros (A) or finite values (B), as the
/// packing kernels and src/kernels/conv_gemm.rs write it.
#[derive(Clone, Copy, Debug)]
pub struct Grid<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: usize,
    pub row_stride: usize,
    pub cols: usize,
}

/// How [`dispatch_grids`] reads B and stores C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridLayout {
    /// B as given, C row-major.
    Plain,
    /// B as given; C a convolution output `[m / P, n, P]`: rows are positions, columns
    /// channels (flag NCHW of matmul_common.wgsl).
    Nchw(usize),
    /// `b` holds B^T (block8-sg's `sg_bt` reads it in place); C a convolution output
    /// `[n / P, m, P]`: rows are channels, columns positions, the bias per row (flag NCHW_T).
    /// P, n and C's offset must be multiples of 4.
    NchwT(usize),
}

/// `C = epilogue(A B)` with A and B already in the 8x8 kernels' layout, by a buffer variant
/// (block8 or block8-sg), B and C laid out as `layout` says.
#[allow(clippy::too_many_arguments)]
pub async fn dispatch_grids(
    ctx: &Context,
    variant: Variant,
    shape: Shape,
    a: Grid<'_>,
    b: Grid<'_>,
    c: (usize, usize),
    epilogue: Epilogue,
    layout: GridLayout,
    out: (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
) -> Result<Vec<Dispatch>> {
    if !matches!(variant, Variant::Block8 | Variant::Block8Sg) {
        return Err(Error::Config(format!(
            "{} cannot read pre-packed operands",
            variant.name()
        )));
    }
    let row = Operand::row_major(0, 4);
    if let Some(why) = variant.unsupported(ctx, shape, row, row) {
        return Err(Error::Config(format!(
            "matmul variant {}: {why}",
            variant.name()
        )));
    }
    let mut p = params(shape, row, row, c, epilogue);
    let bt = matches!(layout, GridLayout::NchwT(_));
    match layout {
        GridLayout::Plain => {}
        GridLayout::Nchw(plane) => {
            p.flags |= FLAG_NCHW;
            p.c_rs = plane as u32;
        }
        GridLayout::NchwT(plane) => {
            let q = |v: usize| v % 4 == 0;
            if variant != Variant::Block8Sg || !q(plane) || !q(shape.n) || !q(c.0) {
                return Err(Error::Config(format!(
                    "matmul {shape:?}: a transposed NCHW store needs block8-sg and P, n and \
                     C's offset multiples of 4"
                )));
            }
            p.flags |= FLAG_NCHW_T;
            p.c_rs = plane as u32;
        }
    }
    let p = Params {
        a_off: a.offset as u32,
        a_rs: a.row_stride as u32,
        a_cs: shape.k.div_ceil(4).max(1) as u32,
        b_off: b.offset as u32,
        b_rs: b.row_stride as u32,
        b_cs: b.cols as u32,
        ..p
    };
    launch_block8(
        ctx,
        variant,
        bt,
        shape,
        p,
        a.buffer.as_entire_binding(),
        b.buffer.as_entire_binding(),
        out,
    )
    .await
}

/// Flags of matmul_common.wgsl: store C in NCHW order, from rows of positions or of channels
/// (see [`GridLayout`]).
const FLAG_NCHW: u32 = 8;
const FLAG_NCHW_T: u32 = 16;

/// The vec4 entry point and its parameters in vec4 units, when `a` and `b` allow one: see the
/// requirements in matmul_vec4.wgsl's header.
fn vec4_layout(shape: Shape, a: Operand, b: Operand) -> Option<(&'static str, Params)> {
    let q = |v: usize| v % 4 == 0;
    let mut p = Params {
        m: shape.m as u32,
        n: shape.n as u32,
        kdim: shape.k as u32,
        ..Params::default()
    };
    if a.col_stride == 1 && b.row_stride == 1 {
        // nt: rows of A and columns of B both run along k.
        if !(q(shape.k) && q(a.offset) && q(a.row_stride) && q(b.offset) && q(b.col_stride)) {
            return None;
        }
        (p.a_off, p.a_rs) = ((a.offset / 4) as u32, (a.row_stride / 4) as u32);
        (p.b_off, p.b_rs) = ((b.offset / 4) as u32, (b.col_stride / 4) as u32);
        return Some(("nt", p));
    }
    if a.row_stride == 1 && b.col_stride == 1 {
        // tn: A runs along i and B along j, one vec4 of each per k.
        let aligned = q(a.offset) && q(a.col_stride) && q(b.offset) && q(b.row_stride);
        if !(q(shape.m) && q(shape.n) && aligned) {
            return None;
        }
        (p.a_off, p.a_rs) = ((a.offset / 4) as u32, (a.col_stride / 4) as u32);
        (p.b_off, p.b_rs) = ((b.offset / 4) as u32, (b.row_stride / 4) as u32);
        return Some(("tn", p));
    }
    if a.col_stride == 1 && b.col_stride == 1 {
        // nn: A read as floats, B as vec4 along j.
        if !(q(shape.n) && q(b.offset) && q(b.row_stride)) {
            return None;
        }
        (p.a_off, p.a_rs) = (a.offset as u32, a.row_stride as u32);
        (p.b_off, p.b_rs) = ((b.offset / 4) as u32, (b.row_stride / 4) as u32);
        return Some(("nn", p));
    }
    None
}

/// As [`dispatch`] with the kernel chosen by the caller.
///
/// # Errors
/// [`Error::Config`] when the variant cannot compute this product here
/// ([`Variant::unsupported`] says why).
#[allow(clippy::too_many_arguments)]
pub async fn dispatch_variant(
    ctx: &Context,
    variant: Variant,
    shape: Shape,
    a: Operand,
    b: Operand,
    c: (usize, usize),
    epilogue: Epilogue,
    buffers: Buffers<'_>,
) -> Result<Vec<Dispatch>> {
    log::trace!(
        "matmul {shape:?} A {a:?} B {b:?}: {} kernel",
        variant.name()
    );
    if let Some(why) = variant.unsupported(ctx, shape, a, b) {
        return Err(Error::Config(format!(
            "matmul variant {} cannot compute {shape:?} with A {a:?} and B {b:?}: {why}",
            variant.name()
        )));
    }
    let strided = params(shape, a, b, c, epilogue);
    let all = [buffers.a, buffers.b, buffers.bias, buffers.mask, buffers.c];
    let groups = [div_ceil(shape.n, TILE_N), div_ceil(shape.m, TILE_M), 1];
    match variant {
        Variant::Strided => Ok(vec![Dispatch::new(
            ctx,
            kernel(ctx, &strided).await?,
            Some(ctx.uniform("matmul params", &strided)),
            &all,
            groups,
        )]),
        Variant::Vec4 => {
            let (entry, p) = vec4_layout(shape, a, b)
                .expect("internal error: unsupported() admitted a layout vec4 cannot read");
            // Output and epilogue fields are the same in both kernels, in floats.
            let p = Params {
                flags: strided.flags,
                c_off: strided.c_off,
                c_rs: strided.c_rs,
                bias_off: strided.bias_off,
                mask_off: strided.mask_off,
                mask_rs: strided.mask_rs,
                ..p
            };
            let kernel = ctx
                .pipelines()
                .get_with(ctx, &vec4_source(entry), &specialize(&p))
                .await?;
            Ok(vec![Dispatch::new(
                ctx,
                kernel,
                Some(ctx.uniform("matmul params", &p)),
                &[all[0], all[1], all[2], all[3], all[4], buffers.a],
                groups,
            )])
        }
        _ => block8(ctx, variant, shape, a, b, strided, buffers).await,
    }
}

/// Invocations per workgroup of matmul_reduce.wgsl (`@workgroup_size(64)`).
const REDUCE_WG: usize = 64;

const REDUCE: KernelSource = KernelSource {
    name: "matmul_reduce",
    wgsl: concat!(
        include_str!("../../../shaders/matmul_common.wgsl"),
        include_str!("../../../shaders/matmul_reduce.wgsl")
    ),
    entry: "main",
    bindings: &[
        Binding::Uniform,
        Binding::Read, // partial sums
        Binding::Read, // (unused)
        Binding::Read, // bias
        Binding::Read, // mask
        Binding::ReadWrite,
    ],
};

/// The product dispatch of an 8x8 variant, given `p` with its operand fields set and the bound
/// operands: picks the block layout and split-K for the shape, and appends the reduction when
/// the k loop is split.
///
/// Layout: the subgroup kernels always take 16x64 or 32x64 tiles. The 8x8 ones take the wide
/// layout for C of at most 32 rows, the tall one for C of at most 32 columns, else 64x64
/// tiles. Split-K
/// when the grid has under 16 workgroups (4 on a CPU adapter) and k is long (at least 32 steps
/// of four): slices of at least 16 steps, about 32 workgroups in all, so that every core has
/// several to run.
#[allow(clippy::too_many_arguments)]
async fn launch_block8(
    ctx: &Context,
    variant: Variant,
    bt: bool,
    shape: Shape,
    mut p: Params,
    a_res: wgpu::BindingResource<'_>,
    b_res: wgpu::BindingResource<'_>,
    (bias, mask, c): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
) -> Result<Vec<Dispatch>> {
    // Wide: a workgroup's 64 invocations side by side on one block row (8 rows by 512
    // columns); tall: on one block column. The subgroup kernels' tiles need neither.
    let (layout, gx, gy) = if variant.subgroups() {
        (
            0,
            shape.n.div_ceil(BLOCK8_TILE),
            shape.m.div_ceil(variant.sg_rows()),
        )
    } else if shape.m <= 32 {
        (1, shape.n.div_ceil(64 * 8), shape.m.div_ceil(8))
    } else if shape.n <= 32 && !variant.subgroups() {
        (2, shape.n.div_ceil(8), shape.m.div_ceil(512))
    } else {
        (
            0,
            shape.n.div_ceil(BLOCK8_TILE),
            shape.m.div_ceil(BLOCK8_TILE),
        )
    };
    let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
    if gx > max || gy > max {
        return Err(Error::Config(format!(
            "matmul {shape:?}: a {gx} x {gy} grid exceeds {max} workgroups per dimension"
        )));
    }
    // steps >= 1 (a_cs is at least one texel).
    let steps = p.a_cs as usize;
    // A CPU adapter (llvmpipe) runs workgroups on a few cores, each workgroup a long loop: four
    // keep two cores busy, and the reduction would cost more than it saves. A GPU wants many.
    let enough = if ctx.info.device_type == wgpu::DeviceType::Cpu {
        4
    } else {
        16
    };
    let wanted = if gx * gy < enough && steps >= 32 {
        32usize.div_ceil(gx * gy).min(steps / 16)
    } else {
        1
    };
    let fits = (4 * wanted * shape.m * shape.n) as u64 <= ctx.max_binding_bytes();
    let per = steps.div_ceil(if fits { wanted } else { 1 });
    // Equal slices of `per` steps; the last may be shorter.
    let split = steps.div_ceil(per);
    p.block_layout = layout;
    p.split = split as u32;
    p.k_per_split = per as u32;

    let source = block8_source(variant, bt);
    // The subgroup kernels' block height, besides the epilogue.
    let constants = |p: &Params| {
        let mut c = specialize(p).to_vec();
        if variant.subgroups() {
            c.push(("SG_ROWS", variant.sg_rows() as u32));
        }
        c
    };
    let groups = [gx as u32, gy as u32, split as u32];
    if split == 1 {
        let kernel = ctx
            .pipelines()
            .get_with(ctx, &source, &constants(&p))
            .await?;
        let resources = vec![
            a_res,
            b_res,
            bias.as_entire_binding(),
            mask.as_entire_binding(),
            c.as_entire_binding(),
        ];
        let params = Some(ctx.uniform("matmul params", &p));
        return Ok(vec![Dispatch::bind(ctx, kernel, params, resources, groups)]);
    }
    // Slices store raw sums as a [split m, n] matrix; the reduction applies the epilogue.
    let part = ctx.storage("split-K partial sums", split * shape.m * shape.n)?;
    let slices = Params {
        flags: 0,
        c_off: 0,
        c_rs: shape.n as u32,
        ..p
    };
    let resources = vec![
        a_res,
        b_res,
        bias.as_entire_binding(),
        mask.as_entire_binding(),
        part.as_entire_binding(),
    ];
    let params = Some(ctx.uniform("matmul params", &slices));
    let kernel = ctx
        .pipelines()
        .get_with(ctx, &source, &constants(&slices))
        .await?;
    let product = Dispatch::bind(ctx, kernel, params, resources, groups);
    let reduce = ctx
        .pipelines()
        .get_with(ctx, &REDUCE, &specialize(&p))
        .await?;
    let params = Some(ctx.uniform("matmul reduce params", &p));
    let grid = [div_ceil(shape.n.div_ceil(4), REDUCE_WG), shape.m as u32, 1];
    if grid[1] as usize > max {
        return Err(Error::Config(format!(
            "matmul {shape:?}: too many rows to reduce"
        )));
    }
    let reduce = Dispatch::new(ctx, reduce, params, &[&part, &part, bias, mask, c], grid);
    Ok(vec![product, reduce])
}

/// Pack A, pack B, multiply: the three dispatches of a block8 or tex8 variant.
async fn block8(
    ctx: &Context,
    variant: Variant,
    shape: Shape,
    a: Operand,
    b: Operand,
    strided: Params,
    buffers: Buffers<'_>,
) -> Result<Vec<Dispatch>> {
    let packed = Packed::of(shape);
    let a_pack = pack::Pack {
        rows: shape.m as u32,
        cols: shape.k as u32,
        off: a.offset as u32,
        rs: a.row_stride as u32,
        cs: a.col_stride as u32,
        width: packed.a_width,
        height: packed.a_rows,
        ..Default::default()
    };
    let b_pack = pack::Pack {
        rows: shape.k as u32,
        cols: shape.n as u32,
        off: b.offset as u32,
        rs: b.row_stride as u32,
        cs: b.col_stride as u32,
        width: packed.b_width,
        height: packed.b_rows,
        ..Default::default()
    };
    let epilogue = (buffers.bias, buffers.mask, buffers.c);
    // Packed grids start at 0 with rows of their own width.
    let mut p = Params {
        a_off: 0,
        a_rs: packed.a_width,
        a_cs: packed.a_width,
        b_off: 0,
        b_rs: packed.b_width,
        b_cs: packed.b_width,
        ..strided
    };
    let mut out = Vec::with_capacity(3);
    if variant.textures() {
        let ta = pack::texture(ctx, "packed A", &a_pack);
        let tb = pack::texture(ctx, "packed B", &b_pack);
        out.push(pack::to_texture(ctx, &a_pack, buffers.a, &ta).await?);
        out.push(pack::to_texture(ctx, &b_pack, buffers.b, &tb).await?);
        let (va, vb) = (
            ta.create_view(&Default::default()),
            tb.create_view(&Default::default()),
        );
        let (a_res, b_res) = (
            wgpu::BindingResource::TextureView(&va),
            wgpu::BindingResource::TextureView(&vb),
        );
        let launch = launch_block8(ctx, variant, false, shape, p, a_res, b_res, epilogue);
        out.extend(launch.await?);
        return Ok(out);
    }
    // Buffers: read an operand in place when its rows are already aligned vec4s.
    let q = |v: usize| v % 4 == 0;
    let a_direct = a.col_stride == 1 && q(a.offset) && q(a.row_stride) && q(shape.k);
    // B's rows are read up to 4 ceil(k / 4): past the operand unless k is a multiple of 4.
    let b_direct = b.col_stride == 1 && q(b.offset) && q(b.row_stride) && q(shape.n) && q(shape.k);
    let (ba, bb);
    let a_res = if a_direct {
        (p.a_off, p.a_rs) = ((a.offset / 4) as u32, (a.row_stride / 4) as u32);
        buffers.a.as_entire_binding()
    } else {
        ba = ctx.storage("packed A", 4 * (packed.a_width * packed.a_rows) as usize)?;
        out.push(pack::to_buffer(ctx, &a_pack, buffers.a, &ba).await?);
        ba.as_entire_binding()
    };
    // The subgroup kernel also reads B^T in place (sg_bt), when its rows (B's columns) are
    // aligned vec4s along k.
    let b_direct_t = variant.buffer_subgroups()
        && !b_direct
        && b.row_stride == 1
        && q(b.offset)
        && q(b.col_stride)
        && q(shape.k);
    let b_res = if b_direct {
        (p.b_off, p.b_rs) = ((b.offset / 4) as u32, (b.row_stride / 4) as u32);
        p.b_cs = (shape.n / 4) as u32;
        buffers.b.as_entire_binding()
    } else if b_direct_t {
        (p.b_off, p.b_rs) = ((b.offset / 4) as u32, (b.col_stride / 4) as u32);
        buffers.b.as_entire_binding()
    } else {
        bb = ctx.storage("packed B", 4 * (packed.b_width * packed.b_rows) as usize)?;
        out.push(pack::to_buffer(ctx, &b_pack, buffers.b, &bb).await?);
        bb.as_entire_binding()
    };
    let launch = launch_block8(ctx, variant, b_direct_t, shape, p, a_res, b_res, epilogue);
    out.extend(launch.await?);
    Ok(out)
}

/// The shader's parameter block for one product.
pub fn params(shape: Shape, a: Operand, b: Operand, c: (usize, usize), e: Epilogue) -> Params {
    let flags = e.bias.map_or(0, |_| 1) | if e.relu { 2 } else { 0 } | e.mask.map_or(0, |_| 4);
    Params {
        m: shape.m as u32,
        n: shape.n as u32,
        kdim: shape.k as u32,
        flags,
        a_off: a.offset as u32,
        a_rs: a.row_stride as u32,
        a_cs: a.col_stride as u32,
        b_off: b.offset as u32,
        b_rs: b.row_stride as u32,
        b_cs: b.col_stride as u32,
        c_off: c.0 as u32,
        c_rs: c.1 as u32,
        bias_off: e.bias.unwrap_or(0) as u32,
        mask_off: e.mask.map_or(0, |m| m.0) as u32,
        mask_rs: e.mask.map_or(0, |m| m.1) as u32,
        ..Params::default()
    }
}
