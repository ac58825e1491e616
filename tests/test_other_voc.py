"""experiments/other_voc.py: the second, differently drawn VOC-format dataset reads like VOC, with tight boxes."""
import numpy as np
import pytest
from PIL import Image

from experiments import other_voc
from parse_xml_annotations import load_records


@pytest.mark.parametrize("kind", ["plain", "cluttered"])
def test_other_voc_reads_as_voc_with_boxes_on_the_drawn_pixels(tmp_path, kind):
    root = other_voc.generate(tmp_path / kind, kind, num_trainval=6, num_test=4, seed=3)
    records = load_records(root, "aeroplane", "trainval") + load_records(root, "aeroplane", "test")
    assert records and all(record.annotation.boxes_of("aeroplane").shape[0] >= 1 for record in records)
    for record in records:
        pixels = np.asarray(Image.open(root / "JPEGImages" / f"{record.image_id}.jpg"), dtype=np.float32)
        assert pixels.shape[:2] == (record.annotation.height, record.annotation.width)
        for x0, y0, x1, y1 in record.annotation.boxes_of("aeroplane"):
            assert 0 <= x0 < x1 <= record.annotation.width and 0 <= y0 < y1 <= record.annotation.height
    if kind == "plain":     # a plane on a near-uniform sky: the pixels outside every box are sky
        for record in records:
            pixels = np.asarray(Image.open(root / "JPEGImages" / f"{record.image_id}.jpg"), dtype=np.float32)
            outside = np.ones(pixels.shape[:2], bool)
            for x0, y0, x1, y1 in record.annotation.boxes_of("aeroplane").astype(int):
                outside[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2] = False
            assert pixels[outside].std(axis=0).max() < 12


def test_other_voc_same_seed_same_files(tmp_path):
    first = other_voc.generate(tmp_path / "a", "cluttered", num_trainval=3, num_test=2, seed=5)
    second = other_voc.generate(tmp_path / "b", "cluttered", num_trainval=3, num_test=2, seed=5)
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files and all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
