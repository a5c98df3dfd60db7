"""Hydra entry point and compose helper shared by all stages.

Every stage is `python -m rbiqa.<stage> [hydra overrides]`. Hydra is told not to change directory or
write its own output folders: Snakemake owns the layout, and each stage writes its resolved config
into its own manifest instead.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rbiqa import paths as P
from rbiqa.io import InputError
from rbiqa.manifest import scrub

# Hydra options that keep it from creating outputs/ dirs or reconfiguring logging.
_QUIET_HYDRA = [
    "hydra.run.dir=.",
    "hydra.output_subdir=null",
    "hydra/job_logging=none",
    "hydra/hydra_logging=none",
]


def conf_dir() -> Path:
    """conf/ of the repository: $RBIQA_CONF_DIR, else ./conf, else next to the source tree."""
    if env := os.environ.get("RBIQA_CONF_DIR"):
        return Path(env).resolve()
    cwd_conf = Path.cwd() / "conf"
    if (cwd_conf / "config.yaml").exists():
        return cwd_conf.resolve()
    repo_conf = Path(__file__).resolve().parents[2] / "conf"
    if (repo_conf / "config.yaml").exists():
        return repo_conf
    raise FileNotFoundError(
        "cannot find the Hydra config dir: run from the repository root or set RBIQA_CONF_DIR"
    )


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the config without running an app (tests, Snakemake DAG-time stamps)."""
    from hydra import compose as _compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return _compose(config_name="config", overrides=list(overrides))


def to_container(cfg: DictConfig | dict) -> dict[str, Any]:
    """Resolved plain-dict config with secrets scrubbed: what manifests and stamps store."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return scrub(cfg)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def stage_main(fn: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """Decorate a stage's `main(cfg)` into a Hydra CLI with the project's quiet settings."""
    import hydra

    @functools.wraps(fn)
    def _entry() -> Any:
        # Appending (not prepending) lets a user's explicit hydra.* override still win.
        for opt in _QUIET_HYDRA:
            key = opt.split("=")[0]
            if not any(a.split("=")[0] == key for a in sys.argv[1:]):
                sys.argv.append(opt)

        @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
        def _run(cfg: DictConfig) -> Any:
            setup_logging(cfg.get("log_level", "INFO"))
            return fn(cfg)

        return _run()

    return _entry


def check_eval_set(eval_set: str | None) -> str:
    if not eval_set:
        raise InputError(f"no eval set selected: pass +eval_set=<set>, one of {', '.join(P.EVAL_SETS)}")
    if eval_set not in P.ITEM_SETS:
        raise InputError(f"unknown eval set {eval_set!r}; expected one of {', '.join(P.ITEM_SETS)}")
    return eval_set


def selected_eval_sets(cfg: DictConfig, group: str) -> list[str]:
    """The eval sets one generate/judge job handles: `eval_sets=[a,b]` (top level, as the rules pass
    it), else `+eval_set=<set>`, else `<group>.eval_set`."""
    many = cfg.get("eval_sets")
    if many is None:
        return [check_eval_set(cfg.get("eval_set") or cfg[group].get("eval_set"))]
    sets = [check_eval_set(str(e)) for e in many]
    if not sets or len(set(sets)) != len(sets):
        raise InputError(f"eval_sets must be a non-empty list without repeats, got {list(many)}")
    return sets


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate of a config node with `_target_`s (e.g. `judge.impl`), nested configs
    passed on as plain dicts and lists.

    Hydra wraps whatever a constructor raises in an InstantiationException; the original is raised instead,
    because its type and message are what callers handle and users read (a missing API key, a missing
    model directory)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as _instantiate

    try:
        return _instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as e:
        if e.__cause__ is None:
            raise
        raise e.__cause__ from None
