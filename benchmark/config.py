"""The run's own settings (everything but the method's hyperparameters), as one typed dataclass."""
from __future__ import annotations

from dataclasses import dataclass

from benchmark.core.settings import non_negative, one_of, param, positive


@dataclass
class RunConfig:
    """Everything that defines one training run apart from the method's own hyperparameters."""

    method: str
    task: str
    model: str = param("smollm2-135m", "registered model name, HF hub id or local path")
    steps: int = param(1000, "training steps", positive, "> 0")
    seed: int = param(0, "seed for data sampling, batch order and ZO directions", non_negative, ">= 0")
    device: str = param("auto", "auto|cpu|cuda", *one_of("auto", "cpu", "cuda"))
    dtype: str = param("auto", "auto (fp16 on CUDA; on CPU bf16-mixed where measured faster, else fp32)|fp32|fp16|bf16|"
                       "bf16-mixed (fp32 weights, bf16 matmuls)", *one_of("auto", "fp32", "fp16", "bf16", "bf16-mixed"))
    batch_size: int = param(16, "training examples per step", positive, "> 0")
    eval_every: int = param(100, "evaluate on dev every N steps (and at the end)", positive, "> 0")
    num_train: int | None = param(None, "training examples from the train pool (none: the task's size, 1000 for most)",
                                  positive, "> 0")
    num_dev: int | None = param(None, "dev examples, from the train pool, disjoint from train (none: the task's, 500 "
                                "for most)", positive, "> 0")
    num_test: int | None = param(None, "test examples, from the held-out pool, fixed across seeds (none: 1000 or the "
                                 "whole pool if smaller)", positive, "> 0")
    k: int | None = param(None, "k-shot: k examples per class for train and k for dev (LM-BFF; 16 or 512 in the "
                          "paper); none: num_train/num_dev", positive, "> 0")
    template: str | None = param(None, "prompt template name (benchmark show-task lists them); none: the task's "
                                 "default for the model kind")
    eval_batch_size: int = param(32, "examples per evaluation forward", positive, "> 0")
    max_length: int = param(2048, "max tokens per prompt+candidate (prompt truncated on the left)", positive, "> 0")
    lr_schedule: str = param("constant", "constant|linear (linear decays to 0 at the last step)", *one_of("constant", "linear"))
    experiment: str = param("adhoc", "MLflow experiment name")
    checkpoint: str = param("auto", "auto: a checkpoint to resume from at every evaluation (ZO: its seed log, "
                            "kilobytes; LoRA: adapters and optimizer), except for full first-order training (weights "
                            "and AdamW moments, 3x the model each time) | eval: every method | off",
                            *one_of("auto", "eval", "off"))
    log_drift: bool = param(False, "log ||theta_t - theta_0|| per attention projection and layer at each evaluation "
                                   "(drift/<role>/<layer>, Figure 1; keeps a host copy of those weights)")
