"""Tests of image_helper: loading any image mode, rounding boxes, crops, resize, mean masks, VGG preprocessing."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from any folder

from runs.errors import UserError  # noqa: E402
from image_helper import (  # noqa: E402
    MEAN_RGB, crop, image_path, load_image, paint_mean, resize, round_box, vgg_preprocess,
)


def _check_rgb(array: np.ndarray, height: int, width: int) -> None:
    assert array.shape == (height, width, 3)
    assert array.dtype == np.float32
    assert array.min() >= 0 and array.max() <= 255


# ---------------------------------------------------------------- loading

def test_image_path():
    assert image_path("/data/VOC2007", "000005") == Path("/data/VOC2007/JPEGImages/000005.jpg")


def test_load_rgb_png_exact(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(tmp_path / "rgb.png")
    image = load_image(tmp_path / "rgb.png")
    _check_rgb(image, 7, 5)
    np.testing.assert_array_equal(image, pixels.astype(np.float32))


def test_load_gray_l(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    image = load_image(tmp_path / "gray.png")
    _check_rgb(image, 3, 4)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], gray)


def test_load_gray_with_alpha_and_rgba(tmp_path):
    Image.new("LA", (4, 3), (90, 10)).save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(tmp_path / "la.png"), np.full((3, 4, 3), 90, np.float32))
    Image.new("RGBA", (4, 3), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    image = load_image(tmp_path / "rgba.png")
    _check_rgb(image, 3, 4)
    np.testing.assert_array_equal(image[1, 2], [10, 20, 30])  # alpha is dropped


def test_load_palette(tmp_path):
    palette_image = Image.new("P", (6, 2), 1)
    palette_image.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette_image.save(tmp_path / "palette.png")
    image = load_image(tmp_path / "palette.png")
    _check_rgb(image, 2, 6)
    np.testing.assert_array_equal(image[0, 0], [200, 100, 50])
    palette_image.info["transparency"] = 0
    palette_image.save(tmp_path / "palette_transparent.png", transparency=0)
    np.testing.assert_array_equal(load_image(tmp_path / "palette_transparent.png")[1, 5], [200, 100, 50])
    palette_image.save(tmp_path / "palette.gif")
    np.testing.assert_array_equal(load_image(tmp_path / "palette.gif")[1, 1], [200, 100, 50])


def test_load_cmyk(tmp_path):
    Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.tif")  # pure red
    image = load_image(tmp_path / "cmyk.tif")
    _check_rgb(image, 4, 5)
    np.testing.assert_array_equal(image[2, 3], [255, 0, 0])
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg", quality=95)  # white, lossy
    image = load_image(tmp_path / "cmyk.jpg")
    _check_rgb(image, 16, 16)
    assert image.min() > 245


def test_load_16_bit_gray_is_scaled(tmp_path):
    values = np.array([[0, 257 * 100], [65535, 257 * 255]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "gray16.png")
    image = load_image(tmp_path / "gray16.png")
    _check_rgb(image, 2, 2)
    np.testing.assert_allclose(image[:, :, 0], [[0, 100], [255, 255]], atol=1e-3)
    np.testing.assert_array_equal(image[:, :, 0], image[:, :, 2])


def test_load_32_bit_integer_gray(tmp_path):
    # Older Pillow versions open 16-bit PNGs in this mode: values above 255 are taken as 16-bit.
    Image.fromarray(np.array([[0, 65535], [257 * 10, 0]], dtype=np.int32)).save(tmp_path / "gray32.tif")
    np.testing.assert_allclose(load_image(tmp_path / "gray32.tif")[:, :, 1], [[0, 255], [10, 0]], atol=1e-3)
    Image.fromarray(np.array([[0, 200]], dtype=np.int32)).save(tmp_path / "gray32_small.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "gray32_small.tif")[:, :, 0], [[0, 200]])


def test_load_one_bit(tmp_path):
    Image.new("1", (3, 2), 1).save(tmp_path / "bits.png")
    np.testing.assert_array_equal(load_image(tmp_path / "bits.png"), np.full((2, 3, 3), 255, np.float32))


def test_truncated_jpeg_raises(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    for kept in (len(data) // 2, len(data) - 2):  # half the file; only the end marker missing
        (tmp_path / "cut_short.jpg").write_bytes(data[:kept])
        with pytest.raises(UserError, match="cut_short.jpg"):
            load_image(tmp_path / "cut_short.jpg")


def test_corrupt_or_missing_file_raises(tmp_path):
    (tmp_path / "garbage.jpg").write_bytes(b"this is not an image")
    with pytest.raises(UserError, match="garbage.jpg"):
        load_image(tmp_path / "garbage.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="empty.jpg"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(UserError, match="absent.jpg"):
        load_image(tmp_path / "absent.jpg")


# ---------------------------------------------------------------- geometry

@pytest.mark.parametrize("box, expected", [
    ([10.2, 20.7, 30.5, 40.49], (10, 21, 31, 40)),    # nearest, halves up
    ([0, 0, 100, 50], (0, 0, 100, 50)),               # the whole image
    ([-7.0, -3.0, 120.0, 60.0], (0, 0, 100, 50)),     # clamped
    ([10.4, 5.0, 10.45, 5.2], (10, 5, 11, 6)),         # empty after rounding: widened to 1 px
    ([99.8, 49.9, 99.9, 50.0], (99, 49, 100, 50)),    # at the far edge: stays inside
    ([150.0, 70.0, 160.0, 80.0], (99, 49, 100, 50)),  # wholly outside: the nearest pixel
    ([-9.0, -9.0, -5.0, -5.0], (0, 0, 1, 1)),
])
def test_round_box(box, expected):
    assert round_box(box, 100, 50) == expected
    assert all(isinstance(value, int) for value in round_box(box, 100, 50))


def test_round_box_always_valid():
    rng = np.random.default_rng(0)
    for _ in range(500):
        width, height = (int(value) for value in rng.integers(1, 30, 2))
        x = np.sort(rng.uniform(-10, width + 10, 2))
        y = np.sort(rng.uniform(-10, height + 10, 2))
        x0, y0, x1, y1 = round_box([x[0], y[0], x[1], y[1]], width, height)
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_crop():
    image = np.arange(5 * 8 * 3, dtype=np.float32).reshape(5, 8, 3)
    np.testing.assert_array_equal(crop(image, [2.0, 1.0, 5.0, 4.0]), image[1:4, 2:5])
    assert crop(image, [3.3, 2.2, 3.4, 2.3]).shape == (1, 1, 3)
    assert crop(image, [-5, -5, 50, 50]).shape == (5, 8, 3)


def test_resize_shape_and_values():
    constant = np.full((13, 7, 3), 42.5, np.float32)
    resized = resize(constant, (224, 100))
    assert resized.shape == (100, 224, 3) and resized.dtype == np.float32
    np.testing.assert_allclose(resized, 42.5, rtol=1e-6)
    assert resize(constant).shape == (224, 224, 3)
    # channels stay separate and a horizontal ramp stays a monotone horizontal ramp
    ramp = np.zeros((4, 50, 3), np.float32)
    ramp[:, :, 0] = np.arange(50)
    ramp[:, :, 2] = 200
    out = resize(ramp, (20, 6))
    assert np.all(np.diff(out[:, :, 0], axis=1) > 0)
    np.testing.assert_allclose(out[:, :, 1], 0, atol=1e-4)
    np.testing.assert_allclose(out[:, :, 2], 200, rtol=1e-5)
    np.testing.assert_array_equal(out, resize(ramp, (20, 6)))  # deterministic


def test_resize_same_size_is_a_copy():
    image = np.ones((224, 224, 3), np.float32)
    resized = resize(image)
    resized[0, 0, 0] = 5
    assert image[0, 0, 0] == 1


def test_paint_mean_is_zero_after_preprocessing():
    image = np.random.default_rng(3).uniform(0, 255, (30, 40, 3)).astype(np.float32)
    original = image.copy()
    box = [5.4, 7.6, 20.2, 18.5]
    painted = paint_mean(image, box)
    assert painted is not image and painted.dtype == np.float32
    x0, y0, x1, y1 = round_box(box, 40, 30)
    assert (x0, y0, x1, y1) == (5, 8, 20, 19)
    preprocessed = vgg_preprocess(painted)
    assert np.all(preprocessed[y0:y1, x0:x1] == 0.0)  # exactly, not approximately
    outside = np.ones((30, 40), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(painted[outside], image[outside])
    np.testing.assert_array_equal(image, original)  # the input is untouched
    uint8_image = np.zeros((4, 4, 3), np.uint8)
    np.testing.assert_array_equal(paint_mean(uint8_image, [0, 0, 2, 2])[0, 0], MEAN_RGB)


def test_vgg_preprocess_worked_values():
    pixel = np.array([[[10.0, 20.0, 30.0]]])  # R, G, B
    out = vgg_preprocess(pixel)
    assert out.dtype == np.float32 and out.shape == (1, 1, 3)
    np.testing.assert_allclose(out[0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)  # B, G, R
    batch = np.stack([np.full((2, 2, 3), 255.0), np.zeros((2, 2, 3))])
    out = vgg_preprocess(batch)
    assert out.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(out[0, 1, 1], [151.061, 138.221, 131.32], rtol=1e-5)
    np.testing.assert_allclose(out[1, 0, 0], [-103.939, -116.779, -123.68], rtol=1e-6)
    np.testing.assert_array_equal(vgg_preprocess(MEAN_RGB), [0, 0, 0])
