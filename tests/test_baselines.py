"""The paper's Figure 5 baselines on the real VOC 2007 test annotations (no images, no CNN)."""
import json

import pytest

import image_zooms_testing


def run(tmp_path, annotations, agent, scale):
    out = tmp_path / f"{agent}_{scale}"
    image_zooms_testing.main(["--agent", agent, "--only_first_object", "1", "--path_voc_test", str(annotations),
                              "--scale_subregion", str(scale), "--path_testing_folder", str(out)])
    return json.loads((out / "results.json").read_text()), out


@pytest.mark.parametrize("scale, paper_recall", [(0.75, 0.49), (0.5, 0.27)])
def test_upper_bound_recall_matches_the_paper(tmp_path, voc2007_test, scale, paper_recall):
    results, out = run(tmp_path, voc2007_test, "upper_bound", scale)
    assert results["num_images"] == 204 and results["vgg_forwards"] is None
    assert abs(results["max_recall"] - paper_recall) <= 0.05
    assert (out / "precision_recall.png").is_file() and (out / "regions_per_object.png").is_file()


def test_random_agent_is_far_below_the_upper_bound(tmp_path, voc2007_test):
    random_results, _ = run(tmp_path, voc2007_test, "random", 0.75)
    upper_results, _ = run(tmp_path, voc2007_test, "upper_bound", 0.75)
    assert random_results["max_recall"] < 0.25 < upper_results["max_recall"]
    assert random_results["ap"] < upper_results["ap"] / 4
