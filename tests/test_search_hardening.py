"""``auxtune search`` and ``compare`` hardened: a local search's Ray on loopback only, trial
threads clamped to the machine, names and result locations refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from auxtune.config import ConfigError
from auxtune.errors import UserError
from auxtune.platform.config import load_experiment

UNDER_PROC = "/proc/auxtune-test/out"


def _tiny(tmp_path: Path, *overrides: str):
    return load_experiment(
        None,
        [
            f"tracking.workdir={tmp_path}",
            f"data.data_dir={tmp_path / 'cache'}",
            "data.num_train=16",
            "data.num_val=8",
            "data.num_test=4",
            "data.holdout=8",
            "optim.batch_size=8",
            *overrides,
        ],
    )


@pytest.fixture
def no_ray():
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized(), "another test left Ray running"
    yield ray
    ray.shutdown()


class RayStarted(Exception):
    """The search got as far as starting Ray: its checks came too late."""


@pytest.fixture
def refuse_ray(monkeypatch):
    """Fail at once (instead of running a whole search) if the checks let the search reach Ray."""
    from auxtune.platform import search

    def connect(*_args, **_kwargs):
        raise RayStarted("the search reached Ray before refusing its input")

    monkeypatch.setattr(search, "ray_session", connect)


@pytest.mark.parametrize("name", ["../../escape", "{tmp}/abs", ".hidden"])
def test_an_unsafe_search_name_is_refused_before_ray(tmp_path, refuse_ray, name):
    from auxtune.platform.search import run_search

    with pytest.raises(ConfigError, match=r"^--name = .* is not allowed"):
        run_search(_tiny(tmp_path / "work"), "fixed", search_name=name.format(tmp=tmp_path))


@pytest.mark.parametrize(
    "override, field",
    [
        (f"tracking.workdir={UNDER_PROC}", "tracking.workdir"),
        (f"tracking.storage={UNDER_PROC}", "tracking.storage"),
        (f"search.optuna_storage=sqlite:///{UNDER_PROC}/study.db", "search.optuna_storage"),
    ],
)
def test_an_unwritable_result_location_is_refused_before_ray(tmp_path, refuse_ray, override, field):
    from auxtune.platform.search import run_search

    with pytest.raises(UserError, match=rf"^{field} .* cannot be written"):
        run_search(_tiny(tmp_path, override), "fixed")


def test_an_unwritable_compare_report_is_refused_before_the_searches():
    from auxtune.platform.report import check_out_dir

    with pytest.raises(UserError, match=r"^--out .* cannot be written"):
        check_out_dir(Path(UNDER_PROC) / "report")


@pytest.mark.slow
def test_a_local_search_listens_on_loopback_only(no_ray):
    from auxtune.platform.ray_runtime import connect
    from test_ray_loopback import assert_loopback_only

    assert connect(None, None) is True
    assert_loopback_only()


@pytest.mark.slow
def test_trial_threads_never_exceed_the_machine(tmp_path, no_ray):
    from auxtune.platform.ray_runtime import trial_resources
    from auxtune.ray_connect import init_local

    init_local(num_cpus=2, include_dashboard=False, log_to_driver=False)
    many = _tiny(tmp_path, "search.cpus_per_trial=64").search
    assert trial_resources(many, on_cluster=False).threads == 2
    one = _tiny(tmp_path, "search.cpus_per_trial=1").search
    assert trial_resources(one, on_cluster=False).threads == 1


def test_library_chatter_goes_to_the_log_file_and_its_handlers_come_back(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Without --verbose, the libraries' messages (Optuna's "A new study created in memory",
    MLflow's schema notes, Ray's warnings) land in the command's log file, not on the console,
    even after ``ray.init`` cleared the "ray" logger's handlers; each logger gets its own
    handlers back afterwards."""
    import logging

    import mlflow  # noqa: F401  (their stderr handlers exist before the block)
    import optuna.logging  # noqa: F401
    import ray  # noqa: F401

    from auxtune.platform.ray_runtime import LIBRARY_LOGGERS, library_logs_to

    before = {name: logging.getLogger(name).handlers[:] for name in LIBRARY_LOGGERS}
    log = tmp_path / "logs" / "x.log"
    with library_logs_to(log):
        logging.getLogger("optuna.study.study").info("A new study created in memory")
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables")
        logging.getLogger("ray").handlers.clear()  # what ray.init(configure_logging=False) does
        logging.getLogger("ray.tune.logger.logger").warning("Remote file not found")
    text = log.read_text()
    for message in ("A new study created", "Creating initial MLflow", "Remote file not found"):
        assert message in text
    assert capfd.readouterr().err == ""
    after = {name: logging.getLogger(name).handlers for name in LIBRARY_LOGGERS}
    assert after == before
    assert logging.StreamHandler in {type(h) for h in after["optuna"]}  # Optuna's own, restored
