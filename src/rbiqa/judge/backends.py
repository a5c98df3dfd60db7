"""Build the judge backend named by `judge.backend`; heavy imports happen only for the one chosen."""

from __future__ import annotations

from omegaconf import DictConfig

from rbiqa.judge.protocol import JudgeBackend, JudgeConfigError

BACKENDS = ("reference", "gemini", "openai_compatible", "hf_local")


def make_backend(jcfg: DictConfig) -> JudgeBackend:
    backend = jcfg.get("backend")
    if backend == "reference":
        from rbiqa.judge.reference.model import ReferenceJudge

        return ReferenceJudge(params_path=jcfg.get("params_path"), batch_size=int(jcfg.get("batch_size", 64)))
    if backend in ("gemini", "openai_compatible"):
        from rbiqa.judge.api import APIJudge, APISettings

        return APIJudge(APISettings.from_cfg(jcfg))
    if backend == "hf_local":
        from rbiqa.judge.hf_local import HFLocalJudge, HFLocalSettings

        return HFLocalJudge(HFLocalSettings.from_cfg(jcfg))
    raise JudgeConfigError(
        f"unknown judge.backend {backend!r}; choose one of {list(BACKENDS)} (e.g. judge=reference)"
    )
