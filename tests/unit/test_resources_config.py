"""What jobs ask the scheduler for is config per scale (conf/resources/), not experiment-name branches in
the rules: every rule has an entry, the CPU scales share one, and paper asks for its GPU-node sizes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rbiqa.config import compose

RULES_DIR = Path(__file__).resolve().parents[2] / "workflow" / "rules"
KEYS = {"threads", "mem_mb", "runtime"}


def rules_with_resources() -> set[str]:
    found = set()
    for f in RULES_DIR.glob("*.smk"):
        for block in re.split(r"^(?=(?:local)?rule \w+:)", f.read_text(), flags=re.M):
            m = re.match(r"(?:local)?rule (\w+):", block)
            if m and re.search(r"^    (threads|resources):", block, re.M):
                found.add(m.group(1))
    return found


@pytest.mark.parametrize("experiment", ["default", "tiny", "paper"])
def test_every_rule_has_its_requests_in_config(experiment):
    res = compose([f"experiment={experiment}"]).resources
    rules = rules_with_resources()
    assert rules >= {"train", "generate", "judge", "report"}
    for rule in rules:
        assert set(res[rule]) == KEYS, rule
        assert all(isinstance(res[rule][k], int) and res[rule][k] > 0 for k in KEYS), rule


def test_rules_read_requests_from_config_not_from_the_experiment_name():
    for f in RULES_DIR.glob("*.smk"):
        text = f.read_text()
        assert not re.search(r"\bEXP\s*(==|!=|in\b)", text), f"{f.name} branches on the experiment name"
        literal = re.findall(r"^\s+(?:threads: \d|mem_mb=\d|runtime=\d)", text, flags=re.M)
        assert not literal, f"{f.name} states a request outside conf/resources/: {literal}"


def test_cpu_scales_share_requests_and_paper_asks_for_a_gpu_node():
    default, tiny, paper = (compose([f"experiment={e}"]).resources for e in ("default", "tiny", "paper"))
    assert default == tiny  # tiny once asked SLURM for paper's 48 GB and 6 h per train job
    assert paper.train.threads > default.train.threads and paper.train.mem_mb >= 32000
    assert paper.judge == default.judge  # the GPU file changes only the GPU stages
