"""``GET /metrics``: Prometheus's text format with every imaginebot_ metric, values that follow the queue, refusals
and a rendered job, the API key when metrics are not public, and the Grafana dashboard and Prometheus example that
read them."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bot.core import Actor, ImagineService, Origin, QueuePausedError
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from config.web_settings import DEFAULT_WEB_PORT
from tests.conftest import ENGINE_TIMEOUT_S, submit_prompt
from tests.web.conftest import bearer, issue_key
from web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "imaginebot.json"
PROMETHEUS_EXAMPLE = ROOT / "deploy" / "prometheus.yml"
MEMBER = Actor(515, Origin(source="cli"))

FAMILIES = {
    "imaginebot_up": "gauge",
    "imaginebot_queue_depth": "gauge",
    "imaginebot_jobs_running": "gauge",
    "imaginebot_queue_paused": "gauge",
    "imaginebot_jobs": "counter",
    "imaginebot_queue_wait_seconds": "histogram",
    "imaginebot_render_seconds": "histogram",
    "imaginebot_batch_size": "histogram",
    "imaginebot_engine_busy_ratio": "gauge",
    "imaginebot_engine_busy_seconds": "counter",
    "imaginebot_engine_ready": "gauge",
    "imaginebot_engines": "gauge",
    "imaginebot_engine_up": "gauge",
    "imaginebot_engine_busy": "gauge",
    "imaginebot_engine_restarts": "counter",
    "imaginebot_credits_charged": "counter",
    "imaginebot_credits_refunded": "counter",
    "imaginebot_errors": "counter",
}
"""Every family the exporter serves and its type (the parser names a counter's family without ``_total``)."""


class Scrape:
    """One parsed answer of /metrics."""

    def __init__(self, text: str) -> None:
        self.types: dict[str, str] = {}
        self.samples: list[Sample] = []
        self.family_of: dict[str, str] = {}
        """Sample name → its family's name (``imaginebot_batch_size_bucket`` → ``imaginebot_batch_size``)."""
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            self.samples.extend(family.samples)
            self.family_of.update((sample.name, family.name) for sample in family.samples)

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample of ``name`` with exactly these labels."""
        found = [sample.value for sample in self.samples if sample.name == name and sample.labels == labels]
        assert len(found) == 1, f"{name}{labels}: {found}"
        return found[0]


async def scrape(client: httpx.AsyncClient, **headers: str) -> Scrape:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


@pytest.fixture
async def quiet_service(settings: Settings) -> AsyncIterator[ImagineService]:
    """A service whose engine never starts: jobs stay queued, nothing renders."""
    service = await ImagineService.open(settings, engine=EngineSupervisor(engine_config(settings)))
    yield service
    await service.close()


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def quiet_client(quiet_service: ImagineService, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(create_app(quiet_service, settings)) as client:
        yield client


async def test_metrics_serve_every_family_without_a_key(quiet_client: httpx.AsyncClient) -> None:
    """Every imaginebot_ family is there with its type, every lane and job state too, and the bot is up."""
    scraped = await scrape(quiet_client)
    assert scraped.types == FAMILIES
    assert scraped.value("imaginebot_up") == 1
    assert {s.labels["lane"] for s in scraped.samples if s.name == "imaginebot_queue_depth"} == {
        "turbo",
        "fast",
        "relax",
    }
    states = {s.labels["state"] for s in scraped.samples if s.name == "imaginebot_jobs_total"}
    assert states == {"queued", "started", "completed", "failed", "cancelled", "requeued"}
    assert scraped.value("imaginebot_render_seconds_bucket", le="+Inf") == 0


async def test_queue_credits_and_refusals_show_in_the_next_scrape(
    quiet_client: httpx.AsyncClient, quiet_service: ImagineService
) -> None:
    """A queued job, its charge, its cancel and refund, and a request refused while paused change the values."""
    before = await scrape(quiet_client)
    assert before.value("imaginebot_queue_depth", lane="fast") == 0
    submitted = await submit_prompt(quiet_service, MEMBER, "a fox")
    queued = await scrape(quiet_client)
    assert queued.value("imaginebot_queue_depth", lane="fast") == 1
    assert queued.value("imaginebot_jobs_total", state="queued", kind="imagine") == 1
    assert queued.value("imaginebot_credits_charged_total") == submitted.cost > 0
    await quiet_service.member.cancel(MEMBER, submitted.job.id)
    await quiet_service.scheduler.pause("mod")
    with pytest.raises(QueuePausedError):
        await quiet_service.prepare(MEMBER, "a cat")
    after = await scrape(quiet_client)
    assert after.value("imaginebot_queue_depth", lane="fast") == 0
    assert after.value("imaginebot_jobs_total", state="cancelled", kind="imagine") == 1
    assert after.value("imaginebot_credits_refunded_total") == submitted.cost
    assert after.value("imaginebot_queue_paused") == 1
    assert after.value("imaginebot_errors_total", stage="request", reason="queue_paused") == 1


async def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(quiet_client: httpx.AsyncClient) -> None:
    """Prometheus's OpenMetrics Accept header gets OpenMetrics, ending with # EOF."""
    response = await quiet_client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    assert "imaginebot_jobs_total" in response.text


async def test_metrics_need_a_key_when_not_public(quiet_service: ImagineService, settings: Settings) -> None:
    """With web.metrics_public off, a scrape without a valid key is 401 and one with a key is served."""
    private = settings.model_copy(update={"web": settings.web.model_copy(update={"metrics_public": False})})
    key = await issue_key(quiet_service, 4242)
    async with client_of(create_app(quiet_service, private)) as client:
        refused = await client.get("/metrics")
        wrong = await client.get("/metrics", headers=bearer("not-a-key"))
        served = await client.get("/metrics", headers=bearer(key))
    assert (refused.status_code, wrong.status_code, served.status_code) == (401, 401, 200)
    assert refused.json()["error"]["code"] == "unauthorized"
    assert "imaginebot_up 1.0" in served.text


async def test_a_closed_database_is_reported_as_down(settings: Settings) -> None:
    """When the core cannot read its queue, imaginebot_up is 0 and the counters are still served."""
    service = await ImagineService.open(settings, engine=EngineSupervisor(engine_config(settings)))
    app = create_app(service, settings)
    await service.close()
    async with client_of(app) as client:
        scraped = await scrape(client)
    assert scraped.value("imaginebot_up") == 0
    assert "imaginebot_queue_depth" not in scraped.types
    assert "imaginebot_jobs" in scraped.types


@pytest.mark.slow
async def test_a_rendered_job_moves_its_metrics(client: httpx.AsyncClient, service: ImagineService) -> None:
    """A job the running worker renders: completed, charged, one render, one batch of one, engine busy."""
    before = await scrape(client)
    submitted = await submit_prompt(service, MEMBER, "a fox --steps 4 --seed 5")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ENGINE_TIMEOUT_S
    while (await service.scheduler.get(submitted.job.id)).status.value != "completed":
        assert loop.time() < deadline, "the job did not complete"
        await asyncio.sleep(0.05)
    after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("imaginebot_jobs_total", state="completed", kind="imagine") == 1
    assert grew("imaginebot_jobs_total", state="started", kind="imagine") == 1
    assert grew("imaginebot_credits_charged_total") == submitted.cost
    assert grew("imaginebot_render_seconds_count") == 1 and grew("imaginebot_render_seconds_sum") > 0
    assert grew("imaginebot_queue_wait_seconds_count") == 1
    assert grew("imaginebot_batch_size_count") == 1 and grew("imaginebot_batch_size_bucket", le="1.0") == 1
    assert grew("imaginebot_engine_busy_seconds_total") > 0
    assert 0 < after.value("imaginebot_engine_busy_ratio") <= 1
    assert after.value("imaginebot_engine_ready") == 1


async def test_the_grafana_dashboard_reads_only_and_every_exposed_metric(quiet_client: httpx.AsyncClient) -> None:
    """A valid dashboard on a Prometheus data source variable: every panel queries, every name in its queries is a
    sample the exporter serves, and every family the exporter serves is on some panel."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    scraped = await scrape(quiet_client)
    exposed = set(scraped.family_of)
    used: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\bimaginebot_\w+", target["expr"]))
            assert names and names <= exposed, (panel["title"], names - exposed)
            used |= names
    assert {scraped.family_of[name] for name in used} == set(FAMILIES)


def test_the_prometheus_example_scrapes_the_default_address() -> None:
    """deploy/prometheus.yml scrapes /metrics on the web server's default port."""
    config = yaml.safe_load(PROMETHEUS_EXAMPLE.read_text())
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "imaginebot"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{DEFAULT_WEB_PORT}"]
