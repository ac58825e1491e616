"""PASCAL VOC files: class names, annotation XML, image-set lists.

This module knows the VOC layout and nothing about pixels:

    <path_voc>/Annotations/<id>.xml
    <path_voc>/ImageSets/Main/<set>.txt            one image id per line
    <path_voc>/ImageSets/Main/<class>_<set>.txt    "<id> <label>": 1 present, -1 absent, 0 difficult only

Boxes are float64 arrays ``[x0, y0, x1, y1)``: half-open corners in pixels of the original image. VOC XML stores
1-based inclusive pixels, so ``x0 = xmin - 1`` and ``x1 = xmax`` (same for y); boxes are clipped to
``[0, width] x [0, height]`` from ``<size>``.

Every problem with the user's files raises :class:`errors.UserError` naming the file. A single broken object
inside an otherwise readable annotation is skipped with a ``UserWarning`` instead, so one bad box does not make a
whole dataset unusable.
"""

from __future__ import annotations

import gzip
import math
import os
from collections import Counter
import warnings
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Iterable

import numpy as np

from runs.errors import UserError
from runs.runtime import write_atomically, write_folder

# The 20 PASCAL VOC classes; a class id is the index + 1 (aeroplane = 1 ... tvmonitor = 20).
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def class_id(class_object) -> int:
    """The VOC class id (1..20) of ``class_object``: an id (int or digit string) or a name (any case)."""
    valid = ", ".join(f"{index + 1}={name}" for index, name in enumerate(VOC_CLASSES))
    # bool is an int subclass; True meaning "aeroplane" would only hide a mistake.
    if isinstance(class_object, (int, np.integer)) and not isinstance(class_object, bool):
        if 1 <= int(class_object) <= len(VOC_CLASSES):
            return int(class_object)
        raise UserError(f"class_object {class_object!r} is out of range 1..{len(VOC_CLASSES)}; valid: {valid}")
    if isinstance(class_object, str):
        text = class_object.strip().lower()
        if text.isdigit() and 1 <= int(text) <= len(VOC_CLASSES):
            return int(text)
        if text in VOC_CLASSES:
            return VOC_CLASSES.index(text) + 1
    raise UserError(f"class_object {class_object!r} is not a VOC class; valid: {valid}")


def class_name(class_object) -> str:
    """The VOC class name ('aeroplane', ...) of ``class_object`` (as :func:`class_id` takes it)."""
    return VOC_CLASSES[class_id(class_object) - 1]


def class_ids(class_object) -> list[int]:
    """The VOC class ids that ``class_object`` names: an id or a name (one class), ``all`` (the 20, in id order) or
    a comma list of ids and names (``1,bird,car``, in the order given, repeats dropped)."""
    text = str(class_object).strip().lower()
    if text == "all":
        return list(range(1, len(VOC_CLASSES) + 1))
    if "," not in text:
        return [class_id(class_object)]
    ids = []
    for item in (item.strip() for item in text.split(",")):
        if not item:
            raise UserError(f"class_object {class_object!r}: an empty item in the comma list")
        ids.append(class_id(item))
    return list(dict.fromkeys(ids))


def several_classes(class_object) -> bool:
    """Whether ``class_object`` names a list of classes (``all`` or a comma list) rather than one class."""
    text = str(class_object).strip().lower()
    return text == "all" or "," in text


def _target_name(class_object) -> str:
    """Name to compare object names with: a VOC class by id or name, or any other (custom) name as given."""
    try:
        return class_name(class_object)
    except UserError:
        if isinstance(class_object, str):
            return class_object.strip().lower()
        raise


@dataclass
class VocObject:
    """One annotated object. ``box`` is float64 ``[x0, y0, x1, y1)`` in image pixels, clipped to the image."""

    name: str
    box: np.ndarray
    difficult: bool


@dataclass
class Annotation:
    """The parsed ``Annotations/<image_id>.xml``: image size from ``<size>`` and the usable objects."""

    image_id: str
    width: int
    height: int
    objects: list[VocObject] = field(default_factory=list)
    skipped_objects: int = 0        # broken objects left out (each with a UserWarning)

    def boxes_of(self, class_name: str, include_difficult: bool = True) -> np.ndarray:
        """Boxes ``[x0, y0, x1, y1)`` of the objects named ``class_name`` (or a class id), float64 ``(n, 4)``
        (possibly ``(0, 4)``), in the XML file's order."""
        name = _target_name(class_name)
        boxes = [obj.box for obj in self.objects if obj.name == name and (include_difficult or not obj.difficult)]
        return np.array(boxes, dtype=np.float64).reshape(-1, 4)

    def difficult_of(self, class_name: str) -> np.ndarray:
        """``(n,)`` bool flags aligned with ``boxes_of(class_name, include_difficult=True)``."""
        name = _target_name(class_name)
        return np.array([obj.difficult for obj in self.objects if obj.name == name], dtype=bool)


def _number(element: ElementTree.Element | None, tag: str) -> float | None:
    """The finite number in ``element/<tag>``, or None when it is missing or not a finite number."""
    try:
        value = float(element.findtext(tag).strip())    # AttributeError: no element, or no <tag> in it
    except (AttributeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def parse_annotation(xml_path) -> Annotation:
    """Parse one VOC annotation file (boxes ``[x0, y0, x1, y1)``, see module doc). A file that is missing, does not
    parse or lacks a positive ``<size>`` raises UserError; a broken object is skipped with a UserWarning."""
    xml_path = Path(xml_path)
    if not xml_path.is_file():
        raise UserError(f"annotation file not found: {xml_path}")
    try:
        root = ElementTree.parse(xml_path).getroot()
    except (ElementTree.ParseError, OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot parse annotation file {xml_path}: {error}") from None

    width, height = (_number(root.find("size"), tag) for tag in ("width", "height"))
    if width is None or height is None:
        raise UserError(f"annotation file {xml_path} lacks <size> with numeric <width> and <height>")
    if width < 1 or height < 1 or width != int(width) or height != int(height):
        raise UserError(f"annotation file {xml_path} has an invalid image size {width} x {height}")
    width, height = int(width), int(height)

    objects = []
    elements = root.findall("object")
    for index, element in enumerate(elements):
        name = (element.findtext("name") or "").strip().lower()
        where = f"{xml_path}: object {index} ({name or 'no name'})"
        bndbox = element.find("bndbox")
        xmin, ymin, xmax, ymax = corners = [_number(bndbox, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        if not name:
            problem = "has no <name>"
        elif bndbox is None:
            problem = "has no <bndbox>"
        elif None in corners:
            problem = "has a missing or non-numeric coordinate in <bndbox>"
        elif xmin > xmax or ymin > ymax:
            problem = f"has a reversed <bndbox> (xmin {xmin:g} > xmax {xmax:g} or ymin {ymin:g} > ymax {ymax:g})"
        else:
            # 1-based inclusive pixels -> half-open 0-based corners, clipped to the image.
            box = np.clip(np.array([xmin - 1, ymin - 1, xmax, ymax], dtype=np.float64), 0, [width, height] * 2)
            empty = box[2] <= box[0] or box[3] <= box[1]
            problem = f"has zero area inside the {width} x {height} image" if empty else None
        if problem:
            warnings.warn(f"{where} {problem}; skipped", UserWarning, stacklevel=2)
            continue
        difficult_value = _number(element, "difficult")
        if element.find("difficult") is not None and difficult_value is None:
            warnings.warn(f"{where} has a non-numeric <difficult>; taken as not difficult", UserWarning, stacklevel=2)
        objects.append(VocObject(name=name, box=box, difficult=bool(difficult_value)))

    return Annotation(image_id=xml_path.stem, width=width, height=height, objects=objects,
                      skipped_objects=len(elements) - len(objects))


def _image_sets_folder(path_voc) -> Path:
    """``<path_voc>/ImageSets/Main``, after checking that the dataset folder exists."""
    path_voc = Path(path_voc)
    if not path_voc.is_dir():
        raise UserError(f"dataset folder not found: {path_voc}")
    return path_voc / "ImageSets" / "Main"


def _numbered_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped line)`` of the non-empty lines of an image-set file; UserError if it is missing."""
    if not path.is_file():
        raise UserError(f"image set file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")     # UTF-8, with or without the byte-order mark of Windows
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read image set file {path}: {error}") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


MAX_IMAGE_ID_BYTES = 200        # a file name holds 255 bytes: room for ``.jpg``, ``.xml``, ``.png``, ``.gif`` and more


def check_image_id(image_id, where) -> str:
    """``image_id`` when it names a file inside its folder (``JPEGImages/<id>.jpg``, ``searches/<id>.png`` …); a
    UserError naming ``where`` (its file and line) for an id that would lead outside the folder (a path separator,
    ``..``, a drive, a NUL) or is too long for a file name."""
    if ("/" in image_id or "\\" in image_id or "\0" in image_id or image_id in (".", "..")
            or PureWindowsPath(image_id).drive):
        raise UserError(f"{where}: image id {image_id!r} is not a file name (a path separator, '..' or a drive): "
                        f"it would lead outside the dataset and output folders")
    if len(os.fsencode(image_id)) > MAX_IMAGE_ID_BYTES:
        raise UserError(f"{where}: image id {image_id[:40]!r}... is {len(os.fsencode(image_id))} bytes long, more "
                        f"than the {MAX_IMAGE_ID_BYTES} that leave room for its files' suffixes in a file name")
    return image_id


def read_class_image_set(path_voc, class_object, set_name, labels: Iterable[int] = (1,)) -> list[str]:
    """Image ids of ``ImageSets/Main/<class>_<set_name>.txt`` whose label (1 present, -1 absent, 0 difficult only)
    is in ``labels``, in file order, each once (a repeat is dropped with a warning: testing would count it twice)."""
    labels = tuple(int(label) for label in labels)
    path = _image_sets_folder(path_voc) / f"{class_name(class_object)}_{set_name}.txt"
    image_ids = []
    for number, line in _numbered_lines(path):
        columns = line.split()
        try:
            image_id, label = columns[0], int(columns[1])
        except (IndexError, ValueError):
            raise UserError(f"{path}, line {number}: expected '<image id> <label>', got {line[:80]!r}") from None
        check_image_id(image_id, f"{path}, line {number}")
        if label in labels:
            image_ids.append(image_id)
    if not image_ids:
        raise UserError(f"no images with label {' or '.join(str(label) for label in labels)} in {path}")
    counts = Counter(image_ids)
    if len(counts) < len(image_ids):
        again = next(image_id for image_id, count in counts.items() if count > 1)
        warnings.warn(f"{path} lists {len(image_ids) - len(counts)} image id(s) again (first: {again}); each image is "
                      f"used once", UserWarning, stacklevel=2)
    return list(counts)


def image_label(difficult) -> int:
    """An image's label for a class, from the ``difficult`` flags of its objects of that class: 1 (a non-difficult
    one), 0 (only difficult ones) or -1 (none)."""
    return -1 if not difficult else 0 if all(difficult) else 1


def write_image_set(path_voc, set_name, image_ids, label) -> None:
    """Write ``ImageSets/Main/<class>_<set_name>.txt`` for the 20 classes (labels from ``label(image_id, class
    name)``, see :func:`image_label`), then ``<set_name>.txt``, each atomically: a reader never sees half a list."""
    def write(name, lines):
        write_atomically(Path(path_voc) / "ImageSets" / "Main" / f"{name}.txt",
                         lambda temporary: temporary.write_text("".join(f"{line}\n" for line in lines)))
    for name in VOC_CLASSES:
        # VOC spacing: "%s %2d", i.e. "000005 -1" and "000005  1"
        write(f"{name}_{set_name}", [f"{image_id} {label(image_id, name):2d}" for image_id in image_ids])
    write(set_name, image_ids)


def annotation_path(path_voc, image_id) -> Path:
    """``<path_voc>/Annotations/<image_id>.xml``."""
    return Path(path_voc) / "Annotations" / f"{image_id}.xml"


@dataclass
class ImageRecord:
    """One image of a dataset root: where it lives and its parsed annotation."""

    path_voc: Path
    image_id: str
    annotation: Annotation


def load_records(paths_voc, class_object, set_name, max_images: int | None = None,
                 skipped: list | None = None) -> list[ImageRecord]:
    """Records of the images containing ``class_object`` (label 1 in ``<class>_<set_name>.txt``) in ``paths_voc``,
    one root or a list (``two_databases``) whose image lists are concatenated, then truncated to ``max_images``.
    A missing or unusable annotation raises UserError, unless ``skipped`` is a list: then the image is left out
    with a UserWarning and ``(path_voc, image_id, problem)`` appended; UserError only when no image is left."""
    paths_voc = [paths_voc] if isinstance(paths_voc, (str, os.PathLike)) else list(paths_voc)
    if not paths_voc:
        raise UserError("no dataset folder given (path_voc is empty)")
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer))
                                   or max_images < 1):
        raise UserError(f"max_images must be a positive integer or None, got {max_images!r}")

    # every root's list first, so a wrong second root fails before minutes of parsing the first
    wanted = [(Path(path_voc), image_id) for path_voc in paths_voc
              for image_id in read_class_image_set(path_voc, class_object, set_name)]
    records, problems = [], []
    for path_voc, image_id in wanted[:max_images]:
        try:
            records.append(ImageRecord(path_voc, image_id, parse_annotation(annotation_path(path_voc, image_id))))
        except UserError as error:
            if skipped is None:
                raise
            warnings.warn(f"{error}; image {image_id} skipped", UserWarning, stacklevel=2)
            problems.append((path_voc, image_id, str(error)))
    if skipped is not None:
        skipped.extend(problems)
        if not records:
            raise UserError(f"none of the {len(problems)} images of {class_name(class_object)}_{set_name}.txt has a "
                            f"usable annotation (first: {problems[0][2]})")
    return records


# ---------------------------------------------------------------------------------------------------------------
# compact annotations: a whole VOC annotation set in one small text file, unpacked to the VOC layout on first use

VOC2007_TEST_COMPACT = Path(__file__).resolve().parent / "annotations" / "voc2007_test.tsv.gz"
VOC2007_TEST_FOLDER = Path("data/VOC2007_test_annotations")
COMPACT_COLUMNS = ("image_id", "width", "height", "depth", "name", "xmin", "ymin", "xmax", "ymax", "difficult")


def voc_xml(elements: list, depth: int = 0) -> str:
    """VOC annotation XML of ``elements``, ``(tag, value)`` pairs whose value is text or a list of such pairs,
    tab-indented one element a line; values are not escaped (VOC's names and numbers need none)."""
    indent = "\t" * depth
    return "".join(f"{indent}<{tag}>\n{voc_xml(value, depth + 1)}{indent}</{tag}>\n" if isinstance(value, list)
                   else f"{indent}<{tag}>{value}</{tag}>\n" for tag, value in elements)


def unpack_compact_annotations(compact_file, path_voc, set_name="test") -> Path:
    """Write the VOC layout (annotations and image sets) of a compact annotation file (gzip'd TSV, one object a
    line with the ``COMPACT_COLUMNS``, VOC's 1-based inclusive pixels) into ``path_voc``; returns ``path_voc``.
    Written to a temporary folder and renamed, so runs unpacking it at once all read a whole one."""
    compact_file, path_voc = Path(compact_file), Path(path_voc)
    try:
        with gzip.open(compact_file, "rt") as handle:
            header, *rows = [line.rstrip("\n").split("\t") for line in handle if line.strip()]
    except (OSError, EOFError) as error:
        raise UserError(f"{compact_file}: not a readable compact annotation file ({error})") from None
    if tuple(header) != COMPACT_COLUMNS:
        raise UserError(f"{compact_file}: expected the columns {', '.join(COMPACT_COLUMNS)}")
    images: dict[str, dict] = {}
    for number, row in enumerate(rows, start=2):
        if len(row) != len(COMPACT_COLUMNS):
            raise UserError(f"{compact_file}, line {number}: {len(row)} columns, expected {len(COMPACT_COLUMNS)}")
        image_id, width, height, depth, *voc_object = row      # voc_object: name, xmin, ymin, xmax, ymax, difficult
        check_image_id(image_id, f"{compact_file}, line {number}")
        images.setdefault(image_id, {"size": (width, height, depth), "objects": []})["objects"].append(voc_object)

    def write(temporary):
        (temporary / "Annotations").mkdir()
        for image_id, image in images.items():
            size = list(zip(("width", "height", "depth"), image["size"]))
            objects = [("object", [("name", name), ("difficult", difficult),
                                   ("bndbox", list(zip(("xmin", "ymin", "xmax", "ymax"), box)))])
                       for name, *box, difficult in image["objects"]]
            (temporary / "Annotations" / f"{image_id}.xml").write_text(
                voc_xml([("annotation", [("filename", f"{image_id}.jpg"), ("size", size), *objects])]))
        write_image_set(temporary, set_name, sorted(images), lambda image_id, name: image_label(
            [int(difficult) for object_name, *_, difficult in images[image_id]["objects"] if object_name == name]))
    write_folder(path_voc, write, Path("ImageSets") / "Main" / f"{set_name}.txt")
    return path_voc


def ensure_voc2007_test_annotations(path_voc=VOC2007_TEST_FOLDER) -> Path:
    """The VOC 2007 test annotations (no images) at ``path_voc``, unpacked from ``annotations/voc2007_test.tsv.gz``
    unless already there."""
    path_voc = Path(path_voc)
    if not (path_voc / "ImageSets" / "Main" / "test.txt").is_file():
        unpack_compact_annotations(VOC2007_TEST_COMPACT, path_voc, "test")
    return path_voc
