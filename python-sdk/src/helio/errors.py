"""The one exception the SDK raises."""

from __future__ import annotations


class HelioError(Exception):
    """Anything that kept a call to the gateway from succeeding: it could
    not be reached, it did not answer in time, it refused the request
    (``status_code`` says how), or its answer could not be read. The
    message names the request and, for a refusal, the gateway's reason."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
