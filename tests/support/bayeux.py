"""Bayeux over plain HTTP for tests that drive real servers with httpx."""

from __future__ import annotations

from typing import Any

import httpx


async def post(http: httpx.AsyncClient, url: str, messages: Any) -> list[dict[str, Any]]:
    """POST messages as JSON to a Bayeux endpoint; the replies (status 200 asserted)."""
    response = await http.post(url, json=messages)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result
