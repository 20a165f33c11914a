"""`python -m benchmark.pilot`: the MeZO run the `claims` study's step count is read from.

The demo's MeZO point (`claims.PILOT`) for `claims.PILOT_STEPS` steps on the claims preset's data,
in MLflow experiment `claims-pilot` (it is not a trial of the study), recorded as row `MeZO pilot`
beside the study's records; `benchmark report claims` reads where its dev curve flattens.
"""
from benchmark.core import records
from benchmark.experiments.claims import PILOT, PILOT_ROW, PILOT_STEPS
from benchmark.experiments.presets import EVAL_EVERY, OFFLINE_SETS
from benchmark.runner import build_run, run

PRESET, MODEL, TASK = "offline", "smollm2-135m", "rt-polarity"


def main() -> None:
    cfg, hp = build_run("mezo", TASK, {**OFFLINE_SETS, "eval_every": str(EVAL_EVERY), **PILOT}, model=MODEL,
                        steps=PILOT_STEPS, seed=0, experiment="claims-pilot")
    tags = {"preset": PRESET, "study": f"claims/{PRESET}/{MODEL}/{TASK}/{PILOT_ROW}", "trial": "0", "row": PILOT_ROW}
    result = run(cfg, hp, extra_tags=tags)
    print(f"pilot record: {records.save(result.run_id)}")


if __name__ == "__main__":
    main()
