"""experiments/search_analysis.py: AP split into where the agent looks (AP ranked by IoU) and how it ranks (score AUC)."""
import json

import numpy as np
import pytest

from runs.errors import UserError
from experiments import search_analysis


def test_rank_auc_counts_ties_half_and_needs_both_kinds():
    assert search_analysis.rank_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert search_analysis.rank_auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert search_analysis.rank_auc([0.5, 0.5, 0.5], [True, False, False]) == 0.5
    assert search_analysis.rank_auc([0.3, 0.4], [True, True]) is None


def step(region, score, action, number, triggered=False):
    return {"region": region, "score": score, "action": action, "search": 0, "step": number,
            "triggered": triggered}


def test_a_search_that_finds_the_object_but_scores_it_last():
    # one image, one object at [0, 0, 10, 10); the search visits the whole image, then the object, and triggers
    boxes = {"a": np.array([[0.0, 0.0, 10.0, 10.0]])}
    results = {"agent": "trained", "class_object": "aeroplane", "ap": 0.5, "max_recall": 1.0, "trajectories": {
        "a": [step([0, 0, 40, 40], 2.0, 0, 1), step([0, 0, 11, 11], 1.0, 5, 2, triggered=True)]}}
    entry = search_analysis.analyse(results, boxes)
    assert entry["ap_ranked_by_iou"] == pytest.approx(1.0)      # ranked by IoU, the hit comes first
    assert entry["score_auc"] == 0.0                             # the scores put it last
    assert entry["hit_rate"] == 0.5 and entry["trigger_precision"] == 1.0
    assert entry["triggers_per_image"] == 1.0 and entry["regions_per_image"] == 2.0
    assert entry["whole_image_trigger_share"] == 0.0
    assert entry["actions"]["up-left"] == 0.5 and entry["actions"]["trigger"] == 0.5
    assert entry["best_iou_by_step"][1] == pytest.approx(100 / 1600)
    assert "| trained | 0.500 | 1.000 | 1.000 | 0.000 |" in search_analysis.format_table(["trained"], [entry])
    # a second image whose search triggers on the whole image first: half the images
    results["trajectories"]["b"] = [step([0, 0, 40, 40], 1.5, 5, 1, triggered=True), step([0, 0, 40, 40], 0.1, 0, 2)]
    boxes["b"] = np.array([[20.0, 20.0, 30.0, 30.0]])
    assert search_analysis.analyse(results, boxes)["whole_image_trigger_share"] == 0.5


def test_main_reads_results_and_annotations(tmp_path, dataset):
    from parse_xml_annotations import read_class_image_set
    image_id = read_class_image_set(dataset, "aeroplane", "test")[0]
    results = {"agent": "random", "class_object": "aeroplane", "ap": 0.0, "max_recall": 0.0,
               "trajectories": {image_id: [step([0, 0, 5, 5], 0.3, 4, 1)]}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    analyses = search_analysis.main([str(tmp_path / "results.json"), "--path_voc_test", str(dataset),
                                     "--output", str(tmp_path / "analysis.json")])
    assert analyses[0]["images"] == 1 and analyses[0]["objects"] >= 1
    assert json.loads((tmp_path / "analysis.json").read_text())["runs"][0]["label"].endswith("results.json")
    with pytest.raises(UserError, match="no annotation for image"):
        search_analysis.main([str(tmp_path / "results.json"), "--path_voc_test", str(tmp_path)])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not the results.json of a test run"):
        search_analysis.main([str(tmp_path / "bad.json")])
