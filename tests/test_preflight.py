"""Preflight: what this machine must offer (device, data files, CPUs) is checked before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auxtune.config import ConfigError
from auxtune.data.cifar_c import write_corruption, write_labels
from auxtune.errors import UserError
from auxtune.platform import preflight
from auxtune.platform.config import load_experiment
from auxtune.robust.config import RuntimeConfig
from auxtune.robust.device import available_cpus, usable_threads

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.mark.parametrize("name", ["auto", "cpu"])
def test_devices_every_machine_has_pass(name):
    preflight.check_device(name)


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_without_cuda_is_refused(name):
    with pytest.raises(
        UserError, match=rf"^runtime.device = '{name}' but this machine has no CUDA"
    ):
        preflight.check_device(name)


def test_a_cuda_index_beyond_the_devices_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    preflight.check_device("cuda:1")
    with pytest.raises(UserError, match=r"cuda:7' but this machine has 2 CUDA devices \(cuda:0"):
        preflight.check_device("cuda:7")


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "gpu", ""])
def test_an_unknown_device_names_the_choices(name):
    with pytest.raises(UserError, match="choose auto, cpu, cuda or cuda:N"):
        preflight.check_device(name, "--device")


@pytest.mark.parametrize("name", ["cuda:x", "cuda:", "cuda:-1", "cuda:1.5"])
def test_a_malformed_cuda_index_is_refused_at_parse_time(name):
    with pytest.raises(ConfigError, match=r"runtime\.device"):
        RuntimeConfig(device=name)


def test_a_missing_corruptions_dir_is_refused(tmp_path):
    exp = load_experiment(None, [f"data.corruptions_dir={tmp_path / 'nowhere'}"])
    with pytest.raises(UserError, match=r"^data\.corruptions_dir .*nowhere does not exist"):
        preflight.check_data(exp.data)


def test_more_images_per_block_than_the_corruptions_dir_holds_is_refused(tmp_path):
    write_labels(tmp_path, np.arange(4))
    write_corruption(tmp_path, "fog", np.zeros((20, 32, 32, 3), np.uint8))
    ok = load_experiment(None, [f"data.corruptions_dir={tmp_path}", "data.c_images_per_block=4"])
    preflight.check_data(ok.data)
    exp = load_experiment(None, [f"data.corruptions_dir={tmp_path}", "data.c_images_per_block=5"])
    with pytest.raises(UserError, match=r"c_images_per_block = 5 .* blocks of 4 images"):
        preflight.check_data(exp.data)


def test_an_unwritable_synthetic_cache_is_refused():
    exp = load_experiment(None, ["data.data_dir=/proc/auxtune-test/cache"])
    with pytest.raises(UserError, match=r"^data\.data_dir .* cannot be written"):
        preflight.check_data(exp.data)


def test_cifar_without_its_files_is_refused_before_reading(tmp_path):
    exp = load_experiment(None, ["data.dataset=cifar10", f"data.data_dir={tmp_path}"])
    with pytest.raises(UserError, match="cifar-10-batches-py/data_batch_1 does not exist"):
        preflight.check_data(exp.data)


# ------------------------------------------------------------------------------------ threads
def test_usable_threads_never_exceed_the_cpus_this_process_may_use():
    assert usable_threads(1) == 1
    assert usable_threads(10_000) == available_cpus()
    assert usable_threads(0) == 0  # 0 keeps torch's default


@pytest.mark.parametrize(
    "share, cpus, threads",
    [(1.0, 2, 1), (0.5, 2, 1), (2.0, 2, 2), (2.5, 4, 2), (64.0, 2, 2), (8.0, 8, 8)],
)
def test_trial_threads_are_the_share_clamped_to_the_machine(share, cpus, threads):
    got, note = preflight.trial_threads(share, cpus)
    assert got == threads
    assert (note is None) == (int(share) <= cpus)


def test_the_clamp_says_what_it_did():
    _, note = preflight.trial_threads(64.0, 2)
    assert note == (
        "note: search.cpus_per_trial = 64 but this machine has 2 CPUs: each trial computes "
        "with 2 torch threads (more would only make them wait for each other)"
    )


def test_runtime_threads_beyond_the_machine_are_noted():
    exp = load_experiment(None, [f"runtime.threads={available_cpus() + 7}"])
    notes = preflight.check_run_here(exp)
    assert any("runtime.threads" in note and "using" in note for note in notes)


# ------------------------------------------------------------------------------------ memory
@pytest.mark.parametrize(
    "error, asked",
    [
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                "memory: you tried to allocate 5760000000000 bytes. Error code 12"
            ),
            "5760000000000 bytes",
        ),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB."), "2.00 GiB"),
    ],
)
def test_running_out_of_memory_is_one_user_error_line(error, asked):
    with pytest.raises(UserError) as info, preflight.memory_errors_as_user_errors():
        raise error
    message = str(info.value)
    assert message.startswith(f"out of memory (it asked for {asked})") and "widen_factor" in message


def test_other_runtime_errors_pass_through():
    with (
        pytest.raises(RuntimeError, match="something else"),
        preflight.memory_errors_as_user_errors(),
    ):
        raise RuntimeError("something else")
