"""MLflow tracking: the store (:mod:`.store`), the driver's ledger of a Tune run (:mod:`.ledger`),
the Tune callback that writes every trial's run from the driver (:mod:`.callback`, its writer thread
:mod:`.writer`, a failed trial's error :mod:`.trial_errors`), the datasets a run uses
(:mod:`.datasets`) and the models it trained (:mod:`.models`).

Every MLflow write happens on the Ray driver: trials never talk to MLflow.
"""

from auxtune.platform.tracking.callback import MlflowTrialCallback
from auxtune.platform.tracking.command_run import CommandRun, NoRun, open_store, start_run
from auxtune.platform.tracking.datasets import (
    DatasetRecord,
    directory_dataset,
    experiment_datasets,
    log_datasets,
    split_datasets,
)
from auxtune.platform.tracking.ledger import STATE_FILE, SearchState, add_row
from auxtune.platform.tracking.links import experiment_url, model_url
from auxtune.platform.tracking.models import (
    BEST_ALIAS,
    CHECKPOINT_TAG,
    EXAMPLE_IMAGES,
    checkpoint_location,
    log_checkpoint_model,
    log_retrained_model,
    register_best_model,
)
from auxtune.platform.tracking.store import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    MAX_PARAM_CHARS,
    NOTE_TAG,
    PARENT_TAG,
    TUNE_KEYS,
    TrackingTarget,
    as_params,
    check_reachable,
    client,
    closes_run_on_failure,
    ensure_experiment,
    library_versions,
    log_batch,
    numeric_metrics,
    resolve_tracking,
    trial_runs,
)
from auxtune.platform.tracking.trial_errors import error_line, trial_error_message
from auxtune.platform.tracking.writer import WRITE_EVERY_S

__all__ = [
    "BEST_ALIAS",
    "CHECKPOINT_TAG",
    "EXAMPLE_IMAGES",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "MAX_PARAM_CHARS",
    "NOTE_TAG",
    "PARENT_TAG",
    "STATE_FILE",
    "TUNE_KEYS",
    "WRITE_EVERY_S",
    "CommandRun",
    "DatasetRecord",
    "MlflowTrialCallback",
    "NoRun",
    "SearchState",
    "TrackingTarget",
    "add_row",
    "as_params",
    "check_reachable",
    "checkpoint_location",
    "client",
    "closes_run_on_failure",
    "directory_dataset",
    "ensure_experiment",
    "error_line",
    "experiment_datasets",
    "experiment_url",
    "library_versions",
    "log_batch",
    "log_checkpoint_model",
    "log_datasets",
    "log_retrained_model",
    "model_url",
    "numeric_metrics",
    "open_store",
    "register_best_model",
    "resolve_tracking",
    "split_datasets",
    "start_run",
    "trial_error_message",
    "trial_runs",
]
