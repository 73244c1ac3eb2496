"""Trained models in MLflow: a checkpoint logged as a model of its run, the best one registered.

:func:`log_checkpoint_model` turns an auxtune checkpoint (``trainer.pt``: what a Tune trial's
checkpoint directory and ``auxtune train`` hold) into an MLflow *logged model* of a run: the
classifier alone (backbone and main head; the self-supervised heads stay in the checkpoint),
exported with ``torch.export`` (MLflow's ``pt2`` format: loading it needs torch and mlflow, not
auxtune), with a signature (uint8 images (N, 32, 32, 3) -> logits (N, classes)) and an input
example. It is slow next to every other write (2.4-4.7 s for the demo's network on 2 busy cores,
the first in a process 6.9 s with torch.export's imports: ``benchmarks/log_model_cost.py``), so
only retrains and ``auxtune train`` log one, never a search trial. :func:`register_best_model`
registers a run's model in the Model Registry under the alias ``best``::

    model_id = log_retrained_model(uri, run_id, "ray_results/demo-compare-retrain/.../checkpoint_000003")
    version = register_best_model(uri, run_id, "demo-best")
    # later, anywhere: mlflow.pytorch.load_model("models:/demo-best@best")(uint8_images)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from auxtune.platform.tracking.store import client as make_client

CHECKPOINT_FILE = "trainer.pt"  # in a Tune checkpoint directory (auxtune.trainables.function)
CHECKPOINT_TAG = "auxtune.checkpoint"  # where a run's last checkpoint is
BEST_ALIAS = "best"
EXAMPLE_IMAGES = 2  # images in a logged model's input example


def log_retrained_model(
    client_or_uri: Any,
    run_id: str,
    checkpoint_dir: str | Path,
    *,
    example_images: np.ndarray | None = None,
    step: int = 0,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Log the model of a retrain's Tune checkpoint directory (its ``trainer.pt``) on ``run_id``.

    ``example_images``: uint8 (N, 32, 32, 3) images for the input example (default: synthetic
    ones); ``step``: the run's step whose metrics the model shows (its last epoch's); ``tags``:
    the model's (``auxtune.checkpoint`` defaults to the file read). Returns the logged model's
    id (``models:/<id>`` loads it).
    """
    return log_checkpoint_model(
        client_or_uri,
        run_id,
        Path(checkpoint_dir, CHECKPOINT_FILE),
        example_images=example_images,
        step=step,
        tags=tags,
    )


def log_checkpoint_model(
    client_or_uri: Any,
    run_id: str,
    checkpoint: str | Path,
    *,
    example_images: np.ndarray | None = None,
    step: int = 0,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Log the classifier of checkpoint file ``checkpoint`` as a model of ``run_id``; its id."""
    import mlflow.pytorch
    import torch
    from mlflow.entities import LoggedModelStatus
    from mlflow.models import infer_signature

    from auxtune.robust.checkpoint import load_model
    from auxtune.robust.classifier import ImageClassifier

    mlflow_client, uri = _client_and_uri(client_or_uri)
    net, _ = load_model(checkpoint, device="cpu")
    classifier = ImageClassifier(net).eval()
    images = _example(example_images)
    with torch.no_grad():
        logits = classifier(torch.from_numpy(images)).numpy()
    run = mlflow_client.get_run(run_id)
    name = _model_name(run.info.run_name)  # the Models column and page show it
    model = mlflow_client.create_logged_model(
        experiment_id=run.info.experiment_id,
        name=name,
        source_run_id=run_id,
        params=dict(run.data.params),
        tags={CHECKPOINT_TAG: str(checkpoint), **(tags or {})},
        model_type="image-classifier",
    )
    try:
        with _tracking_uri(uri):  # MLflow's log_model writes through the global tracking URI
            mlflow.pytorch.log_model(
                classifier,
                name=name,
                model_id=model.model_id,
                run_id=run_id,
                step=step,
                signature=infer_signature(images, logits),
                input_example=images,
                serialization_format="pt2",
                # given, not inferred: inference loads the model again in a subprocess (seconds)
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                validate_serving_input=False,  # another load and predict, for a warning at most
            )
    except BaseException:
        mlflow_client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    mlflow_client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return str(model.model_id)


def register_best_model(
    client_or_uri: Any,
    run_id: str,
    name: str,
    *,
    description: str = "",
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register the model logged on ``run_id`` as a new version of ``name`` (created when missing)
    and point the alias ``best`` at it; returns the version (``models:/<name>@best`` loads it)."""
    from mlflow.exceptions import MlflowException

    mlflow_client, uri = _client_and_uri(client_or_uri)
    outputs = mlflow_client.get_run(run_id).outputs
    models = [m.model_id for m in (outputs.model_outputs if outputs else [])]
    if not models:
        raise ValueError(f"run {run_id} has no logged model to register")
    try:
        mlflow_client.create_registered_model(name, description=description or None)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    with _tracking_uri(uri):  # the registry finds the logged model through the global URI
        version = mlflow_client.create_model_version(
            name,
            source=f"models:/{models[-1]}",
            run_id=run_id,
            model_id=models[-1],
            tags=dict(tags or {}),
            description=description or None,
        )
    mlflow_client.set_registered_model_alias(name, BEST_ALIAS, version.version)
    return str(version.version)


def checkpoint_location(checkpoint: Any) -> str:
    """Where a ``ray.tune.Checkpoint`` lives, as a URI for remote storage (``s3://...``)."""
    path = str(checkpoint.path)
    kind = str(getattr(checkpoint.filesystem, "type_name", "local"))
    return path if kind == "local" else f"{kind}://{path}"


def _model_name(run_name: str | None) -> str:
    """The run's name as its model's (``retrain-meta-seed1``), in the characters MLflow allows."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_name or "").strip("-")
    return name[:200] or "model"


def _example(images: np.ndarray | None) -> np.ndarray:
    if images is None:
        from auxtune.data.synthetic import make_synthetic

        images, _ = make_synthetic(EXAMPLE_IMAGES, seed=0)
    return np.ascontiguousarray(images[:EXAMPLE_IMAGES], dtype=np.uint8)


def _client_and_uri(client_or_uri: Any) -> tuple[Any, str]:
    if isinstance(client_or_uri, str):
        return make_client(client_or_uri), client_or_uri
    return client_or_uri, str(client_or_uri.tracking_uri)


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI set to ``uri`` for the block (MLflow's own helper: it restores
    an unset URI as unset). Both writers of a process use one store, so threads agree."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield
