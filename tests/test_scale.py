"""Scale-out for real: the MLflow UI server reads our runs back over REST, and a 2-worker study runs
against PostgreSQL (Optuna storage and an `mlflow server` backend) on loopback."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from benchmark.experiments.registry import EXPERIMENTS
from benchmark.study.storage import open_storage
from tests.helpers import bench, free_port, rest

VENV_BIN = Path(sys.executable).parent


def start_mlflow(backend: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    """`mlflow ui` as `make ui` starts it (loopback), on a free port; waits for /health."""
    port = free_port()
    proc = subprocess.Popen([str(VENV_BIN / "mlflow"), "ui", "--backend-store-uri", backend, "--host", "127.0.0.1",
                             "--port", str(port), "--default-artifact-root", str(tmp / "artifacts")],
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "mlflow-server.log", "w"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                return proc, base
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.terminate()
    raise AssertionError("mlflow server did not start: " + (tmp / "mlflow-server.log").read_text()[-2000:])


def _pg_bin() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    return Path(found).resolve().parent if found else None


@pytest.fixture(scope="module")
def postgres():
    """A private PostgreSQL cluster on loopback (trust auth), started and stopped by the test."""
    bindir = _pg_bin()
    if bindir is None:
        message = "no PostgreSQL server binaries here (Debian: apt-get install postgresql; .ci/run installs them)"
        if os.environ.get("ZOBENCH_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="zobench-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    os.chmod(root, 0o755)
    data, port = root / "data", free_port()
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "bench", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -c listen_addresses=127.0.0.1 -k {root}", "start"], check=True, capture_output=True)
    try:
        for db in ("optuna", "mlflow"):
            subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "bench", db],
                           check=True, capture_output=True)
        yield f"postgresql://bench@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_worker_study_on_postgresql_with_an_mlflow_server(postgres, tmp_path, monkeypatch):
    import optuna

    monkeypatch.chdir(tmp_path)
    server, base = start_mlflow(f"{postgres}/mlflow", tmp_path)
    try:
        env = {"MLFLOW_TRACKING_URI": base}
        storage_url = f"{postgres}/optuna"
        proc = bench("study", "demo", "--preset", "smoke", "--workers", "2", "--storage", storage_url, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        storage = open_storage(storage_url)
        for cell in EXPERIMENTS.get("demo").cells("smoke"):
            trials = optuna.load_study(study_name=cell.name, storage=storage).get_trials()
            assert sorted(str(t.params) for t in trials) == sorted(str(p) for p in cell.points())
            assert {t.state.name for t in trials} == {"COMPLETE"}
        doctor = bench("doctor", "demo", "--storage", storage_url, env=env)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        experiment = rest(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=demo")["experiment"]
        runs = rest(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]],
                                                          "max_results": 100})["runs"]
        assert sum(1 for r in runs if any(t["key"] == "trial" for t in r["data"]["tags"])) == 5 + 3  # grid + finals
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_optuna_dashboard_serves_the_study_journal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    journal = tmp_path / "demo.journal"
    proc = bench("study", "demo", "--preset", "smoke", "--storage", str(journal),
                     env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    port = free_port()
    server = subprocess.Popen([str(VENV_BIN / "optuna-dashboard"), str(journal), "--storage-class", "JournalFileStorage",
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, studies = time.time() + 60, None
        while studies is None and time.time() < deadline:
            try:
                studies = rest(f"http://127.0.0.1:{port}", "/api/studies")["study_summaries"]
            except OSError:
                time.sleep(0.5)
        names = {s["study_name"] for s in studies or []}
        assert {c.name for c in EXPERIMENTS.get("demo").cells("smoke")} <= names
    finally:
        server.terminate()
        server.wait(timeout=30)
