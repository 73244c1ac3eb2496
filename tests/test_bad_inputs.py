"""Bad inputs, class by class, through the real ``auxtune`` entry point (table in ``bad_inputs.py``).

Each probe must exit with code 2 and one line on stderr naming what is wrong, print no traceback,
leave its output directory empty and run no payload. The probes of one session run two at a time
(each starts a fresh interpreter), so the module is end-to-end and ``slow``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bad_inputs import AUXTUNE, PROBES, Outcome, Probe, make_fixtures, run_probe

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not AUXTUNE.exists(), reason=f"{AUXTUNE} is not installed"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("probes")
    make_fixtures(root)
    (root / "outputs").mkdir()
    return root


@pytest.fixture(scope="module")
def outcomes(request, inputs) -> dict[str, Outcome]:
    """Every selected probe's outcome, run two at a time."""
    selected = [
        item.callspec.params["probe"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    with ThreadPoolExecutor(2) as pool:
        done = pool.map(lambda probe: run_probe(probe, inputs), selected)
        return {outcome.probe.id: outcome for outcome in done}


def test_the_table_covers_every_class():
    kinds = {probe.kind for probe in PROBES}
    assert kinds == {"value", "output", "input", "service"}
    assert len({probe.id for probe in PROBES}) == len(PROBES)


@pytest.mark.parametrize("probe", PROBES, ids=[p.id for p in PROBES])
def test_bad_input_gets_one_line_and_exit_2(probe: Probe, outcomes):
    outcome = outcomes[probe.id]
    assert outcome.problems == [], f"{probe.kind} {probe.id}: {outcome.stderr[-3000:]}"


def test_good_inputs_still_work(inputs, tmp_path):
    """The checks refuse nothing valid: train, make-c, convert and evaluate end to end."""
    import os
    import subprocess

    from bad_inputs import ROOT, TINY_YAML

    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "AUXTUNE_CACHE": str(inputs / "cache")}
    steps = [
        f"train --config {tmp_path}/tiny.yaml --no-progress --out {tmp_path}/new/dir/model.pt",
        f"data make-c --dataset synthetic --num 4 --no-progress --out {tmp_path}/c",
        f"data convert {tmp_path}/c {tmp_path}/c-parquet",
        f"evaluate {tmp_path}/new/dir/model.pt --corruptions {tmp_path}/c-parquet "
        f"--images-per-block 2 --json {tmp_path}/report/eval.json",
    ]
    for step in steps:
        done = subprocess.run(
            [str(AUXTUNE), *step.split()], capture_output=True, text=True, env=env, timeout=600
        )
        assert done.returncode == 0, f"{step}: {done.stderr[-2000:]}"
    assert (tmp_path / "report" / "eval.json").is_file()
