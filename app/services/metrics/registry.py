"""The service's Prometheus metrics, on a per-app `CollectorRegistry` (never the global default, so
several apps in one test process, or one process serving twice, never collide).

Two kinds, and why they differ with several hosts:
- **Counters and histograms of this process** (deliveries, finished runs, step durations, queue wait,
  model tokens and cost): each host exports its own; Prometheus sums them across hosts
  (`sum by (outcome) (rate(auto_code_webhook_deliveries_total[5m]))`). They reset on restart, which
  `rate()` handles.
- **Gauges of shared state** (runs by status, queue depth, runs in flight, the oldest queued run's
  age): computed from the run database at scrape time, the one source every host shares, so every
  host reports the same figure. Aggregate them with `max`, never `sum`.

Labels never carry ticket text or keys: statuses, step names, outcomes, error codes and token
kinds only (small fixed sets).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Run statuses always exported (0 when none), so a dashboard's series never disappear.
RUN_STATUSES = ("queued", "waiting", "running", "succeeded", "failed", "no_changes", "cancelled",
                "needs_routing")
TOKEN_KINDS = ("input", "output", "cache_creation", "cache_read")
# Steps last from milliseconds (report) to most of an hour (implement, a gate with fix rounds).
STEP_BUCKETS = (0.05, 0.25, 1, 5, 15, 60, 180, 600, 1800, 3600, float("inf"))
WAIT_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, float("inf"))


@dataclass(frozen=True)
class SharedState:
    """The run database's view at scrape time: runs by status, and when (epoch seconds) the oldest
    run still `queued` was created (None: none is)."""

    counts: Mapping[str, int]
    oldest_queued_at: float | None = None
    now: float = 0.0


class _SharedCollector(Collector):
    """Yields the gauges of the last `SharedState` handed to `ServiceMetrics.render`."""

    def __init__(self) -> None:
        self.state = SharedState(counts={})

    def collect(self) -> Iterator[Metric]:
        s = self.state
        runs = GaugeMetricFamily("auto_code_runs", "Runs recorded, by status (shared database).",
                                 labels=["status"])
        for status in RUN_STATUSES:
            runs.add_metric([status], s.counts.get(status, 0))
        yield runs
        yield GaugeMetricFamily("auto_code_queue_depth",
                                "Runs queued and not yet started (shared database).",
                                value=s.counts.get("queued", 0))
        yield GaugeMetricFamily("auto_code_runs_waiting",
                                "Runs held before they start, e.g. by a spend cap (shared database).",
                                value=s.counts.get("waiting", 0))
        yield GaugeMetricFamily("auto_code_runs_in_flight", "Runs running now (shared database).",
                                value=s.counts.get("running", 0))
        oldest = 0.0 if s.oldest_queued_at is None else s.now - s.oldest_queued_at
        yield GaugeMetricFamily("auto_code_queue_oldest_age_seconds",
                                "How long the oldest queued run has waited (shared database).",
                                value=max(0.0, oldest))

    def describe(self) -> Iterable[Metric]:
        return list(self.collect())


class ServiceMetrics:
    """One per app (`create_app` builds it; the pipeline gets it through PipelineDeps). The methods
    are the only way the rest of the service touches metrics, so labels stay a fixed small set."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deliveries = Counter(
            "auto_code_webhook_deliveries", "Webhook deliveries handled by this process, by outcome "
            "(queued | duplicate | ignored | rejected) and error code (rejected only).",
            ["outcome", "code"], registry=r)
        self.runs_finished = Counter("auto_code_runs_finished",
                                     "Runs this process finished, by final status.", ["status"],
                                     registry=r)
        # The operator's repository names (REPOSITORIES_FILE; "default" without one, "-" when no
        # repository took the ticket): a small fixed set, never ticket text.
        self.repository_runs_finished = Counter(
            "auto_code_repository_runs_finished",
            "Runs this process finished, by repository and final status.", ["repository", "status"],
            registry=r)
        self.step_seconds = Histogram("auto_code_step_duration_seconds",
                                      "Wall time of pipeline steps run by this process.",
                                      ["step", "status"], buckets=STEP_BUCKETS, registry=r)
        self.queue_wait = Histogram("auto_code_queue_wait_seconds",
                                    "Time from a run's acceptance to its start on this process.",
                                    buckets=WAIT_BUCKETS, registry=r)
        self.model_tokens = Counter("auto_code_model_tokens",
                                    "Model tokens metered at the model proxy, by kind.", ["kind"],
                                    registry=r)
        self.model_cost = Counter("auto_code_model_cost_usd",
                                  "Model cost in USD metered at the model proxy.", registry=r)
        self._shared = _SharedCollector()
        r.register(self._shared)

    # ----- what the service reports -----
    def delivery(self, outcome: str, code: str = "") -> None:
        self.deliveries.labels(outcome=outcome, code=code[:40]).inc()

    def run_finished(self, status: str, repository: str | None = None) -> None:
        self.runs_finished.labels(status=status).inc()
        self.repository_runs_finished.labels(repository=(repository or "-")[:40], status=status).inc()

    def step_done(self, step: str, status: str, seconds: float) -> None:
        self.step_seconds.labels(step=step[:40], status=status).observe(max(0.0, seconds))

    def queue_waited(self, seconds: float) -> None:
        self.queue_wait.observe(max(0.0, seconds))

    def model_usage(self, tokens: Mapping[str, int], cost_usd: float) -> None:
        """`tokens`: kind (TOKEN_KINDS) -> count of one agent call."""
        for kind in TOKEN_KINDS:
            n = int(tokens.get(kind, 0) or 0)
            if n > 0:
                self.model_tokens.labels(kind=kind).inc(n)
        if cost_usd > 0:
            self.model_cost.inc(cost_usd)

    # ----- exposition -----
    def render(self, shared: SharedState) -> bytes:
        """The Prometheus text format, with the shared-state gauges taken from `shared`."""
        self._shared.state = shared
        return generate_latest(self.registry)


__all__ = ["RUN_STATUSES", "TOKEN_KINDS", "ServiceMetrics", "SharedState"]
