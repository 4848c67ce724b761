"""The Python stage's edge: Helio's contract (helio:governance@0.2.0, world
`policy-stage`) around `policy.py`. componentize-py generates `wit_world`
from Helio's `wit/` when it builds the component (see build.sh)."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    Action,
    ConfigError,
    Decision,
    Feedback,
    JsonValue_Text,
    Level,
    ToolCall,
    Verdict,
    Verdict_Allow,
    Verdict_Deny,
)

import policy

CONFIG = policy.Config()


class Stage(exports.Stage):
    def configure(self, config_json: str) -> None:
        global CONFIG
        try:
            CONFIG = policy.Config.parse(json.loads(config_json))
        except policy.ConfigProblem as problem:
            raise Err([ConfigError(path=problem.path, message=problem.message)])
        host.log(Level.INFO, f"python-stage looks for {', '.join(CONFIG.detect)}")

    def evaluate(self, call: ToolCall) -> Verdict:
        strings = [
            (path, value.value)
            for path, value in call.arguments_at("**.*")
            if isinstance(value, JsonValue_Text)
        ]
        decided = policy.decide(CONFIG, strings)
        if not decided.deny:
            return Verdict_Allow(
                Decision(Action.ALLOW, None, None, decided.explanation, decided.redact, False)
            )
        return Verdict_Deny(
            (
                Decision(Action.DENY, "python-stage", None, decided.explanation, decided.redact, False),
                Feedback(
                    "pii_detected",
                    decided.message,
                    "Refer to the person by an internal id instead of their contact details.",
                    False,
                    None,
                ),
            )
        )
