"""Helio's Python SDK: report evidence and context to the Helio MCP
governance gateway over its local sideband (a drop-in for ``helio-client``),
synchronously or with asyncio."""

from ._version import __version__
from .aio import AsyncHelioClient
from .client import HelioClient
from .context import HelioContext
from .errors import HelioError
from .types import CompletedTool, EvidenceEntry, EvidenceStateReport, SessionState

__all__ = [
    "__version__",
    "AsyncHelioClient",
    "HelioClient",
    "HelioContext",
    "HelioError",
    "CompletedTool",
    "EvidenceEntry",
    "EvidenceStateReport",
    "SessionState",
]
