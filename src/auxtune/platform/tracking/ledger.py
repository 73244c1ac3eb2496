"""The driver's own record of a Tune run: which MLflow run each trial has, and every result.

``auxtune_search.json`` in the Tune experiment directory (or under ``<workdir>/search_state`` for
remote storage) maps trials to their MLflow runs; beside it a JSON-lines file keeps every result
of every trial in the order the driver saw it. Both survive an interrupted search, so a resumed
search reuses its runs, and they are complete across PBT restores (unlike Tune's own
``result.json``, which a restore rewrites).

The history is written first: a result reaches the disk before anything is queued for MLflow,
so after any death of the driver the file holds at least what MLflow holds, and a resumed search
writes MLflow what it lacks (:mod:`.recovery`). A driver killed in the middle of a line leaves a
partial last line: reading skips it, the next append starts a new line.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auxtune.platform.tracking.store import numeric_metrics

STATE_FILE = "auxtune_search.json"  # in the Tune experiment directory


class SearchState:
    """``auxtune_search.json`` in the Tune experiment directory: run ids and logging time.

    Written atomically whenever a trial gets its MLflow run, so an interrupted search resumes
    into the same runs. Beside it, :attr:`history_path` keeps every result of every trial.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {
            "runs": {},
            "finished": [],
            "logging_s": 0.0,  # writer thread: every MLflow call, artifacts included
            "hook_s": 0.0,  # Tune hooks: what a reporting trial may wait for
            "logging_by_op": {},  # logging_s by operation: start (run creation), log, finish
        }
        if self.path.is_file():
            self.data.update(json.loads(self.path.read_text()))

    @property
    def runs(self) -> dict[str, str]:
        return self.data["runs"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    @property
    def history_path(self) -> Path:
        """Every result of every trial in the order the driver saw them (JSON lines).

        Tune rewrites a trial's own ``result.json`` when it restores a checkpoint (a PBT exploit
        drops the rows after the donor's epoch), so this file is the complete record.
        """
        return self.path.with_suffix(".history.jsonl")

    def append_history(self, row: Mapping[str, Any]) -> None:
        """Append one result (with its ``trial_id``); on return it is on disk (fsync: MLflow's
        SQLite store syncs its commits too, so even a power loss leaves the ledger ahead)."""
        line = json.dumps(row) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.history_path.open("ab") as f:
            if f.tell() > 0 and not self._ends_a_line():
                line = "\n" + line  # a killed driver's partial line: leave it on a line of its own
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())

    def _ends_a_line(self) -> bool:
        with self.history_path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """trial id -> every result recorded for it, in the order the driver received them.

        ``step`` numbers a trial's results 1, 2, ... (it is their MLflow step); a result Tune
        replays after a restore is a new result with the next step.
        """
        by_trial: dict[str, list[dict[str, Any]]] = {}
        for row in self._read():
            by_trial.setdefault(row.pop("trial_id"), []).append(row)
        return by_trial

    def histories(self) -> dict[str, list[dict[str, Any]]]:
        """trial id -> the rows of the model it ended with: results replayed after a restore
        replace the ones they repeat (:func:`add_row`)."""
        by_trial: dict[str, list[dict[str, Any]]] = {}
        for row in self._read():
            add_row(by_trial.setdefault(row.pop("trial_id"), []), row)
        return by_trial

    def _read(self) -> list[dict[str, Any]]:
        if not self.history_path.is_file():
            return []
        found = []
        for line in self.history_path.read_text().splitlines():
            try:
                row = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:  # the partial line of a driver killed while writing it
                continue
            if isinstance(row, dict) and "trial_id" in row:
                found.append(row)
        return found


def add_row(rows: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """Append a trial's result to its rows, first dropping the rows it replays.

    A resumed trial restarts from its last *registered* checkpoint, so results Tune had shown the
    driver before an interruption can come again. A result whose ``training_iteration`` is not
    past the previous row's replaces the rows it repeats, unless it is a PBT exploit (it restores
    another trial's checkpoint on purpose, possibly an earlier iteration): an exploit replaces
    rows only when it repeats an exploit already recorded (same donor, same iteration), which
    happens when the trial is restored to the donor's checkpoint again.
    """
    iteration = row.get("training_iteration", math.inf)
    donor = row.get("restored_from")
    if donor:
        for i in range(len(rows) - 1, -1, -1):
            seen = rows[i]
            if seen.get("restored_from") == donor and seen.get("training_iteration") == iteration:
                del rows[i:]
                break
    else:
        while rows and rows[-1].get("training_iteration", -math.inf) >= iteration:
            rows.pop()
    rows.append(row)


def result_row(
    result: Mapping[str, Any], step: int, earlier: list[dict[str, Any]], config: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """One Tune result of a trial as its ledger row (MLflow ``step``: the trial's n-th result, so
    monotonic across restores of any kind), and the run tags a PBT exploit sets (``earlier``: the
    trial's rows so far, ``config``: its config now).

        >>> row, tags = result_row({"acc": 0.5, "restored_from": "t2"}, 3, [], {"lambda": 0.1})
        >>> row["step"], row["pbt/exploit"], tags["pbt.exploits"], tags["pbt.current_config"]
        (3, 1.0, '1', '{"lambda": 0.1}')
    """
    metrics = numeric_metrics(result)
    # wall time of this result inside the trial (train + eval + checkpoint)
    metrics["time/iter_s"] = float(result.get("time_this_iter_s") or 0.0)
    tags = {}
    donor = result.get("restored_from")
    if donor:
        metrics["pbt/exploit"] = 1.0
        tags = {
            "pbt.last_donor": str(donor),
            "pbt.exploits": str(1 + sum(1 for r in earlier if r.get("restored_from"))),
            "pbt.current_config": json.dumps(_plain(config), sort_keys=True),
        }
    row: dict[str, Any] = {
        "training_iteration": int(result.get("training_iteration") or 0),
        **metrics,
        "step": step,
    }
    if donor:
        row["restored_from"] = str(donor)
    return row, tags


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)
