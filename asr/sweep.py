"""`asr sweep`: hyperparameter search over `asr train` with Optuna.

Each trial trains with the real trainer in EXP/trial-N/, reports dev WER after every epoch
and is pruned when it falls behind (median or Hyperband pruner). The study lives in an
Optuna storage (default sqlite:///EXP/sweep.db; any Optuna URL, e.g. PostgreSQL), so any
number of `asr sweep` processes, on one machine or many, share it, and a killed sweep
resumes: run the same command again. A killed worker's trial stops sending heartbeats, is
marked failed and is queued again. Trials that fail (out of memory, divergence, settings
that cannot train) are recorded with their reason and the sweep goes on.

A search space is a JSON or TOML file, or a preset name (SPACES), mapping `asr train`
option names (training options or model overrides, with underscores) to a list of values
(categorical) or {"low", "high", "log"?, "step"?} (integers when both ends are).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import time
import warnings
from dataclasses import fields, replace
from pathlib import Path

from asr.config import ModelConfig, TrainConfig

log = logging.getLogger("asr.sweep")

SPACES = {
    # what the LSTM acoustic model is most sensitive to (issue 14), sized for the tiny model
    "lstm": {
        "lr": {"low": 1e-3, "high": 1e-2, "log": True},
        "warmup_steps": [50, 150, 300],
        "hidden_size": [96, 160, 256],
        "num_layers": {"low": 1, "high": 3},
        "dropout": {"low": 0.0, "high": 0.3},
        "max_batch_seconds": [25.0, 50.0, 100.0],
        "rnn_type": ["lstm", "gru"],
        "subsampling_factor": [2, 3],
    },
}
TRAIN_KNOBS = {f.name for f in fields(TrainConfig)} - {"train_manifest", "dev_manifest", "exp_dir",
                                                       "model_overrides"}
MODEL_KNOBS = {f.name for f in fields(ModelConfig)} - {"vocab_size", "sample_rate"}


def load_space(spec: str) -> dict:
    """A preset name, or a .json/.toml file, checked against the known option names."""
    if spec in SPACES:
        space = SPACES[spec]
    else:
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"{spec}: no such search space file or preset (presets: "
                             f"{', '.join(SPACES)})")
        try:
            if path.suffix == ".toml":
                import tomllib  # Python 3.11+

                space = tomllib.loads(path.read_text())
            else:
                space = json.loads(path.read_text())
        except ValueError as err:
            raise ValueError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'} "
                             f"({str(err).splitlines()[0]})") from None
    for name, values in space.items():
        if name not in TRAIN_KNOBS | MODEL_KNOBS:
            raise ValueError(f"{spec}: {name!r} is not an `asr train` option; use e.g. lr, "
                             "hidden_size, num_layers, dropout, rnn_type")
        if not (isinstance(values, list) and values) and not (
                isinstance(values, dict) and {"low", "high"} <= set(values)):
            raise ValueError(f"{spec}: {name!r} needs a list of values or {{low, high}}")
    return space


def suggest(trial, space: dict) -> dict:
    """One trial's values for every option of `space`."""
    params = {}
    for name, values in space.items():
        if isinstance(values, list):
            params[name] = trial.suggest_categorical(name, values)
        elif isinstance(values["low"], int) and isinstance(values["high"], int):
            params[name] = trial.suggest_int(name, values["low"], values["high"],
                                             step=values.get("step", 1), log=values.get("log", False))
        else:
            params[name] = trial.suggest_float(name, values["low"], values["high"],
                                               step=values.get("step"), log=values.get("log", False))
    return params


def trial_config(base: TrainConfig, params: dict, exp_dir: Path) -> TrainConfig:
    """`base` with a trial's values, training in `exp_dir`."""
    model = {k: v for k, v in params.items() if k in MODEL_KNOBS}
    train = {k: v for k, v in params.items() if k in TRAIN_KNOBS}
    return replace(base, **train, exp_dir=str(exp_dir), resume=False,
                   model_overrides={**base.model_overrides, **model})


def base_params(base: TrainConfig, space: dict) -> dict | None:
    """The base configuration's value of every option in `space`, tried first so the sweep
    compares with it; None when one lies outside the space."""
    model = ModelConfig.from_size(base.size, 2, **base.model_overrides)
    params = {name: getattr(base, name) if name in TRAIN_KNOBS else getattr(model, name)
              for name in space}
    for name, value in params.items():
        values = space[name]
        if value not in values if isinstance(values, list) else \
                not values["low"] <= value <= values["high"]:
            log.info("the base configuration's %s=%s is outside the space: not tried first",
                     name, value)
            return None
    return params


def make_study(exp_dir: Path, storage: str, name: str, sampler: str, pruner: str, space: dict,
               epochs: int, seed: int, heartbeat: int):
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    # Workers sharing a study must not share a seed, or each proposes the same trials as the
    # others; `constant_liar` keeps TPE away from the trials other workers are running.
    seed = seed + os.getpid()
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "grid": lambda: optuna.samplers.GridSampler(grid_space(space), seed=seed),
    }
    pruners = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs),
        "none": lambda: optuna.pruners.NopPruner(),
    }
    exp_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{exp_dir / 'sweep.db'}"
    rdb = RDBStorage(storage, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                     heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                     engine_kwargs={"connect_args": {"timeout": 60}} if storage.startswith("sqlite")
                     else None)
    return optuna.create_study(study_name=name, storage=rdb, sampler=samplers[sampler](),
                               pruner=pruners[pruner](), direction="minimize", load_if_exists=True)


def grid_space(space: dict) -> dict:
    ranges = [name for name, values in space.items() if not isinstance(values, list)]
    if ranges:
        raise ValueError(f"--sampler grid needs a list of values for every option; "
                         f"{', '.join(ranges)} {'is a range' if len(ranges) == 1 else 'are ranges'}")
    return space


def counted(trials) -> int:
    """Trials that count towards --trials: all but those a retry has replaced."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    replaced = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials}
    return sum(t.number not in replaced for t in trials)


def same_params_done(trial, params: dict):
    """A complete earlier trial with exactly `params`, or None: samplers can propose a point
    twice, and training it again would only spend the budget on the same result."""
    from optuna.trial import TrialState

    done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return next((t for t in done if t.params == params), None)


def objective(base: TrainConfig, space: dict, exp_dir: Path):
    import optuna

    from asr.train import train
    from asr.train_options import train_command

    def run(trial) -> float:
        started = time.time()

        def report(epoch: int, dev_wer: float) -> None:
            trial.report(dev_wer, epoch)
            trial.set_user_attr("epochs", epoch)
            trial.set_user_attr("seconds", round(time.time() - started, 1))
            if trial.should_prune():
                trial.set_user_attr("note", f"pruned after epoch {epoch}")
                raise optuna.TrialPruned()

        try:
            trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
            params = suggest(trial, space)
            if twin := same_params_done(trial, params):
                trial.set_user_attr("note", f"same as trial {twin.number}: not trained again")
                trial.set_user_attr("epochs", 0)
                return twin.value
            cfg = trial_config(base, params, exp_dir / f"trial-{trial.number}")
            trial.set_user_attr("command", shlex.join(train_command(cfg)))
            log.info("trial %d: %s", trial.number, params)
            return train(cfg, on_epoch_end=report)["best_wer"]
        except optuna.TrialPruned:
            raise
        except Exception as err:  # out of memory, divergence, settings that cannot train
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
            trial.set_user_attr("note", reason)
            log.warning("trial %d failed: %s", trial.number, reason)
            raise
        finally:
            trial.set_user_attr("seconds", round(time.time() - started, 1))

    return run


class _OneLine(logging.Filter):
    """Optuna logs a failed trial with its traceback; the reason is kept as a user attribute."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        return True


def sweep(base: TrainConfig, space_spec: str, trials: int, sampler: str = "tpe",
          pruner: str = "median", storage: str = "", study_name: str = "sweep",
          heartbeat: int = 20) -> Path:
    """Run trials until the study holds `trials` of them (shared with any other workers), then
    write the results under `base.exp_dir`; returns the results file. A trial whose worker has
    sent no heartbeat for 3 * `heartbeat` seconds is failed and queued again."""
    import optuna
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    space = load_space(space_spec)
    exp_dir = Path(base.exp_dir)
    for handler in logging.getLogger("optuna").handlers + logging.getLogger().handlers:
        handler.addFilter(_OneLine())
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    study = make_study(exp_dir, storage, study_name, sampler, pruner, space, base.epochs, base.seed,
                       heartbeat)
    if not study.trials and sampler != "grid" and (baseline := base_params(base, space)):
        study.enqueue_trial(baseline, skip_if_exists=True)
    run = objective(base, space, exp_dir)
    while True:
        fail_stale_trials(study)  # a killed worker's trial: failed, and queued again
        now = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in now) or counted(now) < trials:
            study.optimize(run, n_trials=1, catch=(Exception,))
            if sampler == "grid" and study.sampler.is_exhausted(study):
                break
        elif any(t.state == TrialState.RUNNING for t in now):  # other workers' trials
            time.sleep(heartbeat / 2)
        else:
            break
    from asr.sweep_report import write_report

    return write_report(study, exp_dir)


def add_parser(sub) -> None:
    from asr.train_options import add_train_options

    p = sub.add_parser("sweep", help="hyperparameter search over asr train (Optuna)",
                       description="Start the same command in several processes, here or on other "
                                   "machines with a shared --storage, to search in parallel; run it "
                                   "again to resume. --exp-dir is the sweep's folder; every other "
                                   "asr train option sets the base configuration.")
    add_train_options(p)
    sweep = p.add_argument_group("sweep")
    sweep.add_argument("--space", default="lstm",
                       help=f"search space: a .json/.toml file or a preset ({', '.join(SPACES)})")
    sweep.add_argument("--trials", type=int, default=16, help="trials in the study, all workers together")
    sweep.add_argument("--sampler", default="tpe", choices=["tpe", "random", "grid"])
    sweep.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    sweep.add_argument("--storage", default="",
                       help="Optuna storage URL (default sqlite:///EXP_DIR/sweep.db)")
    sweep.add_argument("--study-name", default="sweep")
    sweep.add_argument("--heartbeat", type=int, default=20, metavar="SECONDS",
                       help="a trial silent for 3 heartbeats (its worker was killed) is failed "
                            "and run again")


def run(args) -> int:
    from asr.train_options import train_config

    results = sweep(train_config(args), args.space, args.trials, args.sampler, args.pruner,
                    args.storage, args.study_name, args.heartbeat)
    print(results.read_text().split("\n\n")[0])
    return 0
