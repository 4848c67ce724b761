"""The policy of the Python stage, in plain Python: what it looks for and
what it decides. No WebAssembly here, so `python -m unittest` tests it on
any machine; `app.py` connects it to Helio's contract.

It finds e-mail addresses and US social security numbers in any string
argument, at any depth, and blocks the call (or, with `on_match: redact`,
lets it through), always masking what it found in the audit record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PATTERNS = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
}


class ConfigProblem(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass
class Config:
    detect: list[str] = field(default_factory=lambda: list(PATTERNS))
    on_match: str = "deny"

    @staticmethod
    def parse(raw: object) -> "Config":
        if raw is None:
            return Config()
        if not isinstance(raw, dict):
            raise ConfigProblem("", "must be an object")
        unknown = sorted(set(raw) - {"detect", "on_match"})
        if unknown:
            raise ConfigProblem(unknown[0], "unknown key")
        config = Config()
        if "detect" in raw:
            detect = raw["detect"]
            if not isinstance(detect, list) or not detect:
                raise ConfigProblem("detect", "must be a non-empty list")
            for i, kind in enumerate(detect):
                if kind not in PATTERNS:
                    raise ConfigProblem(f"detect[{i}]", f"must be one of {', '.join(PATTERNS)}")
            config.detect = detect
        if "on_match" in raw:
            if raw["on_match"] not in ("deny", "redact"):
                raise ConfigProblem("on_match", "must be deny or redact")
            config.on_match = raw["on_match"]
        return config


@dataclass
class Decision:
    """What the stage decided: `deny` says where (never what), `redact`
    lists the argument paths to mask in the record."""

    deny: bool
    explanation: str
    message: str = ""
    redact: list[str] = field(default_factory=list)


def decide(config: Config, strings: list[tuple[str, str]]) -> Decision:
    """`strings`: every string argument as (concrete path, text)."""
    found = [
        (path, kind)
        for path, text in strings
        for kind in config.detect
        if PATTERNS[kind].search(text)
    ]
    if not found:
        return Decision(deny=False, explanation="no PII found")
    first_path, first_kind = found[0]
    paths = sorted({path for path, _ in found})
    if len(paths) > 64:
        # Helio takes at most 64 redact paths: mask every value instead.
        paths = ["**.*"]
    explanation = f"{len(paths)} value(s) with PII, first {first_kind} at {first_path}"
    if config.on_match == "redact":
        return Decision(deny=False, explanation=explanation, redact=paths)
    return Decision(
        deny=True,
        explanation=explanation,
        message=f"Blocked: {first_kind} found in {first_path}",
        redact=paths,
    )
