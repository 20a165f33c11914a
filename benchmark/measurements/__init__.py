"""Measurements: scripts that measure the harness and its methods rather than run experiments. Each uses the
harness's public API (`build_run`, `load_model`, `sample`, the loop's pieces, the CLI with `--json`) and prints
what it measured; README quotes each with its command.

- `perf` (`benchmark perf`): per method, median step time against median forward time, memory, side by side;
- `perf_directions` (`benchmark perf --directions`): what z costs per generator, ns a value;
- `precision` (`python -m benchmark.measurements.precision`): fp32 vs bf16 vs bf16-mixed on a CPU;
- `displacement` (`python -m benchmark.measurements.displacement`): does DiZO's ratio search search;
- `resume_cost` (`python -m benchmark.measurements.resume_cost`): what replay and resume cost, through the CLI;
- `table10_gpu` (`python -m benchmark.measurements.table10_gpu`): Table 10 on a GPU from OPT-2.7B's config.
"""
