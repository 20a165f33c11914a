"""The MLflow UI as a user meets it: a smoke study, then `make ui`, then the server's REST API (our runs with the
contract's tags and metrics) and a real headless Chromium on the address `make ui` printed, reading what the
page shows (its DOM after the app has rendered): the study's runs grouped by method and the dev-curve chart,
not MLflow's empty GenAI overview ("Traces 0")."""
import html
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from benchmark import ui
from tests.helpers import bench, free_port, rest

pytestmark = pytest.mark.slow


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "no Chromium here (Debian: apt-get install chromium; .ci/run installs it)"
        if os.environ.get("ZOBENCH_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def page_text(browser: str, url: str, until: str, tries: int = 5) -> str:
    """The page's visible text once the app has rendered `until` (Chromium's virtual time runs the app's timers
    ahead; a busy machine can still answer its data requests after that budget: the page is loaded again)."""
    for _ in range(tries):
        text = dump(browser, url)
        if until in text:
            break
    return text


def dump(browser: str, url: str) -> str:
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1200",
                          "--virtual-time-budget=30000", "--dump-dom", url], capture_output=True, text=True,
                         timeout=180, check=False).stdout
    text = re.sub(r"<script.*?</script>|<style.*?</style>", "", dom, flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def test_make_ui_opens_on_the_studys_training_runs_charted_by_method(tmp_path):
    browser = chromium()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "BENCHMARK_RECORDS": str(tmp_path / "records")}
    done = bench("study", "claims-pilot", "--preset", "smoke", "--storage", str(tmp_path / "pilot.journal"), env=env)
    assert done.returncode == 0, done.stderr
    port = free_port()
    server = subprocess.Popen(["make", "--no-print-directory", "ui", f"PORT={port}"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env={**os.environ, **env}, start_new_session=True)
    try:
        printed = []  # make's echo of the command, an address per experiment, then the server's own line
        while not printed or not printed[-1].startswith("MLflow UI on"):
            printed.append(server.stdout.readline())
            assert printed[-1], f"make ui ended early: {printed}"
        address = next(line.split(": ", 1)[1].strip() for line in printed if line.startswith("claims-pilot: "))
        assert address.endswith("workflowType=machine_learning&compareRunsMode=CHART&viewStateShareKey=" + ui.VIEW)
        deadline = time.time() + 120
        while True:  # the server answers once it has opened the store
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "mlflow ui did not start"
                time.sleep(1)
        # what the page reads, over MLflow's REST API: our runs with the contract's tags and metrics
        base, experiment_id = f"http://127.0.0.1:{port}", address.split("/")[5]
        runs = rest(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id],
                                                          "filter": "tags.method = 'mezo' and tags.trial = '0'"})["runs"]
        assert len(runs) == 1
        tags = {t["key"]: t["value"] for t in runs[0]["data"]["tags"]}
        metrics = {m["key"]: m["value"] for m in runs[0]["data"]["metrics"]}
        assert (tags["task"], tags["model"]) == ("rt-polarity", "tiny-random-llama")
        assert metrics["perf/forward_passes"] == 8 and "test/score" in metrics  # 4 smoke steps, two forwards each
        # without the address's parameters: MLflow's GenAI overview, what users met (and the server's first
        # page: its assets load once, so the page under test renders within Chromium's time budget)
        overview = page_text(browser, f"http://127.0.0.1:{port}/#/experiments/{address.split('/')[5]}", "Traces")
        assert "Traces 0" in overview
        text = page_text(browser, address, "eval/dev_score")
        assert "claims-pilot/smoke/tiny-random-llama/rt-polarity/MeZO pilot" in text  # the study's parent run
        assert "mezo-rt-polarity-s0" in text and "Group: mezo" in text  # its trial, grouped by method
        assert "dev and test by method" in text and "eval/dev_score" in text  # the view's chart section
        assert "Traces 0" not in text and "No data available" not in text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
