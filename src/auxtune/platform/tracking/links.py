"""Links into the MLflow UI that open where a user expects: an experiment's runs table, a model.

MLflow 3.17's UI shows every experiment in its GenAI view (traces, token usage) unless the page's
link says ``workflowType=machine_learning``: its global GenAI / Model training switch decides,
not the experiment's ``mlflow.experimentKind`` tag (measured in Chromium, 2026-12). Links keep the
parameter as the user moves between an experiment's tabs, so every link auxtune prints has it.

    >>> experiment_url("http://127.0.0.1:5000", "3")
    'http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning'
    >>> model_url("http://127.0.0.1:5000/", "demo-best")
    'http://127.0.0.1:5000/#/models/demo-best?workflowType=machine_learning'
"""

from __future__ import annotations

from urllib.parse import quote

MODEL_TRAINING = "workflowType=machine_learning"


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table (its parent runs expand into their children)."""
    return f"{base.rstrip('/')}/#/experiments/{quote(str(experiment_id))}?{MODEL_TRAINING}"


def model_url(base: str, name: str) -> str:
    """A registered model's versions in the Model Registry."""
    return f"{base.rstrip('/')}/#/models/{quote(name)}?{MODEL_TRAINING}"
