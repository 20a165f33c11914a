"""z, the direction of every ZO step: Philox4x32-10 + Box-Muller on the element's counter (Triton's
`tl.randn4x`), the same on the CPU kernel (numba) and the GPU kernel (Triton, run here through its
interpreter on CPU tensors), for any chunking, thread count or block size, and N(0, 1) in distribution.

The CPU kernel's log, sin and cos are its own float32 polynomials; Triton's interpreter computes them with
numpy (CUDA with libdevice). TOLERANCE is what separates the two: measured 4.8e-7 at most on a million
values, each |z| < 5.7."""
import os

import numpy as np
import pytest
import torch
from scipy import stats

from benchmark.core.errors import BenchmarkError
from methods.base import decays, trainable
from methods.zo import ZOEngine, cpu, generators, gpu
from methods.zo.generators import mix

TOLERANCE = 2e-6  # absolute, CPU kernel against Triton's (interpreted) on the same counters
MILLION = 1 << 20
KEY = mix(2026, 7)  # a 63-bit key: both 32-bit halves of Philox's key are in play


def cpu_z(key: int, start: int, n: int) -> np.ndarray:
    out = np.empty(n, np.float32)
    cpu.fill(out, key, start)
    return out


@pytest.fixture
def triton_interpreted():
    """Triton's kernel on CPU tensors: tests/conftest.py sets TRITON_INTERPRET=1 before triton is imported."""
    assert os.environ.get("TRITON_INTERPRET") == "1"


def triton_z(key: int, start: int, n: int, block: int = 4096) -> np.ndarray:
    out = torch.empty(n)
    gpu.fill(out, key, start, block=block)
    return out.numpy()


def test_cpu_kernel_equals_the_triton_kernel_on_a_million_values(triton_interpreted):
    for key, start in ((KEY, 0), (12345, 3), (mix(1, 2, 3), 10**9 + 1)):  # a small key, unaligned counters
        a, b = cpu_z(key, start, MILLION), triton_z(key, start, MILLION)
        assert np.abs(a - b).max() <= TOLERANCE, (key, start)
        assert np.abs(a).max() > 4  # the tails are there, not a clipped stream


def test_triton_z_does_not_depend_on_the_block_size(triton_interpreted):
    assert np.array_equal(triton_z(KEY, 5, 10_000, block=64), triton_z(KEY, 5, 10_000, block=1024))


def test_z_is_the_same_for_any_chunking():
    """Any piece of the stream, from any counter (inside a quad or on its edge), is the whole stream's piece."""
    whole = cpu_z(KEY, 0, 4096)
    for start in (0, 1, 2, 3, 4, 5, 999):
        for n in (0, 1, 2, 3, 4, 5, 7, 100, 1001):
            assert np.array_equal(cpu_z(KEY, start, n), whole[start:start + n]), (start, n)


def test_engine_z_is_the_same_for_any_thread_count(tiny):
    """The engine draws big parameters in chunks shared out among threads: 1 and 2 threads give the same z,
    and each parameter's z is the kernel's stream under the key mix(seed, i)."""
    model = tiny.model
    before = torch.get_num_threads()
    drawn = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            engine = ZOEngine(model, trainable(model), decays(model), generator="philox")
            drawn.append([engine.direction(9, i).flatten().clone() for i in range(len(engine.params))])
    finally:
        torch.set_num_threads(before)
    for i, (one, two) in enumerate(zip(*drawn)):
        assert torch.equal(one, two)
        assert np.array_equal(one.numpy(), cpu_z(mix(9, i), 0, one.numel())), i


def test_z_is_standard_normal_on_ten_million_values():
    z = cpu_z(KEY, 0, 10 * MILLION).astype(np.float64)
    n = len(z)
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / n)
    assert stats.kstest(z[::4], "norm").pvalue > 1e-3  # every component of the quad, one at a time
    assert stats.kstest(z[3::4], "norm").pvalue > 1e-3
    assert stats.kstest(z, "norm").pvalue > 1e-3


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1])


def test_no_correlation_between_neighbouring_counters_parameters_or_steps():
    n = 4 * MILLION
    bound = 5 / np.sqrt(n)
    z = cpu_z(KEY, 0, n + 8)
    for lag in (1, 2, 3, 4, 5):  # within a quad (1-3: one Philox call's four outputs), and across quads
        assert abs(corr(z[:n], z[lag:lag + n])) < bound, lag
    assert abs(corr(z[:n], z[:n] ** 2)) < bound  # no odd dependence (r cos and r sin share r)
    step, i = 41, 3
    here = cpu_z(mix(step, i), 0, n)
    assert abs(corr(here, cpu_z(mix(step, i + 1), 0, n))) < bound  # the next parameter
    assert abs(corr(here, cpu_z(mix(step + 1, i), 0, n))) < bound  # the next step
    assert abs(corr(here ** 2, cpu_z(mix(step + 1, i), 0, n) ** 2)) < bound


def test_auto_resolves_to_philox_here_and_unknown_names_fail_in_one_line():
    assert generators.resolve("auto", "cpu") == "philox"
    assert generators.resolve("torch-normal", "cpu") == "torch-normal"
    with pytest.raises(BenchmarkError, match="one of auto"):
        generators.resolve("mersenne", "cpu")


@pytest.mark.parametrize("kernel", ["cpu", "triton"])
@pytest.mark.parametrize("scaled", [False, True])
def test_fused_probes_and_update_equal_plain_torch_on_the_same_z(kernel, scaled, triton_interpreted):
    """pair (both probes, HiZOO's scale) and axpy (the update with decay) against plain torch on z drawn by
    `fill`, from an unaligned counter: within one float32 rounding of the result."""
    n, start, eps, keep, coeff = 100_003, 6, 1e-3, 0.999, 0.05
    gen = torch.Generator().manual_seed(0)
    theta, scale = torch.randn(n, generator=gen), torch.rand(n, generator=gen) + 0.5
    z = torch.from_numpy(cpu_z(KEY, start, n))
    plus, minus, updated = torch.empty(n), torch.empty(n), theta.clone()
    s = scale if scaled else None
    if kernel == "cpu":
        cpu.pair(theta.numpy(), scale.numpy() if scaled else np.empty(0, np.float32), plus.numpy(), minus.numpy(),
                 KEY, start, np.float32(eps))
        cpu.axpy(updated.numpy(), KEY, start, np.float32(keep), np.float32(coeff))
    else:
        z = torch.from_numpy(triton_z(KEY, start, n))
        gpu.pair(theta, s, plus, minus, KEY, start, eps)
        gpu.axpy(updated, KEY, start, keep, coeff)
    d = eps * z * (scale if scaled else 1)
    ulp = 2 * torch.finfo(torch.float32).eps  # twice float32's rounding of the terms' magnitudes
    assert ((plus - (theta + d)).abs() <= ulp * (theta.abs() + d.abs())).all()
    assert ((minus - (theta - d)).abs() <= ulp * (theta.abs() + d.abs())).all()
    assert ((updated - (keep * theta - coeff * z)).abs() <= ulp * (keep * theta.abs() + coeff * z.abs())).all()
    assert not torch.equal(plus, theta)


@pytest.mark.parametrize("kernel", ["cpu", "triton"])
def test_fused_hizoo_update_equals_its_torch_ops_on_the_same_z(kernel, triton_interpreted):
    """HiZOO's released update fused (S and theta in one pass) against the ops torch-normal runs use
    (methods/hizoo.py), transcribed: S <- sqrt(ac (z/S)^2 + (1 - alpha) S^2), theta <- keep theta - coeff z S."""
    n, start, keep, coeff, alpha, ac = 50_001, 2, 0.99, 0.05, 0.3, 0.7
    gen = torch.Generator().manual_seed(1)
    theta, scale = torch.randn(n, generator=gen), torch.rand(n, generator=gen) + 0.5
    z = torch.from_numpy(cpu_z(KEY, start, n) if kernel == "cpu" else triton_z(KEY, start, n))
    s_new = torch.sqrt(ac * (z / scale) ** 2 + (1 - alpha) * scale ** 2)
    expected = keep * theta - coeff * z * s_new
    t, s = theta.clone(), scale.clone()
    if kernel == "cpu":
        cpu.hizoo(t.numpy(), s.numpy(), KEY, start, *map(np.float32, (keep, coeff, alpha, ac)))
    else:
        gpu.hizoo(t, s, KEY, start, keep, coeff, alpha, ac)
    torch.testing.assert_close(s, s_new, rtol=4e-7, atol=0)
    torch.testing.assert_close(t, expected, rtol=0, atol=1e-6)
    assert not torch.equal(s, scale)


# -- Rademacher signs (FZOO): the top bit of each word of Triton's `randint4x`, the Philox call `randn4x` maps
# to normals, on the same (key, counter) discipline

def cpu_signs(key: int, start: int, n: int) -> np.ndarray:
    out = np.empty(n, np.float32)
    cpu.probe_signs(np.zeros(n, np.float32), out, key, start, np.float32(1.0))
    return out


def triton_signs(key: int, start: int, n: int) -> np.ndarray:
    out = torch.empty(n)
    gpu.probe_signs(torch.zeros(n), out, key, start, 1.0)
    return out.numpy()


def test_cpu_signs_are_triton_randint4x_top_bits_and_fair(triton_interpreted):
    n = 200_003
    for key, start in ((KEY, 0), (12345, 3)):
        a = cpu_signs(key, start, n)
        assert np.array_equal(a, triton_signs(key, start, n)), (key, start)
        assert set(np.unique(a)) == {-1.0, 1.0}
        assert abs(a.mean()) < 5 / np.sqrt(n)
        assert abs(corr(a[:-1], a[1:])) < 5 / np.sqrt(n)  # neighbours (also inside a quad)
    whole = cpu_signs(KEY, 0, 4096)
    for start, m in ((1, 7), (5, 1001), (999, 3)):
        assert np.array_equal(cpu_signs(KEY, start, m), whole[start:start + m])
    assert abs(corr(cpu_signs(KEY, 0, n), cpu_signs(KEY + 1, 0, n))) < 5 / np.sqrt(n)


@pytest.mark.parametrize("kernel", ["cpu", "triton"])
def test_fused_sign_update_equals_plain_torch_on_the_same_signs(kernel, triton_interpreted):
    """FZOO's update over N probes in one pass: keep theta - sum_k c_k r_k, the probes in order, against plain
    torch on the signs `probe_signs` gives, from an unaligned counter over several blocks."""
    n, start, keep = 10_003, 6, 0.999
    keys, coeffs = [mix(5, k) for k in range(4)], [0.05, -0.02, 0.01, 0.3]
    theta = torch.randn(n, generator=torch.Generator().manual_seed(0))
    expected = keep * theta
    for key, c in zip(keys, coeffs):
        expected = expected - c * torch.from_numpy(cpu_signs(key, start, n))
    t = theta.clone()
    if kernel == "cpu":
        cpu.axpy_signs(t.numpy(), np.array(keys, np.int64), np.array(coeffs, np.float32), start, np.float32(keep))
    else:
        gpu.axpy_signs(t, keys, coeffs, start, keep)
    torch.testing.assert_close(t, expected, rtol=0, atol=1e-6)
    plus = torch.empty(n)
    (cpu.probe_signs(theta.numpy(), plus.numpy(), keys[0], start, np.float32(1e-3)) if kernel == "cpu"
     else gpu.probe_signs(theta, plus, keys[0], start, 1e-3))
    torch.testing.assert_close(plus, theta + 1e-3 * torch.from_numpy(cpu_signs(keys[0], start, n)), rtol=0, atol=1e-7)
