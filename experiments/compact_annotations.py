"""The compact annotations file (annotations/README.md): a VOC-layout annotation set as one gzip'd tab-separated
file, one object a line, the form ``parse_xml_annotations.unpack_compact_annotations`` turns back into the VOC
layout. How the VOC 2007 test copy in annotations/ was written:

    python experiments/compact_annotations.py VOCdevkit/VOC2007 test annotations/voc2007_test.tsv.gz
"""
import argparse
import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parse_xml_annotations import (COMPACT_COLUMNS, VOC_CLASSES, _image_sets_folder, _numbered_lines,  # noqa: E402
                                   annotation_path, check_image_id, parse_annotation)
from runs.errors import UserError  # noqa: E402


def read_image_set(path_voc, set_name) -> list[str]:
    """Image ids listed in ``ImageSets/Main/<set_name>.txt`` (first column), in file order."""
    path = _image_sets_folder(path_voc) / f"{set_name}.txt"
    image_ids = [check_image_id(line.split()[0], f"{path}, line {number}") for number, line in _numbered_lines(path)]
    if not image_ids:
        raise UserError(f"image set file {path} lists no images")
    return image_ids


def write_compact_annotations(path_voc, set_name, out_file):
    """Write the annotations of ``<path_voc>/ImageSets/Main/<set_name>.txt`` as one gzip'd tab-separated file, one
    object a line (``parse_xml_annotations.COMPACT_COLUMNS``; VOC's 1-based inclusive pixels as in the XML), the form
    ``unpack_compact_annotations`` reads. An object is marked difficult when its XML says so or when
    ``<class>_<set>.txt`` labels its image 0 (difficult only). Returns the number of objects written."""
    image_ids = read_image_set(path_voc, set_name)
    class_lists = {name: _image_sets_folder(path_voc) / f"{name}_{set_name}.txt" for name in VOC_CLASSES}
    difficult_only = {(line.split()[0], name) for name, path in class_lists.items() if path.is_file()
                      for _, line in _numbered_lines(path) if line.split()[1:2] == ["0"]}
    lines = ["\t".join(COMPACT_COLUMNS)]
    for image_id in image_ids:
        annotation = parse_annotation(annotation_path(path_voc, image_id))
        for obj in annotation.objects:
            x0, y0, x1, y1 = (int(round(value)) for value in obj.box)
            difficult = int(obj.difficult or (image_id, obj.name) in difficult_only)
            lines.append("\t".join(str(value) for value in (image_id, annotation.width, annotation.height, 3,
                                                             obj.name, x0 + 1, y0 + 1, x1, y1, difficult)))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out_file, "wt", compresslevel=9) as handle:
        handle.write("\n".join(lines) + "\n")
    return len(lines) - 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("path_voc", help="a VOC root (Annotations/, ImageSets/Main/)")
    parser.add_argument("set_name", help="the image set, e.g. test")
    parser.add_argument("out_file", help="the .tsv.gz file to write")
    args = parser.parse_args()
    print(f"{write_compact_annotations(args.path_voc, args.set_name, args.out_file)} objects in {args.out_file}")
