"""A plain function-calling loop, governed by Helio through the adapter API.

No agent framework: a scripted "model" proposes tool calls, and every call
is evaluated by Helio before it runs and reported after. Blocked calls give
the model Helio's self-repair feedback instead of a result; held calls wait
for an operator's decision on the dashboard. Errors reaching Helio fail
closed: the tool does not run.

    HELIO_ADAPTER_TOKEN=… python examples/adapter-loop/agent.py [--url http://127.0.0.1:3200]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any, Callable

from helio import HelioError
from helio.adapter import AdapterClient

# The tools the agent may call, as plain Python functions.
TOOLS: dict[str, Callable[..., Any]] = {
    "read_file": lambda path: f"(contents of {path})",
    "send_email": lambda to, subject: f"sent '{subject}' to {to}",
    "run_shell": lambda command: f"ran {command}",
    "buy": lambda item, price: f"bought {item} for {price} USD",
    "deploy": lambda service, version: f"deployed {service} {version}",
}

# How the model sees each tool. Sent with every evaluation: Helio baselines
# each definition and blocks a call if a tool's definition later changes.
DEFINITIONS: dict[str, dict[str, Any]] = {
    "read_file": {"description": "Reads a file", "input_schema": {"type": "object"}},
    "send_email": {"description": "Sends an email", "input_schema": {"type": "object"}},
    "run_shell": {"description": "Runs a shell command", "input_schema": {"type": "object"}},
    "buy": {"description": "Buys an item", "input_schema": {"type": "object"}},
    "deploy": {"description": "Deploys a service version", "input_schema": {"type": "object"}},
}
ANNOTATIONS: dict[str, dict[str, bool]] = {
    "read_file": {"readOnlyHint": True, "destructiveHint": False},
}

# What a model might ask for, in order.
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("read_file", {"path": "notes.txt"}),
    ("run_shell", {"command": "rm -rf /tmp/cache"}),
    ("send_email", {"to": "ops@example.com", "subject": "daily report"}),
    ("send_email", {"to": "ops@example.com", "subject": "follow-up"}),
    ("send_email", {"to": "ops@example.com", "subject": "one more"}),
    ("buy", {"item": "usb cable", "price": 12.5}),
    ("buy", {"item": "monitor", "price": 45}),
    ("deploy", {"service": "web", "version": "1.4.2"}),
]


def governed_call(helio: AdapterClient, session: str, tool: str, arguments: dict[str, Any]) -> str:
    """Asks Helio, runs the tool only if allowed, reports what happened, and
    returns what the model sees."""
    try:
        evaluation = helio.evaluate(tool, arguments, session_id=session, definition=DEFINITIONS[tool],
                                    annotations=ANNOTATIONS.get(tool))
        if evaluation.held:
            ticket = evaluation.approval["id"] if evaluation.approval else "?"
            print(f"  {tool}: waiting for an operator to decide ticket {ticket} "
                  "(dashboard → Approvals)", file=sys.stderr, flush=True)
            evaluation = helio.wait_for_decision(evaluation)
    except HelioError as error:
        return f"[not run: Helio could not be asked ({error})]"
    if not evaluation.allowed:
        return f"[blocked: {evaluation.feedback_text()}]"
    started = time.monotonic()
    try:
        result = TOOLS[tool](**arguments)
    except Exception as error:  # the tool failed: report it, tell the model
        helio.report(evaluation, "error", error=str(error),
                     duration_ms=(time.monotonic() - started) * 1e3)
        return f"[error: {error}]"
    helio.report(evaluation, "success", result={"text": result},
                 duration_ms=(time.monotonic() - started) * 1e3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3200", help="Helio's SDK sideband")
    args = parser.parse_args()
    session = f"loop-{uuid.uuid4().hex[:8]}"
    with AdapterClient(args.url, origin="adapter-loop-example", adapter_version="1.0") as helio:
        for tool, arguments in SCRIPT:
            print(f"{tool}({arguments}) -> {governed_call(helio, session, tool, arguments)}")


if __name__ == "__main__":
    main()
