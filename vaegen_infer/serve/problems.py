"""RFC 9457 problem details: every error the server sends is one of these JSON bodies."""

from __future__ import annotations

import json
from typing import Any

PROBLEM_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """An HTTP error with a one-line `detail` saying what was wrong and what to do."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra  # further RFC 9457 members, e.g. `errors` for field-level messages

    def body(self, instance: str | None = None) -> bytes:
        doc: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(self.status, "Error"), "status": self.status}
        doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return json.dumps(doc).encode("utf-8")
