"""The MLflow UI as a user meets it: every experiment the harness creates is marked for model-training work,
carries a shared view that groups runs by method in the chart view, and `benchmark ui` (`make ui`) prints
the address that opens on it before it starts `mlflow ui`.

MLflow 3.17 opens an experiment on its GenAI overview ("Traces 0") unless the address says
`workflowType=machine_learning` (the UI reads the workflow from the address, then from the browser's local
storage; the experiment tag `mlflow.experimentKind` is what it reads where its workflow switch is off, and
what MLflow's own demo sets). A shared view is an experiment tag `mlflow.sharedViewState.<key>` holding the
view's state as JSON, opened by `viewStateShareKey=<key>` (the UI's "Share" button writes the same tag).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from benchmark.core import names

KIND = ("mlflow.experimentKind", "custom_model_development")
VIEW = "by-method"
SECTION = "zo-bench"


def _chart(uuid: str, kind: str, metric: str, title: str) -> dict[str, Any]:
    chart = {"uuid": uuid, "type": kind, "runsCountToCompare": 100, "metricSectionId": SECTION, "deleted": False,
             "isGenerated": False, "displayName": title, "metricKey": metric, "selectedMetricKeys": [metric]}
    if kind == "LINE":
        chart.update(lineSmoothness=0, xAxisScaleType="linear", scaleType="linear", xAxisKey="step",
                     selectedXAxisMetricKey="", yAxisKey="metric", yAxisExpressions=[], ignoreOutliers=False,
                     useGlobalXaxisKey=False, useGlobalLineSmoothing=False, range={})
    return chart


def view_state() -> dict[str, Any]:
    """Runs grouped by their `method` tag (each group's mean), every run shown, and one chart section: the dev
    curve, best dev and test score by method."""
    return {
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "method"}]},
        "runsHiddenMode": "SHOW_ALL", "useGroupedValuesInCharts": True, "hideEmptyCharts": True,
        "compareRunSections": [{"uuid": SECTION, "name": "dev and test by method", "display": True,
                                "isReordered": False}],
        "compareRunCharts": [_chart("dev-curve", "LINE", names.DEV_SCORE, "dev score over steps"),
                             _chart("dev-best", "BAR", names.DEV_BEST, "best dev score"),
                             _chart("test", "BAR", names.TEST_SCORE, "test score at the best dev step")],
    }


def mark(experiment_id: str) -> None:
    """Tag the experiment for training work and give it the by-method view."""
    from benchmark.core.store import client

    store = client()
    store.set_experiment_tag(experiment_id, *KIND)
    store.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{VIEW}", json.dumps(view_state()))


def address(experiment_id: str, host: str = "127.0.0.1", port: int = 5000) -> str:
    """Where the experiment's training runs open in the chart view, grouped by method."""
    return (f"http://{host}:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&compareRunsMode=CHART&viewStateShareKey={VIEW}")


def serve(host: str, port: int) -> None:
    """Mark every experiment of the store (those made before marking began too), print each one's address,
    then become `mlflow ui` on the store."""
    from benchmark.core.store import client, exists, tracking_uri, unreachable

    uri = tracking_uri()
    if exists():
        try:
            found = [e for e in client().search_experiments() if e.name != "Default"]
        except Exception as exc:
            raise unreachable(exc) from None
        for experiment in found:
            mark(experiment.experiment_id)
            print(f"{experiment.name}: {address(experiment.experiment_id, host, port)}")
        if not found:
            print("no experiments yet: run `make demo` or a study first")
    print(f"MLflow UI on {uri}: http://{host}:{port}/", flush=True)
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    os.execv(mlflow, [mlflow, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)])
