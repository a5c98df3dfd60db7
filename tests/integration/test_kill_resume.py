"""SIGKILL in the middle of every long stage, then a rerun: rephrase (local model, and Gemini through the
stub), generate, and judge (Gemini through the stub, and the offline reference judge).

For each, the resumed run must end with the same files, byte for byte, as an uninterrupted run in another
project (a few run-dependent fields aside, listed at each test); no item committed before a kill may be
computed again; and nothing the kill left behind may pass for a finished output. The in-process tests
(KeyboardInterrupt in test_generate_stage, test_llm_gemini_stub) run `finally` blocks and flush buffers on
the way out; SIGKILL runs nothing, so only a real one shows that an item counted as done is on disk.

The kill points are fixed, not timed. API stages talk to a stub that answers the first n requests and holds
every later one unanswered (`Hold`). Local-model stages run under LAUNCHER, which makes the stage's (n+1)-th
call of one function (a model call or a cache write) block. The test waits until the cache shows exactly
the n committed items and then kills: the same state on every run, on a loaded machine too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil
import pytest

from rbiqa import paths as P
from rbiqa.io import read_json, read_jsonl
from rbiqa.schemas import EvalItem, Generation
from tests.stubs.gemini_stub import GeminiStub, marker_key
from tests.unit._generate_fixtures import eval_rows, make_tiny_model, write_jsonl

REPO = Path(__file__).resolve().parents[2]
KEY = "stub-secret-key-0123456789"

# Runs `python -c LAUNCHER <module> <overrides...>` as `python -m <module> <overrides...>` would run, after
# patching KILL_GATE="pkg.module:Class.method|n|flag": call n+1 of that method creates `flag` and blocks
# until the process is killed. Every run of a test goes through here, gated or not, so that the
# manifests' `command` (sys.argv) is the same in all of them.
LAUNCHER = """
import importlib, os, runpy, sys, time
gate = os.environ.get("KILL_GATE")
if gate:
    target, n, flag = gate.split("|")
    module, _, attr = target.partition(":")
    owner_name, name = attr.rsplit(".", 1)
    owner = getattr(importlib.import_module(module), owner_name)
    real, calls = getattr(owner, name), [0]

    def gated(*args, **kwargs):
        calls[0] += 1
        if calls[0] > int(n):
            open(flag, "w").close()
            while True:
                time.sleep(3600)
        return real(*args, **kwargs)

    setattr(owner, name, gated)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""

# Fields of the manifests (every stage) that describe the run rather than its outputs.
CREATED = ("created_unix",)  # wall-clock time of writing


# --- running a stage --------------------------------------------------------------------------------------


class Stage:
    """One stage's command line in one project directory. Each run's stderr goes to a log beside the
    project: a pipe could fill up with progress bars and stall the stage at a point the test did not
    choose."""

    def __init__(self, code: Path, project: Path, module: str, overrides: Iterable[str]):
        self.code, self.project, self.module, self.overrides = code, project, module, list(overrides)
        self.runs = 0
        project.mkdir(parents=True, exist_ok=True)

    @property
    def log(self) -> Path:
        return self.project.with_name(f"{self.project.name}-run{self.runs}.log")

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def start(self, gate: tuple[str, int] | None = None) -> tuple[subprocess.Popen, Path | None]:
        self.runs += 1
        flag = self.project.with_name(f"{self.project.name}-run{self.runs}.held") if gate else None
        env = {**os.environ, "GOOGLE_API_KEY": KEY, "HF_HUB_OFFLINE": "1"}
        env.pop("KILL_GATE", None)
        env["RBIQA_CONF_DIR"] = str(self.code / "conf")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(self.code / "src"), env.get("PYTHONPATH"))))
        if gate:
            env["KILL_GATE"] = f"{gate[0]}|{gate[1]}|{flag}"
        with open(self.log, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, self.module, *self.overrides],
                cwd=self.project,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # a process group of its own, for the clean-up in `stopped`
            )
        return proc, flag

    def finish(self, timeout: float = 300) -> None:
        proc, _ = self.start()
        with stopped(proc):
            rc = proc.wait(timeout)
        assert rc == 0, f"{self.module} failed ({rc}):\n{self.tail()}"

    def kill_when(
        self,
        committed: Callable[[], int],
        expect: int,
        held: Callable[[], bool] = lambda: True,
        gate: tuple[str, int] | None = None,
        timeout: float = 180,
    ) -> list[psutil.Process]:
        """Start the stage; once it is held (by the gate, if any, and `held()`), check that `committed()`
        items are in its cache, as many as `expect`; then SIGKILL the stage's process alone (not its group:
        what it started must end by itself) and check that it died of the signal. Returns the processes
        it had started."""
        proc, flag = self.start(gate)
        with stopped(proc):
            deadline = time.monotonic() + timeout
            while not ((flag is None or flag.exists()) and held()):
                assert proc.poll() is None, f"{self.module} ended before the kill point:\n{self.tail()}"
                assert time.monotonic() < deadline, f"{self.module} never got held:\n{self.tail()}"
                time.sleep(0.05)
            settle = time.monotonic() + 10  # an answer already sent may still be on its way to the cache
            while (n := committed()) != expect and time.monotonic() < settle:
                time.sleep(0.05)
            assert n == expect, f"{n} items in the cache at the kill point, expected {expect}"
            children = psutil.Process(proc.pid).children(recursive=True)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            assert proc.returncode == -signal.SIGKILL, self.tail()
            assert_all_end(children)
        return children


class stopped:  # noqa: N801 - a context manager
    """On the way out, kill whatever is left of a process group this test started: a failed assertion
    must not leave a stage or its workers running."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def __enter__(self) -> subprocess.Popen:
        return self.proc

    def __exit__(self, *exc: object) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)


def assert_all_end(procs: list[psutil.Process], timeout: float = 15) -> None:
    """Processes the killed stage had started (a worker pool) must end by themselves, not live on with a
    model copy each, decoding batches that nobody will read."""
    deadline = time.monotonic() + timeout
    alive = procs
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _alive(p)]
    assert not alive, f"outlived the killed stage: {[(p.pid, ' '.join(p.cmdline())[:160]) for p in alive]}"


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- comparing the outcome --------------------------------------------------------------------------------

Mask = Callable[[bytes], bytes]


def json_without(*fields: tuple[str, ...]) -> Mask:
    """A JSON file minus the given fields (key paths). Each must exist, so that a renamed field fails the
    test instead of widening what goes uncompared."""

    def mask(data: bytes) -> bytes:
        obj = json.loads(data)
        for path in fields:
            node = obj
            for k in path[:-1]:
                node = node[k]
            del node[path[-1]]
        return json.dumps(obj, sort_keys=True).encode()

    return mask


def files(root: Path) -> dict[str, bytes]:
    """Every file of a project except the caches (which hold the same items, in another order)."""
    cache = (root / P.CACHE).as_posix() + "/"
    return {
        f.relative_to(root).as_posix(): f.read_bytes()
        for f in sorted(root.rglob("*"))
        if f.is_file() and not f.as_posix().startswith(cache)
    }


def assert_same_files(resumed: Path, clean: Path, must_have: Iterable[Path], masks: dict[Path, Mask]) -> None:
    """Same file names (so no leftover temp file either) and the same bytes, masks applied on both sides;
    data files first, whose difference says more than the manifest that hashes them."""
    a, b = files(resumed), files(clean)
    assert sorted(a) == sorted(b)
    assert {p.as_posix() for p in must_have} <= set(a)
    masked = {p.as_posix(): m for p, m in masks.items()}
    assert set(masked) <= set(a)
    for name in sorted(a, key=lambda n: (n.endswith("manifest.json"), n)):
        m = masked.get(name, lambda x: x)
        ours, theirs = m(a[name]), m(b[name])
        if ours != theirs:
            x, y = ours.splitlines(), theirs.splitlines()
            line = next(
                (i for i, (u, v) in enumerate(zip(x, y, strict=False)) if u != v), min(len(x), len(y))
            )
            pytest.fail(f"{name} differs after kill + resume, from line {line + 1}")


def assert_not_done(*outputs: Path) -> None:
    """A killed job leaves neither its outputs nor their manifests (what marks a job done), nor a
    half-written copy under a temporary name."""
    for out in outputs:
        assert not out.exists(), f"{out} exists after the kill"
        assert not (out.parent.exists() and list(out.parent.glob(f".{out.name}.*"))), f"a partial {out}"


# --- the Gemini stub, held at a fixed point ---------------------------------------------------------------


class Hold:
    """Put on a GeminiStub: answers through `respond`, but once `hold_after(n)` has let n requests through,
    holds every later one, unanswered, until `release()`: the stage is then mid-run at a known point.

    A held request is logged as the stub's "timeout" fault, whose reply is sent quietly: the client the
    reply goes to has been killed by then. (Nothing else injects faults here, so "ok" means answered.)
    """

    def __init__(self, stub: GeminiStub, respond: Callable[[str, dict], object]):
        self.respond = respond
        self.limit: int | None = None
        self.passed = self.held = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._mine = threading.local()
        stub.responder, stub.default_fault, stub.timeout_sleep_s = self._answer, self._fault, 0

    def hold_after(self, n: int) -> None:
        with self._lock:
            self.limit, self.passed, self.held, self._release = n, 0, 0, threading.Event()

    def release(self) -> None:
        with self._lock:
            self.limit = None
            self._release.set()

    def _fault(self, prompt: str, n: int) -> str:
        with self._lock:
            held = self.limit is not None and self.passed >= self.limit
            self.held += held
            self.passed += not held
            self._mine.release = self._release if held else None
        return "timeout" if held else "ok"

    def _answer(self, prompt: str, body: dict) -> object:
        if (release := getattr(self._mine, "release", None)) is not None:
            release.wait(120)
        return self.respond(prompt, body)


def answered(stub: GeminiStub, key: Callable) -> Counter:
    """Requests answered ("ok"), per item."""
    return Counter(key(r) for r in stub.requests if r.fault == "ok")


def asked(stub: GeminiStub, key: Callable) -> Counter:
    return Counter(key(r) for r in stub.requests)


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> Path:
    """conf/ and src/ as they were when the module started: the runs of a test are compared byte for
    byte, manifests (config included) too, so an edit of the checkout meanwhile must not reach one of them
    and not the other (as in conftest.run_cmd)."""
    root = tmp_path_factory.mktemp("code")
    for name in ("conf", "src"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return root


def stages(code: Path, tmp_path: Path, module: str, overrides: list[str]) -> tuple[Stage, Stage]:
    """The same stage in two projects: one run uninterrupted, one killed and resumed."""
    return Stage(code, tmp_path / "clean", module, overrides), Stage(
        code, tmp_path / "killed", module, overrides
    )


def split_rows(questions: dict[str, str], para: set[str] = frozenset(), val: set[str] = frozenset()):
    meta = {"answer": "Answer.", "regulation_area": "Customer service", "applicable_to": "Banks",
            "category": "fact-based", "estimated_difficulty": 2, "source": "t", "as_of": 2024, "split": "train"}  # fmt: skip
    return [
        {"id": sid, "question": q, **meta, "para_eval": sid in para, "val_para": sid in val}
        for sid, q in questions.items()
    ]


# --- rephrase ---------------------------------------------------------------------------------------------

REPHRASE_OUT = (P.REPHRASE_TRAIN, P.REPHRASE_TEST_PARA, P.REPHRASE_VAL_PARA, P.REPHRASE_REJECTED,
                P.REPHRASE_REPORT, P.REPHRASE_MANIFEST)  # fmt: skip
# rephrase_report.json: `calls` counts this run's model calls and cache hits (a resumed run makes fewer),
# wall_seconds and cpu_seconds are timings. The manifest repeats model_calls, and hashes the report.
REPHRASE_MASKS = {
    P.REPHRASE_REPORT: json_without(("calls",), ("wall_seconds",), ("cpu_seconds",)),
    P.REPHRASE_MANIFEST: json_without(
        CREATED, ("extra", "model_calls"), ("outputs", P.REPHRASE_REPORT.as_posix())
    ),
}


def rephrase_entries(project: Path, backend: str) -> int:
    from rbiqa.llm import ResultCache

    with ResultCache(project / P.REPHRASE_CACHE / backend) as cache:
        return len(cache)


def test_rephrase_hf_local_killed_resumes_byte_identical(code, tmp_path, tiny_model):
    """The default local backend, with its two worker processes: candidates are cached one by one as
    batches come back (in completion order), each from its own seed."""
    questions = {
        "q0": "What is the minimum capital ratio for small finance banks?",
        "q1": "Can a bank open a savings account for a minor?",
        "q2": "How many days may a bank take to resolve a complaint?",
        "q3": "Which documents prove the address of a customer?",
        "q4": "Who regulates payment systems in the country?",
    }
    overrides = ["rephrase=hf_local", f"rephrase.model_path={tiny_model}", "rephrase.model_id=tiny",
                 "rephrase.k=2", "rephrase.max_attempts=2", "rephrase.workers=2", "rephrase.threads=2",
                 "rephrase.batch_size=2", "rephrase.max_new_tokens=8"]  # fmt: skip
    clean, killed = stages(code, tmp_path, "rbiqa.rephrase", overrides)
    for st in (clean, killed):
        write_jsonl(st.project / P.SPLIT_TRAIN, split_rows(questions, para={"q0"}, val={"q1"}))

    clean.finish()
    total = read_json(clean.project / P.REPHRASE_REPORT)["calls"]["model_calls"]
    assert total == 2 * (3 + 3 + 2 + 2 + 2)  # two rounds: a random model's candidates all fail the filters

    # the gate blocks the stage's 8th cache write: 7 candidates of round 0 committed, the 4th batch of 2
    # half of them; the workers have more batches under way
    n = 7
    workers = killed.kill_when(
        lambda: rephrase_entries(killed.project, "hf_local"), n, gate=("rbiqa.llm.cache:ResultCache.set", n)
    )
    assert len(workers) >= 2  # the pool was up (kill_when saw every process of it end with the stage)
    assert_not_done(*(killed.project / p for p in REPHRASE_OUT))
    killed.finish()

    report = read_json(killed.project / P.REPHRASE_REPORT)
    assert report["calls"]["model_calls"] == total - n  # no cached candidate was sampled again
    assert report["calls"]["cache"]["hits"] == n and rephrase_entries(killed.project, "hf_local") == total
    assert_same_files(killed.project, clean.project, REPHRASE_OUT, REPHRASE_MASKS)


REPHRASINGS = {  # source -> (question, wordings that pass the filters, in the order the stub serves them)
    "s1": ("Can a bank open a savings account for a minor?", [
        "Is a bank allowed to open a savings account for a minor?",
        "May a minor have a savings account opened by a bank?",
        "Are banks permitted to open savings accounts for minors?",
        "Can a minor get a savings account opened at a bank?",
    ]),
    "s2": ("How many days does a bank have to resolve a complaint about a failed ATM withdrawal?", [
        "Within how many days must a bank settle a complaint about a failed ATM withdrawal?",
        "For a failed ATM withdrawal, how many days may a bank take to settle the complaint?",
        "How long, in days, can a bank take over a complaint about a failed ATM withdrawal?",
    ]),
    "s3": ("What documents are needed to open a bank account?", []),  # only answers: always rejected
    "s4": ("Which body regulates payment systems in the country?", [
        "Which authority oversees the payment systems of the country?",
        "What body is responsible for regulating payment systems in the country?",
        "Payment systems in the country are regulated by which body?",
    ]),
}  # fmt: skip
TEMPERATURES = (0.6, 0.75, 0.9)  # rephrase.temperature=0.6, + temperature_step (0.15) per round


def rephrase_call(req) -> tuple[str, float]:
    """A rephrase call's identity: its question and its round (temperature); n follows from them."""
    question = re.search(r"^Question: (.+)$", req.prompt, re.M).group(1)
    return question, req.body["generationConfig"]["temperature"]


def respond_rephrasings(prompt: str, body: dict) -> dict:
    """A function of the request alone (question, n, round), never of what was asked before: a resumed
    run and an uninterrupted one must be served the same. Round 0 wastes a slot on the original."""
    question = re.search(r"^Question: (.+)$", prompt, re.M).group(1)
    n = int(re.search(r"in (\d+) different ways", prompt).group(1))
    rnd = TEMPERATURES.index(body["generationConfig"]["temperature"])
    [(sid, goods)] = [(s, g) for s, (q, g) in REPHRASINGS.items() if q == question]
    if not goods:
        return {
            "rephrasings": ["Officially valid documents such as a passport or a voter identity card."] * n
        }
    return {"rephrasings": ([question, *goods] if rnd == 0 else goods[rnd + 1 :] + goods)[:n]}


def test_rephrase_gemini_killed_twice_resumes_byte_identical(code, tmp_path):
    """Rounds depend on what earlier rounds accepted, so a resumed run must rebuild round 0 from the cache
    exactly to ask round 1 the same questions."""
    with GeminiStub() as stub:
        hold = Hold(stub, respond_rephrasings)
        overrides = ["rephrase=gemini", f"rephrase.base_url={stub.url}", "rephrase.timeout_s=60",
                     "rephrase.k=2", "rephrase.temperature=0.6", "rephrase.concurrency=2",
                     "rephrase.retry.max_attempts=1"]  # fmt: skip
        clean, killed = stages(code, tmp_path, "rbiqa.rephrase", overrides)
        questions = {sid: q for sid, (q, _) in REPHRASINGS.items()}
        for st in (clean, killed):
            write_jsonl(st.project / P.SPLIT_TRAIN, split_rows(questions, para={"s1"}))

        clean.finish()
        reference = answered(stub, rephrase_call)
        assert sum(asked(stub, rephrase_call).values()) == sum(reference.values()) == 4 + 4 + 1
        assert all(n == 1 for n in reference.values())  # 4 in round 0, 4 in round 1, s3 alone in round 2

        done: Counter = Counter()
        for n in (2, 3):  # kill 1: half of round 0 answered; kill 2: round 0 done, one of round 1 answered
            stub.reset_counts()
            hold.hold_after(n)
            killed.kill_when(
                lambda: rephrase_entries(killed.project, "gemini"),
                sum(done.values()) + n,
                held=lambda: hold.held == 2,  # both slots (rephrase.concurrency)
            )
            hold.release()
            now = answered(stub, rephrase_call)
            assert sum(now.values()) == n and not set(now) & set(done)  # nothing answered twice
            done += now
            assert_not_done(*(killed.project / p for p in REPHRASE_OUT))
        stub.reset_counts()
        killed.finish()
        last = asked(stub, rephrase_call)
    assert not set(last) & set(done)  # every call answered before a kill came from the cache
    assert done + last == reference  # and all others were asked exactly once more
    assert_same_files(killed.project, clean.project, REPHRASE_OUT, REPHRASE_MASKS)
    report = read_json(killed.project / P.REPHRASE_REPORT)
    assert report["calls"]["cached_calls"] == sum(done.values())
    assert report["yield"]["train_rephrasings_total"] == 2 * 3  # s1, s2, s4 reached k=2; s3 is short


# --- generate ---------------------------------------------------------------------------------------------

GEN_SETS = {"unanswerable": 5, "test_unseen": 7}


def gen_outputs(arm: str = "base") -> list[Path]:
    return [f(p) for e in GEN_SETS for p in [P.generations(arm, e)] for f in (lambda x: x, P.manifest_for)]


def cache_lines(project: Path, eval_set: str) -> list[dict]:
    from rbiqa.generate.cache import cache_path

    path = project / cache_path("base", eval_set)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_generate_killed_in_each_eval_set_resumes_byte_identical(code, tmp_path, tiny_model):
    """One job answers two eval sets; the second kill comes after the first set's file and manifest are
    written, so a job can be partly done: the done part must stay exactly as an uninterrupted job writes it."""
    overrides = ["arm=base", f"eval_sets=[{','.join(GEN_SETS)}]", f"model.path={tiny_model}",
                 "model.name=tiny", "model.hf_id=tiny-llama", "generate.max_new_tokens=6",
                 "generate.batch_size=2", "generate.progress=false"]  # fmt: skip
    clean, killed = stages(code, tmp_path, "rbiqa.generate", overrides)
    for st in (clean, killed):
        for e, n in GEN_SETS.items():
            write_jsonl(st.project / P.eval_set_path(e), eval_rows(e, n))
        (st.project / P.stamp("generate", "base")).parent.mkdir(parents=True, exist_ok=True)
        (st.project / P.stamp("generate", "base")).write_text("generate: {}\n")
    clean.finish()

    gate = "rbiqa.generate.loader:LazyModel.__call__"  # one call per batch of 2 (balanced: 5 = 2+2+1)
    killed.kill_when(lambda: len(cache_lines(killed.project, "unanswerable")), 2, gate=(gate, 1))
    assert_not_done(*(killed.project / p for p in gen_outputs()))
    # the rerun answers the 3 other unanswerable items (2 calls), writes that set, then one batch of 2
    killed.kill_when(lambda: len(cache_lines(killed.project, "test_unseen")), 2, gate=(gate, 3))
    first, second = (killed.project / p for p in (P.generations("base", e) for e in GEN_SETS))
    assert first.exists() and P.manifest_for(first).exists()  # the set finished before the kill
    assert_not_done(second, P.manifest_for(second))
    assert read_json(P.manifest_for(first))["extra"]["n_cached"] == 2
    killed.finish()

    for e, n in GEN_SETS.items():
        lines = cache_lines(killed.project, e)
        assert len(lines) == len({r["key"] for r in lines}) == n  # each item answered once, across 3 runs
        extra = read_json(killed.project / P.manifest_for(P.generations("base", e)))["extra"]
        assert (extra["n_cached"], extra["n_generated"]) == ((n, 0) if e == "unanswerable" else (2, n - 2))
    # An answer's `seconds` is the wall time of its batch: a resumed item keeps the time of the run that
    # answered it. The manifests' counts and throughput describe the last run only, and hash the files.
    seconds = re.compile(rb'"seconds": [-+.\deE]+')
    # weights.n_roundtrip counts the weights this process round-tripped: 0 for a set answered wholly from
    # the cache before the model was loaded.
    run_fields = [("extra", k) for k in ("n_cached", "n_generated", "model_calls", "throughput")]
    run_fields.append(("extra", "weights", "n_roundtrip"))
    masks: dict[Path, Mask] = {}
    for e in GEN_SETS:
        out = P.generations("base", e)
        masks[out] = lambda b: seconds.sub(b'"seconds": _', b)
        masks[P.manifest_for(out)] = json_without(CREATED, *run_fields, ("outputs", out.as_posix()))
    assert_same_files(killed.project, clean.project, gen_outputs(), masks)


# --- judge ------------------------------------------------------------------------------------------------

N_JUDGED = 12


def write_judge_inputs(root: Path) -> list[str]:
    """test_unseen items whose generated answers are right for some, wrong for others; each question
    carries an [[id]] marker for the stub."""
    ids = [f"g{i:03d}" for i in range(N_JUDGED)]
    items = [
        EvalItem(item_id=i, source_id=f"s{k % 4}", eval_set="test_unseen", regulation_area="x",
                 question=f"What is the limit on loans of kind {k}? [[{i}]]", category="fact-based",
                 reference=f"The limit is Rs {k} lakh per borrower.", difficulty=2)
        for k, i in enumerate(ids)
    ]  # fmt: skip
    gens = [
        Generation(item_id=it.item_id, source_id=it.source_id, eval_set="test_unseen", arm="base",
                   question=it.question, model_id="synthetic",
                   answer=f"The limit is Rs {k if k % 3 else k + 7} lakh per borrower.")
        for k, it in enumerate(items)
    ]  # fmt: skip
    for path, rows in ((P.eval_set_path("test_unseen"), items), (P.generations("base", "test_unseen"), gens)):
        write_jsonl(root / path, [r.model_dump() for r in rows])
    (root / P.stamp("judge")).parent.mkdir(parents=True, exist_ok=True)
    (root / P.stamp("judge")).write_text("judge: {}\n")
    return ids


JUDGED = P.judgments("base", "test_unseen")


def judge_entries(project: Path) -> int:
    from rbiqa.llm.cache import ResultCache

    with ResultCache(project / P.CACHE / "judge") as cache:
        return len(cache)


def judge_masks(*extra_fields: tuple[str, ...]) -> dict[Path, Mask]:
    """The judge manifest's counts.cache_hits and judge_calls, and its `seconds`, describe the last run."""
    counts = [("extra", "counts", k) for k in ("cache_hits", "judge_calls")]
    return {P.manifest_for(JUDGED): json_without(CREATED, ("extra", "seconds"), *counts, *extra_fields)}


def respond_verdict(prompt: str, body: dict) -> dict:
    """Depends on the item alone: every third answer is wrong (write_judge_inputs)."""
    item = marker_key(prompt)
    score = int(int(item[1:]) % 3 != 0)
    return {"score": score, "reasoning": f"stub verdict {score} for [[{item}]]"}


def test_judge_gemini_killed_twice_resumes_byte_identical(code, tmp_path):
    with GeminiStub(item_key=marker_key) as stub:
        hold = Hold(stub, respond_verdict)
        overrides = ["arm=base", "+eval_set=test_unseen", "judge=gemini", f"judge.base_url={stub.url}",
                     "judge.timeout_s=60", "judge.concurrency=3", "judge.retry.max_attempts=1"]  # fmt: skip
        clean, killed = stages(code, tmp_path, "rbiqa.judge", overrides)
        ids = [write_judge_inputs(st.project) for st in (clean, killed)][0]

        clean.finish()
        assert answered(stub, lambda r: r.key) == dict.fromkeys(ids, 1)
        done: Counter = Counter()
        for n in (4, 4):
            stub.reset_counts()
            hold.hold_after(n)
            killed.kill_when(
                lambda: judge_entries(killed.project), sum(done.values()) + n, held=lambda: hold.held == 3
            )
            hold.release()
            now = answered(stub, lambda r: r.key)
            assert sum(now.values()) == n and not set(now) & set(done)
            done += now
            assert_not_done(killed.project / JUDGED, killed.project / P.manifest_for(JUDGED))
        stub.reset_counts()
        killed.finish()
        last = asked(stub, lambda r: r.key)
    assert not set(last) & set(done) and done + last == Counter(ids)  # each verdict asked for once
    rows = read_jsonl(killed.project / JUDGED)
    assert [r["score"] for r in rows] == [0 if k % 3 == 0 else 1 for k in range(N_JUDGED)]
    # extra.api: this run's requests and retries
    assert_same_files(killed.project, clean.project, [JUDGED], judge_masks(("extra", "api")))
    counts = read_json(killed.project / P.manifest_for(JUDGED))["extra"]["counts"]
    assert (counts["cache_hits"], counts["judge_calls"]) == (8, N_JUDGED - 8)


def test_judge_reference_killed_resumes_byte_identical(code, tmp_path):
    """The offline default judge goes through the same per-item cache as the API judges."""
    overrides = ["arm=base", "+eval_set=test_unseen", "judge=reference", "judge.batch_size=6"]
    clean, killed = stages(code, tmp_path, "rbiqa.judge", overrides)
    for st in (clean, killed):
        write_judge_inputs(st.project)
    clean.finish()
    # one predict() call per batch of 6, each verdict cached as it is made
    gate = ("rbiqa.judge.reference.model:ReferenceJudge.predict", 1)
    killed.kill_when(lambda: judge_entries(killed.project), 6, gate=gate)
    assert_not_done(killed.project / JUDGED, killed.project / P.manifest_for(JUDGED))
    killed.finish()
    counts = read_json(killed.project / P.manifest_for(JUDGED))["extra"]["counts"]
    assert (counts["cache_hits"], counts["judge_calls"]) == (6, N_JUDGED - 6)
    assert_same_files(killed.project, clean.project, [JUDGED], judge_masks())
