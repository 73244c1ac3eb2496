"""The seven self-supervised tasks: a contract every registered task passes, exactness of each
transform, and a seeded run showing that every auxiliary loss can be learned."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
from torch.overrides import TorchFunctionMode

from auxtune.robust.backbones import WideResNet
from auxtune.robust.config import TasksConfig, task_names
from auxtune.robust.tasks import TASKS, AuxTask, ClassificationTask, create_task
from auxtune.robust.tasks import jigsaw as jigsaw_module
from auxtune.robust.tasks import rgb_permutation as rgb_module
from auxtune.robust.tasks.blur_reconstruction import gaussian_blur, gaussian_kernel1d
from auxtune.robust.tasks.colorization import NUM_BINS, quantize_ab, rgb_to_lab
from auxtune.robust.tasks.inpainting import CENTRE
from auxtune.robust.tasks.rotation import rotate

FEATURES = 16  # WideResNet(10, 1, base_width=4)


def structured_images(num: int, seed: int) -> torch.Tensor:
    """Float (num, 3, 32, 32) landscapes in [0, 1] that give every task something to learn.

    A blue sky over green ground (rotation, jigsaw: top differs from bottom, and a left-to-right
    brightness ramp makes left differ from right), fixed hues (rgb_permutation, colorization),
    a yellow sun up left and a red box down below at random places, and a random overall
    brightness (most of the per-pixel variance, which the regression tasks must explain).
    """
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, 32, dtype=np.float32)[None, :, None, None]
    cols = np.linspace(0, 1, 32, dtype=np.float32)[None, None, :, None]

    def uniform(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, (num, 1, 1, 1)).astype(np.float32)

    sky, ground = np.array([0.35, 0.6, 0.95], np.float32), np.array([0.35, 0.6, 0.1], np.float32)
    image = np.where(rows < uniform(0.45, 0.55), sky, ground) * (0.5 + 0.5 * cols)
    sun = (rows - uniform(0.1, 0.3)) ** 2 + (cols - uniform(0.1, 0.3)) ** 2 < uniform(0.005, 0.02)
    image = np.where(sun, np.array([1.0, 0.95, 0.6], np.float32), image)
    box = (np.abs(rows - uniform(0.7, 0.9)) < 0.08) & (
        np.abs(cols - uniform(0.2, 0.8)) < uniform(0.05, 0.15)
    )
    image = np.where(box, np.array([0.85, 0.15, 0.1], np.float32), image)
    image = image * uniform(0.1, 1.0) + rng.normal(0, 0.02, image.shape).astype(np.float32)
    return torch.from_numpy(np.clip(image, 0, 1)).permute(0, 3, 1, 2).contiguous()


def make_task(name: str, **cfg) -> AuxTask:
    return create_task(name, FEATURES, TasksConfig(names=(name,), decoder_width=8, **cfg))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return structured_images(8, seed=0)


# ---------------------------------------------------------------------------------- registry


def test_registry_holds_exactly_the_configured_tasks():
    assert task_names() == tuple(TASKS)
    for name, cls in TASKS.items():
        assert cls.name == name
        assert isinstance(make_task(name), AuxTask)


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="unknown task 'sudoku'; valid tasks: blur_reconstruction, "
    ):
        create_task("sudoku", FEATURES, TasksConfig())


# ---------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inputs_keep_batch_shape_device_and_dtype(name, dtype, images):
    task = make_task(name)
    x = images.to(dtype)
    inputs, targets = task.make_inputs(x)
    assert inputs.shape == x.shape and inputs.dtype == dtype and inputs.device == x.device
    assert targets.shape[0] == len(x) and targets.device == x.device
    if isinstance(task, ClassificationTask):
        assert targets.shape == (len(x),) and targets.dtype == torch.long
        assert int(targets.min()) >= 0 and int(targets.max()) < task.num_classes
    assert torch.equal(x, images.to(dtype)), "make_inputs must not modify its input in place"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_loss_is_a_finite_scalar_and_reaches_head_and_backbone(name, images):
    torch.manual_seed(0)
    backbone = WideResNet(10, 1, base_width=4)
    task = make_task(name)
    inputs, targets = task.make_inputs(images)
    loss = task.loss(task(backbone(inputs)), targets)
    assert loss.shape == () and torch.isfinite(loss) and loss > 0
    loss.backward()
    for part in (task, backbone):
        grads = [p.grad for p in part.parameters()]
        assert grads and all(g is not None for g in grads), f"{name}: a parameter got no gradient"
        assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_image_is_transformed_independently_of_its_batch(name, images):
    task = make_task(name)
    if isinstance(task, ClassificationTask):
        labels = torch.arange(len(images)) % task.num_classes
        batched = task.transform(images, labels)
        alone = [task.transform(images[i : i + 1], labels[i : i + 1]) for i in range(len(images))]
        assert torch.equal(batched, torch.cat(alone))
    else:
        inputs, targets = task.make_inputs(images)
        pairs = [task.make_inputs(images[i : i + 1]) for i in range(len(images))]
        torch.testing.assert_close(inputs, torch.cat([p[0] for p in pairs]), rtol=0, atol=1e-6)
        assert torch.equal(targets, torch.cat([p[1] for p in pairs]))


class CountTorchCalls(TorchFunctionMode):
    """Counts torch function and tensor method calls made from Python."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_transform_is_batched_without_a_python_loop_over_images(name):
    task = make_task(name)
    counts = []
    for num in (64, 256):  # large enough that every class label occurs in both batches
        torch.manual_seed(0)
        x = torch.rand(num, 3, 32, 32)
        with CountTorchCalls() as counter:
            task.make_inputs(x)
        counts.append(counter.calls)
    assert counts[0] == counts[1], f"{name}: torch calls grow with the batch size: {counts}"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_targets_do_not_depend_on_autocast(name, images):
    # The trainer builds the inputs inside bf16 autocast on CUDA; targets must stay exact there.
    task = make_task(name)
    torch.manual_seed(0)
    _, expected = task.make_inputs(images)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, actual = task.make_inputs(images)
    assert actual.dtype == expected.dtype
    assert torch.equal(actual, expected)


@pytest.mark.parametrize(
    "name", [n for n in sorted(TASKS) if issubclass(TASKS[n], ClassificationTask)]
)
def test_classification_loss_of_uniform_logits_is_log_classes(name):
    task = make_task(name)
    labels = torch.arange(12) % task.num_classes
    loss = task.loss(torch.zeros(12, task.num_classes), labels)
    assert float(loss) == pytest.approx(math.log(task.num_classes))


# ---------------------------------------------------------------------------------- rotation


def test_rotation_is_counter_clockwise():
    grid = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    assert rotate(grid, 1).flatten().tolist() == [2.0, 4.0, 1.0, 3.0]  # top-right -> top-left


def test_rotation_labels_invert_exactly(images):
    task = make_task("rotation")
    assert task.num_classes == 4
    torch.manual_seed(1)
    x = torch.rand(64, 3, 32, 32)
    rotated, labels = task.make_inputs(x)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    for i, k in enumerate(labels.tolist()):
        assert torch.equal(rotate(rotated[i : i + 1], -k), x[i : i + 1])
        assert torch.equal(rotated[i], torch.rot90(x[i], k, dims=(1, 2)))


# ---------------------------------------------------------------------------------- jigsaw


def test_tiles_are_row_major_quadrants_and_round_trip():
    x = torch.rand(2, 3, 32, 32)
    tiles = jigsaw_module.to_tiles(x)
    assert tiles.shape == (2, 4, 3, 16, 16)
    quadrants = [x[..., :16, :16], x[..., :16, 16:], x[..., 16:, :16], x[..., 16:, 16:]]
    for t, quadrant in enumerate(quadrants):
        assert torch.equal(tiles[:, t], quadrant)
    assert torch.equal(jigsaw_module.from_tiles(tiles), x)


def test_jigsaw_labels_invert_exactly():
    task = make_task("jigsaw")
    perms = jigsaw_module.PERMUTATIONS
    assert task.num_classes == 24 and len(set(perms)) == 24 and perms[0] == (0, 1, 2, 3)
    torch.manual_seed(2)
    x = torch.rand(256, 3, 32, 32)
    shuffled, labels = task.make_inputs(x)
    assert len(set(labels.tolist())) == 24
    out_tiles = jigsaw_module.to_tiles(shuffled)
    for i, k in enumerate(labels.tolist()):
        restored = torch.empty_like(out_tiles[i])
        for t, source in enumerate(perms[k]):  # output tile t is input tile perms[k][t]
            restored[source] = out_tiles[i, t]
        assert torch.equal(jigsaw_module.from_tiles(restored[None]), x[i : i + 1])
        changed = not torch.equal(shuffled[i], x[i])
        assert changed == (k != 0)


# ---------------------------------------------------------------------------------- rgb permutation


def test_rgb_permutation_labels_invert_exactly():
    task = make_task("rgb_permutation")
    perms = rgb_module.PERMUTATIONS
    assert task.num_classes == 6 and len(set(perms)) == 6 and perms[0] == (0, 1, 2)
    torch.manual_seed(3)
    x = torch.rand(64, 3, 32, 32)
    permuted, labels = task.make_inputs(x)
    assert set(labels.tolist()) == set(range(6))
    for i, k in enumerate(labels.tolist()):
        restored = torch.empty_like(x[i])
        restored[list(perms[k])] = permuted[i]  # output channel c is input channel perms[k][c]
        assert torch.equal(restored, x[i])


# ---------------------------------------------------------------------------------- colorization

# Independent reference: sRGB -> XYZ derived from the sRGB primaries and the D65 white point
# (IEC 61966-2-1 chromaticities), then CIE 1976 L*a*b* with the exact CIE constants.
_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
_D65 = (0.3127, 0.3290)


def _xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def reference_lab(rgb: tuple[float, float, float]) -> np.ndarray:
    columns = np.stack([_xyz(*p) for p in _PRIMARIES], axis=1)
    white = _xyz(*_D65)
    matrix = columns * np.linalg.solve(columns, white)  # scale primaries so RGB = 1 is white
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    t = matrix @ np.array(linear) / white
    epsilon, kappa = 216 / 24389, 24389 / 27
    f = np.where(t > epsilon, np.cbrt(t), (kappa * t + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


# Published sRGB (D65) -> CIELAB values (e.g. Lindbloom's and EasyRGB's calculators).
KNOWN_LAB = {
    (1.0, 0.0, 0.0): (53.24, 80.09, 67.20),
    (0.0, 1.0, 0.0): (87.73, -86.18, 83.18),
    (0.0, 0.0, 1.0): (32.30, 79.19, -107.86),
    (1.0, 1.0, 0.0): (97.14, -21.55, 94.48),
    (0.0, 1.0, 1.0): (91.11, -48.09, -14.13),
    (1.0, 0.0, 1.0): (60.32, 98.23, -60.82),
    (1.0, 1.0, 1.0): (100.0, 0.0, 0.0),
    (0.0, 0.0, 0.0): (0.0, 0.0, 0.0),
    (128 / 255, 128 / 255, 128 / 255): (53.59, 0.0, 0.0),
}


@pytest.mark.parametrize(("rgb", "lab"), list(KNOWN_LAB.items()))
def test_lab_matches_published_reference_colours(rgb, lab):
    np.testing.assert_allclose(reference_lab(rgb), lab, atol=0.5)  # the test's own formula
    image = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)
    np.testing.assert_allclose(rgb_to_lab(image).flatten().numpy(), lab, atol=0.5)


def test_lab_matches_the_reference_formula_on_random_colours():
    colours = torch.rand(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = rgb_to_lab(colours.view(200, 3, 1, 1)).view(200, 3).numpy()
    theirs = np.stack([reference_lab(tuple(c)) for c in colours.tolist()])
    np.testing.assert_allclose(ours, theirs, atol=0.1)


def test_colorization_sees_grey_and_predicts_32_bins_per_channel(images):
    task = make_task("colorization")
    grey, targets = task.make_inputs(images)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 0], grey[:, 2])
    torch.testing.assert_close(grey[:, 0], rgb_to_lab(images)[:, 0] / 100)
    assert targets.shape == (len(images), 2, 32, 32) and targets.dtype == torch.long
    assert NUM_BINS == 32 and int(targets.min()) >= 0 and int(targets.max()) < 32
    logits = task(torch.randn(len(images), FEATURES))
    assert logits.shape == (len(images), 2 * 32, 32, 32)
    assert float(task.loss(torch.zeros_like(logits), targets)) == pytest.approx(math.log(32))


def test_ab_bins_are_8_units_wide_and_clamped():
    ab = torch.tensor([-200.0, -128.0, -120.01, -120.0, -0.01, 0.0, 7.99, 8.0, 127.99, 200.0])
    assert quantize_ab(ab).tolist() == [0, 0, 0, 1, 15, 16, 16, 17, 31, 31]


# ---------------------------------------------------------------------------------- blur


def test_blur_really_changes_the_image(images):
    task = make_task("blur_reconstruction", blur_sigma=1.0)
    blurred, target = task.make_inputs(images)
    assert torch.equal(target, images)  # the target is the clean image
    assert float((blurred - images).abs().mean()) > 0.01  # ~2.5/255 per pixel on average
    seed_paper = gaussian_blur(images, 7 / 255)  # the original's sigma, in pixels: a no-op
    assert float((seed_paper - images).abs().mean()) < 1e-6


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_blur_matches_scipy_gaussian_filter(sigma):
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    expected = scipy.ndimage.gaussian_filter(
        x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", truncate=3.0
    )
    np.testing.assert_allclose(gaussian_blur(x, sigma).numpy(), expected, atol=1e-12)


def test_blur_kernel_is_normalised_and_keeps_constant_images():
    kernel = gaussian_kernel1d(1.0, torch.device("cpu"), torch.float64)
    assert kernel.numel() == 7 and float(kernel.sum()) == pytest.approx(1.0)
    flat = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.5), flat)


# ---------------------------------------------------------------------------------- inpainting / reconstruction


def test_inpainting_blanks_exactly_the_centre_8x8(images):
    task = make_task("inpainting")
    blanked, target = task.make_inputs(images)
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    centre = (rows >= 12) & (rows < 20) & (cols >= 12) & (cols < 20)  # (32 - 8) / 2 = 12
    assert slice(12, 20) == CENTRE
    assert torch.all(blanked[:, :, centre] == 0)
    assert torch.equal(blanked[:, :, ~centre], images[:, :, ~centre])
    assert torch.equal(target, images[:, :, 12:20, 12:20])
    prediction = task(torch.randn(len(images), FEATURES)).detach()
    assert prediction.shape == (len(images), 3, 8, 8)
    assert float(prediction.min()) >= 0 and float(prediction.max()) <= 1


def test_reconstruction_predicts_the_image_itself(images):
    task = make_task("reconstruction")
    inputs, target = task.make_inputs(images)
    assert torch.equal(inputs, images) and torch.equal(target, images)
    prediction = task(torch.randn(len(images), FEATURES)).detach()
    assert prediction.shape == images.shape
    assert float(prediction.min()) >= 0 and float(prediction.max()) <= 1


# ---------------------------------------------------------------------------------- the paper's variants

DECODER_TASKS = ("reconstruction", "blur_reconstruction", "inpainting", "colorization")


def test_rotation_all_four_trains_every_quarter_turn_of_every_image(images):
    task = make_task("rotation", rotation_all_four=True)
    views, labels = task.make_inputs(images)
    n = len(images)
    assert views.shape == (4 * n, *images.shape[1:])
    assert labels.tolist() == [k for k in range(4) for _ in range(n)]
    for k in range(4):
        assert torch.equal(views[k * n : (k + 1) * n], torch.rot90(images, k, dims=(2, 3)))


def test_loss_scales_multiply_exactly_their_task_in_the_trainers_losses(images):
    from auxtune.robust.config import ModelConfig
    from auxtune.robust.model import MultiHeadNet
    from auxtune.robust.training import compute_losses

    tasks = ("rotation", "reconstruction")
    losses = []
    for scales in ({}, {"reconstruction": 30.0}):
        torch.manual_seed(0)
        cfg = TasksConfig(names=tasks, decoder_width=8, loss_scales=scales)
        model = MultiHeadNet(ModelConfig(depth=10, widen_factor=1, base_width=4), cfg, 10)
        torch.manual_seed(1)
        losses.append(compute_losses(model, images, torch.zeros(len(images), dtype=torch.long)))
    plain, scaled = losses
    assert torch.equal(scaled["rotation"], plain["rotation"])
    torch.testing.assert_close(scaled["reconstruction"], 30 * plain["reconstruction"])


def test_loss_scales_refuse_unknown_tasks_and_non_positive_factors():
    from auxtune.config import ConfigError

    with pytest.raises(ConfigError, match="unknown task 'rotaton'"):
        TasksConfig(loss_scales={"rotaton": 2.0})
    with pytest.raises(ConfigError, match=r"tasks\.loss_scales\.inpainting = 0"):
        TasksConfig(loss_scales={"inpainting": 0})


@pytest.mark.parametrize("name", DECODER_TASKS)
def test_paper_decoders_learn_and_differ_from_auxtunes(name, images):
    torch.manual_seed(0)
    backbone = WideResNet(10, 1, base_width=4)
    paper, ours = make_task(name, decoders="paper"), make_task(name)
    inputs, targets = paper.make_inputs(images)
    prediction = paper(backbone(inputs))
    assert prediction.shape == ours(backbone(ours.make_inputs(images)[0])).shape
    loss = paper.loss(prediction, targets)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in paper.parameters())
    has_stem = any(isinstance(m, torch.nn.Linear) for m in paper.modules())
    assert has_stem == (name != "colorization")  # the paper's colour head has no Linear stem
    last = [m for m in paper.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    assert last.bias is None


def test_paper_inpainting_fills_the_hole_white_and_is_two_layers_deep(images):
    task = make_task("inpainting", decoders="paper")
    blanked, _ = task.make_inputs(images)
    assert torch.all(blanked[:, :, CENTRE, CENTRE] == 0.9999)
    convs = [
        m for m in task.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    assert len(convs) == 2  # 1x1 -> 4x4 -> 8x8, no extra layer, no 3x3 conv


# ---------------------------------------------------------------------------------- learning


def chance_loss(task: AuxTask, images: torch.Tensor) -> float:
    """The loss of the best prediction that ignores the image."""
    _, targets = task.make_inputs(images)
    if isinstance(task, ClassificationTask):
        return math.log(task.num_classes)  # labels are uniform
    if not targets.dtype.is_floating_point:  # colorization: the marginal a/b bin distribution
        entropies = []
        for channel in targets.unbind(1):
            p = torch.bincount(channel.flatten(), minlength=NUM_BINS).double()
            p = p[p > 0] / p.sum()
            entropies.append(float(-(p * p.log()).sum()))
        return sum(entropies) / len(entropies)
    return float(((targets - targets.mean(0)) ** 2).mean())  # MSE of the per-pixel mean


@pytest.mark.slow
def test_every_auxiliary_loss_falls_well_below_chance():
    """100 Adam steps of a tiny WRN per task (~45 CPU-seconds in all): held-out loss < 0.6 x chance.

    The regression tasks beat the per-pixel mean mainly by learning each image's brightness; the
    others reach lower (measured, as fractions of chance: rotation 0.001, rgb_permutation 0.03,
    inpainting 0.26, jigsaw 0.29, blur_reconstruction 0.36, reconstruction 0.37, colorization 0.47).
    """
    train, held_out = structured_images(2048, seed=0), structured_images(256, seed=1)
    ratios = {}
    for name in TASKS:
        torch.manual_seed(0)
        backbone = WideResNet(10, 1, base_width=8)
        task = create_task(
            name, backbone.num_features, TasksConfig(names=(name,), decoder_width=32)
        )
        optimizer = torch.optim.Adam([*backbone.parameters(), *task.parameters()], lr=0.01)
        for _ in range(100):
            inputs, targets = task.make_inputs(train[torch.randint(len(train), (32,))])
            loss = task.loss(task(backbone(inputs)), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            inputs, targets = task.make_inputs(held_out)
            final = float(task.loss(task(backbone(inputs)), targets))
        ratios[name] = final / chance_loss(task, held_out)
    assert all(ratio < 0.6 for ratio in ratios.values()), ratios
