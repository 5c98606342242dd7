"""``GET /metrics``: the core's telemetry in Prometheus's text format (or OpenMetrics, when the scraper asks for it).

Each scrape reads one :class:`~bot.core.TelemetrySnapshot` (counters since the process started, the queue's depth
read from the database now) and formats it with ``prometheus_client``: a collector on a registry of this app's own
(never the library's global one, so two apps in one process never mix). Every name starts with ``imaginebot_``.
Each engine's series carry its ``engine`` (``engine 0``, ``engine 1``, …) and ``device`` (``cuda:1``, ``ray:2``)
labels; the pool-wide ones (busy time, ready) carry none.
Without ``web.metrics_public`` the route asks for an API key like the APIs do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from bot.core import Histogram, ImagineService, TelemetrySnapshot
from web.auth import current_actor

log = logging.getLogger(__name__)

router = APIRouter()

PREFIX = "imaginebot_"


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets = [(floatToGoString(bound), float(count)) for bound, count in histogram.cumulative()]
    return HistogramMetricFamily(PREFIX + name, documentation, buckets=buckets, sum_value=histogram.sum)


def _labelled(
    family: type[CounterMetricFamily | GaugeMetricFamily],
    name: str,
    documentation: str,
    labels: Sequence[str],
    rows: Iterable[tuple[Sequence[str], float]],
) -> CounterMetricFamily | GaugeMetricFamily:
    """A family of one sample per row: the row's label values and its value."""
    metric = family(PREFIX + name, documentation, labels=list(labels))
    for values, value in rows:
        metric.add_metric(list(values), value)
    return metric


def metric_families(snapshot: TelemetrySnapshot) -> Iterator[Metric]:
    """Every metric of ``snapshot``, named and documented as Prometheus shows them."""
    yield GaugeMetricFamily(
        PREFIX + "up",
        "1 when the bot answered the scrape in full (its database could be read)",
        int(snapshot.queue_readable),
    )
    if snapshot.queue_readable:
        yield _labelled(
            GaugeMetricFamily,
            "queue_depth",
            "jobs waiting in each lane",
            ["lane"],
            (([lane.lane], lane.queued) for lane in snapshot.queue_depth),
        )
        yield GaugeMetricFamily(
            PREFIX + "jobs_running", "jobs handed to the engine and not yet ended", snapshot.running
        )
        yield GaugeMetricFamily(
            PREFIX + "queue_paused", "1 while a moderator has paused the queue", int(snapshot.paused)
        )
    yield _labelled(
        CounterMetricFamily,
        "jobs_total",
        "job events by state (queued, started, completed, failed, cancelled, requeued) and job kind",
        ["state", "kind"],
        (([item.state, item.kind], item.count) for item in snapshot.jobs),
    )
    yield _histogram(
        "queue_wait_seconds", "seconds from a request to its first hand-over to the engine", snapshot.queue_wait
    )
    yield _histogram(
        "render_seconds", "seconds from a job's hand-over to the engine to its recorded result", snapshot.render
    )
    yield _histogram("batch_size", "jobs per batch handed to the engine", snapshot.batch_size)
    yield GaugeMetricFamily(
        PREFIX + "engine_busy_ratio",
        "share of the uptime with at least one batch in the engine (use a rate of engine_busy_seconds for recent use)",
        snapshot.engine_busy_ratio,
    )
    yield CounterMetricFamily(
        PREFIX + "engine_busy_seconds_total", "seconds with at least one batch in the engine", snapshot.engine_busy_s
    )
    yield GaugeMetricFamily(
        PREFIX + "engine_ready", "1 while at least one engine has its model loaded", int(snapshot.engine_ready)
    )
    yield from engine_families(snapshot)
    yield CounterMetricFamily(
        PREFIX + "credits_charged_total", "credits charged for queued jobs", snapshot.credits_charged
    )
    yield CounterMetricFamily(
        PREFIX + "credits_refunded_total", "credits given back for failed and cancelled jobs", snapshot.credits_refunded
    )
    yield _labelled(
        CounterMetricFamily,
        "errors_total",
        "failed jobs (stage render) and refused requests (stage request) by reason",
        ["stage", "reason"],
        (([error.stage, error.reason], error.count) for error in snapshot.errors),
    )


def engine_families(snapshot: TelemetrySnapshot) -> Iterator[Metric]:
    """The engines: how many, and each one's state, work and restarts (labels ``engine`` and ``device``)."""
    engines = snapshot.engines
    labels = ["engine", "device"]
    yield GaugeMetricFamily(PREFIX + "engines", "engines in the pool (local devices or Ray engines)", len(engines))
    yield _labelled(
        GaugeMetricFamily,
        "engine_up",
        "1 while the engine has its model loaded and takes work, 0 while it starts, fails or is down",
        labels,
        (([engine.name, engine.device], int(engine.state == "ready")) for engine in engines),
    )
    yield _labelled(
        GaugeMetricFamily,
        "engine_busy",
        "1 while the engine holds a batch",
        labels,
        (([engine.name, engine.device], int(engine.busy)) for engine in engines),
    )
    yield _labelled(
        CounterMetricFamily,
        "engine_restarts_total",
        "times each engine's process was started again (sum them for the whole pool)",
        labels,
        (([engine.name, engine.device], engine.restarts) for engine in engines),
    )


class SnapshotCollector(Collector):
    """Formats the snapshot the route read last (set just before the registry is rendered)."""

    def __init__(self) -> None:
        self.snapshot: TelemetrySnapshot | None = None

    def collect(self) -> Iterator[Metric]:
        if self.snapshot is not None:
            yield from metric_families(self.snapshot)


class MetricsExporter:
    """This app's registry and its one collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = SnapshotCollector()
        self.registry.register(self.collector)

    async def render(self, service: ImagineService, accept: str | None) -> tuple[bytes, str]:
        """The body and content type of one scrape."""
        snapshot = await service.telemetry.snapshot()
        encoder, content_type = choose_encoder(accept or "")
        self.collector.snapshot = snapshot  # no await from here to the encoding: a concurrent scrape cannot interleave
        return encoder(self.registry), content_type


def exporter_of(app: FastAPI) -> MetricsExporter:
    """The app's exporter, made on its first scrape."""
    exporter: MetricsExporter | None = getattr(app.state, "metrics", None)
    if exporter is None:
        exporter = app.state.metrics = MetricsExporter()
    return exporter


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The bot's metrics for Prometheus; an API key is needed when ``web.metrics_public`` is off."""
    settings = request.app.state.settings
    if not settings.web.metrics_public:
        await current_actor(request)
    body, content_type = await exporter_of(request.app).render(request.app.state.service, request.headers.get("accept"))
    return Response(body, media_type=content_type)
