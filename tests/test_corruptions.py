"""The 19 CIFAR-10-C corruptions: contract over the registry, formulas against independent
numpy/scipy/PIL references, and statistics of the random ones.

Tolerances are in grey levels of 255. The references compute in float64, the corruptions in
float32, and both truncate to uint8, so a value right at a grey-level boundary can land one level
apart: formula checks allow a mean difference of 0.05 levels and a maximum of 1 level (a model
cannot tell).
"""

from __future__ import annotations

import colorsys
import doctest
import io
import itertools
import math

import numpy as np
import pytest
import torch
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage

import auxtune.data.corruptions as corruptions
from auxtune.data.corruptions import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    STANDARD_CORRUPTIONS,
    _edges,
    _samples,
    corrupt,
    corruption_parameters,
    is_stochastic,
    natural_images,
    reference_change,
    sample_images,
)
from auxtune.data.corruptions._blur import pixel_walk
from auxtune.data.corruptions._edges import canny, chamfer_distance, equalize_histogram
from auxtune.data.corruptions._ops import LUMA
from auxtune.data.corruptions._weather import (
    FROST_PHOTOGRAPHS,
    FROST_SHEET_SIZE,
    MUD_COLOUR,
    WATER_COLOUR,
    frost_sheets,
    water_highlight,
)
from auxtune.data.corruptions.reference_change import (
    MEAN_ABS_CHANGE,
    NATURAL_IMAGES,
    ORIGINAL_ON_PHOTOGRAPHS,
)

IMAGES = sample_images(8, seed=0)  # read-only
DETERMINISTIC = {
    "brightness", "contrast", "saturate", "pixelate", "jpeg_compression",
    "defocus_blur", "gaussian_blur", "zoom_blur",
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def grey_images(n: int = 16, level: int = 128) -> np.ndarray:
    return np.full((n, 32, 32, 3), level, np.uint8)


def truncate(x: np.ndarray) -> np.ndarray:
    """The original's output conversion (clip to [0, 1], scale, floor) with the corruptions'
    guard of 1e-3 grey level: round-off can land a value that is exactly a whole level (5% of
    them for saturate 3, 20% for defocus 4) a hair below it, and floor it one level down."""
    return np.floor(np.clip(x, 0, 1) * 255 + 1e-3).astype(np.uint8)


def assert_close(actual: np.ndarray, expected: np.ndarray, mean: float = 0.05, peak: int = 1):
    diff = np.abs(actual.astype(int) - expected.astype(int))
    assert diff.mean() <= mean and diff.max() <= peak, (diff.mean(), diff.max())


# ---------------------------------------------------------------- names and validation


def test_names_follow_the_cifar_c_table():
    assert len(STANDARD_CORRUPTIONS) == 15 and len(EXTRA_CORRUPTIONS) == 4
    assert STANDARD_CORRUPTIONS[:3] == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert STANDARD_CORRUPTIONS[-1] == "jpeg_compression"
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert CORRUPTIONS == STANDARD_CORRUPTIONS + EXTRA_CORRUPTIONS
    assert SEVERITIES == (1, 2, 3, 4, 5)
    assert {name for name in CORRUPTIONS if not is_stochastic(name)} == DETERMINISTIC


def test_parameters_are_the_table_rows():
    assert corruption_parameters("glass_blur", 4) == (0.25, 1, 2)
    assert corruption_parameters("glass_blur", 4).iterations == 2
    assert corruption_parameters("gaussian_noise", 1) == (0.04,)
    assert corruption_parameters("elastic_transform", 2) == pytest.approx((1.6, 6.4, 2.24))
    assert corruption_parameters("spatter", 5).mud


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("blur", 1), "valid: gaussian_noise"),
        (("fog", 0), "severity must be one of (1, 2, 3, 4, 5)"),
        (("fog", 6), "severity must be one of"),
        (("fog", True), "severity must be one of"),
        (("fog", "3"), "severity must be one of"),
    ],
)
def test_bad_name_or_severity_lists_valid_values(args, message):
    with pytest.raises(ValueError) as error:
        corrupt(IMAGES, *args)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_seed_is_refused():
    with pytest.raises(ValueError, match=r"seed must be an integer, got 1\.5"):
        corrupt(IMAGES, "fog", 1, seed=1.5)
    assert corrupt(IMAGES, "fog", 1, seed=np.int64(3)).shape == IMAGES.shape


@pytest.mark.parametrize(
    "images",
    [
        IMAGES.astype(np.float32),
        IMAGES[0],
        IMAGES.transpose(0, 3, 1, 2),
        np.zeros((2, 28, 28, 3), np.uint8),
        IMAGES.tolist(),
    ],
)
def test_bad_images_are_refused(images):
    with pytest.raises(ValueError, match="images must be"):
        corrupt(images, "fog", 1)


# ---------------------------------------------------------------- contract over the registry


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_numpy_and_tensor_in_give_the_same_type_out(name):
    before = IMAGES.copy()
    out = corrupt(IMAGES, name, 3, seed=7)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == IMAGES.shape
    np.testing.assert_array_equal(IMAGES, before)  # the input is left alone
    tensor_out = corrupt(torch.from_numpy(IMAGES), name, 3, seed=7)
    assert isinstance(tensor_out, torch.Tensor) and tensor_out.dtype == torch.uint8
    np.testing.assert_array_equal(tensor_out.numpy(), out)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_seed_repeats_and_another_seed_differs(name):
    first = corrupt(IMAGES, name, 5, seed=3)
    np.testing.assert_array_equal(corrupt(IMAGES, name, 5, seed=3), first)
    torch.manual_seed(123)  # global RNG state must not matter
    np.testing.assert_array_equal(corrupt(IMAGES, name, 5, seed=3), first)
    other = corrupt(IMAGES, name, 5, seed=4)
    assert (other != first).any() == is_stochastic(name)


@pytest.mark.parametrize("name", ["zoom_blur", "gaussian_noise"])
def test_chunking_keeps_shapes_and_deterministic_results(name, monkeypatch):
    whole = corrupt(IMAGES, name, 2)
    monkeypatch.setattr(corruptions, "CHUNK", 3)
    chunked = corrupt(IMAGES, name, 2)
    assert chunked.shape == IMAGES.shape
    if not is_stochastic(name):
        np.testing.assert_array_equal(chunked, whole)


def test_empty_batch():
    assert corrupt(IMAGES[:0], "snow", 1).shape == (0, 32, 32, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_cuda_tensor_stays_on_the_device(name):
    images = torch.from_numpy(IMAGES).cuda()
    out = corrupt(images, name, 4)
    assert out.device == images.device and out.dtype == torch.uint8 and out.shape == images.shape
    if not is_stochastic(name):
        assert_close(out.cpu().numpy(), corrupt(IMAGES, name, 4))


def test_docstring_examples_run():
    for module in (corruptions, _samples, _edges, reference_change):
        assert doctest.testmod(module).failed == 0


# ---------------------------------------------------------------- severity grows the change


def mean_abs_change(name: str, images: np.ndarray = IMAGES) -> list[float]:
    clean = images.astype(float)
    return [np.abs(corrupt(images, name, s, seed=1) - clean).mean() for s in SEVERITIES]


def mean_saturation(images: np.ndarray) -> float:
    x = images.astype(float)
    high, low = x.max(-1), x.min(-1)
    return float(np.where(high > 0, (high - low) / np.maximum(high, 1), 0).mean())


def decorrelation(name: str, images: np.ndarray) -> list[float]:
    """1 - correlation with the clean image, averaged over images."""
    clean = images.reshape(len(images), -1).astype(float)
    values = []
    for severity in SEVERITIES:
        out = corrupt(images, name, severity, seed=1).reshape(len(images), -1).astype(float)
        values.append(1 - np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(out, clean)]))
    return values


# The reference itself is not monotone in the mean absolute change for these:
#   glass_blur: the change comes mostly from the walk's passes (one at severities 1-3, two at
#     4-5); within a pass a larger sigma smooths the displaced pixels about as much as it blurs,
#     so the change is nearly flat there.
#   frost: the image weight falls while the frost weight rises, and the two partly cancel;
#     the frost share w_frost/w_image still grows (.2 .3 .44 .47 .6): 1 - correlation grows,
#     with 3 and 4 nearly equal.
#   motion_blur: severities 3 and 4 differ only in kernel taps beyond radius 6 whose weight
#     is exp(-36/8) < 1.2%: nearly equal.
#   spatter: water drops (1-3) and mud (4-5) are separate families, each growing.
#   saturate: 1-2 remove saturation, 3-5 add it.
#   elastic_transform: see test_elastic_transform_trades_affine_for_local_warp.
SPECIAL_MONOTONICITY = {"glass_blur", "frost", "motion_blur", "spatter", "saturate"}


@pytest.mark.parametrize(
    "name",
    sorted(set(CORRUPTIONS) - SPECIAL_MONOTONICITY - {"elastic_transform"}),
)
def test_change_grows_with_severity(name):
    change = mean_abs_change(name)
    assert all(a < b for a, b in itertools.pairwise(change)), change


def test_glass_blur_second_pass_adds_change():
    change = mean_abs_change("glass_blur")
    assert min(change[3:]) > max(change[:3]), change


def test_frost_share_grows_with_severity():
    values = decorrelation("frost", sample_images(32, seed=2))
    assert values[0] < values[1] < min(values[2:4]) and max(values[2:4]) < values[4], values
    assert values[3] > 0.8 * values[2]


def test_motion_blur_grows_but_three_and_four_are_nearly_equal():
    change = mean_abs_change("motion_blur", sample_images(32, seed=2))
    assert change[0] < change[1] < min(change[2:4]) and max(change[2:4]) < change[4], change
    assert abs(change[3] - change[2]) < 0.1 * change[2]


def test_spatter_grows_within_water_and_within_mud():
    change = mean_abs_change("spatter")
    assert change[0] < change[1] < change[2] and change[3] < change[4], change


def test_saturate_lowers_then_raises_saturation():
    s = [mean_saturation(corrupt(IMAGES, "saturate", severity)) for severity in SEVERITIES]
    assert s[1] < s[0] < mean_saturation(IMAGES) < s[2] < s[3] < s[4], s


# ---------------------------------------------------------------- deterministic formulas


def hsv_reference(images: np.ndarray, edit) -> np.ndarray:
    """Per-pixel colorsys round trip; edit(h, s, v) -> (h, s, v)."""
    flat = images.reshape(-1, 3) / 255.0
    out = np.array([colorsys.hsv_to_rgb(*edit(*colorsys.rgb_to_hsv(*rgb))) for rgb in flat])
    return truncate(out).reshape(images.shape)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_brightness_adds_to_hsv_value(severity):
    (shift,) = corruption_parameters("brightness", severity)
    images = np.concatenate([IMAGES[:2], grey_images(1, 0), grey_images(1, 200)])
    expected = hsv_reference(images, lambda h, s, v: (h, s, min(v + shift, 1.0)))
    assert_close(corrupt(images, "brightness", severity), expected)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_saturate_scales_hsv_saturation(severity):
    mult, add = corruption_parameters("saturate", severity)
    images = np.concatenate([IMAGES[:2], grey_images(1, 90)])  # grey turns red when add > 0
    expected = hsv_reference(images, lambda h, s, v: (h, min(max(s * mult + add, 0), 1), v))
    assert_close(corrupt(images, "saturate", severity), expected)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_contrast_pulls_towards_the_channel_means(severity):
    (factor,) = corruption_parameters("contrast", severity)
    x = IMAGES / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    assert_close(corrupt(IMAGES, "contrast", severity), truncate((x - means) * factor + means))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_matches_pil_box_resizes(severity):
    small = int(32 * corruption_parameters("pixelate", severity).scale)
    expected = [
        np.asarray(
            Image.fromarray(image).resize((small, small), Image.BOX).resize((32, 32), Image.BOX)
        )
        for image in IMAGES
    ]
    assert_close(corrupt(IMAGES, "pixelate", severity), np.stack(expected), mean=0.01)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_jpeg_matches_pil(severity):
    (quality,) = corruption_parameters("jpeg_compression", severity)
    expected = []
    for image in IMAGES:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        expected.append(np.asarray(Image.open(buffer)))
    assert_close(corrupt(IMAGES, "jpeg_compression", severity), np.stack(expected), mean=0.01)


def per_channel(images: np.ndarray, filter_fn) -> np.ndarray:
    x = images / 255.0
    return np.stack([[filter_fn(image[..., c]) for c in range(3)] for image in x]).transpose(
        0, 2, 3, 1
    )


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_blur_matches_scipy(severity):
    (sigma,) = corruption_parameters("gaussian_blur", severity)
    expected = per_channel(IMAGES, lambda c: ndimage.gaussian_filter(c, sigma, mode="nearest"))
    assert_close(corrupt(IMAGES, "gaussian_blur", severity), truncate(expected))


def disk_kernel_reference(radius: float, alias_blur: float) -> np.ndarray:
    """The original's 17x17 aliased disk, anti-aliased by a 3x3 Gaussian (cv2.GaussianBlur)."""
    grid = np.arange(-8, 9)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).astype(float)
    disk /= disk.sum()
    return ndimage.gaussian_filter(disk, alias_blur, truncate=1 / alias_blur, mode="constant")


@pytest.mark.parametrize("severity", SEVERITIES)
def test_defocus_blur_matches_a_scipy_disk_correlation(severity):
    kernel = disk_kernel_reference(*corruption_parameters("defocus_blur", severity))
    expected = per_channel(IMAGES, lambda c: ndimage.correlate(c, kernel, mode="mirror"))
    assert_close(corrupt(IMAGES, "defocus_blur", severity), truncate(expected))


def clipped_zoom_reference(image: np.ndarray, zoom: float) -> np.ndarray:
    size = image.shape[0]
    crop = math.ceil(size / zoom)
    top = (size - crop) // 2
    zoomed = ndimage.zoom(image[top : top + crop, top : top + crop], (zoom, zoom, 1), order=1)
    trim = (zoomed.shape[0] - size) // 2
    return zoomed[trim : trim + size, trim : trim + size]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_zoom_blur_matches_scipy_zooms(severity):
    zooms = np.arange(1, corruption_parameters("zoom_blur", severity).max_zoom, 0.01)
    expected = []
    for image in IMAGES[:4] / 255.0:
        total = image + sum(clipped_zoom_reference(image, zoom) for zoom in zooms)
        expected.append(total / (len(zooms) + 1))
    assert_close(corrupt(IMAGES[:4], "zoom_blur", severity), truncate(np.stack(expected)))


# ---------------------------------------------------------------- noise statistics

NOISE_IMAGES = grey_images(64)  # 196,608 values at level 128


def noise(name: str, severity: int) -> np.ndarray:
    """out - in for mid-grey images, plus 0.5: undoes the mean bias of truncation."""
    return corrupt(NOISE_IMAGES, name, severity).astype(float) - NOISE_IMAGES + 0.5


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_noise_std(severity):
    (sigma,) = corruption_parameters("gaussian_noise", severity)
    expected = math.sqrt((sigma * 255) ** 2 + 1 / 12)  # plus truncation's uniform noise
    assert noise("gaussian_noise", severity).std() == pytest.approx(expected, rel=0.03)
    assert abs(noise("gaussian_noise", severity).mean()) < 0.2


@pytest.mark.parametrize("severity", SEVERITIES)
def test_shot_noise_variance(severity):
    (photons,) = corruption_parameters("shot_noise", severity)
    x = 128 / 255
    expected = x / photons * 255**2 + 1 / 12  # Poisson(x c) / c has variance x / c
    assert noise("shot_noise", severity).var() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_impulse_noise_fraction(severity):
    (amount,) = corruption_parameters("impulse_noise", severity)
    out = corrupt(NOISE_IMAGES, "impulse_noise", severity)
    changed = out != 128
    assert set(np.unique(out[changed])) <= {0, 255}
    standard_error = math.sqrt(amount * (1 - amount) / out.size)
    assert abs(changed.mean() - amount) < 4 * standard_error
    assert abs((out[changed] == 255).mean() - 0.5) < 0.05  # half salt, half pepper


@pytest.mark.parametrize("severity", SEVERITIES)
def test_speckle_noise_std_scales_with_intensity(severity):
    (c,) = corruption_parameters("speckle_noise", severity)
    for level in (64, 128):
        images = grey_images(64, level)
        diff = corrupt(images, "speckle_noise", severity).astype(float) - images + 0.5
        expected = math.sqrt((c * level) ** 2 + 1 / 12)
        assert diff.std() == pytest.approx(expected, rel=0.03)


# ---------------------------------------------------------------- sanity of the others


def original_pixel_walk(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """The original's loop and statement, verbatim in effect, on (N, H, W, C) numpy images."""
    x = x.copy()
    for i, image in enumerate(x):
        for h in range(31, 1, -1):
            for w in range(31, 1, -1):
                h2, w2 = h + dy[i, h - 2, w - 2], w + dx[i, h - 2, w - 2]
                image[h, w], image[h2, w2] = image[h2, w2], image[h, w]  # views: a copy
    return x


def test_glass_blur_walk_does_what_the_original_statement_does():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    dy, dx = rng.integers(-1, 1, (2, 3, 30, 30))
    out = pixel_walk(
        torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(dy), torch.from_numpy(dx)
    )
    np.testing.assert_array_equal(out.permute(0, 2, 3, 1).numpy(), original_pixel_walk(x, dy, dx))


def test_glass_blur_without_blur_copies_up_left_neighbours():
    out = corrupt(IMAGES, "glass_blur", 1)  # sigma 0.05: the Gaussian is a single tap
    padded = np.pad(IMAGES, ((0, 0), (1, 0), (1, 0), (0, 0)), mode="edge")
    neighbours = [padded[:, 1 - dy : 33 - dy, 1 - dx : 33 - dx] for dy in (0, 1) for dx in (0, 1)]
    assert np.any([(out == n).all(-1) for n in neighbours], axis=0).all()
    assert (out != IMAGES).any()


@pytest.mark.parametrize("severity", SEVERITIES)
def test_glass_blur_keeps_the_mean(severity):
    change = corrupt(IMAGES, "glass_blur", severity).astype(float) - IMAGES
    assert -1.5 < change.mean() < 0.5  # truncated twice: about -1 level at most


def stripes(vertical: bool) -> np.ndarray:
    """16 images of 2-pixel stripes, 20 and 220."""
    pattern = (np.arange(32) // 2 % 2 * 200 + 20).astype(np.uint8)
    image = pattern[None, :] if vertical else pattern[:, None]
    return np.broadcast_to(image[None, ..., None], (16, 32, 32, 3)).copy()


@pytest.mark.parametrize("severity", SEVERITIES)
def test_motion_blur_streaks_within_45_degrees_of_horizontal(severity):
    across = np.abs(corrupt(stripes(True), "motion_blur", severity) - stripes(True).astype(float))
    along = np.abs(corrupt(stripes(False), "motion_blur", severity) - stripes(False).astype(float))
    assert across.mean() > along.mean() > 0
    assert abs(corrupt(IMAGES, "motion_blur", severity).mean() - IMAGES.mean()) < 2


@pytest.mark.parametrize("severity", SEVERITIES)
def test_snow_brightens_with_near_vertical_streaks(severity):
    out = corrupt(grey_images(8, 60), "snow", severity).astype(float)
    assert out.mean() > 60 and out.min() >= 59  # snow only brightens
    flakes = out[..., 0] - np.median(out[..., 0])
    vertical = np.abs(np.diff(flakes, axis=1)).mean()  # changes down a column
    horizontal = np.abs(np.diff(flakes, axis=2)).mean()  # changes along a row
    assert vertical < horizontal


@pytest.mark.parametrize("severity", SEVERITIES)
def test_frost_adds_a_blue_white_texture(severity):
    image_weight, frost_weight = corruption_parameters("frost", severity)
    black = corrupt(grey_images(16, 0), "frost", severity).astype(float)
    texture = black / (frost_weight * 255)
    assert 0.5 < texture.mean() < 0.75 and texture.std() > 0.1  # photographs: 0.62, 0.17
    assert texture[..., 2].mean() > texture[..., 0].mean()  # bluish
    out = corrupt(IMAGES, "frost", severity).astype(float)
    assert (out >= np.floor(image_weight * IMAGES.astype(float)) - 1).all()  # frost only adds


@pytest.mark.parametrize("severity", SEVERITIES)
def test_fog_lowers_contrast_below_the_brightest_point(severity):
    out = corrupt(IMAGES, "fog", severity)
    peak = IMAGES.reshape(8, -1).max(1)
    assert (out.reshape(8, -1).max(1) <= peak).all()
    assert out.reshape(8, -1).std(1).mean() < IMAGES.reshape(8, -1).std(1).mean()


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_water_spatter_only_adds_turquoise(severity):
    out = corrupt(IMAGES, "spatter", severity).astype(int)
    added = out - IMAGES
    assert (added >= -1).all() and added.max() > 10
    assert added[..., 0].sum() < added[..., 1].sum()  # pale turquoise: more green than red


@pytest.mark.parametrize("severity", [4, 5])
def test_mud_spatter_covers_drops_in_brown(severity):
    out = corrupt(IMAGES, "spatter", severity).astype(float)
    brown = np.array([63, 42, 20])
    changed = (out != IMAGES).any(-1)
    assert 0 < changed.mean() < 0.5
    before = np.abs(IMAGES[changed] - brown)
    after = np.abs(out[changed] - brown)
    assert (after <= 0.2 * before + 1.5).all()  # cover >= 0.8 where the mud lies


def coordinate_images() -> np.ndarray:
    """Red encodes the column and green the row (8 levels per pixel): a warp's source map."""
    rows, cols = np.mgrid[0:32, 0:32]
    image = np.stack([cols * 8, rows * 8, np.zeros_like(rows)], -1).astype(np.uint8)
    return np.repeat(image[None], 16, 0)


def warp_fit(severity: int) -> tuple[float, float]:
    """Fit an affine to the source coordinates inside the border; returns (mean displacement of
    the affine, RMS of what the affine cannot explain), in pixels."""
    out = corrupt(coordinate_images(), "elastic_transform", severity, seed=5).astype(float)
    inner = (slice(None), slice(8, 24), slice(8, 24))
    source = (out[inner][..., :2] + 0.5) / 8  # (x, y) of the source of each output pixel
    rows, cols = np.mgrid[8:24, 8:24]
    design = np.stack([cols.ravel(), rows.ravel(), np.ones(256)], 1)
    affine, residual = [], []
    for image in source.reshape(16, 256, 2):
        coeffs = np.linalg.lstsq(design, image, rcond=None)[0]
        fitted = design @ coeffs
        affine.append(np.abs(fitted - design[:, :2]).mean())
        residual.append(np.sqrt(((image - fitted) ** 2).mean()))
    return float(np.mean(affine)), float(np.mean(residual))


def test_elastic_transform_trades_affine_for_local_warp():
    # The reference shrinks the random affine (8% -> 3% of the side) while the local
    # displacement grows, so the change to the clean image falls with severity. Severity 1 is
    # a pure affine (only the coordinates' quantisation, 1/8 px, is left); severity 2's field
    # is so smooth (sigma 6.4 px) that it is ~0.04 px RMS, about as small.
    fits = [warp_fit(severity) for severity in SEVERITIES]
    affine, local = zip(*fits)
    assert all(a > b for a, b in itertools.pairwise(affine)), fits
    assert local[0] < 0.06 and local[1] < 0.06, fits
    assert 0.1 < local[2] < local[3] < local[4] < 1, fits
    assert 0.3 < affine[0] < 2.56, fits


# ---------------------------------------------------------------- change on natural images
#
# reference_change.MEAN_ABS_CHANGE pins how much each corruption changes natural images. Its
# figures come from the oracles below: the original script's formulas, written again with numpy,
# scipy, PIL and matplotlib (and, for frost, the statistics of its photographs) and applied to
# natural_images. corrupt() must stay within 20 % of every figure.

NATURAL = natural_images(NATURAL_IMAGES, seed=0)  # read-only


def oracle_noise(name: str):
    def gaussian(x, p, rng):
        return x + rng.normal(scale=p.sigma, size=x.shape)

    def shot(x, p, rng):
        return rng.poisson(x * p.photons) / p.photons

    def impulse(x, p, rng):  # skimage.util.random_noise(mode="s&p")
        flipped = rng.random(x.shape) < p.amount
        salted = rng.random(x.shape) < 0.5
        return np.where(flipped, salted.astype(float), x)

    def speckle(x, p, rng):
        return x + x * rng.normal(scale=p.c, size=x.shape)

    return {"gaussian_noise": gaussian, "shot_noise": shot, "impulse_noise": impulse,
            "speckle_noise": speckle}[name]  # fmt: skip


def oracle_hsv(x, p, rng):
    hsv = rgb_to_hsv(x)
    if hasattr(p, "shift"):  # brightness
        hsv[..., 2] = np.clip(hsv[..., 2] + p.shift, 0, 1)
    else:  # saturate
        hsv[..., 1] = np.clip(hsv[..., 1] * p.mult + p.add, 0, 1)
    return hsv_to_rgb(hsv)


def oracle_contrast(x, p, rng):
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * p.factor + means


def oracle_pil(x, p, rng):
    out = []
    for image in np.round(x * 255).astype(np.uint8):
        pil = Image.fromarray(image)
        if hasattr(p, "quality"):
            buffer = io.BytesIO()
            pil.save(buffer, "JPEG", quality=p.quality)
            out.append(np.asarray(Image.open(buffer)))
        else:
            small = int(32 * p.scale)
            out.append(
                np.asarray(pil.resize((small, small), Image.BOX).resize((32, 32), Image.BOX))
            )
    return np.stack(out) / 255.0


def gaussian_per_image(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage.filters.gaussian(multichannel=True): spatial axes only, nearest border."""
    return ndimage.gaussian_filter(x, (0, sigma, sigma, 0), mode="nearest")


def oracle_gaussian_blur(x, p, rng):
    return gaussian_per_image(x, p.sigma)


def oracle_defocus_blur(x, p, rng):
    kernel = disk_kernel_reference(p.radius, p.alias_blur)
    return ndimage.correlate(x, kernel[None, :, :, None], mode="mirror")


def oracle_zoom_blur(x, p, rng):
    zooms = np.arange(1, p.max_zoom, 0.01)
    total = x + sum(np.stack([clipped_zoom_reference(i, zoom) for i in x]) for zoom in zooms)
    return total / (len(zooms) + 1)


def oracle_glass_blur(x, p, rng):
    x = np.floor(gaussian_per_image(x, p.sigma) * 255).astype(np.uint8)
    for _ in range(p.iterations):
        dy, dx = rng.integers(-1, 1, (2, len(x), 30, 30))
        x = original_pixel_walk(x, dy, dx)
    return gaussian_per_image(x / 255.0, p.sigma)


def oracle_frost(x, p, rng):
    """The original adds w * a crop of one of five photographs. A pixel's change depends only on
    the frost value at that pixel, so the mean change needs only the photographs' distribution
    of values: each pixel a value with its photograph's mean and contrast. The original draws
    the photograph at random; taking each for a fifth of the images is that draw's expectation."""
    photographs = np.array(FROST_PHOTOGRAPHS, float) / 255  # (5, mean|std, 3)
    photo = photographs[np.arange(len(x)) % len(photographs)][:, :, None, None, :]
    frost = photo[:, 0] + photo[:, 1] * rng.standard_normal(x.shape)
    return p.image_weight * x + p.frost_weight * frost


def oracle_spatter(x, p, rng):
    liquid = rng.normal(p.loc, p.scale, x.shape[:3])
    liquid = ndimage.gaussian_filter(liquid, (0, p.sigma, p.sigma), mode="nearest")
    liquid[liquid < p.threshold] = 0
    if p.mud:
        cover = gaussian_per_image((liquid > p.threshold)[..., None].astype(float), p.intensity)
        cover[cover < 0.8] = 0
        return x * (1 - cover) + np.array(MUD_COLOUR) * cover
    highlight = np.stack([original_water_highlight(layer, p.intensity) for layer in liquid])
    return x + highlight[..., None] * np.array(WATER_COLOUR)


ORIGINAL_FORMULAS = {
    **{name: oracle_noise(name) for name in
       ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")},
    "brightness": oracle_hsv, "saturate": oracle_hsv, "contrast": oracle_contrast,
    "pixelate": oracle_pil, "jpeg_compression": oracle_pil,
    "gaussian_blur": oracle_gaussian_blur, "defocus_blur": oracle_defocus_blur,
    "zoom_blur": oracle_zoom_blur, "glass_blur": oracle_glass_blur,
    "frost": oracle_frost, "spatter": oracle_spatter,
}  # fmt: skip
# ImageMagick's motion blur (motion_blur, snow), OpenCV's warpAffine (elastic_transform) and the
# plasma fractal (fog) have no oracle here: their figures are this package's implementation's.
WITHOUT_ORACLE = {"motion_blur", "snow", "fog", "elastic_transform"}


def oracle_change(name: str, images: np.ndarray = NATURAL) -> list[float]:
    # not natural_images' seed 0: the same stream would draw the spatter's noise to match the
    # images' own (a liquid layer correlated with the image content)
    rng = np.random.default_rng(1)
    changes = []
    for severity in SEVERITIES:
        params = corruption_parameters(name, severity)
        out = truncate(ORIGINAL_FORMULAS[name](images / 255.0, params, rng))
        changes.append(round(float(np.abs(out - images.astype(float)).mean()), 2))
    return changes


# The original's water drops, one (32, 32) image at a time as OpenCV computes them.


def canny_reference(grey: np.ndarray, low: int, high: int) -> np.ndarray:
    """cv2.Canny(grey, low, high): Sobel (replicated border), L1 magnitude, non-maximum
    suppression in OpenCV's fixed-point sectors, hysteresis by connected components."""
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    dx = ndimage.correlate(grey.astype(np.int64), sobel, mode="nearest")
    dy = ndimage.correlate(grey.astype(np.int64), sobel.T, mode="nearest")
    magnitude = np.abs(dx) + np.abs(dy)
    padded = np.pad(magnitude, 1)
    peak = np.zeros_like(grey, dtype=bool)
    for i, j in zip(*np.nonzero(magnitude > low)):
        m, x, y = magnitude[i, j], abs(dx[i, j]), abs(dy[i, j]) << 15
        up, down = padded[i, :], padded[i + 2, :]  # rows above and below, columns shifted by 1
        row = padded[i + 1]
        if y < x * 13573:
            peak[i, j] = m > row[j] and m >= row[j + 2]
        elif y > x * 13573 + (x << 16):
            peak[i, j] = m > up[j + 1] and m >= down[j + 1]
        else:
            s = -1 if (dx[i, j] ^ dy[i, j]) < 0 else 1
            peak[i, j] = m > up[j + 1 - s] and m > down[j + 1 + s]
    components, _ = ndimage.label(peak, structure=np.ones((3, 3)))
    strong = np.unique(components[peak & (magnitude > high)])
    return np.isin(components, strong[strong > 0])


def chamfer_reference(zero: np.ndarray) -> np.ndarray:
    """cv2.distanceTransform(DIST_L2, 5): OpenCV's two raster passes of the 5x5 chamfer mask
    (costs 1, 1.4, 2.1969 in 16.16 fixed point), forward then backward. Within a row the only
    mask step is the horizontal neighbour, so each row's scan is a running minimum."""
    cost = {1: 65536, 2: round(1.4 * 65536), 5: round(2.1969 * 65536)}
    h, w = zero.shape
    padded = np.full((h + 4, w + 4), 1 << 40, np.int64)
    padded[2:-2, 2:-2] = np.where(zero, 0, 1 << 40)
    ramp = np.arange(w) * cost[1]
    for rows, sign in ((range(2, h + 2), 1), (range(h + 1, 1, -1), -1)):
        for i in rows:
            row = padded[i, 2:-2]
            for dy in (1, 2):  # the rows already scanned, above (forward) or below (backward)
                for dx in range(-2, 3):
                    if dy * dy + dx * dx in cost:
                        source = padded[i - sign * dy, 2 + dx : 2 + dx + w]
                        row = np.minimum(row, source + cost[dy * dy + dx * dx])
            scan = row if sign == 1 else row[::-1]
            scan = np.minimum.accumulate(scan - ramp) + ramp
            padded[i, 2:-2] = scan if sign == 1 else scan[::-1]
    return padded[2:-2, 2:-2].astype(np.float32) / 65536


def equalize_reference(grey: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist: the darkest level present maps to 0, the rest by the cumulative count."""
    hist = np.bincount(grey.ravel(), minlength=256)
    darkest = int(np.flatnonzero(hist)[0])
    if hist[darkest] == grey.size:
        return grey.copy()
    scale = np.float32(255) / np.float32(grey.size - hist[darkest])  # float32, as OpenCV
    lut = np.round((np.cumsum(hist) - hist[darkest]).astype(np.float32) * scale)
    return np.clip(lut, 0, 255).astype(np.uint8)[grey]


def box3_reference(x: np.ndarray) -> np.ndarray:
    """cv2.blur(x, (3, 3)): the mean of 9 with BORDER_REFLECT_101 (numpy's "reflect")."""
    padded = np.pad(x.astype(np.float64), 1, mode="reflect")
    return sum(padded[i : i + 32, j : j + 32] for i in range(3) for j in range(3)) / 9


def original_water_highlight(liquid: np.ndarray, intensity: float) -> np.ndarray:
    """The original's water-mode shading of one (32, 32) liquid layer (already thresholded)."""
    level = (liquid * 255).astype(np.uint8)
    distance = np.minimum(chamfer_reference(canny_reference(level, 50, 150)), 20)
    distance = box3_reference(distance).astype(np.float32).astype(np.uint8)
    distance = equalize_reference(distance)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    distance = np.clip(ndimage.correlate(distance.astype(float), emboss, mode="mirror"), 0, 255)
    shading = np.round(box3_reference(np.round(distance)))
    m = level * shading
    return m / m.max() * intensity if m.max() > 0 else m


def corrupt_change(name: str, images: np.ndarray = NATURAL, seed: int = 1) -> list[float]:
    clean = images.astype(float)
    return [float(np.abs(corrupt(images, name, s, seed=seed) - clean).mean()) for s in SEVERITIES]


def test_the_reference_table_covers_every_corruption():
    assert set(MEAN_ABS_CHANGE) == set(CORRUPTIONS)
    assert set(ORIGINAL_FORMULAS) | WITHOUT_ORACLE == set(CORRUPTIONS)
    assert len(NATURAL) == NATURAL_IMAGES


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_change_on_natural_images_is_within_20_percent_of_the_originals(name):
    expected = np.array(MEAN_ABS_CHANGE[name])
    change = np.array(corrupt_change(name))
    assert (np.abs(change / expected - 1) <= 0.2).all(), (change.round(2), expected)


@pytest.mark.parametrize("name", ORIGINAL_FORMULAS)
def test_reference_figures_are_what_the_original_formulas_give(name):
    derived = np.array(oracle_change(name))
    print(f"{name}: {derived.tolist()}")  # -s shows the figures, to update the table
    np.testing.assert_allclose(MEAN_ABS_CHANGE[name], derived, rtol=0.01, atol=0.02)


FROST_IMAGES = natural_images(1024, seed=2)  # photographs drawn per image: 1024 average them out


def test_frost_changes_images_as_much_as_the_original():
    change = corrupt_change("frost", FROST_IMAGES)
    np.testing.assert_allclose(change, MEAN_ABS_CHANGE["frost"], rtol=0.07)
    for severity, value in enumerate(change, 1):
        low, high = ORIGINAL_ON_PHOTOGRAPHS["frost", severity]
        assert 0.8 * low <= value <= 1.2 * high, (severity, change)


def test_spatter_severity_3_changes_images_as_much_as_the_original():
    # water drops at noise scale 0.3: the old shading changed images by 12.9 grey levels
    images = FROST_IMAGES[:512]
    change = np.abs(corrupt(images, "spatter", 3, seed=1) - images.astype(float)).mean()
    assert change == pytest.approx(MEAN_ABS_CHANGE["spatter"][2], rel=0.05)
    low, high = ORIGINAL_ON_PHOTOGRAPHS["spatter", 3]
    assert 0.9 * low <= change <= 1.1 * high, change


def frost_sheet_pixels() -> np.ndarray:
    """(5, crops, 32, 32, 3) grey levels: 400 random crops of every frost sheet."""
    gen = torch.Generator().manual_seed(0)
    sheets = frost_sheets(FROST_SHEET_SIZE, gen, torch.device("cpu")).numpy() * 255
    rng = np.random.default_rng(0)
    corners = rng.integers(0, FROST_SHEET_SIZE - 32, (400, 2))
    crops = [[sheet[:, r : r + 32, c : c + 32] for r, c in corners] for sheet in sheets]
    return np.array(crops).transpose(0, 1, 3, 4, 2)


def test_frost_sheets_have_the_photographs_colour_and_contrast():
    crops = frost_sheet_pixels()
    photographs = np.array(FROST_PHOTOGRAPHS, float)  # (5, mean|std, 3), from CIFAR_C.md
    np.testing.assert_allclose(crops.mean((1, 2, 3)), photographs[:, 0], atol=4)
    np.testing.assert_allclose(crops.std((2, 3)).mean(1), photographs[:, 1], atol=2)
    grey = crops @ np.array(LUMA)
    # all five photographs: grey quantiles 5/50/95 % of 95, 162, 222 (CIFAR_C.md)
    np.testing.assert_allclose(np.percentile(grey, [5, 50, 95]), [95, 162, 222], atol=10)
    assert crops[..., 2].mean() > crops[..., 1].mean() > crops[..., 0].mean()  # bluish


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_water_highlight_is_the_originals_opencv_pipeline(severity):
    p = corruption_parameters("spatter", severity)
    rng = np.random.default_rng(severity)
    liquid = ndimage.gaussian_filter(
        rng.normal(p.loc, p.scale, (24, 32, 32)), (0, p.sigma, p.sigma), mode="nearest"
    )
    liquid[liquid < p.threshold] = 0
    expected = np.stack([original_water_highlight(layer, p.intensity) for layer in liquid])
    actual = water_highlight(torch.from_numpy(liquid)[:, None], p.intensity)[:, 0].numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-9)
    assert (expected > 0).any()


def smooth_grey_images(n: int, seed: int) -> np.ndarray:
    """uint8 (n, 32, 32): blurred noise with steps, so that edges of every direction occur."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.normal(0, 1, (n, 32, 32)), (0, 1.5, 1.5))
    return np.clip(128 + 400 * x, 0, 255).astype(np.uint8)


def test_canny_matches_the_opencv_rules():
    grey = smooth_grey_images(24, seed=0)
    expected = np.stack([canny_reference(image, 50, 150) for image in grey])
    actual = canny(torch.from_numpy(grey).double()[:, None], 50, 150)[:, 0].numpy()
    np.testing.assert_array_equal(actual, expected)
    assert 0.02 < expected.mean() < 0.5


def test_chamfer_distance_matches_two_raster_passes():
    zero = np.random.default_rng(0).random((24, 32, 32)) < 0.01
    expected = np.stack([chamfer_reference(z) for z in zero])
    actual = chamfer_distance(torch.from_numpy(zero)[:, None])[:, 0].numpy()
    np.testing.assert_array_equal(actual, expected)
    assert actual.max() > 5 and (actual[zero] == 0).all()


def test_equalize_histogram_matches_the_opencv_lut():
    levels = np.random.default_rng(0).integers(3, 21, (8, 32, 32)).astype(np.uint8)
    levels[0] = 7  # a single level is left alone
    expected = np.stack([equalize_reference(image) for image in levels])
    actual = equalize_histogram(torch.from_numpy(levels).double()[:, None])[:, 0].numpy()
    np.testing.assert_array_equal(actual, expected)
    assert actual[1:].min() == 0 and actual[1:].max() == 255
