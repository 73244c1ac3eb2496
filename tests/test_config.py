"""Typed configs: YAML + dotted overrides in, a frozen TrainConfig out, bad values refused at parse time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from auxtune.config import ConfigError, apply_overrides, flatten, from_dict, load_yaml, to_dict
from auxtune.errors import USER_ERRORS
from auxtune.robust.config import TrainConfig, task_names

YAML = """
seed: 7
model: {depth: 10, widen_factor: 1}
optim: {lr: 0.05, epochs: 3}
tasks: {names: [rotation, jigsaw]}
weighting: {name: fixed, lambdas: {rotation: 0.25}}
"""


def parse(overrides: list[str], base: dict | None = None) -> TrainConfig:
    """The boundary every entry point uses: plain data + overrides -> a validated TrainConfig."""
    return from_dict(TrainConfig, apply_overrides(base or {}, overrides))


@pytest.fixture
def yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(YAML)
    return path


def test_yaml_plus_overrides_give_a_typed_frozen_config(yaml_file):
    data = apply_overrides(load_yaml(yaml_file), ["optim.lr=0.01", "tasks.blur_sigma=2", "seed=3"])
    cfg = from_dict(TrainConfig, data)

    assert cfg.seed == 3
    assert cfg.model.depth == 10 and cfg.model.widen_factor == 1
    assert cfg.optim.lr == 0.01 and cfg.optim.epochs == 3
    assert cfg.tasks.names == ("rotation", "jigsaw")  # YAML list -> tuple
    assert cfg.tasks.blur_sigma == 2.0 and isinstance(cfg.tasks.blur_sigma, float)
    assert cfg.weighting.lambdas == {"rotation": 0.25}
    assert cfg.weighting.initial_lambdas(cfg.tasks.names) == {"rotation": 0.25, "jigsaw": 0.5}
    assert cfg.optim.momentum == 0.9  # untouched defaults survive
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]


def test_overrides_parse_values_as_yaml_and_build_missing_sections():
    data = apply_overrides(
        {"optim": {"lr": 0.1}},
        [
            "optim.nesterov=false",
            "tasks.names=rotation,colorization",
            "weighting.lambdas.rotation=1e-1",
        ],
    )
    assert data == {
        "optim": {"lr": 0.1, "nesterov": False},
        "tasks": {"names": "rotation,colorization"},
        "weighting": {"lambdas": {"rotation": "1e-1"}},  # YAML 1.1 reads 1e-1 as a string...
    }
    cfg = from_dict(TrainConfig, data)
    assert cfg.tasks.names == ("rotation", "colorization")  # ...comma lists become tuples
    assert cfg.weighting.lambdas == {"rotation": 0.1}  # ...and the float field still parses it
    assert cfg.optim.nesterov is False


def test_overrides_do_not_mutate_their_input():
    base = {"optim": {"lr": 0.1}}
    apply_overrides(base, ["optim.lr=0.5"])
    assert base == {"optim": {"lr": 0.1}}


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("optim.lr", ["key=value"]),
        ("=3", ["key=value"]),
        ("seed.x=1", ["seed is a value"]),
    ],
)
def test_malformed_overrides_are_refused(override, words):
    with pytest.raises(ConfigError) as err:
        apply_overrides({"seed": 0}, [override])
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        # negative lambda: the field and the bound
        (
            ["tasks.names=[rotation]", "weighting.lambdas.rotation=-1"],
            ["weighting.lambdas.rotation", ">= 0"],
        ),
        (["weighting.init_lambda=-0.5"], ["weighting.init_lambda", ">= 0"]),
        # unknown task: the bad name and every valid one
        (["tasks.names=[rotation,sudoku]"], ["tasks.names", "'sudoku'", ", ".join(task_names())]),
        (["tasks.names=[rotation,rotation]"], ["tasks.names", "duplicates"]),
        # unknown strategy
        (["weighting.name=magic"], ["weighting.name", "'magic'", "fixed, meta"]),
        (["weighting.meta.protocol=sometimes"], ["weighting.meta.protocol", "'holdout', 'paper'"]),
        # a plugin's own section: its checks and its search ranges name the whole path
        (["weighting.meta.meta_lr=0"], ["weighting.meta.meta_lr = 0.0", "> 0"]),
        (["weighting.meta.speed=1"], ["weighting.meta.speed", "valid keys", "meta_lr"]),
        (["weighting.sudoku.x=1"], ["unknown config key weighting.sudoku", "meta"]),
        (
            ["weighting.meta.search={meta_lr: [0.0, 1.0]}"],
            ["weighting.meta.search.meta_lr", "log-uniform"],
        ),
        (
            ["weighting.meta.search={meta_lr: [-1.0, 1.0]}"],
            ["weighting.meta.search.meta_lr", "log-uniform"],
        ),
        (
            ["weighting.meta.search={warmup: [1, 2]}"],
            ["weighting.meta.search.warmup", "not a hyperparameter", "meta_lr"],
        ),
        # bad types
        (["optim.lr=abc"], ["optim.lr", "'abc'", "float"]),
        (["optim.epochs=2.5"], ["optim.epochs", "whole number"]),
        (["runtime.compile=maybe"], ["runtime.compile", "true or false"]),
        (["tasks.names=5"], ["tasks.names", "list"]),
        (["model=3"], ["model", "mapping"]),
        # unknown keys, at any depth, with the valid ones listed
        (["optim.lrr=0.1"], ["optim.lrr", "valid keys", "lr, min_lr, momentum"]),
        (["colour=red"], ["unknown config key colour", "weighting"]),
        # WideResNet depth must be 6n+4
        (["model.depth=18"], ["model.depth = 18", "6n+4"]),
        # lambdas for a task that is not trained
        (["weighting.lambdas.jigsaw=1"], ["weighting.lambdas.jigsaw", "tasks.names", "rotation"]),
        (
            ["tasks.names=[rotation]", "weighting.lambdas.sudoku=1"],
            ["weighting.lambdas", "'sudoku'"],
        ),
        # ranges
        (["optim.min_lr=1"], ["optim.min_lr", "optim.lr"]),
        (["runtime.device=tpu"], ["runtime.device", "auto, cpu, cuda"]),
        (["data.dataset=imagenet"], ["data.dataset", "cifar10"]),
    ],
)
def test_bad_values_fail_at_parse_time_naming_field_and_choices(overrides, words):
    with pytest.raises(ConfigError) as err:
        parse(overrides)
    message = str(err.value)
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"


def test_config_errors_are_user_errors():
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(USER_ERRORS):
        parse(["model.depth=7"])


def test_load_yaml_refuses_missing_malformed_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [lr: 0.1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(listy)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert from_dict(TrainConfig, load_yaml(empty)) == TrainConfig()


def test_round_trip_through_plain_data_and_yaml(tmp_path):
    cfg = parse(
        [
            "seed=11",
            "tasks.names=[rotation,jigsaw,inpainting]",
            "weighting.lambdas={rotation: 0.1, jigsaw: 2}",
            "weighting.meta.lambda_max=4",
            "model.depth=28",
            "runtime.device=cpu",
        ]
    )
    plain = to_dict(cfg)
    assert plain["tasks"]["names"] == ["rotation", "jigsaw", "inpainting"]
    assert from_dict(TrainConfig, plain) == cfg
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(plain))
    assert from_dict(TrainConfig, load_yaml(path)) == cfg
    assert from_dict(TrainConfig, to_dict(TrainConfig())) == TrainConfig()


def test_flatten_gives_dotted_keys():
    flat = flatten(to_dict(TrainConfig()))
    assert flat["optim.lr"] == 0.1
    assert flat["weighting.lambdas"] == {}
    assert flat["tasks.names"] == ["rotation"]


PRESETS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_in_configs_is_a_valid_experiment(preset):
    from auxtune.platform.config import load_experiment

    exp = load_experiment(str(preset), [])
    assert exp.train_config().optim.epochs >= 1


def test_the_study_asks_its_question_with_power():
    """configs/study.yaml: few labels on photo_shapes, the issue's seven rows, >= 8 paired seeds."""
    from auxtune.platform.config import load_experiment

    exp = load_experiment(str(PRESETS[0].parent / "study.yaml"), [])
    data = exp.train_config().data
    assert data.dataset == "photo_shapes" and data.labeled_fraction < 1
    assert exp.compare.seeds >= 8
    wanted = {"baseline", "fixed", "meta", "optuna", "pbt", "uncertainty", "pcgrad"}
    assert wanted <= set(exp.compare.strategies)
