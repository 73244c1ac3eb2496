"""What a user sees in the MLflow UI after a comparison, in a real headless Chromium.

One tiny ``auxtune compare`` (baseline, a grid and Optuna, 2 seeds) makes the store; ``auxtune ui``
serves it on a free port; Playwright follows the links auxtune prints and asserts:

- the experiment opens on the runs table, not MLflow's GenAI overview, and the comparison is one
  experiment (no experiment per strategy);
- three levels nest: comparison run -> one run per row -> the row's search trials and retrains;
- the Dataset, Source and Models columns are filled (a retrain's model, the auxtune command);
- a trial's lambda-trajectory SVG artifact renders as an image, every word inside its frame;
- the best retrain's model is registered (Model registry: version 1, alias ``best``) and the
  experiment's Models tab lists the retrains' logged models.

Screenshots of every page go to the module's temporary directory (printed at the end).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from auxtune.platform.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]

ROWS = ("baseline", "fixed", "optuna")
NAME = "tiny"  # the experiment's name: experiment tiny-compare, registered model tiny-best
UI_START_S = 300  # the MLflow server's start on a busy 2-CPU machine takes up to minutes
WAIT_MS = 120_000  # the UI's first queries run while the server's workers are still warming up


@dataclass(frozen=True)
class Store:
    uri: str
    experiment_id: str
    runs: dict[str, str]  # run name -> run id
    shots: Path


@dataclass(frozen=True)
class Ui:
    base: str
    page: Any
    store: Store

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.store.shots / f"{name}.png"), full_page=True)

    def open_runs_table(self) -> None:
        """The link auxtune prints, as a first-time visitor sees it (the UI keeps expanded rows
        and column choices in the browser's local storage: cleared first)."""
        from auxtune.platform.tracking import experiment_url

        self.page.goto(f"{self.base}/#/")
        self.page.evaluate("window.localStorage.clear()")
        self.page.goto(experiment_url(self.base, self.store.experiment_id))
        self.page.reload()
        self.page.get_by_text("compare-", exact=False).first.wait_for(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A tiny comparison's MLflow store, made by `auxtune compare` itself."""
    from mlflow import MlflowClient

    from test_compare import TINY, quick_corrupted_set

    root = tmp_path_factory.mktemp("ui")
    config = root / "tiny.yaml"

    def write(corruptions: Path | None) -> None:
        config.write_text(
            TINY.format(
                corruptions=corruptions or "null",
                workdir=root / "work",
                strategies=", ".join(ROWS),
                seeds=2,
                epochs=2,
                budget=4,
            )
        )

    write(None)
    write(quick_corrupted_set(config, root / "c"))
    assert main(["compare", "--config", str(config), "--out", str(root / "report")]) == 0
    uri = f"sqlite:///{root / 'work' / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"{NAME}-compare")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    shots = root / "screenshots"
    shots.mkdir()
    return Store(
        uri, experiment.experiment_id, {r.info.run_name: r.info.run_id for r in runs}, shots
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def ui(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    """`auxtune ui` on the store (its own process group, all of it killed at the end) and a
    Chromium page."""
    from browser_support import chromium

    port = free_port()
    log = (store.shots.parent / "ui.log").open("w")
    command = [sys.executable, "-m", "auxtune.platform.cli", "ui", "--port", str(port)]
    command += ["--tracking-uri", store.uri, f"tracking.workdir={store.shots.parent / 'work'}"]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, server)
        with chromium(
            tmp_path_factory.mktemp("profile"), viewport={"width": 1920, "height": 1080}
        ) as browser:
            yield Ui(base, browser.new_page(), store)
    finally:
        stop_group(server)
        log.close()
        print(f"\nscreenshots: {store.shots}")


def wait_for_health(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + UI_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"auxtune ui exited with {server.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5):
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the MLflow UI did not answer on {base} within {UI_START_S} s")


def stop_group(server: subprocess.Popen) -> None:
    """SIGTERM to the UI's whole process group (auxtune, mlflow, uvicorn and its workers), then
    SIGKILL to whatever is left after 30 s: no MLflow server outlives the test."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + 30
        with suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        while group_alive(server):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        else:
            return


def group_alive(server: subprocess.Popen) -> bool:
    server.poll()  # reap the group's leader once it exits
    try:
        os.killpg(server.pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------------- the table
def grid_row(ui: Ui, run_name: str) -> tuple[Any, str]:
    """The pinned (left) part of the runs table's row of ``run_name``, and its row index."""
    row = ui.page.locator(".ag-pinned-left-cols-container .ag-row", has_text=run_name).first
    row.wait_for(timeout=WAIT_MS)
    return row, str(row.get_attribute("row-index"))


def cell(ui: Ui, run_name: str, column: str) -> Any:
    """A cell of ``run_name``'s row in column ``column`` (Dataset, Source, Models)."""
    _, index = grid_row(ui, run_name)
    return ui.page.locator(f'.ag-row[row-index="{index}"] [col-id="attributes.`{column}`"]').first


def expand(ui: Ui, run_name: str) -> None:
    row, _ = grid_row(ui, run_name)
    row.locator("button[data-component-id*='runnamecellrenderer']").first.click()


def test_the_comparison_opens_on_its_runs_table(ui: Ui) -> None:
    ui.open_runs_table()
    page = ui.page
    assert "/runs" in page.url and "workflowType=machine_learning" in page.url
    page.get_by_text("Run Name", exact=True).first.wait_for(timeout=WAIT_MS)
    assert page.get_by_text("Detect Issues").count() == 0  # the GenAI overview's pop-up
    ui.shot("runs-table")
    from mlflow import MlflowClient

    names = [e.name for e in MlflowClient(ui.store.uri).search_experiments()]
    assert [n for n in names if n.startswith(NAME)] == [f"{NAME}-compare"]  # one, not per strategy


def test_comparison_rows_trials_and_retrains_nest(ui: Ui) -> None:
    ui.open_runs_table()
    page = ui.page
    compare_run = next(n for n in ui.store.runs if n.startswith("compare-"))
    assert page.get_by_text("optuna search").count() == 0  # collapsed: only the comparison
    expand(ui, compare_run)
    for row in ("baseline", "fixed search", "optuna search"):
        grid_row(ui, row)  # level 2: one run per row
    expand(ui, "optuna search")
    expand(ui, "baseline")
    trials = [n for n in ui.store.runs if n.startswith("optuna-")]
    assert len(trials) >= 2
    for name in [*trials, "retrain-optuna-seed0", "retrain-optuna-seed1", "retrain-baseline-seed0"]:
        grid_row(ui, name)  # level 3: the row's trials and retrains
    ui.shot("three-levels")


def test_dataset_source_and_models_columns_are_filled(ui: Ui) -> None:
    ui.open_runs_table()
    compare_run = next(n for n in ui.store.runs if n.startswith("compare-"))
    expand(ui, compare_run)
    expand(ui, "optuna search")
    trial = next(n for n in ui.store.runs if n.startswith("optuna-"))
    for run in (compare_run, "optuna search", trial, "retrain-optuna-seed0", "baseline"):
        assert "synthetic-train" in cell(ui, run, "Dataset").inner_text(), run
        assert "auxtune" in cell(ui, run, "Source").inner_text(), run
    assert "retrain-optuna-seed0" in cell(ui, "retrain-optuna-seed0", "Models").inner_text()
    assert cell(ui, trial, "Models").inner_text().strip() in ("-", "")  # trials log no model
    ui.shot("columns")


def test_a_trials_lambda_figure_renders(ui: Ui) -> None:
    from browser_support import TEXT_OUTSIDE_SVG

    page, store = ui.page, ui.store
    trial = next(n for n in store.runs if n.startswith("optuna-"))
    run_id = store.runs[trial]
    page.goto(
        f"{ui.base}/#/experiments/{store.experiment_id}/runs/{run_id}/artifacts"
        "?workflowType=machine_learning"
    )
    page.get_by_text("lambda_trajectory.svg").first.click(timeout=WAIT_MS)
    image = page.locator("img[src^='blob:']").first
    image.wait_for(timeout=WAIT_MS)
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=image.element_handle())
    width, height = image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert width >= 400 and height >= 250
    ui.shot("trial-svg")
    # the same artifact, measured: Chromium's own text boxes stay inside the figure
    served = page.request.get(
        f"{ui.base}/get-artifact?path=lambda_trajectory.svg&run_uuid={run_id}"
    )
    assert served.ok and served.text().startswith("<svg")
    figure = page.context.new_page()  # (set_content would replace the UI's own page)
    figure.set_content(f"<html><body style='margin:0'>{served.text()}</body></html>")
    assert figure.evaluate(TEXT_OUTSIDE_SVG) == []
    figure.close()


def test_the_best_model_is_registered(ui: Ui) -> None:
    from auxtune.platform.tracking import model_url

    page = ui.page
    page.goto(model_url(ui.base, f"{NAME}-best"))
    page.get_by_text("Version 1").first.wait_for(timeout=WAIT_MS)
    assert page.get_by_text(re.compile(r"^@\s*best$")).count() >= 1  # the alias, as a chip
    ui.shot("registered-model")
    page.goto(
        f"{ui.base}/#/experiments/{ui.store.experiment_id}/models?workflowType=machine_learning"
    )
    page.get_by_text("retrain-baseline-seed0").first.wait_for(timeout=WAIT_MS)
    for row in ROWS:
        assert page.get_by_text(f"retrain-{row}-seed1").count() >= 1
    ui.shot("logged-models")
