"""Every operation of the whole app's OpenAPI schema (the native API, the A1111-compatible API, whatever else is
mounted), called with requests schemathesis generates from the schema: no 5xx, and every answer conforms to the
schema (status code, content type, headers, body).

Routes that would start real renders are covered without flooding anything: the member has no credits (the free
tier's allowance is 0) and may not use the free relax lane, so every admission is refused fast (402 or 403) and
nothing is ever queued; and this test's core runs no worker and no engine, so nothing could render anyway. (A paused
queue would refuse them too, but with 503, which is a 5xx.) The member's key drives every operation; then the
moderator's key drives the moderation routes (which the member's key only meets as 403), after every other route
ran, so credits a generated ``/admin/credits`` gives cannot let a later request queue a job.

Hypothesis runs in a thread; each request is sent to the app in the test's own event loop, where the service lives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import CheckContext
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.core import ImagineService
from config.policy import DEFAULT_TIERS, TierSpec
from config.settings import Settings
from tests.conftest import make_settings
from tests.web.conftest import bearer

MAX_EXAMPLES = 12
"""Generated requests per operation and key (a few hundred in all: seconds)."""


def no_server_error(ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """No 5xx, except a 501 the operation documents (an A1111 route this server deliberately lacks)."""
    if response.status_code == 501 and "501" in case.operation.definition.raw.get("responses", {}):
        return True
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
REQUEST_LIMIT_S = 30.0
TRANSPORT_KEYS = {"method", "url", "params", "headers", "cookies", "json"}

Send = Callable[[schemathesis.Case, dict[str, str]], httpx.Response]


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """Tiny model; the free tier gets no credits and no relax lane, so every request for images is refused."""
    broke = TierSpec(allowance=0, refill="never", relax=False)
    return make_settings(data_dir, database_path=tmp_path / "imagine.db", tiers={**DEFAULT_TIERS, "free": broke})


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[ImagineService]:
    """The core without its worker or engine: nothing this test sends is ever rendered."""
    service = await ImagineService.open(settings)
    try:
        yield service
    finally:
        await service.close()


def request_arguments(case: schemathesis.Case, headers: dict[str, str]) -> dict[str, Any]:
    """The case as httpx.AsyncClient.request's arguments."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    arguments = {key: value for key, value in kwargs.items() if key in TRANSPORT_KEYS}
    cookies = arguments.pop("cookies", None)
    if cookies:  # as a header: httpx takes cookies per client, not per request
        arguments["headers"] = {**arguments["headers"], "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    if "data" in kwargs:
        arguments["content"] = kwargs["data"]
    unexpected = set(kwargs) - TRANSPORT_KEYS - {"data"}
    assert not unexpected, f"a request argument this test does not pass on: {unexpected}"
    return arguments


def run_operation(operation: schemathesis.APIOperation, headers: dict[str, str], send: Send) -> None:
    """Generate requests for one operation, send each, and check each answer against the schema."""

    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        response = send(case, headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()


async def test_every_operation_answers_as_its_schema_says(
    app: FastAPI, client: httpx.AsyncClient, member_key: str, moderator_key: str
) -> None:
    """No operation answers 5xx or anything its schema does not describe, for the member and the moderator."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(operation.path.startswith("/api/v1/") for operation in operations)
    loop = asyncio.get_running_loop()
    answered: dict[tuple[str, int], int] = {}

    def send(case: schemathesis.Case, headers: dict[str, str]) -> httpx.Response:
        request = client.request(**request_arguments(case, headers))
        response = asyncio.run_coroutine_threadsafe(request, loop).result(REQUEST_LIMIT_S)
        key = (case.operation.label, response.status_code)
        answered[key] = answered.get(key, 0) + 1
        return response

    moderation = [operation for operation in operations if operation.path.startswith("/api/v1/admin/")]
    passes = [(operation, bearer(member_key)) for operation in operations]
    passes += [(operation, bearer(moderator_key)) for operation in moderation]

    def run_all() -> list[str]:
        failures = []
        for operation, headers in passes:
            try:
                run_operation(operation, headers, send)
            except Exception as error:  # every operation runs; all failures are reported together
                failures.append(f"{operation.label}: {error}")
        return failures

    failures = await asyncio.to_thread(run_all)
    assert not failures, "\n\n".join(failures)
    assert {label for label, _status in answered} == {operation.label for operation in operations}
    assert any(label == "POST /api/v1/jobs" and status in (402, 403) for label, status in answered)
    print(f"{sum(answered.values())} requests:", sorted(answered.items()))
