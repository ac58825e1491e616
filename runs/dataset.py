"""Loading a run's annotated images, and the report of what could not be used.

An image that is missing, unreadable or larger than the ``max_pixels`` setting, or whose annotation is missing or
does not parse, is skipped with a warning and counted (end-of-run summary, ``skipped_images`` in results.json); the
runs raise UserError when nothing is left.
"""
import warnings

from runs.errors import UserError


class SkipReport:
    """What a run left out, and why: images (an unreadable image or annotation file) and broken objects."""

    def __init__(self):
        # images: "<root>/<id>" (or a file) → the problem; objects: how many were dropped from otherwise readable
        # annotations; size_warned: the images whose size differs from their annotation's, warned about
        self.images, self.objects, self.size_warned = {}, 0, set()

    def skip_image(self, key, problem, warn=True):
        """Record an unusable image (a warning the first time only: training meets it every epoch)."""
        if key not in self.images:
            self.images[key] = problem
            if warn:
                warnings.warn(f"{problem}; skipped", UserWarning, stacklevel=2)

    def add_records(self, records, annotation_problems):
        """The result of ``load_records(..., skipped=annotation_problems)``: already warned about."""
        for path_voc, image_id, problem in annotation_problems:
            self.skip_image(f"{path_voc}/{image_id}", problem, warn=False)
        self.objects += sum(record.annotation.skipped_objects for record in records)

    def summary(self):
        """One line for the end of a run ('' when nothing was skipped)."""
        counts = [(len(self.images), "image", ""), (self.objects, "broken object", " in annotations")]
        parts = [f"{count} {noun}{'s' if count != 1 else ''}{where}" for count, noun, where in counts if count]
        return "skipped " + " and ".join(parts) + " (see the warnings above)" if parts else ""

    def print_summary(self):
        """Print the summary line at the end of a run, when something was skipped."""
        if self.summary():
            print(self.summary())

    def as_json(self):
        return {"skipped_images": len(self.images), "skipped_objects": self.objects,
                "skipped": [{"image": key, "problem": problem} for key, problem in self.images.items()]}


def load_record_image(record, report, max_pixels=None):
    """The pixels of an annotated image, or None (recorded in ``report``, warned once) when missing, unreadable, a
    decompression bomb or over ``max_pixels`` (``image_helper.MAX_PIXELS`` when None; checked before decoding). An
    image whose size differs from its annotation's ``<size>`` is used at its own size, with a warning."""
    from image_helper import image_path, load_image
    key = f"{record.path_voc}/{record.image_id}"
    try:
        image = load_image(image_path(record.path_voc, record.image_id), max_pixels)
    except UserError as error:
        report.skip_image(key, str(error))
        return None
    height, width = image.shape[:2]
    if (height, width) != (record.annotation.height, record.annotation.width) and key not in report.size_warned:
        report.size_warned.add(key)
        warnings.warn(f"{image_path(record.path_voc, record.image_id)} is {width} x {height} pixels but its "
                      f"annotation says {record.annotation.width} x {record.annotation.height}; the image's size is "
                      f"used", UserWarning, stacklevel=2)
    return image
