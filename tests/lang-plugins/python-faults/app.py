"""python-faults: a Python stage that misbehaves on calls to `echo` as its
config says (`{"fail": "raise" | "loop" | "alloc" | "error"}`), so the tests
can prove Helio fails closed on a Python stage too; other calls pass."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import Action, Decision, StageError, ToolCall, Verdict, Verdict_Allow

MODE = "none"


class Stage(exports.Stage):
    def configure(self, config_json: str) -> None:
        global MODE
        MODE = json.loads(config_json).get("fail", "none")

    def evaluate(self, call: ToolCall) -> Verdict:
        if call.tool() == "echo":
            if MODE == "raise":
                raise RuntimeError("python-faults was told to raise")
            if MODE == "loop":
                while True:
                    pass
            if MODE == "alloc":
                chunks = []
                while True:
                    chunks.append(bytearray(1 << 20))
            if MODE == "error":
                raise Err(StageError("python-faults was told to report an error"))
        return Verdict_Allow(Decision(Action.ALLOW, None, None, "python-faults", [], False))
