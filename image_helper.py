"""Pixels: loading images, cropping and resizing regions, mean-colour masks, VGG-16 preprocessing.

Images are float32 arrays ``(height, width, 3)``, RGB, values 0..255. Boxes are ``[x0, y0, x1, y1)`` floats in
pixels of the image (half-open corners); :func:`round_box` turns them into whole-pixel slices.
"""

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from runs.errors import UserError

# ImageNet mean colour, RGB: a region painted with it is exactly zero after vgg_preprocess.
MEAN_RGB = np.array([123.68, 116.779, 103.939], dtype=np.float32)
# The same float32 values in BGR order, so that MEAN_RGB - mean cancels bit for bit.
_MEAN_BGR = np.ascontiguousarray(MEAN_RGB[::-1])


def image_path(path_voc, image_id) -> Path:
    """``<path_voc>/JPEGImages/<image_id>.jpg``."""
    return Path(path_voc) / "JPEGImages" / f"{image_id}.jpg"


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Float32 ``(H, W, 3)`` RGB 0..255 from a PIL image of any mode."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit gray (PNG/TIFF; older Pillow opens 16-bit PNGs as mode 'I'): scaled from 0..65535 unless the
        # values fit in 8 bits. Float images ('F') are taken as 0..255.
        gray = np.asarray(image).astype(np.float32)
        if image.mode != "F" and (image.mode.startswith("I;16") or image.format == "PNG" or gray.max(initial=0) > 255):
            gray = gray * np.float32(255.0 / 65535.0)
        return np.repeat(np.clip(gray, 0, 255)[:, :, None], 3, axis=2)
    # Alpha is dropped (VOC images are opaque); a palette with transparency goes through RGBA so Pillow does not warn.
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.float32)


# The most pixels an image may have, checked from the file's header before decoding. A search holds float32 RGB
# copies of its image (12 bytes a pixel each): a 50-megapixel search peaks at 1.2 GB, testing's chunk of 16 at
# 9.6 GB, both within a 24 GB machine. Pillow's decompression-bomb check (about 89 megapixels) applies above it.
MAX_PIXELS = 50_000_000


def load_image(path, max_pixels=None) -> np.ndarray:
    """Read an image file as float32 ``(H, W, 3)`` RGB in 0..255, whatever its mode (16-bit gray scaled).

    EXIF orientation is not applied: VOC boxes refer to the stored pixels. A file of several frames is read as its
    first, with a warning (once per file). A missing file, one Pillow refuses (corrupt, truncated, a decompression
    bomb) or one whose header declares more than ``max_pixels`` (:data:`MAX_PIXELS` when None) raises UserError.
    """
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    try:
        found, folder = path.is_file(), path.is_dir()
    except OSError as error:        # a name too long, a folder that cannot be looked into
        raise UserError(f"cannot read image file {path}: {error.strerror or error}") from None
    if not found:
        raise UserError(f"image {path}: a folder, not an image file" if folder else f"image file not found: {path}")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit and raises above twice that: both are refusals here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > limit:
                    raise UserError(f"image file {path} is {width} x {height} pixels ({width * height / 1e6:.0f} "
                                    f"megapixels), more than the limit of {limit / 1e6:g} megapixels (max_pixels)")
                image.load()  # decode now: a truncated file fails here, not later
                array, frames = _to_rgb_array(image), getattr(image, "n_frames", 1)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UserError(f"cannot read image file {path}: a decompression bomb ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UserError(f"cannot read image file {path}: {error}") from None
    except Exception as error:      # any other refusal of Pillow's decoders (struct.error, IndexError, …)
        raise UserError(f"cannot read image file {path}: {type(error).__name__}: {error}") from None
    if frames > 1 and path not in _SEVERAL_FRAMES:      # said once per file: training reads it every epoch
        _SEVERAL_FRAMES.add(path)
        warnings.warn(f"image file {path} holds {frames} frames (an animation or several pages): only the first is "
                      f"searched", UserWarning, stacklevel=2)
    return np.ascontiguousarray(array, dtype=np.float32)


_SEVERAL_FRAMES = set()     # the files with several frames warned about


def round_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """Whole-pixel box ``[x0, y0, x1, y1)`` inside a ``width`` x ``height`` image, at least 1 pixel per side.

    Corners of the float ``box`` round to the nearest pixel edge (halves up), clamped to the image; an empty side
    becomes the one pixel holding the box's centre, so tiny or outside regions still give a valid crop.
    """
    assert width >= 1 and height >= 1, (width, height)
    box = np.asarray(box, dtype=np.float64)
    assert box.shape == (4,) and np.all(np.isfinite(box)), box

    def side(low: float, high: float, size: int) -> tuple[int, int]:
        start, end = (int(np.clip(np.floor(corner + 0.5), 0, size)) for corner in (low, high))
        if end <= start:
            start = int(np.clip(np.floor((low + high) / 2), 0, size - 1))
            end = start + 1
        return start, end

    (x0, x1), (y0, y1) = side(box[0], box[2], int(width)), side(box[1], box[3], int(height))
    return x0, y0, x1, y1


def crop(image: np.ndarray, box) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` for the float box ``[x0, y0, x1, y1)`` rounded by :func:`round_box`: a view of
    ``image`` (at least 1 x 1 pixels); copy it before writing into it."""
    x0, y0, x1, y1 = round_box(box, image.shape[1], image.shape[0])
    return image[y0:y1, x0:x1]


def resize(image: np.ndarray, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """Bilinear resize of a float ``(H, W, C)`` image to ``size`` = (width, height); float32 out. Pillow's filter
    per channel in float mode: deterministic, no 8-bit quantisation, antialiased when shrinking."""
    image = np.asarray(image, dtype=np.float32)
    assert image.ndim == 3 and image.shape[0] >= 1 and image.shape[1] >= 1, image.shape
    width, height = int(size[0]), int(size[1])
    if image.shape[:2] == (height, width):
        return image.copy()
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, channel]))
                                .resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
                     for channel in range(image.shape[2])], axis=2)


def paint_mean(image: np.ndarray, box) -> np.ndarray:
    """Float32 copy of ``image`` with the box ``[x0, y0, x1, y1)`` (rounded by :func:`round_box`) painted with
    :data:`MEAN_RGB`, so that the painted pixels are exactly zero after :func:`vgg_preprocess`."""
    painted = np.array(image, dtype=np.float32, copy=True)
    crop(painted, box)[:] = MEAN_RGB
    return painted


def vgg_preprocess(images) -> np.ndarray:
    """VGG-16 (Caffe) preprocessing: RGB float ``(..., H, W, 3)`` -> BGR minus the ImageNet mean
    (B 103.939, G 116.779, R 123.68), float32, a new array."""
    images = np.asarray(images, dtype=np.float32)
    assert images.shape[-1] == 3, images.shape
    return images[..., ::-1] - _MEAN_BGR
