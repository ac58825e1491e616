"""A small synthetic PASCAL VOC dataset: the default data of the demo and the end-to-end tests.

It writes the exact VOC layout, so every script reads it like the real VOC 2007/2012 folders:

    <root>/JPEGImages/<id>.jpg              JPEG, quality 95
    <root>/Annotations/<id>.xml             VOC XML, bndbox 1-based inclusive integer pixels
    <root>/ImageSets/Main/trainval.txt      ids 000001 ... (trainval first, then test)
    <root>/ImageSets/Main/test.txt
    <root>/ImageSets/Main/<class>_trainval.txt, <class>_test.txt   for all 20 classes: "<id> <label>",
                                            1 present, -1 absent, 0 only difficult objects

Each image has a random size and background (sky gradient with clouds, textured noise, landscape with a sky
over hilly ground, or a random two-colour gradient), 0-3 aeroplanes (about 70% of images have at least one) and
0-2 distractors (bird, car, boat). The aeroplane is a plane silhouette (side view with fuselage, swept wing and
tail fin, or top view with swept wings and tailplane), facing left or right, slightly rotated, in a colour that
contrasts with the background under it. Object sizes are log-uniform from about 15% to 95% of the shorter image
side; rare tiny aeroplanes (under 18 pixels) are marked difficult, as VOC does. An object drawn later may hide at
most 30% of an earlier aeroplane (50% of a distractor); placements that would hide more are re-drawn.

Boxes are the tight box of the drawn silhouette's pixels, clipped to the image: internally ``[x0, y0, x1, y1)``
whole pixels, in the XML ``xmin = x0 + 1, xmax = x1``. Generation is deterministic: the same seed gives
byte-identical files (image ``i`` uses its own ``numpy.random.Generator`` spawned from the seed).

Run ``python synthetic_dataset.py --root data/synthetic_voc`` to (re)generate it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from runs.errors import UserError
from image_helper import resize
from parse_xml_annotations import VocObject, image_label, voc_xml, write_image_set
from runs.runtime import OneLineParser, main_guard, write_folder

DATABASE_NAME = "Synthetic VOC"
DISTRACTOR_CLASSES = ("bird", "car", "boat")

# Probabilities of 0, 1, 2 ... aeroplanes / distractors in an image.
PLANE_COUNT_PROBABILITIES = (0.30, 0.45, 0.17, 0.08)
DISTRACTOR_COUNT_PROBABILITIES = (0.30, 0.45, 0.25)
# Longest side of an object's box as a fraction of the shorter image side, drawn log-uniformly.
PLANE_SIZE_RANGE = (0.15, 0.95)
DISTRACTOR_SIZE_RANGE = (0.12, 0.70)
# Rare tiny aeroplanes (longest side in pixels) that are annotated difficult.
TINY_PLANE_PROBABILITY = 0.03
TINY_PLANE_PIXELS = (10, 17)
DIFFICULT_BELOW_PIXELS = 18
# Share of an object that must stay visible when later objects are drawn over it.
MIN_VISIBLE_FRACTION = {"aeroplane": 0.7}
MIN_VISIBLE_FRACTION_DISTRACTOR = 0.5
TRUNCATION_PROBABILITY = 0.10  # object may stick out of the image by up to 30% of its box
PLACEMENT_ATTEMPTS = 30
# Minimum luminance difference between an object's main colour and the background under it.
MIN_CONTRAST = {"aeroplane": 90.0}
MIN_CONTRAST_DISTRACTOR = 60.0

# Each class's palette for an object's main colour.
COLOURS = {
    "aeroplane": ((240, 240, 240), (205, 208, 212), (175, 180, 186), (72, 76, 84), (35, 35, 40), (200, 35, 35),
                  (30, 45, 120), (235, 200, 40), (235, 120, 30), (90, 100, 55)),
    "bird": ((45, 35, 30), (20, 20, 20), (235, 235, 230), (130, 120, 110), (60, 90, 160), (170, 90, 40)),
    "car": ((190, 25, 30), (30, 70, 170), (40, 130, 60), (230, 200, 30), (25, 25, 28), (235, 235, 235),
            (160, 165, 170), (230, 110, 20)),
    "boat": ((240, 240, 240), (180, 30, 30), (25, 40, 100), (150, 100, 60)),
}
SKY_TOPS = ((70, 120, 200), (110, 160, 230), (40, 70, 140), (150, 165, 185), (215, 140, 90))
GROUND_COLOURS = ((70, 130, 50), (120, 100, 60), (200, 180, 130), (110, 110, 115), (40, 90, 140), (90, 110, 70))


@dataclass
class SceneObject(VocObject):
    """One drawn object. ``box`` is the tight box ``[x0, y0, x1, y1)`` of its pixels (whole pixels, float64)."""

    truncated: bool
    pose: str
    pixel_count: int  # pixels of its silhouette inside the image
    visible_fraction: float = 1.0  # share of those pixels not covered by objects drawn after it


# ----------------------------------------------------------------------------------------------------------
# Shapes: lists of (role, points), polygons in local units, facing right (+x), y down. A role picks the colour;
# "detail" roles are left out on small objects.

def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, stop: float = 2 * np.pi,
             count: int = 24) -> np.ndarray:
    """Points on an ellipse (or an arc of it, angles in radians), shape (count, 2)."""
    angles = np.linspace(start, stop, count, endpoint=stop - start < 2 * np.pi)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def _polygon(*points) -> np.ndarray:
    return np.array(points, dtype=np.float64)


def _plane_side(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Side view: fuselage with a rounded nose and tapered tail, vertical fin, swept wing, optional engine."""
    half_height, fin_height = rng.uniform(0.045, 0.065), rng.uniform(0.15, 0.24)
    wing_depth, wing_sweep = rng.uniform(0.12, 0.24), rng.uniform(0.08, 0.20)
    nose = _ellipse(0.40, 0.0, 0.10, half_height, -np.pi / 2, np.pi / 2, 12)
    fuselage = np.concatenate([nose, _polygon((-0.30, half_height), (-0.50, -0.2 * half_height),
                                              (-0.50, -1.1 * half_height), (-0.30, -half_height))])
    fin = _polygon((-0.27, -half_height), (-0.40 - 0.3 * fin_height, -half_height - fin_height),
                   (-0.50, -half_height - fin_height), (-0.50, -half_height))
    stabiliser = _polygon((-0.36, 0.0), (-0.47, 0.4 * half_height + 0.015), (-0.52, 0.4 * half_height + 0.015),
                          (-0.49, -0.2 * half_height))
    wing = _polygon((0.10, 0.5 * half_height), (0.10 - wing_sweep, half_height + wing_depth),
                    (0.02 - wing_sweep, half_height + wing_depth), (-0.10, 0.5 * half_height))
    parts = [("shade", stabiliser), ("body", fin), ("body", fuselage), ("shade", wing)]
    if rng.random() < 0.6:  # jet engine under the wing
        parts.append(("shade", _ellipse(0.02 - 0.4 * wing_sweep, half_height + 0.4 * wing_depth, 0.07, 0.025)))
    parts.append(("detail_window", _polygon((0.41, -0.75 * half_height), (0.47, -0.45 * half_height),  # cockpit
                                            (0.465, -0.1 * half_height), (0.40, -0.25 * half_height))))
    for x in np.arange(0.32, -0.26, -0.045):  # cabin windows
        parts.append(("detail_window", _polygon((x, -0.45 * half_height), (x + 0.018, -0.45 * half_height),
                                                (x + 0.018, 0.0), (x, 0.0))))
    if rng.random() < 0.5:
        parts.append(("detail_accent", _polygon((0.30, 0.25 * half_height), (-0.35, 0.25 * half_height),
                                                (-0.35, 0.55 * half_height), (0.30, 0.55 * half_height))))
    return parts


def _plane_top(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Top view: long fuselage, two swept wings, two tailplane halves, optional engines."""
    half_width, half_span = rng.uniform(0.045, 0.065), rng.uniform(0.40, 0.52)
    sweep, tip_chord = rng.uniform(0.10, 0.25), rng.uniform(0.06, 0.10)
    nose = _ellipse(0.38, 0.0, 0.12, half_width, -np.pi / 2, np.pi / 2, 12)
    fuselage = np.concatenate([nose, _polygon((-0.35, half_width), (-0.50, 0.3 * half_width),
                                              (-0.50, -0.3 * half_width), (-0.35, -half_width))])
    parts = []
    for side in (-1.0, 1.0):
        wing = _polygon((0.12, side * 0.5 * half_width), (0.12 - sweep, side * half_span),
                        (0.12 - sweep - tip_chord, side * half_span), (-0.12, side * 0.5 * half_width))
        tail = _polygon((-0.33, side * 0.5 * half_width), (-0.43, side * 0.18), (-0.49, side * 0.18),
                        (-0.46, side * 0.5 * half_width))
        parts += [("body", wing), ("body", tail)]
        if rng.random() < 0.6:
            parts.append(("shade", _ellipse(0.06 - 0.35 * sweep, side * 0.35 * half_span, 0.07, 0.025)))
    parts += [("body", fuselage), ("detail_window", _polygon((0.40, -0.5 * half_width), (0.46, -0.3 * half_width),
                                                             (0.46, 0.3 * half_width), (0.40, 0.5 * half_width)))]
    return parts


def _bird(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Bird in flight: plump body, round head, beak, fanned tail, two wings flapping up or down."""
    flap = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.0)  # negative: wings up (y down in images)
    wings = [("shade" if offset else "body",   # the far wing (offset) slightly behind the near one
              _polygon((0.10 - offset, 0.0), (-0.02 - offset, 0.50 * flap), (-0.12 - offset, 0.55 * flap),
                       (-0.16 - offset, 0.35 * flap), (-0.14 - offset, 0.0))) for offset in (0.0, 0.07)]
    body = _ellipse(0.0, 0.0, 0.28, 0.11)
    head = _ellipse(0.30, -0.07, 0.09, 0.09, count=16)
    beak = _polygon((0.37, -0.10), (0.50, -0.06), (0.37, -0.04))
    tail = _polygon((-0.24, -0.03), (-0.50, -0.10), (-0.48, 0.10), (-0.24, 0.04))
    eye = _ellipse(0.33, -0.09, 0.018, 0.018, count=8)
    return [wings[1], ("body", tail), ("body", body), ("body", head), ("accent", beak), wings[0], ("detail_dark", eye)]


def _car(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Car, side view: box body, cabin with windows, two dark wheels with hubcaps, headlight."""
    cabin_front, roof = rng.uniform(0.12, 0.22), rng.uniform(-0.30, -0.24)
    body = _polygon((-0.50, -0.04), (-0.46, -0.08), (0.38, -0.08), (0.50, -0.02), (0.50, 0.14), (-0.50, 0.14))
    cabin = _polygon((-0.32, -0.08), (-0.22, roof), (cabin_front, roof), (cabin_front + 0.14, -0.08))
    wheels = [(role, _ellipse(x, 0.14, radius, radius, count=count)) for x in (-0.30, 0.30)     # tyre, hubcap
              for role, radius, count in (("dark", 0.11, 20), ("detail_light", 0.045, 12))]
    return [("body", cabin), ("body", body),
            ("window", _polygon((-0.27, -0.10), (-0.20, roof + 0.03), (-0.06, roof + 0.03), (-0.06, -0.10))),
            ("window", _polygon((-0.02, -0.10), (-0.02, roof + 0.03), (cabin_front - 0.01, roof + 0.03),
                                (cabin_front + 0.10, -0.10))),
            *wheels, ("accent", _polygon((0.44, -0.01), (0.50, -0.01), (0.50, 0.03), (0.44, 0.03)))]


def _boat(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Sailing boat: trapezoid hull, cabin, mast, main sail and jib."""
    mast_height = rng.uniform(0.55, 0.80)
    hull = _polygon((-0.50, 0.04), (0.50, 0.04), (0.36, 0.22), (-0.40, 0.22))
    cabin = _polygon((-0.20, -0.06), (0.10, -0.06), (0.14, 0.04), (-0.24, 0.04))
    mast = _polygon((-0.02, -mast_height), (0.01, -mast_height), (0.01, 0.04), (-0.02, 0.04))
    sail = _polygon((0.02, -mast_height + 0.03), (0.02, -0.08), (0.38, -0.08))
    jib = _polygon((-0.03, -mast_height + 0.08), (-0.03, -0.08), (-0.30, -0.08))
    return [("body", hull), ("shade", cabin), ("dark", mast), ("sail", sail), ("sail", jib)]


# ----------------------------------------------------------------------------------------------------------
# Backgrounds: float32 (height, width, 3) RGB arrays.

def _jitter(rng: np.random.Generator, colour, amount: float = 15.0) -> np.ndarray:
    return np.clip(np.asarray(colour, dtype=np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cell: int, amplitude: float) -> np.ndarray:
    """Low-frequency noise (height, width, 3): a coarse random grid upsampled bilinearly."""
    grid = rng.normal(0.0, amplitude, (height // cell + 2, width // cell + 2, 3)).astype(np.float32)
    return resize(grid, (width, height))


def _sky(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Vertical gradient from a sky colour to a lighter horizon, with a few soft clouds."""
    top = _jitter(rng, SKY_TOPS[rng.integers(len(SKY_TOPS))])
    bottom = top + (255.0 - top) * rng.uniform(0.3, 0.7)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).copy()
    clouds = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(clouds)
    for _ in range(rng.integers(0, 4)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        size = rng.uniform(0.08, 0.25) * min(width, height)
        for _ in range(rng.integers(3, 7)):  # a cloud is a cluster of puffs
            px, py = cx + rng.normal(0, size), cy + rng.normal(0, 0.3 * size)
            rx, ry = size * rng.uniform(0.5, 1.0), size * rng.uniform(0.3, 0.6)
            draw.ellipse([px - rx, py - ry, px + rx, py + ry], fill=255)
    clouds = clouds.filter(ImageFilter.GaussianBlur(radius=0.04 * min(width, height)))
    alpha = np.asarray(clouds, dtype=np.float32)[:, :, None] / 255.0 * rng.uniform(0.4, 0.8)
    return sky * (1 - alpha) + 245.0 * alpha


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random base colour with coarse and fine noise (foliage, rock, fabric...)."""
    base = rng.uniform(40, 215, 3).astype(np.float32)
    coarse = _smooth_noise(rng, width, height, int(rng.integers(12, 40)), rng.uniform(15, 40))
    return base + coarse + rng.normal(0.0, rng.uniform(4, 14), (height, width, 3)).astype(np.float32)  # + fine noise


def _landscape(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Sky over textured ground, the horizon a wavy line at 35-75% of the height."""
    image = _sky(rng, width, height)
    columns = np.arange(width, dtype=np.float32)
    horizon = np.full(width, rng.uniform(0.35, 0.75) * height, dtype=np.float32)
    for _ in range(rng.integers(1, 4)):  # hills
        horizon += rng.uniform(0, 0.06) * height * np.sin(
            2 * np.pi * columns / (rng.uniform(0.3, 1.5) * width) + rng.uniform(0, 2 * np.pi))
    ground = _jitter(rng, GROUND_COLOURS[rng.integers(len(GROUND_COLOURS))], 20)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    ground_image = ground * (1.0 - 0.3 * ramp) + _smooth_noise(rng, width, height, 8, 12) \
        + rng.normal(0.0, 6.0, (height, width, 3)).astype(np.float32)
    below = np.arange(height, dtype=np.float32)[:, None] >= horizon[None, :]
    image[below] = ground_image[below]
    return image


def _colour_gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Linear gradient between two random colours at a random angle, with fine noise."""
    first, second = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    position = xs * np.cos(angle) + ys * np.sin(angle)
    position = (position - position.min()) / max(float(np.ptp(position)), 1.0)
    image = first * (1 - position[:, :, None]) + second * position[:, :, None]
    return (image + rng.normal(0.0, 5.0, (height, width, 3))).astype(np.float32)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    painter = (_sky, _texture, _landscape, _colour_gradient)[rng.choice(4, p=(0.3, 0.25, 0.3, 0.15))]
    return np.clip(painter(rng, width, height), 0, 255).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# Scenes

def _luminance(colour) -> float:
    colour = np.asarray(colour, dtype=np.float64)
    return float(colour[..., 0] * 0.299 + colour[..., 1] * 0.587 + colour[..., 2] * 0.114)


def _pick_colour(rng: np.random.Generator, palette, background_luminance: float, min_contrast: float):
    """A palette colour (jittered) at least ``min_contrast`` in luminance from the background, else the farthest."""
    contrasts = np.array([abs(_luminance(colour) - background_luminance) for colour in palette])
    candidates = np.flatnonzero(contrasts >= min_contrast)
    index = rng.choice(candidates) if len(candidates) else int(np.argmax(contrasts))
    return tuple(int(value) for value in _jitter(rng, palette[index], 12))


def _role_colours(rng: np.random.Generator, body) -> dict[str, tuple[int, int, int]]:
    body_array = np.asarray(body, dtype=np.float64)
    dark_body = _luminance(body) < 110
    colours = {
        "body": body_array, "shade": body_array * 0.65 + (90.0 if dark_body else 0.0),  # lighter on dark bodies
        "accent": rng.uniform(0, 255, 3), "dark": np.array([28.0, 28.0, 32.0]),
        "light": np.array([225.0, 230.0, 235.0]), "sail": np.array([245.0, 240.0, 225.0]),
        "window": np.array([150.0, 190.0, 225.0]) if dark_body else np.array([40.0, 55.0, 80.0]),
    }
    return {role: tuple(int(value) for value in np.clip(colour, 0, 255)) for role, colour in colours.items()}


def _transform(points: np.ndarray, mirror: bool, angle: float) -> np.ndarray:
    """Mirror (face left) then rotate local points by ``angle`` radians."""
    points = points * np.array([-1.0 if mirror else 1.0, 1.0])
    cos, sin = np.cos(angle), np.sin(angle)
    return points @ np.array([[cos, sin], [-sin, cos]])


def _sample_object(rng: np.random.Generator, name: str, width: int, height: int):
    """Random shape, orientation, size and position of one object: (parts in image pixels, attributes)."""
    plane = name == "aeroplane"
    side_view = not plane or rng.random() < 0.6    # a bird, car or boat is always seen from the side
    parts = {"bird": _bird, "car": _car, "boat": _boat}.get(name, _plane_side if side_view else _plane_top)(rng)
    mirror = bool(rng.random() < 0.5)
    tilt = {"aeroplane": 0.26 if side_view else 0.6, "bird": 0.4}.get(name, 0.12)    # radians
    angle = rng.uniform(-tilt, tilt)
    pose = ("Left" if mirror else "Right") if side_view else "Unspecified"
    if plane and rng.random() < TINY_PLANE_PROBABILITY:
        longest = rng.uniform(*TINY_PLANE_PIXELS)
    else:
        size_range = PLANE_SIZE_RANGE if plane else DISTRACTOR_SIZE_RANGE
        longest = min(width, height) * np.exp(rng.uniform(*np.log(size_range)))
    difficult = plane and longest < DIFFICULT_BELOW_PIXELS

    shapes = [(role, _transform(points, mirror, angle)) for role, points in parts]
    everything = np.concatenate([points for _, points in shapes])
    low, high = everything.min(axis=0), everything.max(axis=0)
    scale = longest / float(np.max(high - low))
    extent = (high - low) * scale
    # Top-left corner of the (unclipped) box; sometimes let the object stick out of the image.
    overhang = 0.3 * extent if (not difficult and rng.random() < TRUNCATION_PROBABILITY) else np.zeros(2)
    corner = np.array([rng.uniform(-overhang[0], width - extent[0] + overhang[0]),
                       rng.uniform(-overhang[1], height - extent[1] + overhang[1])])
    truncated = bool(np.any(corner < 0) or np.any(corner + extent > (width, height)))
    placed = [(role, (points - low) * scale + corner) for role, points in shapes
              if not (role.startswith("detail") and longest < 60)]
    return placed, dict(name=name, difficult=difficult, truncated=truncated, pose=pose)


def _silhouette(parts, width: int, height: int) -> np.ndarray:
    """Boolean (height, width) mask of the pixels the parts cover."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for _, points in parts:
        draw.polygon([tuple(point) for point in points], fill=255)
    return np.asarray(mask) > 0


def draw_scene(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, list[SceneObject]]:
    """Draw one random image: uint8 (height, width, 3) RGB and its objects in drawing order. A box spans the whole
    silhouette ``[x0, y0, x1, y1)``, as VOC boxes do, even where objects drawn later cover part of it."""
    canvas = Image.fromarray(np.round(_background(rng, width, height)).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)

    plane_count = rng.choice(len(PLANE_COUNT_PROBABILITIES), p=PLANE_COUNT_PROBABILITIES)
    distractor_count = rng.choice(len(DISTRACTOR_COUNT_PROBABILITIES), p=DISTRACTOR_COUNT_PROBABILITIES)
    names = ["aeroplane"] * int(plane_count) + [str(name) for name in rng.choice(DISTRACTOR_CLASSES, distractor_count)]
    names = [names[index] for index in rng.permutation(len(names))]

    owner = np.full((height, width), -1, dtype=np.int16)  # index of the object seen at each pixel
    objects: list[SceneObject] = []
    for name in names:
        for _ in range(PLACEMENT_ATTEMPTS):
            parts, attributes = _sample_object(rng, name, width, height)
            mask = _silhouette(parts, width, height)
            pixel_count = int(np.count_nonzero(mask))
            # the new object goes on top: it must show at least one pixel and leave enough of every earlier object
            visible = [np.count_nonzero((owner == index) & ~mask) / earlier.pixel_count
                       for index, earlier in enumerate(objects)]
            if pixel_count and all(fraction >= MIN_VISIBLE_FRACTION.get(earlier.name, MIN_VISIBLE_FRACTION_DISTRACTOR)
                                   for fraction, earlier in zip(visible, objects)):
                break
        else:
            continue  # no placement found in this crowded image: leave the object out
        for earlier, fraction in zip(objects, visible):
            earlier.visible_fraction = float(fraction)

        # paint, in a colour that stands out from what is under the object
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        under = np.asarray(canvas, dtype=np.float64)[mask].mean(axis=0)
        body = _pick_colour(rng, COLOURS[name], _luminance(under), MIN_CONTRAST.get(name, MIN_CONTRAST_DISTRACTOR))
        colours = _role_colours(rng, body)
        for role, points in parts:
            draw.polygon([tuple(point) for point in points], fill=colours[role.removeprefix("detail_")])

        owner[mask] = len(objects)
        box = np.array([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], dtype=np.float64)
        objects.append(SceneObject(box=box, pixel_count=pixel_count, **attributes))

    # mild sensor noise, so that flat colours are not exactly flat
    pixels = np.asarray(canvas, dtype=np.float32) + rng.normal(0.0, 2.0, (height, width, 3)).astype(np.float32)
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8), objects


# ----------------------------------------------------------------------------------------------------------
# Files

def _annotation_xml(image_id: str, width: int, height: int, objects: list[SceneObject]) -> bytes:
    """VOC annotation XML; bndbox in 1-based inclusive pixels (xmin = x0 + 1, xmax = x1)."""
    elements = [("folder", "SyntheticVOC"), ("filename", f"{image_id}.jpg"), ("source", [("database", DATABASE_NAME)]),
                ("size", [("width", width), ("height", height), ("depth", 3)]), ("segmented", 0)]
    for scene_object in objects:
        x0, y0, x1, y1 = (int(value) for value in scene_object.box)
        elements.append(("object", [
            ("name", scene_object.name), ("pose", scene_object.pose), ("truncated", int(scene_object.truncated)),
            ("difficult", int(scene_object.difficult)),
            ("bndbox", [("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)])]))
    return voc_xml([("annotation", elements)]).encode("utf-8")


def generate_synthetic_voc(root, num_trainval: int = 200, num_test: int = 100, seed: int = 0,
                           min_size: int = 160, max_size: int = 320) -> Path:
    """Write a synthetic VOC dataset into ``root`` (created if needed, files overwritten); returns ``Path(root)``.
    Image sides are drawn independently in ``[min_size, max_size]``. ``trainval.txt`` is written last, so
    :func:`ensure_synthetic_voc` sees an interrupted run as incomplete."""
    for label, value, least in (("num_trainval", num_trainval, 1), ("num_test", num_test, 1),
                                ("min_size", min_size, 32), ("max_size", max_size, min_size)):  # min_size checked first
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            least = f"min_size ({min_size})" if label == "max_size" else least
            raise UserError(f"{label} must be an integer >= {least}, got {value!r}")
    if num_trainval + num_test > 999_999:
        raise UserError(f"at most 999999 images (6-digit ids), got {num_trainval + num_test}")

    root = Path(root)
    folders = {name: root / name for name in ("JPEGImages", "Annotations", "ImageSets/Main")}
    try:
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the dataset folder {root}: {error}") from None

    total = num_trainval + num_test
    image_ids = [f"{number:06d}" for number in range(1, total + 1)]
    scenes = {}     # image id -> its objects
    for image_id, rng in zip(image_ids, map(np.random.default_rng, np.random.SeedSequence(seed).spawn(total))):
        width, height = (int(value) for value in rng.integers(min_size, max_size + 1, 2))
        pixels, objects = draw_scene(rng, width, height)
        Image.fromarray(pixels, "RGB").save(folders["JPEGImages"] / f"{image_id}.jpg", "JPEG", quality=95)
        (folders["Annotations"] / f"{image_id}.xml").write_bytes(_annotation_xml(image_id, width, height, objects))
        scenes[image_id] = objects
    for split, part in (("test", slice(num_trainval, total)), ("trainval", slice(0, num_trainval))):
        write_image_set(root, split, image_ids[part], lambda image_id, name: image_label(
            [scene_object.difficult for scene_object in scenes[image_id] if scene_object.name == name]))
    return root


def ensure_synthetic_voc(root, **kwargs) -> Path:
    """``Path(root)``, generated first (with ``kwargs``) when ``ImageSets/Main/trainval.txt`` is absent; an existing
    one is kept whatever ``kwargs``. Written in a temporary folder and renamed: concurrent runs read a whole one."""
    root, written_last = Path(root), Path("ImageSets", "Main", "trainval.txt")
    if (root / written_last).is_file():
        return root
    print(f"Generating the synthetic VOC dataset in {root} ...", flush=True)
    try:
        write_folder(root, lambda temporary: generate_synthetic_voc(temporary, **kwargs), written_last)
    except OSError as error:
        raise UserError(f"cannot create the dataset folder {root}: {error}") from None
    return root


def main(argv=None) -> int:
    parser = OneLineParser(description="Generate the synthetic PASCAL VOC dataset (aeroplanes and distractors) used "
                                       "by the demo and the tests.", listed="option")
    parser.add_argument("--root", default="data/synthetic_voc", help="output folder (default: %(default)s)")
    for flag, default, text in (("num_trainval", 200, "trainval images"), ("num_test", 100, "test images"),
                                ("seed", 0, "random seed"), ("min_size", 160, "smallest image side"),
                                ("max_size", 320, "largest image side")):
        parser.add_argument(f"--{flag}", type=int, default=default, help=f"{text} (default: %(default)s)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        root = generate_synthetic_voc(**vars(args))     # the flags are the function's parameters
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    positives = {split: sum(line.split()[1] == "1" for line in
                            (root / "ImageSets" / "Main" / f"aeroplane_{split}.txt").read_text().splitlines())
                 for split in ("trainval", "test")}
    print(f"Wrote {args.num_trainval} trainval + {args.num_test} test images to {root} in "
          f"{time.perf_counter() - start:.1f} s; images with an aeroplane: {positives['trainval']} trainval, "
          f"{positives['test']} test")
    return 0


if __name__ == "__main__":
    main_guard(lambda: sys.exit(main()))
