"""Means, 95% intervals over seeds, paired differences, and the verdict a claim gets from them.

An interval is Student's t over the seeds (mean +- t(0.975, n-1) * sd / sqrt(n)): with 3-5 seeds
the normal 1.96 would be 30-60% too narrow. A claim's verdict is read off its interval, never off a
mean alone: `reproduced` when the whole interval is on the claim's side of its threshold, `not
reproduced` when the whole interval is on the other side, `inconclusive` when it spans the threshold
(or there are fewer than 2 seeds: no interval at all).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float
    n: int
    sd: float = math.nan  # the seeds' sample standard deviation

    def show(self, scale: float = 1.0, digits: int = 1) -> str:
        """'81.2 [79.9, 82.5] (n=5)', values times `scale`; a single value has no interval."""
        if self.n == 0:
            return "no runs yet"
        if self.n < 2:
            return f"{self.mean * scale:.{digits}f} (n=1, no interval)"
        return f"{self.mean * scale:.{digits}f} [{self.lo * scale:.{digits}f}, {self.hi * scale:.{digits}f}] (n={self.n})"

    @property
    def half_width(self) -> float:
        """Half the interval's width, the precision a study aims at (nan: one value has no interval)."""
        return (self.hi - self.lo) / 2 if self.n > 1 else math.nan

    def negated(self) -> Interval:
        """The interval of minus the quantity: b - a from a - b."""
        return Interval(-self.mean, -self.hi, -self.lo, self.n, self.sd)


def t_quantile(df: int, level: float = LEVEL) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def interval(values: list[float], level: float = LEVEL) -> Interval:
    """Mean and t interval of independent values (one per seed); NaNs are dropped."""
    xs = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not xs:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return Interval(mean, math.nan, math.nan, 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    half = t_quantile(len(xs) - 1, level) * sd / math.sqrt(len(xs))
    return Interval(mean, mean - half, mean + half, len(xs), sd)


def paired(a: dict[int, float], b: dict[int, float], how: str = "difference") -> tuple[Interval, dict[int, float]]:
    """a - b (or a / b with how="ratio") seed by seed over the seeds both have, and its interval."""
    seeds = sorted(set(a) & set(b))
    each = {s: (a[s] - b[s] if how == "difference" else a[s] / b[s]) for s in seeds}
    return interval(list(each.values())), each


def verdict(iv: Interval, threshold: float = 0.0, above: bool = True) -> str:
    """The claim "the quantity is above `threshold`" (or below it, `above=False`) against its interval."""
    if iv.n < 2 or math.isnan(iv.lo):
        return INCONCLUSIVE
    low_side, high_side = iv.hi < threshold, iv.lo > threshold
    if above:
        return REPRODUCED if high_side else NOT_REPRODUCED if low_side else INCONCLUSIVE
    return REPRODUCED if low_side else NOT_REPRODUCED if high_side else INCONCLUSIVE


SMALLER_REPRODUCED = "reproduced, smaller than claimed"
SMALLER = "smaller than claimed"
REVERSED = "not reproduced (reversed)"


@dataclass(frozen=True)
class Sized:
    """A comparison's verdict and the numbers that decided it."""

    word: str
    reason: str

    def __str__(self) -> str:
        return f"{self.word}: {self.reason}"


def sized(iv: Interval, claimed: float | None = None, margin: float | None = None, scale: float = 100.0,
          unit: str = "points", what: str = "the difference") -> Sized:
    """The verdict of "`what` > 0" read off its interval, against zero and against the paper's effect
    `claimed` (> 0; None where the paper gives none), or "equivalent within +-margin" where the interval
    holds zero and lies inside +-margin. Equivalence is two one-sided tests on the 95% interval, each at 2.5%
    (stricter than TOST's usual 90% interval). In order:
    - wholly above zero, holding the claimed effect (or above it, or nothing claimed): reproduced;
    - wholly above zero, wholly below the claimed effect: reproduced, smaller than claimed;
    - wholly below zero: not reproduced (reversed);
    - holding zero, inside +-margin: equivalent within +-margin;
    - holding zero, excluding the claimed effect: smaller than claimed (no effect shown, the paper's ruled out);
    - holding zero and the claimed effect (or no interval): inconclusive."""
    def num(x: float) -> str:
        return f"{x * scale:+.1f}"

    if iv.n < 2 or math.isnan(iv.lo):
        return Sized(INCONCLUSIVE, f"{what} {iv.show(scale)}: no interval")
    shown = f"{what} {num(iv.mean)} [{num(iv.lo)}, {num(iv.hi)}] {unit} (n={iv.n})"
    paper = "" if claimed is None else f"the paper's {num(claimed)}"
    if iv.lo > 0:
        if claimed is not None and iv.hi < claimed:
            return Sized(SMALLER_REPRODUCED, f"{shown} lies above 0 and below {paper}")
        return Sized(REPRODUCED, f"{shown} lies above 0" + (f" and holds {paper}" if claimed is not None
                                                            and iv.lo <= claimed else
                                                            f", above {paper}" if claimed is not None else ""))
    if iv.hi < 0:
        return Sized(REVERSED, f"{shown} lies below 0" + (f", against {paper}" if claimed is not None else ""))
    if margin is not None and -margin < iv.lo and iv.hi < margin:
        beside = "" if claimed is None else f" and {'holds' if iv.lo <= claimed <= iv.hi else 'excludes'} {paper}"
        return Sized(f"equivalent within +-{margin * scale:.1f}", f"{shown} lies inside +-{margin * scale:.1f}{beside}")
    if claimed is not None and not iv.lo <= claimed <= iv.hi:
        return Sized(SMALLER, f"{shown} holds 0 and excludes {paper}")
    return Sized(INCONCLUSIVE, f"{shown} holds 0" + (f" and {paper}" if claimed is not None else ""))


def all_of(verdicts: list[str]) -> str:
    """A claim made of parts: the parts' verdict where they all agree (reproduced, smaller than claimed, ...);
    else not reproduced, or reversed, where a part is; else inconclusive."""
    if verdicts and len(set(verdicts)) == 1:
        return verdicts[0]
    against = [v for v in verdicts if v in (NOT_REPRODUCED, REVERSED)]
    return against[0] if against else INCONCLUSIVE


def correlation(a: list[float], b: list[float]) -> float | None:
    """Pearson's r; None where either side is constant or the lengths differ (different models)."""
    if len(a) != len(b) or len(a) < 3:
        return None
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    sa, sb = math.sqrt(sum((x - ma) ** 2 for x in a)), math.sqrt(sum((y - mb) ** 2 for y in b))
    return None if sa == 0 or sb == 0 else sum((x - ma) * (y - mb) for x, y in zip(a, b)) / (sa * sb)
