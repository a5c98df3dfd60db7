"""Minimum detectable differences (MDD) for the eval sizes we actually have.

Reported so that "no detectable difference" can be read against what the study could have detected at
all. Two versions:

* unpaired: two independent proportions of n items each (what a reader comparing two published
  accuracies would assume). Cohen's h from statsmodels' NormalIndPower, mapped back to a difference in
  accuracy around the observed base rate.
* paired: McNemar's test on the same n items, which is what we run. Uses Connor's (1987, Biometrics
  43:207-211) normal approximation with the observed discordance rate psi = P(arms disagree):
  n = (z_{1-a/2} sqrt(psi) + z_{power} sqrt(psi - delta^2))^2 / delta^2, solved for delta.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower


def unpaired_mdd(n: int, p_base: float, alpha: float = 0.05, power: float = 0.8) -> dict:
    """Smallest |p2 - p_base| detectable with n items per arm; upward unless that would pass 1."""
    if n < 2:
        return {"n": n, "effect_size_h": None, "mdd": None, "direction": None, "flag": "n < 2"}
    h = float(
        NormalIndPower().solve_power(
            effect_size=None, nobs1=n, alpha=alpha, power=power, ratio=1.0, alternative="two-sided"
        )
    )
    phi1 = 2 * math.asin(math.sqrt(p_base))
    if phi1 + h <= math.pi:
        p2, dirn = math.sin((phi1 + h) / 2) ** 2, "up"
    elif phi1 - h >= 0:
        p2, dirn = math.sin((phi1 - h) / 2) ** 2, "down"
    else:
        return {"n": n, "effect_size_h": h, "mdd": None, "direction": None, "flag": "no detectable change"}
    return {
        "n": n,
        "effect_size_h": h,
        "p_base": p_base,
        "p_detectable": p2,
        "mdd": abs(p2 - p_base),
        "direction": dirn,
        "flag": None,
    }


def paired_mdd(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> dict:
    """Smallest |p01 - p10| McNemar detects on n pairs when the arms disagree on a share psi of items."""
    z_a = norm.ppf(1 - alpha / 2)
    z_b = norm.ppf(power)
    out = {"n": n, "discordance": discordance, "method": "Connor (1987) normal approximation"}
    if n < 2 or not discordance or discordance <= 0:
        return out | {"mdd": None, "flag": "no discordant pairs observed: paired MDD undefined"}

    def gap(delta: float) -> float:
        return (
            z_a * math.sqrt(discordance)
            + z_b * math.sqrt(max(discordance - delta**2, 0.0))
            - delta * math.sqrt(n)
        )

    if gap(discordance) > 0:
        # even a difference as large as all discordant pairs in one direction is not detectable
        return out | {"mdd": None, "flag": "eval set too small for this discordance"}
    delta = brentq(gap, 1e-12, discordance)
    return out | {"mdd": float(delta), "flag": None}
