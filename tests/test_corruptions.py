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
from PIL import Image
from scipy import ndimage

import auxtune.data.corruptions as corruptions
from auxtune.data.corruptions import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    STANDARD_CORRUPTIONS,
    _samples,
    corrupt,
    corruption_parameters,
    is_stochastic,
    sample_images,
)
from auxtune.data.corruptions._blur import pixel_walk

IMAGES = sample_images(8, seed=0)  # read-only
DETERMINISTIC = {
    "brightness", "contrast", "saturate", "pixelate", "jpeg_compression",
    "defocus_blur", "gaussian_blur", "zoom_blur",
}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Batches here are tiny: a second thread only adds synchronisation, which costs 100x the
    work itself when the cores are busy with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    for module in (corruptions, _samples):
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
    assert 0.35 < texture.mean() < 0.6 and texture.std() > 0.1
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
