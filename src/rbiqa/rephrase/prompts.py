"""Versioned rephrasing prompts, parsed from `prompts/rephrase_<version>.txt`.

The prompt lives in a file rather than in code so that its sha256 can key the cache and be recorded in
the manifest: changing one word of the prompt is a new prompt, and reruns must not reuse old outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rbiqa.io import InputError, sha256_file

PROMPT_DIR = Path(__file__).parent / "prompts"
_SECTION = re.compile(r"^=== (\w+) ===$")


@dataclass(frozen=True)
class PromptSpec:
    version: str
    path: Path
    sha256: str
    system: str
    shots: tuple[tuple[str, str], ...]  # (original, rephrasing)
    api_template: str
    user_template: str = "{question}"  # every user turn of the chat prompt, shots included

    def chat_prefix(self) -> list[dict[str, str]]:
        """System turn plus the few-shot examples as user/assistant turns (shared by every item)."""
        msgs = [{"role": "system", "content": self.system}]
        for q, r in self.shots:
            msgs += [{"role": "user", "content": self.user(q)}, {"role": "assistant", "content": r}]
        return msgs

    def user(self, question: str) -> str:
        return self.user_template.format(question=question)

    def chat(self, question: str) -> list[dict[str, str]]:
        return [*self.chat_prefix(), {"role": "user", "content": self.user(question)}]

    def api_prompt(self, question: str, n: int) -> str:
        examples = "\n".join(f"- {q} -> {r}" for q, r in self.shots)
        return self.api_template.format(n=n, question=question, examples=examples)


def load_prompt(version: str) -> PromptSpec:
    path = PROMPT_DIR / f"rephrase_{version}.txt"
    if not path.exists():
        known = sorted(p.stem.removeprefix("rephrase_") for p in PROMPT_DIR.glob("rephrase_*.txt"))
        raise InputError(f"no rephrasing prompt version {version!r} ({path}); available: {known}")
    sections: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if m := _SECTION.match(line.strip()):
            sections.append((m.group(1), []))
        elif sections:
            sections[-1][1].append(line)
    system, api, user, shots = None, None, "{question}", []
    for name, lines in sections:
        text = "\n".join(lines).strip()
        if name == "system":
            system = text
        elif name == "api":
            api = text
        elif name == "user":
            if "{question}" not in text:
                raise InputError(f"{path}: the user section must contain {{question}}")
            user = text
        elif name == "shot":
            q = re.search(r"^Q: (.+)$", text, re.M)
            r = re.search(r"^R: (.+)$", text, re.M)
            if not (q and r):
                raise InputError(f"{path}: a shot needs a 'Q: ' line and an 'R: ' line, got {text!r}")
            shots.append((q.group(1).strip(), r.group(1).strip()))
        else:
            raise InputError(f"{path}: unknown section {name!r} (expected system, user, shot, api)")
    if not system or not api or not shots:
        raise InputError(f"{path}: needs a system section, at least one shot and an api section")
    return PromptSpec(version, path, sha256_file(path), system, tuple(shots), api, user)
