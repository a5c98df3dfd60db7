"""One writer process of the judge-cache contention test (tests/integration/test_judge_cache_concurrency.py).

`python -m tests.integration._judge_cache_writer DIR WORKER N GO_FILE`: says "ready", waits for GO_FILE (so
that every writer opens the cache and writes at the same moment), writes its N verdicts in a tight loop, and
prints its figures as one JSON line. Writer w writes keys w*N/2 .. w*N/2+N-1: half of them shared with the
next writer.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rbiqa.llm.cache import ResultCache


def key(i: int) -> str:
    return f"key{i:05d}"


def verdict(i: int) -> dict:
    return {"score": i % 2, "reasoning": f"verdict for item {i}", "p_correct": i / 1000}


def keys_of(worker: int, n: int) -> range:
    return range(worker * n // 2, worker * n // 2 + n)


def main(directory: str, worker: int, n: int, go_file: str) -> None:
    print("ready", flush=True)
    while not Path(go_file).exists():
        time.sleep(0.001)
    t0 = time.perf_counter()
    with ResultCache(directory) as cache:
        for i in keys_of(worker, n):
            cache.set(key(i), verdict(i))
        retries = cache.lock_retries
    print(json.dumps({"worker": worker, "writes": n, "lock_retries": retries, "s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
