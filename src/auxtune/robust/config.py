"""Frozen, validated configuration of one training run (pure data, no torch).

The defaults are the seed paper's (Kim, Lee & Suh) optimizer settings on a small network; the
presets in ``configs/`` change the network and the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from auxtune.config import check

#: The seven self-supervised tasks, in a fixed order (the order lambdas are reported in).
TASK_NAMES: tuple[str, ...] = (
    "rotation",
    "colorization",
    "reconstruction",
    "blur_reconstruction",
    "inpainting",
    "rgb_permutation",
    "jigsaw",
)
DATASETS = ("synthetic", "cifar10", "cifar100")
WEIGHTINGS = ("fixed", "meta")


@dataclass(frozen=True)
class ModelConfig:
    """WideResNet-depth-widen for 32x32 inputs; depth must be 6n+4 (WRN-40-2 is the paper's)."""

    depth: int = 16
    widen_factor: int = 2
    dropout: float = 0.0
    base_width: int = 16  # channels of the stem; 16 is the WRN paper's, tiny test models use 4-8

    def __post_init__(self) -> None:
        check(
            self.depth >= 4 and (self.depth - 4) % 6 == 0,
            f"model.depth = {self.depth} is not 6n+4; use e.g. 10, 16, 28 or 40",
        )
        check(self.widen_factor >= 1, f"model.widen_factor = {self.widen_factor} must be >= 1")
        check(0.0 <= self.dropout < 1.0, f"model.dropout = {self.dropout} must be in [0, 1)")
        check(self.base_width >= 1, f"model.base_width = {self.base_width} must be >= 1")


@dataclass(frozen=True)
class OptimConfig:
    """SGD with Nesterov momentum and a cosine schedule from ``lr`` down to ``min_lr``."""

    lr: float = 0.1  # peak learning rate, per step (batch-size independent here: no rescaling)
    min_lr: float = 1e-6  # end of the cosine schedule
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    # images per step; each auxiliary task sees its own view of the same batch
    batch_size: int = 128
    epochs: int = 10

    def __post_init__(self) -> None:
        check(self.lr > 0, f"optim.lr = {self.lr} must be > 0")
        check(0 <= self.min_lr <= self.lr, f"optim.min_lr = {self.min_lr} must be in [0, optim.lr]")
        check(0 <= self.momentum < 1, f"optim.momentum = {self.momentum} must be in [0, 1)")
        check(self.weight_decay >= 0, f"optim.weight_decay = {self.weight_decay} must be >= 0")
        check(self.batch_size >= 2, f"optim.batch_size = {self.batch_size} must be >= 2")
        check(self.epochs >= 1, f"optim.epochs = {self.epochs} must be >= 1")


@dataclass(frozen=True)
class TasksConfig:
    """Which self-supervised heads to train, and the knobs their transforms take."""

    names: tuple[str, ...] = ("rotation",)
    # pixels; blurred reconstruction's Gaussian (the original's 7/255 px was a no-op)
    blur_sigma: float = 1.0
    decoder_width: int = 256  # first channel count of the 256-128-64 transposed-conv decoders

    def __post_init__(self) -> None:
        for name in self.names:
            check(
                name in TASK_NAMES,
                f"tasks.names: unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}",
            )
        check(len(set(self.names)) == len(self.names), f"tasks.names has duplicates: {self.names}")
        check(self.blur_sigma > 0, f"tasks.blur_sigma = {self.blur_sigma} must be > 0 (pixels)")
        check(self.decoder_width >= 4, f"tasks.decoder_width = {self.decoder_width} must be >= 4")


@dataclass(frozen=True)
class WeightingConfig:
    """How the lambdas of L = L_main + sum_i lambda_i L_aux_i are set.

    ``fixed`` keeps ``lambdas`` (or ``init_lambda`` for tasks not listed) constant; ``meta`` starts
    from them and learns them online with the meta-gradient of Kim, Lee & Suh (Algorithm 1).
    """

    name: str = "fixed"
    init_lambda: float = 0.5  # every task's lambda unless ``lambdas`` names it
    lambdas: dict[str, float] = field(default_factory=dict)
    meta_lr: float = 0.01  # beta: step size of the gradient step on lambda
    warmup_epochs: int = 1  # tau: epochs trained with the initial lambdas before meta updates start
    update_every: int = 1  # m: meta-update lambda every m steps
    lambda_max: float | None = None  # upper clamp of lambda (lower clamp is always 0)
    meta_batch_size: int = 25  # images of each meta-validation batch
    protocol: Literal["holdout", "paper"] = "holdout"  # where meta-validation images come from
    # meta's lookahead psi': "sgd" is the paper's psi - alpha*grad; "nesterov" is the optimizer's
    # actual next step (momentum buffer and weight decay included; scales the hypergradient by 1+mu)
    lookahead: Literal["sgd", "nesterov"] = "sgd"

    def __post_init__(self) -> None:
        check(
            self.name in WEIGHTINGS,
            f"weighting.name: unknown strategy {self.name!r}; valid strategies: {', '.join(WEIGHTINGS)}",
        )
        check(self.init_lambda >= 0, f"weighting.init_lambda = {self.init_lambda} must be >= 0")
        for task, value in self.lambdas.items():
            check(
                task in TASK_NAMES,
                f"weighting.lambdas: unknown task {task!r}; valid tasks: {', '.join(TASK_NAMES)}",
            )
            check(value >= 0, f"weighting.lambdas.{task} = {value} must be >= 0")
        check(self.meta_lr > 0, f"weighting.meta_lr = {self.meta_lr} must be > 0")
        check(
            self.warmup_epochs >= 0, f"weighting.warmup_epochs = {self.warmup_epochs} must be >= 0"
        )
        check(self.update_every >= 1, f"weighting.update_every = {self.update_every} must be >= 1")
        check(
            self.lambda_max is None or self.lambda_max > 0,
            f"weighting.lambda_max = {self.lambda_max} must be > 0 (or null for no upper bound)",
        )
        check(self.meta_batch_size >= 1, "weighting.meta_batch_size must be >= 1")
        check(
            self.lookahead in ("sgd", "nesterov"),
            f"weighting.lookahead = {self.lookahead!r}; choose sgd or nesterov",
        )

    def initial_lambdas(self, tasks: tuple[str, ...]) -> dict[str, float]:
        """The starting lambda of each task in ``tasks``."""
        return {t: float(self.lambdas.get(t, self.init_lambda)) for t in tasks}


@dataclass(frozen=True)
class DataConfig:
    """Which images to train and evaluate on."""

    dataset: str = "synthetic"  # synthetic | cifar10 | cifar100
    data_dir: str | None = None  # CIFAR python-layout root (cifar10/cifar100); synthetic cache dir
    corruptions_dir: str | None = None  # CIFAR-C layout directory (.npy or Parquet) for evaluation
    download: bool = False  # let torchvision download CIFAR (never in tests: no network)
    num_train: int = 5000  # synthetic only: images per split
    num_val: int = 1000
    num_test: int = 1000
    # images of the training split kept out for meta-validation (holdout protocol)
    holdout: int = 1000
    # corrupted evaluation uses the first K images of each block; 0 = all
    c_images_per_block: int = 0
    augment: bool = True  # random crop (pad 4) and horizontal flip on the main task's batch
    seed: int = 0  # synthetic generation seed (independent of the training seed)

    def __post_init__(self) -> None:
        check(
            self.dataset in DATASETS,
            f"data.dataset: unknown dataset {self.dataset!r}; valid datasets: {', '.join(DATASETS)}",
        )
        for name in ("num_train", "num_val", "num_test"):
            check(getattr(self, name) >= 1, f"data.{name} = {getattr(self, name)} must be >= 1")
        check(self.holdout >= 0, f"data.holdout = {self.holdout} must be >= 0")
        check(self.c_images_per_block >= 0, "data.c_images_per_block must be >= 0 (0 = all)")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the math runs."""

    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    compile: bool = False  # torch.compile the model
    bf16: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # memory format, on CUDA only
    threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default

    def __post_init__(self) -> None:
        ok = self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        check(ok, f"runtime.device = {self.device!r}; choose auto, cpu, cuda or cuda:N")
        check(self.threads >= 0, f"runtime.threads = {self.threads} must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; ``auxtune train`` builds it from YAML + overrides."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        for task in self.weighting.lambdas:
            check(
                task in self.tasks.names,
                f"weighting.lambdas.{task} is set but {task!r} is not in tasks.names {list(self.tasks.names)}",
            )
        nesterov = self.optim.nesterov or self.optim.momentum == 0
        check(
            self.weighting.lookahead == "sgd" or nesterov,
            "weighting.lookahead = 'nesterov' models the Nesterov step but optim.nesterov = false; "
            "set optim.nesterov=true or weighting.lookahead=sgd",
        )
