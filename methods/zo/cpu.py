"""The CPU kernel of z: Philox4x32-10 + Box-Muller, compiled with numba, bit for bit Triton's `tl.randn4x`.

z of a parameter is a pure function of (key, element index): z[4j + c] is component c of Triton's
`randn4x(key, j)` (`methods/zo/gpu.py` draws the same stream on CUDA). The Philox rounds, the uint ->
uniform map and the Box-Muller pairing are transcribed from `triton/language/random.py`; log, sin and
cos are float32 polynomials (Cephes' logf, sinf, cosf), written out here so that the loop vectorizes
with no vector math library (numba's pip wheels bring none). They round within a few float32 ulps of
numpy's and CUDA's, which is the only difference between the two devices' z (`tests/test_directions.py`
states the tolerance).

Why numba (measured on a 2-core Intel Xeon with AVX-512 and AMX, one thread, 4M values):
torch's `normal_` 2.45 ns a value; this kernel 0.94 ns with 512-bit vectors (1.46 ns where LLVM keeps
to 256-bit ones, its default for this CPU; 4.0 ns with one Philox call per value, Triton's `randn`
convention, which is why the stream is `randn4x`'s). A counter-based stream in torch ops costs a pass
over memory per Philox operation (10 rounds of about 8 ops); inductor (`torch.compile`) has no
uint32 Philox of its own on CPU and compiles per shape. numba compiles the loop once (cached on disk)
for whatever the CPU offers: AVX2 or AVX-512.
"""
from __future__ import annotations

import math
import os


def _prefer_512_bit() -> None:
    """LLVM keeps to 256-bit vectors on Intel AVX-512 CPUs unless told otherwise; the Philox loop is 1.6x
    faster with 512-bit ones (measured above). Set before numba is imported, and only where the CPU has
    AVX-512 and the user has not chosen features themselves."""
    if "NUMBA_CPU_FEATURES" in os.environ:
        return
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        os.environ["NUMBA_CPU_FEATURES"] = features + ",-prefer-256-bit"


_prefer_512_bit()

from numba import float32, int32, njit, types, uint16, uint32, uint64  # noqa: E402  (after the CPU features are set)
from numba.extending import intrinsic  # noqa: E402

OPTIONS = dict(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})


@intrinsic
def _bits(typingctx, x):
    """The int32 with a float32's bits (a free register move; it keeps the loop vectorizable)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))
    return types.int32(types.float32), codegen


@intrinsic
def _float(typingctx, x):
    """The float32 with an int32's bits."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


@njit(inline="always")
def _philox(k0, k1, c0):
    """Philox4x32-10 on counter (c0, 0, 0, 0) with key (k0, k1): triton.language.random.philox_impl."""
    c1 = uint32(0)
    c2 = uint32(0)
    c3 = uint32(0)
    for _ in range(10):
        p0 = uint64(0xD2511F53) * uint64(c0)
        p2 = uint64(0xCD9E8D57) * uint64(c2)
        n0 = uint32(p2 >> uint64(32)) ^ c1 ^ k0
        n2 = uint32(p0 >> uint64(32)) ^ c3 ^ k1
        c1 = uint32(p2)
        c3 = uint32(p0)
        c0 = n0
        c2 = n2
        k0 = uint32(k0 + uint32(0x9E3779B9))
        k1 = uint32(k1 + uint32(0xBB67AE85))
    return c0, c1, c2, c3


@njit(inline="always")
def _uniform(x):
    """triton.language.random.uint_to_uniform_float: [0, 1) from the int32 bits."""
    xi = int32(x)
    xi = ~xi if xi < 0 else xi
    return float32(xi) * float32(4.6566127342e-10)


@njit(inline="always")
def _log(x):
    """Natural log of a positive normal float32 (Cephes logf)."""
    b = _bits(x)
    e = float32(((b >> 23) & 0xFF) - 126)
    m = _float((b & 0x7FFFFF) | 0x3F000000)  # x = m 2^e, m in [0.5, 1)
    small = m < float32(0.707106781186547524)
    e = e - float32(1.0) if small else e
    m = m + m - float32(1.0) if small else m - float32(1.0)
    z = m * m
    y = ((((((((float32(7.0376836292e-2) * m - float32(1.1514610310e-1)) * m + float32(1.1676998740e-1)) * m
              - float32(1.2420140846e-1)) * m + float32(1.4249322787e-1)) * m - float32(1.6668057665e-1)) * m
           + float32(2.0000714765e-1)) * m - float32(2.4999993993e-1)) * m + float32(3.3333331174e-1)) * m * z
    y = y + float32(-2.12194440e-4) * e - float32(0.5) * z
    return m + y + float32(0.693359375) * e


@njit(inline="always")
def _sincos(th):
    """(sin, cos) of th in [0, 2 pi): reduced to [-pi/4, pi/4] by quadrant (Cody-Waite, three parts of pi/2),
    Cephes sinf/cosf polynomials there."""
    qi = int32(th * float32(0.636619772367581343) + float32(0.5))
    q = float32(qi)
    x = ((th - q * float32(1.5703125)) - q * float32(4.837512969970703125e-4)) - q * float32(7.549789948768648e-8)
    z = x * x
    s = x + x * z * (float32(-1.6666654611e-1) + z * (float32(8.3321608736e-3) + z * float32(-1.9515295891e-4)))
    c = (float32(1.0) - float32(0.5) * z
         + z * z * (float32(4.166664568298827e-2) + z * (float32(-1.388731625493765e-3) + z * float32(2.443315711809948e-5))))
    swap = (qi & 1) != 0
    cq = s if swap else c
    sq = c if swap else s
    cq = -cq if ((qi + 1) & 2) != 0 else cq
    sq = -sq if (qi & 2) != 0 else sq
    return sq, cq


@njit(inline="always")
def _pair(ua, ub):
    """triton.language.random.pair_uniform_to_normal: Box-Muller, (r cos, r sin)."""
    u1 = max(float32(1e-7), ua)
    th = float32(6.283185307179586) * ub
    r = math.sqrt(float32(-2.0) * _log(u1))
    s, c = _sincos(th)
    return r * c, r * s


@njit(inline="always")
def _quad(k0, k1, j):
    """randn4x(key, j): the four z values of counters 4j .. 4j + 3."""
    a, b, c, d = _philox(k0, k1, uint32(j))
    n1, n2 = _pair(_uniform(a), _uniform(b))
    n3, n4 = _pair(_uniform(c), _uniform(d))
    return n1, n2, n3, n4


@njit(inline="always")
def _keys(key):
    return uint32(key & 0xFFFFFFFF), uint32((key >> 32) & 0xFFFFFFFF)


@njit(inline="always")
def _span(n, start):
    """(values before the first whole quad, whole quads, the first whole quad) of counters start .. start + n."""
    first = (start + 3) // 4
    head = min(n, 4 * first - start)
    return head, (n - head) // 4, first


@njit(inline="always")
def _edge(e, lo, hi):
    """The e-th index outside [lo, hi): the at most 3 values before the whole quads and 3 after them."""
    return e if e < lo else hi + e - lo


@njit(inline="always")
def _z_at(k0, k1, counter):
    """One value of the stream (the edges of a range: a whole quad computed for it)."""
    q = _quad(k0, k1, counter // 4)
    return q[counter % 4]


# The whole-quad loops take views that start on a quad, so the vectorizer sees plain unit-stride indices
# (with an offset added to every index, LLVM left the loop scalar: 6.5 against 0.94 ns a value, measured).

@njit(inline="always")
def _fill_quads(out, k0, k1, first):
    for j in range(out.shape[0] // 4):
        n1, n2, n3, n4 = _quad(k0, k1, first + j)
        out[4 * j] = n1
        out[4 * j + 1] = n2
        out[4 * j + 2] = n3
        out[4 * j + 3] = n4


@njit(inline="always")
def _pair_quads(theta, plus, minus, k0, k1, first, eps):
    for j in range(theta.shape[0] // 4):
        n1, n2, n3, n4 = _quad(k0, k1, first + j)
        o = 4 * j
        plus[o], minus[o] = theta[o] + eps * n1, theta[o] - eps * n1
        plus[o + 1], minus[o + 1] = theta[o + 1] + eps * n2, theta[o + 1] - eps * n2
        plus[o + 2], minus[o + 2] = theta[o + 2] + eps * n3, theta[o + 2] - eps * n3
        plus[o + 3], minus[o + 3] = theta[o + 3] + eps * n4, theta[o + 3] - eps * n4


@njit(inline="always")
def _pair_scaled_quads(theta, scale, plus, minus, k0, k1, first, eps):
    for j in range(theta.shape[0] // 4):
        n1, n2, n3, n4 = _quad(k0, k1, first + j)
        o = 4 * j
        d1, d2, d3, d4 = eps * n1 * scale[o], eps * n2 * scale[o + 1], eps * n3 * scale[o + 2], eps * n4 * scale[o + 3]
        plus[o], minus[o] = theta[o] + d1, theta[o] - d1
        plus[o + 1], minus[o + 1] = theta[o + 1] + d2, theta[o + 1] - d2
        plus[o + 2], minus[o + 2] = theta[o + 2] + d3, theta[o + 2] - d3
        plus[o + 3], minus[o + 3] = theta[o + 3] + d4, theta[o + 3] - d4


@njit(inline="always")
def _axpy_quads(theta, k0, k1, first, keep, coeff):
    for j in range(theta.shape[0] // 4):
        n1, n2, n3, n4 = _quad(k0, k1, first + j)
        o = 4 * j
        theta[o] = keep * theta[o] - coeff * n1
        theta[o + 1] = keep * theta[o + 1] - coeff * n2
        theta[o + 2] = keep * theta[o + 2] - coeff * n3
        theta[o + 3] = keep * theta[o + 3] - coeff * n4


@njit(**OPTIONS)
def fill(out, key, start):
    """out[i] = z[start + i] of the stream `key` (a 64-bit int); out is a contiguous float32 vector."""
    k0, k1 = _keys(key)
    n = out.shape[0]
    head, whole, first = _span(n, start)
    lo, hi = head, head + 4 * whole
    _fill_quads(out[lo:hi], k0, k1, first)
    for e in range(n - (hi - lo)):
        i = _edge(e, lo, hi)
        out[i] = _z_at(k0, k1, start + i)


@njit(**OPTIONS)
def pair(theta, scale, plus, minus, key, start, eps):
    """plus = theta + eps z s, minus = theta - eps z s (s = scale, or 1 where scale is empty): both probes of
    the dual forward in one pass, z never stored."""
    k0, k1 = _keys(key)
    n = theta.shape[0]
    scaled = scale.shape[0] == n
    head, whole, first = _span(n, start)
    lo, hi = head, head + 4 * whole
    if scaled:
        _pair_scaled_quads(theta[lo:hi], scale[lo:hi], plus[lo:hi], minus[lo:hi], k0, k1, first, eps)
    else:
        _pair_quads(theta[lo:hi], plus[lo:hi], minus[lo:hi], k0, k1, first, eps)
    for e in range(n - (hi - lo)):
        i = _edge(e, lo, hi)
        d = eps * _z_at(k0, k1, start + i) * (scale[i] if scaled else float32(1.0))
        plus[i] = theta[i] + d
        minus[i] = theta[i] - d


@njit(**OPTIONS)
def axpy(theta, key, start, keep, coeff):
    """theta = keep theta - coeff z, in place: the MeZO update (keep = 1 - decay) in one pass, z never stored."""
    k0, k1 = _keys(key)
    n = theta.shape[0]
    head, whole, first = _span(n, start)
    lo, hi = head, head + 4 * whole
    _axpy_quads(theta[lo:hi], k0, k1, first, keep, coeff)
    for e in range(n - (hi - lo)):
        i = _edge(e, lo, hi)
        theta[i] = keep * theta[i] - coeff * _z_at(k0, k1, start + i)


@njit(inline="always")
def _bf16(x):
    """float32 -> bfloat16 bits, round to nearest even (torch's cast; weights are finite)."""
    b = _bits(x)
    return uint16(uint32(b + 0x7FFF + ((b >> 16) & 1)) >> uint32(16))


@njit(inline="always")
def _pair_bf16_quads(theta, scale, scaled, plus, minus, k0, k1, first, eps):
    for j in range(theta.shape[0] // 4):
        n1, n2, n3, n4 = _quad(k0, k1, first + j)
        o = 4 * j
        d1, d2, d3, d4 = eps * n1, eps * n2, eps * n3, eps * n4
        if scaled:
            d1, d2, d3, d4 = d1 * scale[o], d2 * scale[o + 1], d3 * scale[o + 2], d4 * scale[o + 3]
        plus[o], minus[o] = _bf16(theta[o] + d1), _bf16(theta[o] - d1)
        plus[o + 1], minus[o + 1] = _bf16(theta[o + 1] + d2), _bf16(theta[o + 1] - d2)
        plus[o + 2], minus[o + 2] = _bf16(theta[o + 2] + d3), _bf16(theta[o + 2] - d3)
        plus[o + 3], minus[o + 3] = _bf16(theta[o + 3] + d4), _bf16(theta[o + 3] - d4)


@njit(**OPTIONS)
def pair_bf16(theta, scale, plus, minus, key, start, eps):
    """`pair` written as bfloat16 bits (uint16 arrays): the float32 probes rounded as a cast would round them,
    for matmuls that run in bf16 (autocast), without a float32 copy of either probe."""
    k0, k1 = _keys(key)
    n = theta.shape[0]
    scaled = scale.shape[0] == n
    head, whole, first = _span(n, start)
    lo, hi = head, head + 4 * whole
    _pair_bf16_quads(theta[lo:hi], scale[lo:hi] if scaled else scale, scaled, plus[lo:hi], minus[lo:hi], k0, k1,
                     first, eps)
    for e in range(n - (hi - lo)):
        i = _edge(e, lo, hi)
        d = eps * _z_at(k0, k1, start + i) * (scale[i] if scaled else float32(1.0))
        plus[i] = _bf16(theta[i] + d)
        minus[i] = _bf16(theta[i] - d)


@njit(inline="always")
def _hizoo_one(theta, scale, o, z, keep, coeff, smooth, ac):
    s = scale[o]
    r = z / s
    s = math.sqrt(ac * r * r + (float32(1.0) - smooth) * s * s)
    scale[o] = s
    theta[o] = keep * theta[o] - coeff * z * s


@njit(inline="always")
def _hizoo_quads(theta, scale, k0, k1, first, keep, coeff, smooth, ac):
    for j in range(theta.shape[0] // 4):
        n1, n2, n3, n4 = _quad(k0, k1, first + j)
        o = 4 * j
        _hizoo_one(theta, scale, o, n1, keep, coeff, smooth, ac)
        _hizoo_one(theta, scale, o + 1, n2, keep, coeff, smooth, ac)
        _hizoo_one(theta, scale, o + 2, n3, keep, coeff, smooth, ac)
        _hizoo_one(theta, scale, o + 3, n4, keep, coeff, smooth, ac)


@njit(**OPTIONS)
def hizoo(theta, scale, key, start, keep, coeff, smooth, ac):
    """HiZOO's released update in one pass, in place: S <- sqrt((1 - smooth) S^2 + ac (z / S)^2), then
    theta <- keep theta - coeff z S with the new S (methods/hizoo.py)."""
    k0, k1 = _keys(key)
    n = theta.shape[0]
    head, whole, first = _span(n, start)
    lo, hi = head, head + 4 * whole
    _hizoo_quads(theta[lo:hi], scale[lo:hi], k0, k1, first, keep, coeff, smooth, ac)
    for e in range(n - (hi - lo)):
        i = _edge(e, lo, hi)
        _hizoo_one(theta, scale, i, _z_at(k0, k1, start + i), keep, coeff, smooth, ac)


# -- Rademacher directions (FZOO): r[4j + c] = +1 or -1 by the top bit of word c of philox(key, j), Triton's
# `randint4x(key, j)`; no log, sin or cos, so about a quarter of a Gaussian value's cost.

@njit(inline="always")
def _sign(x):
    return float32(1.0) - float32(2.0) * float32(x >> uint32(31))


@njit(inline="always")
def _signs(k0, k1, j):
    a, b, c, d = _philox(k0, k1, uint32(j))
    return _sign(a), _sign(b), _sign(c), _sign(d)


@njit(inline="always")
def _sign_at(k0, k1, counter):
    q = _signs(k0, k1, counter // 4)
    return q[counter % 4]


@njit(inline="always")
def _probe_sign_quads(theta, plus, k0, k1, first, eps):
    for j in range(theta.shape[0] // 4):
        r1, r2, r3, r4 = _signs(k0, k1, first + j)
        o = 4 * j
        plus[o] = theta[o] + eps * r1
        plus[o + 1] = theta[o + 1] + eps * r2
        plus[o + 2] = theta[o + 2] + eps * r3
        plus[o + 3] = theta[o + 3] + eps * r4


@njit(**OPTIONS)
def probe_signs(theta, plus, key, start, eps):
    """plus = theta + eps r, r the Rademacher stream `key` from counter `start`: one probe in one pass."""
    k0, k1 = _keys(key)
    n = theta.shape[0]
    head, whole, first = _span(n, start)
    lo, hi = head, head + 4 * whole
    _probe_sign_quads(theta[lo:hi], plus[lo:hi], k0, k1, first, eps)
    for e in range(n - (hi - lo)):
        i = _edge(e, lo, hi)
        plus[i] = theta[i] + eps * _sign_at(k0, k1, start + i)


@njit(inline="always")
def _axpy_sign_quads(theta, k0, k1, first, coeff):
    for j in range(theta.shape[0] // 4):
        r1, r2, r3, r4 = _signs(k0, k1, first + j)
        o = 4 * j
        theta[o] = theta[o] - coeff * r1
        theta[o + 1] = theta[o + 1] - coeff * r2
        theta[o + 2] = theta[o + 2] - coeff * r3
        theta[o + 3] = theta[o + 3] - coeff * r4


SIGN_BLOCK = 4096  # values a block: theta's block stays in the L1 cache while every probe's signs pass over it


@njit(**OPTIONS)
def axpy_signs(theta, keys, coeffs, start, keep):
    """theta = keep theta, then theta -= coeffs[k] r_k for k in order (r_k the stream keys[k]): FZOO's update
    over all its probes, theta read and written once (a block at a time), the signs never stored."""
    n = theta.shape[0]
    head, whole, first = _span(n, start)
    lo, hi = head, head + 4 * whole
    for b in range(lo, hi, SIGN_BLOCK):
        e = min(b + SIGN_BLOCK, hi)
        if keep != float32(1.0):
            for o in range(b, e):
                theta[o] = keep * theta[o]
        for k in range(keys.shape[0]):
            k0, k1 = _keys(keys[k])
            _axpy_sign_quads(theta[b:e], k0, k1, first + (b - lo) // 4, coeffs[k])
    for e in range(n - (hi - lo)):
        i = _edge(e, lo, hi)
        theta[i] = keep * theta[i]
        for k in range(keys.shape[0]):
            k0, k1 = _keys(keys[k])
            theta[i] = theta[i] - coeffs[k] * _sign_at(k0, k1, start + i)
