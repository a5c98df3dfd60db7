"""Which kernels a training run actually used: a Trainer callback for benchmarks/gpu_check.sh and
benchmarks/train_throughput.py.

Three kinds of evidence, each recorded separately and none of them able to stop the run (a probe that
fails records its error):

1. counters, installed before the trainer is built: calls through transformers' attention registry, by
   implementation (sdpa, flash_attention_2, ...), and calls of TRL's fused LM head (and whether it took
   the Triton path);
2. an inspection of the model and optimizer at the end of the first optimizer step, after the Trainer has
   applied Liger: attention implementation in the config, modules whose forward Liger replaced, the
   rotary embedding function, bitsandbytes 4-bit layers, the optimizer's class and paged state;
3. a torch.profiler trace of one optimizer step (`profile_step`), whose CUDA kernel names (and, on CPU,
   operator names) are matched against each kernel family.

`installed` (the package can be imported) and `ran` (evidence from 1-3) are kept apart: an optional
kernel that is missing on the machine is recorded as not installed, not an error.
"""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from typing import Any

from transformers import TrainerCallback

# kernel families: lower-case substrings of CUDA kernel names and of operator names (torch ops, incl.
# bitsandbytes' custom ops) that identify them in a trace
TRACE_PATTERNS = {
    # the flash-attn package ("flash_fwd_kernel", "flash_attn::"); PyTorch's own flash kernels behind sdpa
    "flash_attention": ("flash_fwd", "flash_bwd", "flash_attn", "pytorch_flash"),
    "liger": ("_rms_norm_forward", "_rms_norm_backward", "_swiglu_", "_triton_rope"),
    "bnb_4bit": ("dequantize_4bit", "kdequantizeblockwise", "gemm_4bit", "gemv_4bit", "kgemm_4bit"),
    "bnb_8bit_optimizer": (
        "optimizer_update_8bit",
        "koptimizerstatic8bit",
        "optimizer_update_32bit",
        "koptimizer",
    ),
}
# which backend torch's scaled_dot_product_attention dispatched to, by the aten op it called
SDPA_OPS = {
    "aten::_scaled_dot_product_flash_attention_for_cpu": "cpu_flash",
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_efficient_attention": "mem_efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_attention_math": "math",
}


def _installed(module: str, dist: str | None = None) -> dict[str, Any]:
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    out: dict[str, Any] = {"installed": found}
    if found:
        from importlib import metadata

        try:
            out["version"] = metadata.version(dist or module)
        except metadata.PackageNotFoundError:
            out["version"] = None
    return out


class KernelProbe(TrainerCallback):
    """Add to a Trainer (callbacks=[...] or trainer.add_callback) *after* calling `install()`.

    profile_step: index (0-based) of the optimizer step to trace with torch.profiler; None: no trace.
    Keep it out of any timed window: the profiler slows the traced step.
    """

    def __init__(self, profile_step: int | None = 1, loss_head: str | None = None) -> None:
        self.profile_step = profile_step
        self.loss_head = loss_head
        self.attention_calls: Counter[str] = Counter()
        self.attention_first: dict[str, Any] = {}
        self.fused_head_calls = 0
        self.fused_head_triton = 0
        self.errors: dict[str, str] = {}
        self.inspected: dict[str, Any] | None = None
        self.trace: dict[str, Any] | None = None
        self._prof = None
        self._prof_t0 = 0.0
        self._installed = False

    # -- 1. counters -------------------------------------------------------------------------------
    def install(self) -> KernelProbe:
        if self._installed:
            return self
        self._installed = True
        try:
            self._wrap_attention()
        except Exception as e:  # a probe must never stop the run
            self.errors["attention_counter"] = repr(e)
        try:
            self._wrap_fused_head()
        except Exception as e:
            self.errors["fused_head_counter"] = repr(e)
        return self

    def _wrap_attention(self) -> None:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        probe = self
        for name in list(ALL_ATTENTION_FUNCTIONS.keys()):
            fn = ALL_ATTENTION_FUNCTIONS[name]
            if getattr(fn, "_kernel_probe", False):
                continue

            def counted(*args, _fn=fn, _name=name, **kwargs):
                probe.attention_calls[_name] += 1
                if _name not in probe.attention_first:
                    probe.attention_first[_name] = _first_call(args, kwargs)
                return _fn(*args, **kwargs)

            counted._kernel_probe = True  # type: ignore[attr-defined]
            ALL_ATTENTION_FUNCTIONS[name] = counted

    def _wrap_fused_head(self) -> None:
        import trl.trainer.utils as tu

        probe = self
        use_triton = tu._use_triton
        chunked = tu._ChunkedLogProbFunction
        if getattr(use_triton, "_kernel_probe", False):
            return

        def counted_use_triton(device):
            r = use_triton(device)
            probe.fused_head_triton += bool(r)
            return r

        class CountedChunked:
            _kernel_probe = True

            @staticmethod
            def apply(*args, **kwargs):
                probe.fused_head_calls += 1
                return chunked.apply(*args, **kwargs)

        counted_use_triton._kernel_probe = True  # type: ignore[attr-defined]
        tu._use_triton = counted_use_triton
        tu._ChunkedLogProbFunction = CountedChunked

    # -- 2. inspection at the end of the first optimizer step ----------------------------------------
    def on_step_begin(self, args, state, control, **kwargs):
        if self.profile_step is not None and state.global_step == self.profile_step and self._prof is None:
            try:
                self._start_profiler()
            except Exception as e:
                self.errors["profiler_start"] = repr(e)

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.inspected is None:
            try:
                self.inspected = inspect_model(model, optimizer)
            except Exception as e:
                self.errors["inspect"] = repr(e)
                self.inspected = {}
        if self._prof is not None:
            try:
                self._stop_profiler(state.global_step)
            except Exception as e:
                self.errors["profiler_stop"] = repr(e)
            self._prof = None

    # -- 3. one traced step --------------------------------------------------------------------------
    def _start_profiler(self) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            acts.append(ProfilerActivity.CUDA)
        self._prof = profile(activities=acts, record_shapes=False, with_stack=False)
        self._prof.__enter__()
        self._prof_t0 = time.perf_counter()

    def _stop_profiler(self, step: int) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        prof = self._prof
        prof.__exit__(None, None, None)
        seconds = time.perf_counter() - self._prof_t0
        cuda_kernels: dict[str, float] = {}
        cpu_ops: dict[str, int] = {}
        for evt in prof.key_averages():
            dev = str(getattr(evt, "device_type", "")).lower()
            t = float(
                getattr(evt, "self_device_time_total", 0) or getattr(evt, "self_cuda_time_total", 0) or 0
            )
            if "cuda" in dev:
                cuda_kernels[evt.key] = cuda_kernels.get(evt.key, 0.0) + t
            else:
                cpu_ops[evt.key] = cpu_ops.get(evt.key, 0) + int(evt.count)
        families = {}
        for fam, pats in TRACE_PATTERNS.items():
            k = sorted({n for n in cuda_kernels if any(p in n.lower() for p in pats)})
            o = sorted({n for n in cpu_ops if any(p in n.lower() for p in pats)})
            families[fam] = {"ran": bool(k or o), "cuda_kernels": [x[:120] for x in k[:6]], "ops": o[:6]}
        sdpa = sorted({v for op, v in SDPA_OPS.items() if op in cpu_ops})
        total_us = sum(cuda_kernels.values())
        top = sorted(cuda_kernels.items(), key=lambda kv: -kv[1])[:15]
        self.trace = {
            "step": step,
            "wall_s": round(seconds, 3),
            "n_cuda_kernel_names": len(cuda_kernels),
            "cuda_time_ms": round(total_us / 1000, 2),
            "top_cuda_kernels_ms": [[k[:120], round(v / 1000, 3)] for k, v in top],
            "families": families,
            "sdpa_backends": sdpa,
        }
        if not cuda_kernels:
            top_ops = sorted(cpu_ops.items(), key=lambda kv: -kv[1])[:15]
            self.trace["top_cpu_ops_count"] = [[k[:120], v] for k, v in top_ops]

    # -- the record ----------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        return kernel_report(self)


def _first_call(args: tuple, kwargs: dict) -> dict[str, Any]:
    """What the first call of an attention function got: (module, query, key, value, attention_mask)."""
    query = args[1] if len(args) > 1 else kwargs.get("query")
    mask = args[4] if len(args) > 4 else kwargs.get("attention_mask")
    return {
        "dtype": str(getattr(query, "dtype", None)).removeprefix("torch."),
        "device": getattr(getattr(query, "device", None), "type", None),
        "query_shape": list(getattr(query, "shape", [])),
        "attention_mask": None if mask is None else list(getattr(mask, "shape", [])),
        "kwargs": sorted(k for k, v in kwargs.items() if v is not None),
    }


def inspect_model(model, optimizer) -> dict[str, Any]:
    """Static facts about the wrapped model and optimizer, read once training has started."""
    import torch

    out: dict[str, Any] = {}
    base = model
    for attr in ("get_base_model",):
        if hasattr(base, attr):
            base = getattr(base, attr)()
    cfg = getattr(base, "config", None)
    out["attn_implementation"] = getattr(cfg, "_attn_implementation", None)
    out["model_class"] = type(base).__name__
    # Liger: modules whose forward was rebound to a liger_kernel function, and the rotary embedding
    liger: Counter[str] = Counter()
    n4, n4_dev = 0, Counter()
    for m in model.modules():
        f = m.__dict__.get("forward")
        fn = getattr(f, "__func__", f)
        if fn is not None and str(getattr(fn, "__module__", "")).startswith("liger_kernel"):
            liger[type(m).__name__] += 1
        if type(m).__module__.startswith("liger_kernel"):
            liger[type(m).__name__] += 1
        if type(m).__name__ == "Linear4bit":
            n4 += 1
            w = getattr(m, "weight", None)
            if w is not None:
                n4_dev[f"{w.device.type}:{str(w.dtype).removeprefix('torch.')}"] += 1
    out["liger_patched_modules"] = dict(liger)
    try:
        import sys

        mod = sys.modules.get(type(base).__module__)
        rope = getattr(mod, "apply_rotary_pos_emb", None)
        out["rotary_fn"] = f"{getattr(rope, '__module__', None)}.{getattr(rope, '__name__', None)}"
    except Exception as e:
        out["rotary_fn"] = repr(e)
    out["linear4bit_modules"] = n4
    out["linear4bit_weights"] = dict(n4_dev)
    out["is_loaded_in_4bit"] = bool(getattr(base, "is_loaded_in_4bit", False))
    # TRL's add_fused_lm_head binds a functools.wraps'd _fused_forward: only its code keeps the name
    fwd = getattr(base.__dict__.get("forward"), "__func__", None)
    out["fused_lm_head_installed"] = (
        getattr(getattr(fwd, "__code__", None), "co_name", "") == "_fused_forward"
    )
    ckpt = "is_activation_checkpointing" if hasattr(type(base), "is_activation_checkpointing") else None
    out["gradient_checkpointing"] = bool(getattr(base, ckpt or "is_gradient_checkpointing", False))
    # optimizer: accelerate wraps it; bitsandbytes' paged state tensors carry is_paged
    opt = getattr(optimizer, "optimizer", optimizer)
    out["optimizer_class"] = f"{type(opt).__module__}.{type(opt).__name__}" if opt is not None else None
    out["optimizer_is_paged"] = bool(getattr(opt, "is_paged", False))
    n_state, n_paged, dtypes = 0, 0, Counter()
    for st in getattr(opt, "state", {}).values():
        for v in st.values() if isinstance(st, dict) else ():
            if isinstance(v, torch.Tensor) and v.numel() > 1:
                n_state += 1
                n_paged += bool(getattr(v, "is_paged", False))
                dtypes[str(v.dtype).removeprefix("torch.")] += 1
    out["optimizer_state_tensors"] = n_state
    out["optimizer_paged_state_tensors"] = n_paged
    out["optimizer_state_dtypes"] = dict(dtypes)
    return out


def kernel_report(probe: KernelProbe | None) -> dict[str, Any]:
    """installed / ran, per kernel family, with the evidence."""
    insp = (probe.inspected or {}) if probe else {}
    trace = (probe.trace or {}) if probe else {}
    fam = trace.get("families", {})
    attn_calls = dict(probe.attention_calls) if probe else {}

    def traced(name: str) -> bool | None:
        return fam[name]["ran"] if name in fam else None

    flash_calls = sum(v for k, v in attn_calls.items() if "flash" in k)
    liger_mods = insp.get("liger_patched_modules") or {}
    rope = str(insp.get("rotary_fn", ""))
    opt_cls = str(insp.get("optimizer_class") or "")
    report = {
        "flash_attention": {
            **_installed("flash_attn", "flash-attn"),
            "attn_implementation": insp.get("attn_implementation"),
            "attention_calls": attn_calls,
            "first_call": probe.attention_first if probe else {},
            # flash_attention_2 through transformers (the flash-attn package) ...
            "ran_flash_attn_package": flash_calls > 0,
            # ... and which backend torch's sdpa dispatched to (aten op in the trace), and flash CUDA kernels
            "sdpa_backends_in_trace": trace.get("sdpa_backends"),
            "flash_cuda_kernels_in_trace": bool((fam.get("flash_attention") or {}).get("cuda_kernels")),
        },
        "liger": {
            **_installed("liger_kernel", "liger-kernel"),
            "patched_modules": liger_mods,
            "rotary_fn": rope,
            "ran": bool(liger_mods) or "liger" in rope or bool(traced("liger")),
            "in_trace": traced("liger"),
        },
        "fused_lm_head": {
            "loss_head": probe.loss_head if probe else None,
            "installed_on_model": insp.get("fused_lm_head_installed"),
            "calls": probe.fused_head_calls if probe else 0,
            "triton_calls": probe.fused_head_triton if probe else 0,
            "ran": bool(probe and probe.fused_head_calls),
            "triton": bool(probe and probe.fused_head_triton),
        },
        "bnb_4bit": {
            **_installed("bitsandbytes"),
            "linear4bit_modules": insp.get("linear4bit_modules"),
            "linear4bit_weights": insp.get("linear4bit_weights"),
            "in_trace": traced("bnb_4bit"),
            "ran": bool(insp.get("linear4bit_modules")) and traced("bnb_4bit") is not False,
        },
        "paged_optimizer": {
            "optimizer_class": opt_cls,
            "is_paged": insp.get("optimizer_is_paged"),
            "paged_state_tensors": insp.get("optimizer_paged_state_tensors"),
            "state_dtypes": insp.get("optimizer_state_dtypes"),
            "bnb_optimizer_in_trace": traced("bnb_8bit_optimizer"),
            # bitsandbytes pages only state tensors of >= 1e5 elements, and only on CUDA (CPU falls back)
            "ran": bool(insp.get("optimizer_paged_state_tensors")),
            "bnb_8bit_ran": "bitsandbytes" in opt_cls and traced("bnb_8bit_optimizer") is not False,
        },
        "gradient_checkpointing": insp.get("gradient_checkpointing"),
        "trace": trace or None,
        "probe_errors": dict(probe.errors) if probe else {"probe": "not installed"},
    }
    return report


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """One line per family: did it run (True/False), or why not."""
    out = {}
    fa = report["flash_attention"]
    backends = fa.get("sdpa_backends_in_trace") or []
    if fa["ran_flash_attn_package"]:
        out["flash_attention"] = "flash_attention_2 (flash-attn package)"
    elif "flash" in backends:
        out["flash_attention"] = "sdpa -> torch's flash kernel"
    else:
        why = "not installed; " if not fa["installed"] else ""
        out["flash_attention"] = f"no ({why}sdpa backends: {', '.join(backends) or 'not traced'})"
    lg = report["liger"]
    out["liger"] = True if lg["ran"] else ("not installed" if not lg["installed"] else False)
    fh = report["fused_lm_head"]
    out["fused_lm_head"] = ("triton" if fh["triton"] else "torch tiles") if fh["ran"] else False
    bb = report["bnb_4bit"]
    out["bnb_4bit"] = True if bb["ran"] else ("not installed" if not bb["installed"] else False)
    po = report["paged_optimizer"]
    cls = f"{po.get('optimizer_class')} (is_paged={po.get('is_paged')})"
    if po["ran"]:
        out["paged_optimizer"] = f"{cls}: {po['paged_state_tensors']} paged state tensors"
    elif po.get("bnb_8bit_ran"):
        out["paged_optimizer"] = f"{cls}: 8-bit states, none paged (CPU, or every state < 1e5 elements)"
    else:
        out["paged_optimizer"] = f"no ({cls})"
    return out
