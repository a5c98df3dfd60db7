"""Minimum detectable differences checked against closed forms and a Monte Carlo McNemar power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from rbiqa.stats.power import paired_mdd, unpaired_mdd


@pytest.mark.parametrize("n,p", [(100, 0.07), (500, 0.3), (1000, 0.5)])
def test_unpaired_mdd_achieves_target_power(n, p):
    r = unpaired_mdd(n, p, alpha=0.05, power=0.8)
    # closed form for the two-sample arcsine test, ignoring the far tail
    h_closed = (norm.ppf(0.975) + norm.ppf(0.8)) * math.sqrt(2 / n)
    assert r["effect_size_h"] == pytest.approx(h_closed, rel=1e-3)
    assert proportion_effectsize(r["p_detectable"], p) == pytest.approx(r["effect_size_h"], rel=1e-9)
    achieved = NormalIndPower().power(r["effect_size_h"], nobs1=n, alpha=0.05, ratio=1.0)
    assert achieved == pytest.approx(0.8, abs=1e-4)
    assert r["mdd"] > 0 and r["direction"] == "up"


def test_unpaired_mdd_shrinks_with_n_and_goes_down_near_one():
    assert unpaired_mdd(1000, 0.3)["mdd"] < unpaired_mdd(100, 0.3)["mdd"]
    r = unpaired_mdd(30, 0.99)
    assert r["direction"] == "down" and r["p_detectable"] < 0.99


def test_paired_mdd_matches_connor_formula():
    n, psi = 200, 0.3
    r = paired_mdd(n, psi)
    d = r["mdd"]
    za, zb = norm.ppf(0.975), norm.ppf(0.8)
    n_back = (za * math.sqrt(psi) + zb * math.sqrt(psi - d * d)) ** 2 / (d * d)
    assert n_back == pytest.approx(n, rel=1e-6)


def test_paired_mdd_has_about_target_power_in_simulation():
    # simulate McNemar's asymptotic z test on n pairs with discordance psi and difference = MDD
    n, psi = 300, 0.25
    d = paired_mdd(n, psi)["mdd"]
    p01, p10 = (psi + d) / 2, (psi - d) / 2
    rng = np.random.default_rng(0)
    counts = rng.multinomial(n, [p01, p10, 1 - psi], size=20000)
    b, c = counts[:, 0], counts[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(b + c > 0, (b - c) / np.sqrt(b + c), 0.0)
    power = np.mean(np.abs(z) > norm.ppf(0.975))
    assert power == pytest.approx(0.8, abs=0.03)


def test_paired_mdd_undefined_without_discordance_or_when_too_small():
    assert paired_mdd(100, 0.0)["mdd"] is None
    r = paired_mdd(5, 0.1)
    assert r["mdd"] is None and "too small" in r["flag"]
