"""Training engine: typed config, train/evaluate loop (CPU, GPU, DDP), checkpoints, logging.

``stnet train CONFIG``, ``stnet eval CONFIG --checkpoint PATH`` and ``stnet plot RUN_DIR`` are the
command-line front ends (see docs/training.md)."""
from .checkpoint import save_checkpoint
from .config import (EvalConfig, LossConfig, ModelSection, OptimConfig, RuntimeConfig, ScheduleConfig,
                     TrainConfig, config_to_dict, load_config, save_config)
from .plot import plot_run

__all__ = ["TrainConfig", "ModelSection", "OptimConfig", "ScheduleConfig", "LossConfig", "EvalConfig",
           "RuntimeConfig", "load_config", "config_to_dict", "save_config", "save_checkpoint",
           "plot_run", "train", "evaluate_checkpoint"]


def train(*args, **kwargs):  # lazy: keeps `import stnet.engine` light
    from .train import train as _train

    return _train(*args, **kwargs)


def evaluate_checkpoint(*args, **kwargs):
    from .train import evaluate_checkpoint as _ev

    return _ev(*args, **kwargs)
