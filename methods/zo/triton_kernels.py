"""Triton kernels of z (`methods/zo/gpu.py` calls them): module-level, as Triton resolves the functions a
kernel calls by their global names. Imported only where Triton is (CUDA wheels of torch bring it)."""
import triton
import triton.language as tl


@triton.jit
def _quads(key, start, BLOCK: tl.constexpr):
    """(the program's quads' z, component by component, and where component 0 of each lands)."""
    j = start // 4 + tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    n1, n2, n3, n4 = tl.randn4x(key, j.to(tl.uint32))
    return n1, n2, n3, n4, j * 4 - start

@triton.jit
def _pair_one(theta, scale, plus, minus, at, z, n, eps, SCALED: tl.constexpr):
    inside = (at >= 0) & (at < n)
    x = tl.load(theta + at, mask=inside).to(tl.float32)
    d = eps * z
    if SCALED:
        d = d * tl.load(scale + at, mask=inside).to(tl.float32)
    tl.store(plus + at, x + d, mask=inside)
    tl.store(minus + at, x - d, mask=inside)

@triton.jit
def _axpy_one(theta, at, z, n, keep, coeff):
    inside = (at >= 0) & (at < n)
    x = tl.load(theta + at, mask=inside).to(tl.float32)
    tl.store(theta + at, keep * x - coeff * z, mask=inside)

@triton.jit
def fill(out, key, start, n, BLOCK: tl.constexpr):
    n1, n2, n3, n4, at = _quads(key, start, BLOCK)
    tl.store(out + at, n1, mask=(at >= 0) & (at < n))
    tl.store(out + at + 1, n2, mask=(at + 1 >= 0) & (at + 1 < n))
    tl.store(out + at + 2, n3, mask=(at + 2 >= 0) & (at + 2 < n))
    tl.store(out + at + 3, n4, mask=(at + 3 >= 0) & (at + 3 < n))

@triton.jit
def pair(theta, scale, plus, minus, key, start, n, eps, SCALED: tl.constexpr, BLOCK: tl.constexpr):
    n1, n2, n3, n4, at = _quads(key, start, BLOCK)
    _pair_one(theta, scale, plus, minus, at, n1, n, eps, SCALED)
    _pair_one(theta, scale, plus, minus, at + 1, n2, n, eps, SCALED)
    _pair_one(theta, scale, plus, minus, at + 2, n3, n, eps, SCALED)
    _pair_one(theta, scale, plus, minus, at + 3, n4, n, eps, SCALED)

@triton.jit
def axpy(theta, key, start, n, keep, coeff, BLOCK: tl.constexpr):
    n1, n2, n3, n4, at = _quads(key, start, BLOCK)
    _axpy_one(theta, at, n1, n, keep, coeff)
    _axpy_one(theta, at + 1, n2, n, keep, coeff)
    _axpy_one(theta, at + 2, n3, n, keep, coeff)
    _axpy_one(theta, at + 3, n4, n, keep, coeff)


@triton.jit
def _hizoo_one(theta, scale, at, z, n, keep, coeff, smooth, ac):
    inside = (at >= 0) & (at < n)
    s = tl.load(scale + at, mask=inside, other=1.0).to(tl.float32)
    r = z / s
    s = tl.sqrt(ac * r * r + (1.0 - smooth) * s * s)
    tl.store(scale + at, s, mask=inside)
    x = tl.load(theta + at, mask=inside).to(tl.float32)
    tl.store(theta + at, keep * x - coeff * z * s, mask=inside)


@triton.jit
def hizoo(theta, scale, key, start, n, keep, coeff, smooth, ac, BLOCK: tl.constexpr):
    n1, n2, n3, n4, at = _quads(key, start, BLOCK)
    _hizoo_one(theta, scale, at, n1, n, keep, coeff, smooth, ac)
    _hizoo_one(theta, scale, at + 1, n2, n, keep, coeff, smooth, ac)
    _hizoo_one(theta, scale, at + 2, n3, n, keep, coeff, smooth, ac)
    _hizoo_one(theta, scale, at + 3, n4, n, keep, coeff, smooth, ac)


@triton.jit
def _signs(key, start, BLOCK: tl.constexpr):
    """(the program's quads' Rademacher signs, component by component: the top bit of each word of
    `randint4x`, the Philox output `randn4x` maps to normals; where component 0 of each lands)."""
    j = start // 4 + tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    a, b, c, d = tl.randint4x(key, j.to(tl.uint32))
    one = 1.0
    return (one - 2.0 * (a.to(tl.uint32, bitcast=True) >> 31).to(tl.float32),
            one - 2.0 * (b.to(tl.uint32, bitcast=True) >> 31).to(tl.float32),
            one - 2.0 * (c.to(tl.uint32, bitcast=True) >> 31).to(tl.float32),
            one - 2.0 * (d.to(tl.uint32, bitcast=True) >> 31).to(tl.float32), j * 4 - start)


@triton.jit
def _probe_one(theta, plus, at, r, n, eps):
    inside = (at >= 0) & (at < n)
    x = tl.load(theta + at, mask=inside).to(tl.float32)
    tl.store(plus + at, x + eps * r, mask=inside)


@triton.jit
def probe_signs(theta, plus, key, start, n, eps, BLOCK: tl.constexpr):
    r1, r2, r3, r4, at = _signs(key, start, BLOCK)
    _probe_one(theta, plus, at, r1, n, eps)
    _probe_one(theta, plus, at + 1, r2, n, eps)
    _probe_one(theta, plus, at + 2, r3, n, eps)
    _probe_one(theta, plus, at + 3, r4, n, eps)


@triton.jit
def _sub_one(theta, at, r, n, coeff):
    inside = (at >= 0) & (at < n)
    x = tl.load(theta + at, mask=inside).to(tl.float32)
    tl.store(theta + at, x - coeff * r, mask=inside)


@triton.jit
def _scale_one(theta, at, n, keep):
    inside = (at >= 0) & (at < n)
    x = tl.load(theta + at, mask=inside).to(tl.float32)
    tl.store(theta + at, keep * x, mask=inside)


@triton.jit
def axpy_signs(theta, key, start, n, keep, coeff, SCALE: tl.constexpr, BLOCK: tl.constexpr):
    """theta = keep theta (SCALE) - coeff r: one probe's share of FZOO's update (a launch per probe)."""
    r1, r2, r3, r4, at = _signs(key, start, BLOCK)
    if SCALE:
        _scale_one(theta, at, n, keep)
        _scale_one(theta, at + 1, n, keep)
        _scale_one(theta, at + 2, n, keep)
        _scale_one(theta, at + 3, n, keep)
    _sub_one(theta, at, r1, n, coeff)
    _sub_one(theta, at + 1, r2, n, coeff)
    _sub_one(theta, at + 2, r3, n, coeff)
    _sub_one(theta, at + 3, r4, n, coeff)
