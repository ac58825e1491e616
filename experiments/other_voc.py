"""A second, differently drawn VOC-format dataset, to check that what helps on the synthetic dataset carries over.

Not the demo's data and not drawn by ``synthetic_dataset.py`` (the yardstick, which a change must not be tuned
to): here an aeroplane is a cross (a fuselage, a straight wing, a tailplane) at any rotation, and there are two
kinds of scene:

    plain       1-2 large aeroplanes (40-90% of the shorter side) on a near-uniform sky
    cluttered   0-3 aeroplanes (12-75%, log-uniform), 3-8 distractors (stars as "bird", blobs as "car") over a
                blurred clutter of coloured ellipses and stripes

It writes the VOC layout the scripts read (``JPEGImages/``, ``Annotations/``, ``ImageSets/Main/`` with
``trainval.txt``, ``test.txt`` and ``<class>_<set>.txt`` for aeroplane, bird and car). Boxes are the tight boxes of
the drawn pixels. The same seed gives the same files.

    python experiments/other_voc.py data/other_voc_plain plain
    python experiments/other_voc.py data/other_voc_cluttered cluttered
    python experiments/learning_benchmark.py --path_voc data/other_voc_cluttered ...
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("aeroplane", "bird", "car")


def placed(points, angle, centre_x, centre_y, size):
    """Polygon ``points`` (unit size, centred on 0) rotated by ``angle``, scaled to ``size`` pixels, moved."""
    cos, sin = np.cos(angle), np.sin(angle)
    scaled = np.asarray(points, float) * size
    return [(centre_x + x * cos - y * sin, centre_y + x * sin + y * cos) for x, y in scaled]


def aeroplane_parts(rng):
    """Fuselage, wing and tailplane of a plane one unit long along x."""
    span = rng.uniform(0.7, 1.0)
    fuselage = [(-0.5, -0.05), (0.45, -0.05), (0.5, 0), (0.45, 0.05), (-0.5, 0.05)]
    wing_x = rng.uniform(-0.1, 0.15)
    wing = [(wing_x - 0.08, -span / 2), (wing_x + 0.06, -span / 2), (wing_x + 0.1, span / 2),
            (wing_x - 0.04, span / 2)]
    tail = [(-0.5, -0.18), (-0.4, -0.18), (-0.35, 0.18), (-0.45, 0.18)]
    return [fuselage, wing, tail]


def star_parts(points):
    angles = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False)
    radii = np.where(np.arange(2 * points) % 2 == 0, 0.5, 0.2)
    return [list(zip(radii * np.cos(angles), radii * np.sin(angles)))]


def blob_parts(rng):
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    radii = rng.uniform(0.25, 0.5, 12)
    return [list(zip(radii * np.cos(angles), radii * np.sin(angles)))]


def draw_shape(image, parts, angle, centre_x, centre_y, size, colour):
    """Fill the parts in ``colour``; returns the drawn pixels' box ``[x0, y0, x1, y1)``, or None if none show."""
    mask = Image.new("L", image.size, 0)
    drawing = ImageDraw.Draw(mask)
    for part in parts:
        drawing.polygon(placed(part, angle, centre_x, centre_y, size), fill=255)
    image.paste(Image.new("RGB", image.size, colour), (0, 0), mask)
    ys, xs = np.nonzero(np.asarray(mask) > 127)
    if len(xs) == 0:
        return None
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def random_colour(rng, low=0, high=256):
    return tuple(int(value) for value in rng.randint(low, high, 3))


def plain_scene(rng, width, height):
    sky = np.array([rng.randint(90, 160), rng.randint(150, 210), rng.randint(200, 256)])
    image = Image.fromarray(np.clip(sky + rng.normal(0, 4, (height, width, 3)), 0, 255).astype(np.uint8))
    objects = []
    for _ in range(rng.randint(1, 3)):
        size = rng.uniform(0.4, 0.9) * min(width, height)
        box = draw_shape(image, aeroplane_parts(rng), rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.75) * width,
                         rng.uniform(0.25, 0.75) * height, size, random_colour(rng, 0, 110))
        if box:
            objects.append(("aeroplane", box))
    return image, objects


def cluttered_scene(rng, width, height):
    image = Image.new("RGB", (width, height), random_colour(rng))
    drawing = ImageDraw.Draw(image)
    for _ in range(rng.randint(15, 40)):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        radius_x, radius_y = rng.uniform(5, 0.4 * width), rng.uniform(5, 0.4 * height)
        if rng.rand() < 0.5:
            drawing.ellipse([x - radius_x, y - radius_y, x + radius_x, y + radius_y], fill=random_colour(rng))
        else:
            drawing.line([x - radius_x, y - radius_y, x + radius_x, y + radius_y], fill=random_colour(rng),
                         width=int(rng.randint(2, 12)))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
    objects = []
    for _ in range(rng.randint(3, 9)):
        size = rng.uniform(0.08, 0.4) * min(width, height)
        name, parts = ("bird", star_parts(rng.randint(4, 7))) if rng.rand() < 0.5 else ("car", blob_parts(rng))
        box = draw_shape(image, parts, rng.uniform(0, 2 * np.pi), rng.uniform(0, width), rng.uniform(0, height),
                         size, random_colour(rng))
        if box:
            objects.append((name, box))
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        size = np.exp(rng.uniform(np.log(0.12), np.log(0.75))) * min(width, height)
        box = draw_shape(image, aeroplane_parts(rng), rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.85) * width,
                         rng.uniform(0.15, 0.85) * height, size, random_colour(rng))
        if box:
            objects.append(("aeroplane", box))
    return image, objects


def annotation_xml(image_id, width, height, objects):
    """VOC XML; bndbox 1-based inclusive (xmin = x0 + 1, xmax = x1)."""
    parts = [f"<annotation><filename>{image_id}.jpg</filename><size><width>{width}</width>"
             f"<height>{height}</height><depth>3</depth></size>"]
    for name, (x0, y0, x1, y1) in objects:
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
                     f"<difficult>0</difficult><bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin>"
                     f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def generate(root, kind, num_trainval=80, num_test=60, seed=1):
    rng = np.random.RandomState(seed)
    scene = {"plain": plain_scene, "cluttered": cluttered_scene}[kind]
    root = Path(root)
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    image_ids = [f"{number:06d}" for number in range(1, num_trainval + num_test + 1)]
    present = {}
    for image_id in image_ids:
        width, height = (int(side) for side in rng.randint(200, 361, 2))
        image, objects = scene(rng, width, height)
        image.save(root / "JPEGImages" / f"{image_id}.jpg", quality=92)
        (root / "Annotations" / f"{image_id}.xml").write_text(annotation_xml(image_id, width, height, objects))
        present[image_id] = {name for name, _ in objects}
    main = root / "ImageSets" / "Main"
    for split, ids in (("trainval", image_ids[:num_trainval]), ("test", image_ids[num_trainval:])):
        (main / f"{split}.txt").write_text("".join(f"{image_id}\n" for image_id in ids))
        for name in CLASSES:
            (main / f"{name}_{split}.txt").write_text(
                "".join(f"{image_id} {1 if name in present[image_id] else -1:2d}\n" for image_id in ids))
    return root


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules
    from runs.runtime import OneLineParser
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, listed="option")
    parser.add_argument("root", help="folder to write")
    parser.add_argument("kind", choices=("plain", "cluttered"))
    parser.add_argument("--num_trainval", type=int, default=80)
    parser.add_argument("--num_test", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    print(generate(arguments.root, arguments.kind, arguments.num_trainval, arguments.num_test, arguments.seed))
