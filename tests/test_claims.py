"""The `claims` study and report: intervals against a hand-computed example, verdicts on synthetic
records (reproduced, not reproduced, inconclusive), the report through the real CLI from committed
records with no MLflow store, run records written and read back, and the pairing the study relies on
(MeZO and DiZO with one seed take the same steps until DiZO's first projection)."""
import json
import math

import pytest

from benchmark.core import names, records
from benchmark.core.errors import BenchmarkError
from benchmark.experiments.registry import EXPERIMENTS
from reports import claims, stats
from tests.helpers import Loop, bench, make, tiny

STEPS = list(range(0, 650, 50))


# ---- intervals and verdicts ----------------------------------------------------------------------

def test_interval_matches_a_hand_computed_t_interval():
    # mean 0.80; sd = sqrt((0 + 4e-4 + 4e-4 + 1e-4 + 1e-4) / 4) = 0.0158114; t(0.975, 4) = 2.776445
    # half-width = 2.776445 * 0.0158114 / sqrt(5) = 0.0196322
    iv = stats.interval([0.80, 0.82, 0.78, 0.81, 0.79])
    assert iv.n == 5 and iv.mean == pytest.approx(0.80)
    assert iv.lo == pytest.approx(0.780368, abs=1e-6) and iv.hi == pytest.approx(0.819632, abs=1e-6)
    assert iv.sd == pytest.approx(0.0158114, abs=1e-7)
    assert stats.t_quantile(4) == pytest.approx(2.776445, abs=1e-6)


def test_correlation_matches_a_hand_computed_pearson_r():
    # a - 2 = -1, 0, 1; b - 13/3 = -7/3, -1/3, 8/3; r = 5 / (sqrt(2) * sqrt(38/3)) = 0.993399
    assert stats.correlation([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]) == pytest.approx(0.993399, abs=1e-6)
    assert stats.correlation([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) is None  # no variation: no r
    assert stats.correlation([1.0, 2.0, 3.0], [1.0, 2.0]) is None  # different layer counts


def test_paired_differences_use_the_seeds_both_sides_have():
    iv, each = stats.paired({0: 0.9, 1: 0.8, 2: 0.7, 7: 0.1}, {0: 0.8, 1: 0.75, 2: 0.6, 3: 0.5})
    assert each == pytest.approx({0: 0.1, 1: 0.05, 2: 0.1})
    assert iv.n == 3 and iv.mean == pytest.approx(0.25 / 3)


@pytest.mark.parametrize("values,threshold,above,expected", [
    ([0.02, 0.03, 0.025], 0.0, True, stats.REPRODUCED),
    ([-0.02, -0.03, -0.025], 0.0, True, stats.NOT_REPRODUCED),
    ([-0.02, 0.03, 0.0], 0.0, True, stats.INCONCLUSIVE),
    ([0.5], 0.0, True, stats.INCONCLUSIVE),  # one seed: an anecdote, no interval
    ([1.01, 1.02, 1.03], 1.25, False, stats.REPRODUCED),  # "below 1.25"
    ([1.30, 1.32, 1.31], 1.25, False, stats.NOT_REPRODUCED),
    ([0.95, 0.96, 0.94], 0.9, True, stats.REPRODUCED),
])
def test_a_verdict_is_read_off_the_interval(values, threshold, above, expected):
    assert stats.verdict(stats.interval(values), threshold, above) == expected


def test_a_claim_of_parts_needs_every_part():
    assert stats.all_of([stats.REPRODUCED, stats.REPRODUCED]) == stats.REPRODUCED
    assert stats.all_of([stats.REPRODUCED, stats.INCONCLUSIVE]) == stats.INCONCLUSIVE
    assert stats.all_of([stats.INCONCLUSIVE, stats.NOT_REPRODUCED]) == stats.NOT_REPRODUCED
    assert stats.all_of([stats.SMALLER, stats.SMALLER]) == stats.SMALLER  # parts that agree keep their size
    assert stats.all_of([stats.SMALLER, stats.INCONCLUSIVE]) == stats.INCONCLUSIVE
    assert stats.all_of([stats.SMALLER_REPRODUCED, stats.REVERSED]) == stats.REVERSED


# ---- synthetic records -------------------------------------------------------------------------

def curve(reach: int, best: float, start: float = 0.55) -> list[list[float]]:
    """A dev curve rising linearly from `start` to `best` at step `reach`, flat after."""
    return [[s, start + (best - start) * min(s, reach) / reach] for s in STEPS]


def drift(per_layer: list[float]) -> dict:
    return {names.DRIFT.format(role=role, layer=i): [[300, v], [600, v]]
            for role in ("q", "v") for i, v in enumerate(per_layer)}


def record(row: str, seed: int, test: float, dev: list, speed: float, peak: float, extra: dict | None = None,
           final_study: bool | None = None) -> dict:
    study = f"claims/offline/smollm2-135m/rt-polarity/{row}" + ("/final" if (final_study if final_study is not None
                                                                             else seed > 0) else "")
    return {"format": records.FORMAT, "run_id": f"{row}-{seed}", "status": "FINISHED", "start_time": seed,
            "tags": {"preset": "offline", "study": study, "trial": str(seed), "row": row, "task": "rt-polarity",
                     "final": "true"},
            "params": {"seed": str(seed), "steps": "600", "eval_every": "50", "lr": "3e-05"},
            "summary": {names.TEST_SCORE: test, names.DEV_BEST: max(d for _, d in dev), names.STEPS_PER_S: speed,
                        names.PEAK_MEMORY: peak, names.WALL_S: 1000.0, names.DEV_BEST_STEP: 500},
            "curves": {names.DEV_SCORE: dev, **(extra or {})}}


FLAT = [1.0] * 6
SLOPED = [0.4, 0.7, 1.0, 1.3, 1.6, 1.9]


def synthetic() -> list[dict]:
    """C1 reproduced, smaller than claimed (DiZO reaches MeZO's best 200 steps sooner: 40% of MeZO's steps saved
    every seed, Table 10's 48.2% not reached), C2 not reproduced (DiZO 3 points lower on
    test, every seed), C3 reproduced, C4 inconclusive (differences of both signs), C5 reproduced."""
    out = []
    jitter = [0.0, 0.004, -0.003, 0.002, -0.001]
    for seed in range(5):
        j = jitter[seed]
        out.append(record("MeZO", seed, 0.80 + j, curve(500, 0.80 + j), 0.60, 1.40, drift(FLAT)))
        out.append(record("DiZO", seed, 0.77 + j + j / 2, curve(300, 0.81 + j), 0.57 + j, 1.43, drift(SLOPED)))
    for seed in range(3):
        out.append(record("FT", seed, 0.86, curve(100, 0.86), 0.7, 4.6, drift(SLOPED)))
        out.append(record("DiZO no re-init", seed, 0.77 + (-0.02, 0.03, 0.0)[seed], curve(300, 0.8), 0.57, 1.43))
        out.append(record("DiZO no clipping", seed, 0.77 + (0.01, -0.01, 0.02)[seed], curve(300, 0.8), 0.57, 1.43))
        out.append(record("Zero-shot", seed, 0.49, [[0, 0.56]], math.nan, math.nan))
    return out


PERF = [{"mezo": {"steps_per_s": 0.60, "peak_memory_gb": 1.10}, "dizo": {"steps_per_s": s, "peak_memory_gb": m},
         "ft": {"steps_per_s": 0.70, "peak_memory_gb": 4.6}} for s, m in ((0.56, 1.12), (0.555, 1.13), (0.565, 1.12))]


@pytest.fixture
def committed(tmp_path):
    """Synthetic records and three `benchmark perf --json` repeats (C5 reads those)."""
    folder = tmp_path / "results"
    for rec in synthetic():
        records.write(rec, folder)
    for i, rep in enumerate(PERF, 1):
        (folder / "claims" / "offline" / f"perf-{i}.json").write_text(json.dumps(rep))
    return folder


def verdicts(page: str) -> dict[str, str]:
    """claim id -> verdict, from the summary table's rows."""
    rows = [line for line in page.splitlines() if line.startswith("| C")]
    return {row.split(":")[0].strip("| "): row.rsplit("**", 2)[1] for row in rows}


def test_the_report_renders_from_committed_records_without_an_mlflow_store(committed, tmp_path):
    store = tmp_path / "absent" / "mlflow.db"
    out = tmp_path / "report"
    proc = bench("report", "claims", "--out", str(out), env={"BENCHMARK_RECORDS": str(committed),
                                                            "MLFLOW_TRACKING_URI": f"sqlite:///{store}"})
    assert proc.returncode == 0, proc.stderr
    page = (out / "claims.md").read_text()
    assert verdicts(page) == {"C1": "reproduced, smaller than claimed", "C2": "not reproduced (reversed)",
                              "C3": "reproduced", "C3b": "reproduced", "C4": "inconclusive", "C5": "reproduced"}
    assert "| 0 | 0.792 | 500 | 300 | 0.60 |" in page  # seed 0: MeZO's target 0.99 x 0.80, reached at 500 and 300
    # the paper's numbers come from reports/paper/*.csv: Table 4's SST-2 row and the released logs' dev gaps
    assert "SST-2, OPT-2.7B: DiZO 92.5 vs MeZO 90.0 (Table 4, one seed)" in page
    assert "DiZO 0.716 vs 0.660 dev at step 300" in page and "above the paper's +5.6: **reproduced**" in page
    assert "test, DiZO - MeZO -3.0 [-3.1, -2.8] points (n=5) lies below 0" in page
    assert ("the steps DiZO saves +40.0 [+40.0, +40.0] % of MeZO's steps (n=5) lies above 0 and below the paper's "
            "+48.2: **reproduced, smaller than claimed**") in page  # Table 10: DiZO takes 51.8% of MeZO's iterations
    assert "SST-2, OPT-2.7B: 7.5 vs 6.8 GB (FT 45.4); 3.05 vs 3.28 it/s (0.93x)" in page  # Table 10, read from its csv
    assert "n = repeats of `benchmark perf` (3 committed; hardware: not recorded)" in page  # from before `hardware`
    assert "SST-2: DiZO 92.2, DiZO no re-init 88.6, DiZO no clipping 90.9 (Table C.2" in page
    assert "holds 0 and the paper's +3.6: **inconclusive**" in page  # C4's no re-init: Table C.2's SST-2 cost
    figures = ("claims_dev_curves", "claims_steps_to_target", "claims_drift")
    assert all((out / f"{figure}.png").stat().st_size > 1000 for figure in figures)
    first = {path.name: path.read_bytes() for path in out.iterdir()}
    again = bench("report", "claims", "--out", str(out), env={"BENCHMARK_RECORDS": str(committed),
                                                             "MLFLOW_TRACKING_URI": f"sqlite:///{store}"})
    assert again.returncode == 0 and {path.name: path.read_bytes() for path in out.iterdir()} == first  # no churn
    assert not store.parent.exists()  # no store was created to read from


def test_the_claims_figures_draw_the_records_means(committed, tmp_path, monkeypatch):
    """What the dev-curve figure shows: per row, the mean over its seeds at each evaluation (n in the label),
    zero-shot's dev as a line; the steps-to-target figure, each seed's MeZO and DiZO step."""
    from reports import claims_figures

    drawn = {}

    def keep(fig, folder, name):  # instead of writing the files: the figure as drawn
        drawn[name] = fig
        return []

    monkeypatch.setattr(claims_figures, "_save", keep)
    runs, _ = claims.load(committed / "claims", "offline")
    claims_figures.write_figures(runs, tmp_path)
    curves = {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in drawn["claims_dev_curves"].axes[0].get_lines()}
    jitter = [0.0, 0.004, -0.003, 0.002, -0.001]
    steps = [s for s, _ in curve(500, 0.8)]
    mezo = [sum(dict(map(tuple, curve(500, 0.80 + j)))[s] for j in jitter) / 5 for s in steps]
    assert curves["MeZO (n=5)"][0] == steps and curves["MeZO (n=5)"][1] == pytest.approx(mezo, abs=1e-12)
    assert set(curves) >= {"MeZO (n=5)", "DiZO (n=5)", "FT (n=3)", "DiZO no re-init (n=3)", "zero-shot"}
    assert curves["zero-shot"][1] == [0.56, 0.56]
    pairs = [ln.get_ydata() for ln in drawn["claims_steps_to_target"].axes[0].get_lines() if len(ln.get_xdata()) == 2
             and list(ln.get_xdata()) == [0, 1]]
    assert [list(map(float, p)) for p in pairs] == [[500.0, 300.0]] * 5  # every seed: MeZO at 500, DiZO at 300


def test_c1_counts_a_target_never_reached_one_evaluation_past_the_end():
    mezo = record("MeZO", 0, 0.8, curve(500, 0.80), 0.6, 1.4)
    never = record("DiZO", 0, 0.7, curve(300, 0.70), 0.6, 1.4)
    c = claims.to_target(mezo, never)
    assert c["target"] == pytest.approx(0.792) and c["mezo"] == 500
    assert c["dizo"] == 650 and not c["dizo_reached"]


def test_c1_hours_are_steps_at_the_quiet_machines_rates_when_perf_repeats_are_committed(committed):
    """A run's own steps/s is whatever ran beside it; `benchmark perf`'s is each method alone."""
    mezo, dizo = record("MeZO", 0, 0.8, curve(500, 0.80), 0.1, 1.4), record("DiZO", 0, 0.8, curve(300, 0.80), 0.6, 1.4)
    own = claims.to_target(mezo, dizo)
    assert own["mezo_h"] == pytest.approx(500 / 0.1 / 3600) and own["dizo_h"] == pytest.approx(300 / 0.6 / 3600)
    runs, _ = claims.load(committed / "claims", "offline")
    rates = claims.perf_rates(runs)
    assert rates["dizo"] == pytest.approx((0.56 + 0.555 + 0.565) / 3) and rates["mezo"] == pytest.approx(0.60)
    quiet = claims.to_target(mezo, dizo, rates)
    assert quiet["mezo_h"] == pytest.approx(500 / 0.60 / 3600) and quiet["dizo_h"] == pytest.approx(300 / 0.56 / 3600)
    assert "at `benchmark perf`'s steps/s" in claims.c1(runs).ours[1]
    runs.perf = []
    assert "at each run's own steps/s" in claims.c1(runs).ours[1]


def test_the_pilot_flattens_where_the_moving_mean_stops_gaining_a_point():
    rec = record("MeZO pilot", 0, 0.8, curve(400, 0.80), 0.6, 1.4)
    # dev 0.7375, 0.76875, 0.8, 0.8, 0.8 at steps 300-500; moving means of 3: 0.76875 (400), 0.789583 (450),
    # 0.8 (500): at 450 the rest still gains 0.0104 > 0.01, at 500 nothing more
    assert claims.flattening(rec) == 500
    assert claims.flattening(record("MeZO pilot", 0, 0.8, curve(600, 0.80), 0.6, 1.4)) == 600  # rises to the end


def test_layer_spread_is_zero_for_equal_layers_and_grows_with_their_differences():
    assert claims.layer_spread({"curves": drift(FLAT)}) == pytest.approx(0.0)
    assert claims.layer_spread({"curves": drift(SLOPED)}) == pytest.approx(0.48804, abs=1e-5)  # sd 0.56125 / mean 1.15


def test_c3_asks_whether_dizos_layer_profile_has_fts_shape_not_only_whether_it_varies(committed):
    """Jagged drift is layer-dependent without resembling FO's: r of the shape against FT's separates them."""
    runs, _ = claims.load(committed / "claims", "offline")
    assert claims.profile({"curves": drift([1.0, 2.0, 3.0])}) == pytest.approx([0.5, 1.0, 1.5] * 2)
    assert claims.like_ft(runs, claims.DIZO) == pytest.approx({s: 1.0 for s in range(5)})  # FT's slope, any size
    assert claims.like_ft(runs, claims.MEZO) == {}  # flat: no shape to correlate
    for rec in runs.seeds(claims.DIZO).values():  # the same spread, the other way round
        rec["curves"] = {**rec["curves"], **drift(SLOPED[::-1])}
    assert claims.like_ft(runs, claims.DIZO) == pytest.approx({s: -1.0 for s in range(5)})
    finding = claims.c3b(runs)
    assert finding.ours[-1] == "claim: DiZO's r with FT's above 0 (not reproduced)"
    assert finding.verdict == stats.NOT_REPRODUCED
    assert claims.like_itself(runs, claims.DIZO) == pytest.approx({s: 1.0 for s in range(5)})  # one shape, every seed
    assert claims.c3(runs).verdict == stats.REPRODUCED  # uneven all the same: C3 proper holds


# ---- records -----------------------------------------------------------------------------------

def test_a_record_reads_back_as_written_one_line_per_value(tmp_path):
    rec = synthetic()[0]
    path = records.write(rec, tmp_path)
    assert path == tmp_path / "claims" / "offline" / "rt-polarity" / "MeZO" / "search-000.json"
    assert records.read(tmp_path) == [json.loads(json.dumps(rec))]
    assert f'  "{names.DEV_SCORE}": [[0,0.55],' in path.read_text()  # a curve is one line: diffs show what moved


@pytest.mark.parametrize("text,message", [("{not json", "not a run record"), ('{"format": "other"}', "format"),
                                          (json.dumps({"format": records.FORMAT}), "lacks run_id")])
def test_a_bad_record_is_named_in_one_line(tmp_path, text, message):
    (tmp_path / "final-007.json").write_text(text)
    (tmp_path / "perf-1.json").write_text("{}")  # other JSON beside the records is not read as one
    with pytest.raises(BenchmarkError, match=message) as exc:
        records.read(tmp_path)
    assert "final-007.json" in str(exc.value) and "\n" not in str(exc.value)


# ---- the experiment ------------------------------------------------------------------------------

def test_the_claims_cells_pair_mezo_and_dizo_and_tune_the_ablations_by_dizo():
    cells = {c.row.label: c for c in EXPERIMENTS.get("claims").cells("offline")}
    assert cells["MeZO"].seeds == cells["DiZO"].seeds and len(cells["MeZO"].seeds) >= 5
    assert all(len(c.seeds) >= 3 for c in cells.values())
    for label in ("DiZO no re-init", "DiZO no clipping"):
        assert cells[label].source == cells["DiZO"].name
    assert cells["DiZO no clipping"].settings(cells["DiZO"].points()[0])["clip_range"] == "none"
    sets = cells["MeZO"].settings({})
    assert int(sets["num_dev"]) >= 500 and int(sets["num_test"]) >= 1000 and cells["MeZO"].eval_every == 50
    assert cells["MeZO"].steps <= 2000
    dizo = cells["DiZO"].choices()  # one factor at a time: lr, interval and tau each take two values
    assert all(len(dizo[k]) == 2 for k in ("lr", "projection_interval", "clip_range"))


def test_mezo_and_dizo_with_one_seed_take_the_same_steps_until_the_first_projection():
    runs = {}
    for method in ("mezo", "dizo"):
        loaded = tiny()
        trainer = make(method, loaded.model, seed=3, lr="1e-2", **({"projection_interval": "5"} if method == "dizo" else {}))
        runs[method] = Loop(loaded, seed=3).run(trainer, 8)
    assert runs["mezo"][:5] == runs["dizo"][:5]  # same batches, same z: bit for bit
    assert runs["mezo"][5:] != runs["dizo"][5:]  # the projection moved the weights and drew its own batches


@pytest.mark.slow
def test_the_pilot_is_a_study_whose_record_the_report_reads_its_step_count_from(committed, tmp_path, monkeypatch):
    """`benchmark study claims-pilot`: a trial like any other (its own study and trial tags), recorded beside
    the claims study's records, where `claims.load` finds it as the pilot."""
    from benchmark.experiments.registry import EXPERIMENTS
    from benchmark.study.run import study

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("BENCHMARK_RECORDS", str(committed))
    monkeypatch.setenv("BENCHMARK_CHECKPOINTS", str(tmp_path / "checkpoints"))
    study(EXPERIMENTS.get("claims-pilot"), "smoke", str(tmp_path / "pilot.journal"))
    (rec,) = records.read(committed / claims.PILOT_EXPERIMENT)
    assert rec["tags"]["row"] == claims.PILOT and rec["params"]["lr"] == "3e-05" and rec["params"]["batch_size"] == "16"
    assert rec["tags"]["study"] == "claims-pilot/smoke/tiny-random-llama/rt-polarity/MeZO pilot"
    assert rec["tags"]["trial"] == "0" and rec["params"]["steps"] == "4"
    assert [s for s, _ in rec["curves"][names.DEV_SCORE]] == [0, 2, 4]
    monkeypatch.setattr(records, "read", lambda folder, real=records.read: [
        {**r, "tags": {**r["tags"], "preset": "offline"}} for r in real(folder)])  # the smoke pilot, as offline's
    runs, _ = claims.load(committed / "claims", "offline")
    assert runs.pilot["run_id"] == rec["run_id"]


def test_c5_without_perf_measurements_is_inconclusive_and_says_how_to_measure():
    finding = claims.c5(claims.Runs())
    assert finding.verdict == stats.INCONCLUSIVE and "benchmark perf" in finding.ours[-1]


# ---- what the study taught the offline presets --------------------------------------------------------

def test_the_offline_presets_run_what_the_committed_claims_study_chose():
    """`presets.TUNED` is each studied method's search record marked final (best dev on seed 0), ZO_STEPS is
    where the committed pilot flattens, HiZOO's smoothing is the study's: a re-run of the study that chooses
    otherwise fails here until the presets follow it."""
    from benchmark.experiments import presets

    def same(a: str, b: str) -> bool:  # MLflow writes params back as Python prints them: 3e-05, 0.2
        try:
            return float(a) == float(b)
        except ValueError:
            return a == b

    runs, _ = claims.load(records.root() / "claims", "offline")
    for row, method in ((claims.FT, "ft"), (claims.MEZO, "mezo"), (claims.DIZO, "dizo"), (claims.HIZOO, "hizoo")):
        chosen = [r for r in runs.search.get(row, []) if r["tags"].get("final") == "true"]
        assert len(chosen) == 1, f"{row}: the study's search has not chosen a point yet"
        params = chosen[0]["params"]
        assert all(same(params[k], v) for k, v in presets.TUNED[method].items()), (row, params)
    assert claims.flattening(runs.pilot) == presets.ZO_STEPS
    table4 = EXPERIMENTS.get("table4").preset("offline")
    assert (table4.zo_steps, table4.fo_steps, table4.seeds) == (presets.ZO_STEPS, presets.FO_STEPS, presets.SEEDS)
    assert table4.grids["hizoo"]["hessian_smooth"] == (presets.HESSIAN_SMOOTH,)


# ---- verdicts with sizes (issue 31): every case on synthetic intervals -----------------------------

def iv(lo: float, hi: float, n: int = 5) -> stats.Interval:
    return stats.Interval((lo + hi) / 2, lo, hi, n)


@pytest.mark.parametrize("interval_, claimed, margin, word, says", [
    (iv(0.03, 0.08), 0.056, None, stats.REPRODUCED, "lies above 0 and holds the paper's +5.6"),
    (iv(0.07, 0.09), 0.056, None, stats.REPRODUCED, "above the paper's +5.6"),
    (iv(0.03, 0.08), None, None, stats.REPRODUCED, "+5.5 [+3.0, +8.0] points (n=5) lies above 0"),
    (iv(0.005, 0.02), 0.056, None, stats.SMALLER_REPRODUCED, "lies above 0 and below the paper's +5.6"),
    (iv(-0.019, 0.021), 0.056, None, stats.SMALLER, "+0.1 [-1.9, +2.1] points (n=5) holds 0 and excludes the paper's +5.6"),
    (iv(-0.04, -0.01), 0.056, None, stats.REVERSED, "lies below 0, against the paper's +5.6"),
    (iv(-0.01, 0.015), 0.056, 0.02, "equivalent within +-2.0", "lies inside +-2.0 and excludes the paper's +5.6"),
    (iv(-0.01, 0.015), 0.008, 0.02, "equivalent within +-2.0", "lies inside +-2.0 and holds the paper's +0.8"),
    (iv(-0.01, 0.015), None, 0.02, "equivalent within +-2.0", "(n=5) lies inside +-2.0"),
    (iv(-0.01, 0.025), 0.056, 0.02, stats.SMALLER, "excludes"),  # wider than the margin: not equivalent
    (iv(-0.02, 0.07), 0.056, None, stats.INCONCLUSIVE, "holds 0 and the paper's +5.6"),
    (iv(-0.02, 0.07), None, None, stats.INCONCLUSIVE, "holds 0"),
    (stats.Interval(0.05, math.nan, math.nan, 1), 0.056, None, stats.INCONCLUSIVE, "no interval"),
])
def test_a_sized_verdict_names_the_numbers_that_decided_it(interval_, claimed, margin, word, says):
    v = stats.sized(interval_, claimed, margin, what="DiZO - MeZO")
    assert v.word == word and says in v.reason and v.reason.startswith("DiZO - MeZO")
    assert ("paper" in v.reason) == (claimed is not None and interval_.n > 1)  # the paper named where it decided


def test_a_label_changed_in_its_row_reaches_every_report(tmp_path, monkeypatch):
    """Row labels are written once, in the experiment's `Row`s (issue 31): rename the ablation's row there
    and the claims report, the Table C.2 labels and the ablation figure's rows all follow."""
    import dataclasses

    from benchmark.experiments import ablation_c2
    from reports import figures, tables

    old, new = ablation_c2.NO_REINIT.label, "DiZO, gamma carried over"
    monkeypatch.setattr(ablation_c2, "NO_REINIT", dataclasses.replace(ablation_c2.NO_REINIT, label=new))
    folder = tmp_path / "results"
    for rec in synthetic():  # the records carry the label the study wrote: the renamed one
        records.write(json.loads(json.dumps(rec).replace(old, new)), folder)
    page = claims.report(folder / "claims", tmp_path / "out")
    assert f"test, DiZO - {new} " in page and old not in page
    assert tables._c2_label({"method": "DiZO", "reinit": "no", "clipping": "yes"}) == new
    assert new in figures.ablation_rows() and old not in figures.ablation_rows()
