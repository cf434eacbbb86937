"""Worker metrics (pure bookkeeping; the /metrics endpoint is tested in test_worker)."""

from __future__ import annotations

from voxlane.worker.metrics import WorkerMetrics


def test_metrics_count_reconnects_by_kind_and_class() -> None:
    metrics = WorkerMetrics()
    metrics.record_job("closed", 0.01, {"close": {}}, {"stt:idle": 3, "stt:retry": 1})
    metrics.record_job("crashed", None, None, {"stt:idle": 2})
    text = metrics.render().decode()
    assert 'voxlane_provider_reconnects_total{class="idle",kind="stt"} 5.0' in text
    assert 'voxlane_provider_reconnects_total{class="retry",kind="stt"} 1.0' in text
