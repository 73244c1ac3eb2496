"""Values that parse but would break later are refused when the experiment is read.

Names become directory names, so they must be one safe path component; seeds must be usable by
numpy and torch alike; floats must be finite; a synthetic set must hold at least one batch; a
malformed YAML file or override is a one-line :class:`ConfigError`, never a YAML traceback.
"""

from __future__ import annotations

import pytest

from auxtune.config import ConfigError, apply_overrides, load_yaml
from auxtune.platform.config import check_name, load_experiment


@pytest.mark.parametrize("name", ["demo", "cifar10-paper", "run_2.b", "A9", "x" * 100])
def test_safe_names_pass(name):
    assert check_name(name) == name
    assert load_experiment(None, [f"name={name}"]).name == name


@pytest.mark.parametrize(
    "name",
    [
        "../../escape",
        "/tmp/abs",
        "a/b",
        "a\\b",
        "..",
        ".",
        ".hidden",
        "-flag",
        "",
        " ",
        "a b",
        "tab\tname",
        "bell\x07",
        "newline\nname",
        "é",
        "x" * 101,
    ],
)
def test_unsafe_names_are_refused_naming_the_rule(name):
    with pytest.raises(ConfigError) as info:
        check_name(name, "--name")
    message = str(info.value)
    assert message.startswith("--name = ") and "letters, digits" in message
    assert "\n" not in message


def test_unsafe_names_are_refused_when_the_experiment_is_read(tmp_path):
    (tmp_path / "exp.yaml").write_text("name: ../../shared\n")
    with pytest.raises(ConfigError, match=r"^name = '\.\./\.\./shared'"):
        load_experiment(tmp_path / "exp.yaml")
    with pytest.raises(ConfigError, match=r"^name = "):
        load_experiment(None, ["name=/etc"])


@pytest.mark.parametrize(
    "override, field",
    [
        ("optim.lr=.inf", "optim.lr"),
        ("optim.lr=.nan", "optim.lr"),
        ("weighting.meta.lambda_max=.inf", "weighting.meta.lambda_max"),
        ("search.lambda_high=.inf", "search.lambda_high"),
        ("tasks.blur_sigma=1e400", "tasks.blur_sigma"),
    ],
)
def test_non_finite_floats_are_refused(override, field):
    with pytest.raises(ConfigError, match=rf"^{field} = .* must be a finite number"):
        load_experiment(None, [override])


@pytest.mark.parametrize(
    "override, field",
    [
        ("seed=-1", "seed"),
        ("seed=4294967296", "seed"),
        ("seed=99999999999999999999999", "seed"),
        ("data.seed=-3", "data.seed"),
        ("data.seed=4294967296", "data.seed"),
    ],
)
def test_seeds_outside_numpy_and_torch_range_are_refused(override, field):
    with pytest.raises(ConfigError, match=rf"^{field} = .* must be in \[0, 2\*\*32\)"):
        load_experiment(None, [override])


def test_the_largest_seed_passes():
    assert load_experiment(None, ["seed=4294967295", "data.seed=4294967295"]).seed == 4294967295


def test_a_batch_larger_than_the_synthetic_training_set_is_refused():
    with pytest.raises(ConfigError, match=r"^optim\.batch_size = 64 .*data\.num_train = 32"):
        load_experiment(None, ["data.num_train=32", "optim.batch_size=64"])
    assert (
        load_experiment(None, ["data.num_train=32", "optim.batch_size=32"]).optim.batch_size == 32
    )


def test_more_images_per_block_than_the_synthetic_block_is_refused():
    with pytest.raises(ConfigError, match=r"^data\.c_images_per_block = 50 .*data\.num_test = 8"):
        load_experiment(None, ["data.num_test=8", "data.c_images_per_block=50"])


def test_cifar_sizes_are_left_to_the_files():
    """CIFAR's split sizes are known when its files are read, not from the config."""
    exp = load_experiment(None, ["data.dataset=cifar10", "data.num_train=1", "optim.batch_size=64"])
    assert exp.optim.batch_size == 64


@pytest.mark.parametrize(
    "override, shown",
    [("optim.lr==", "optim.lr=="), ("name=a\x07b", "name=a"), ("x=[1, 2", "x=[1, 2")],
)
def test_an_override_that_is_not_yaml_is_one_config_error(override, shown):
    with pytest.raises(ConfigError) as info:
        apply_overrides({}, [override])
    assert shown in str(info.value) and "not valid YAML" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_binary_config_file_is_one_config_error(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match=r"model\.pt is not a YAML text file") as info:
        load_yaml(path)
    assert "\n" not in str(info.value)


def test_a_directory_given_as_config_says_so(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_yaml(tmp_path)
