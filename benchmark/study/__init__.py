"""Optuna studies for an experiment: one study per table cell, drained by any number of workers.

Fixed grids are enqueued once (`skip_if_exists`) by `benchmark study`; workers claim WAITING trials
atomically (the storage's compare-and-set), so no grid point runs twice. After the grid, each
cell's best-dev configuration is evaluated over the preset's seeds in a second study
(`<cell>/final`), drained the same way. MLflow: one parent run per cell study, one child run per
trial; the best trial's run and the extra seeds' runs are tagged `final=true`.

Faults: a trial whose worker died (same host and dead pid, or no heartbeat for `STALE_S`) is marked
FAIL with reason `stale` and re-enqueued; NaN/inf loss prunes (reason `nan`); OOM fails that trial
(reason `oom`) and the study goes on; Ctrl-C re-enqueues the running trial and stops. Running the
same command again resumes.

Modules, by concern: `storage` (where studies live, their names), `trials` (one trial's config,
point and run), `liveness` (heartbeats, stale trials), `finals` (best point over seeds),
`workers` (draining, spawning), `run` (`benchmark study` top to bottom), `optuna_private` (the
Optuna internals all this needs, in one place). This file imports nothing, so `benchmark report`
can read storage without loading torch.
"""
