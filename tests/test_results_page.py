"""The results pages (results_page): what a page gets from a results.json, worked out by hand; the pages testing and
compare_results.py write; and the pages in a real browser, headless Chromium, from disk: no console error, the
filters and sorts show what they should, and a page of 5,000 images opens quickly (measured and printed, not
asserted). Without Chromium the browser tests skip, saying why, unless REQUIRE_BROWSER=1 (CI), where they fail."""
import json
import os
import random
import re
import time

import pytest

import compare_results
import image_zooms_testing
from results_page import (PAGE_NAME, TEMPLATES, comparison_page_data, image_summaries, write_classes_page,
                          write_run_page)
from experiments.browser import Chromium, find_chromium

# --- what a page gets ----------------------------------------------------------------------------------------------


def step(region, action, score, search, number, triggered, refined=None):
    return {"region": region, "action": action, "q_values": [0.1, 0.2, 0.3, 0.4, 0.5, score], "score": score,
            "search": search, "step": number, "triggered": triggered, **({"refined": refined} if refined else {})}


def detection(image, one_step, true_positive):
    return {"image": image, "box": one_step.get("refined", one_step["region"]), "score": one_step["score"],
            "search": one_step["search"], "step": one_step["step"], "triggered": one_step["triggered"],
            "true_positive": true_positive}


def hand_worked_results():
    """Image a: objects 0 and 2 to find, 1 difficult. Region 1 (whole image) a miss; region 2 triggers, refined onto
    object 0 (found); region 3 triggers on object 0 again (a repeat: a false positive); region 4 triggers on the
    difficult object (ignored). Image b: one object, one region that misses it, no trigger."""
    a = [step([0, 0, 100, 100], 0, 0.5, 0, 1, False), step([0, 0, 75, 75], 5, 2.0, 0, 2, True, [10, 10, 50, 50]),
         step([12, 12, 50, 50], 5, 1.5, 1, 1, True), step([60, 60, 90, 90], 5, 1.0, 2, 1, True)]
    b = [step([0, 0, 80, 60], 1, 0.7, 0, 1, False)]
    return {"model": "image_zooms", "agent": "trained", "class_object": "aeroplane", "scale_subregion": 0.75,
            "epoch": 3, "ap": 0.25, "ap_voc07": 0.3, "max_recall": 1 / 3, "precision": [1.0], "recall": [1 / 3],
            "regions_per_found_object": [2], "num_images": 2, "num_objects": 3,
            "detections": [detection("a", a[0], False), detection("a", a[1], True), detection("a", a[2], False),
                           detection("a", a[3], False), detection("b", b[0], False)],
            "trajectories": {"a": a, "b": b},
            "ground_truth": {"a": {"boxes": [[10, 10, 50, 50], [60, 60, 90, 90], [0, 60, 30, 100]],
                                   "difficult": [False, True, False]},
                             "b": {"boxes": [[50, 30, 80, 60]], "difficult": [False]}}}


def test_an_images_summary_as_worked_out_by_hand():
    images, steps = image_summaries(hand_worked_results())
    a, b = images
    assert [a["id"], b["id"]] == ["a", "b"] and a["size"] == [100, 100] and b["size"] == [80, 60]
    assert (a["found"], a["missed"], a["objects_counted"], a["difficult"]) == (1, 1, 2, 1)
    assert [(item["found"], item["difficult"], item["best_iou"]) for item in a["objects"]] == \
        [(True, False, 1.0), (False, True, 1.0), (False, False, 0.12)]       # object 2: region 1, 1200 / 10000
    assert a["best_iou"] == 1.0 and a["false_positives"] == 1               # the repeat; not the ignored one
    assert (a["triggers"], a["first_trigger"], a["regions"], a["top_score"]) == (3, 2, 4, 2.0)
    assert [(item["score"], item["status"]) for item in a["detections"]] == \
        [(2.0, "tp"), (1.5, "repeat"), (1.0, "ignored"), (0.5, "fp")]
    assert [(item["status"], item["iou"], item["box"]) for item in steps["a"]] == \
        [("fp", 0.16, None), ("tp", 1.0, [10, 10, 50, 50]), ("repeat", 0.902, None), ("ignored", 1.0, None)]
    # region 3 on object 0: 38² / 40² = 0.9025 (rounded half to even); region 1 on it: 40² / 100²
    assert steps["a"][1]["q"] == [0.1, 0.2, 0.3, 0.4, 0.5, 2.0] and steps["a"][1]["trigger"]
    # image b: a region of 80 × 60 against an object of 30 × 30 inside it
    assert (b["found"], b["missed"], b["false_positives"], b["first_trigger"], b["best_iou"]) == \
        (0, 1, 0, None, 0.188)


def test_a_results_file_written_before_it_held_the_objects_still_gives_what_it_can():
    results = hand_worked_results()
    del results["ground_truth"]
    a, b = image_summaries(results)[0]
    assert (a["found"], a["missed"], a["objects_counted"], a["objects"], a["best_iou"]) == (1, None, None, [], None)
    assert [item["status"] for item in a["detections"]] == ["tp", "fp", "fp", "fp"] and a["false_positives"] == 2
    assert b["missed"] is None and b["found"] == 0


def test_drawings_are_linked_relatively_where_they_exist(tmp_path):
    results = hand_worked_results()
    results["trajectories"]["a b#1"] = results["trajectories"].pop("b")    # an id a URL must encode
    results["ground_truth"]["a b#1"] = results["ground_truth"].pop("b")
    results["detections"][-1]["image"] = "a b#1"
    (tmp_path / "run" / "searches").mkdir(parents=True)
    for name in ("a b#1.png", "a b#1.gif"):
        (tmp_path / "run" / "searches" / name).write_bytes(b"")
    images, _ = image_summaries(results, tmp_path / "run", tmp_path)
    assert [(image["drawing"], image["animation"]) for image in images] == \
        [(None, None), ("run/searches/a%20b%231.png", "run/searches/a%20b%231.gif")]


def inlined(html, element):
    """The JSON a page holds in its ``<script id=element>``."""
    match = re.search(rf'<script id="{element}" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def test_the_page_holds_its_data_and_nothing_in_it_can_end_its_script(tmp_path):
    results = hand_worked_results()
    results["class_object"] = "</script><script>alert(1)</script>"
    path = write_run_page(results, tmp_path, ("precision_recall.png", "absent.png"))
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / PAGE_NAME and "<script>alert" not in html and "&lt;/script&gt;" in html   # the title
    data = inlined(html, "page-data")
    assert data["title"].startswith("image_zooms trained: </script>") and data["figures"] == []
    assert [image["id"] for image in data["images"]] == ["a", "b"] and len(inlined(html, "steps-data")["a"]) == 4
    assert ["epoch", 3] in data["settings"] and not any(name == "ap" for name, _ in data["settings"])
    assert sorted(path.name for path in tmp_path.iterdir()) == [PAGE_NAME]     # written whole, nothing left beside


def test_no_page_or_template_reaches_for_the_network(tmp_path):
    allowed = {"http://www.w3.org/2000/svg"}        # the SVG namespace: a name, not something fetched
    pages = [write_run_page(hand_worked_results(), tmp_path)]
    texts = [path.read_text(encoding="utf-8") for path in [*TEMPLATES.glob("*.*"), *pages]
             if path.suffix in (".html", ".js", ".css")]
    assert len(texts) >= 7
    for text in texts:
        assert set(re.findall(r"(?:https?|wss?|ftp)://[^\s\"'`)]*", text)) <= allowed
        assert not re.search(r"fetch\(|XMLHttpRequest|@import|//cdn", text)


def test_the_comparison_lists_every_image_of_every_run():
    first, second = hand_worked_results(), hand_worked_results()
    second["trajectories"]["c"] = second["trajectories"].pop("b")
    second["ground_truth"]["c"] = second["ground_truth"].pop("b")
    for item in second["detections"]:
        item["image"] = "c" if item["image"] == "b" else item["image"]
    rows = [{"label": "one", "path": "runs/one/results.json"}, {"label": "two", "path": "runs/two/results.json"}]
    data = comparison_page_data(rows, [first, second], "runs", title="t")
    assert [run["label"] for run in data["runs"]] == ["one", "two"] and data["runs"][0]["page"] is None
    assert data["runs"][0]["results"] == "one/results.json"
    assert [image["id"] for image in data["images"]] == ["a", "b", "c"]
    assert data["images"][1]["runs"][1] is None and data["images"][2]["runs"][0] is None
    assert data["images"][0]["runs"][1]["found"] == 1 and data["images"][0]["runs"][1]["missed"] == 1


def test_the_classes_page_links_each_classs_page(tmp_path):
    (tmp_path / "bird").mkdir()
    (tmp_path / "bird" / PAGE_NAME).write_text("")
    row = {"ap": 0.5, "ap_voc07": 0.5, "max_recall": 0.6, "mean_regions_per_found_object": 3.0, "num_images": 4,
           "num_objects": 5}
    combined = {"model": "image_zooms", "agent": "upper_bound", "scale_subregion": 0.75, "map": 0.5,
                "mean_ap_voc07": 0.5, "mean_max_recall": 0.6, "absent_classes": ["cow"],
                "classes": [{"class_object": "aeroplane", **row}, {"class_object": "bird", **row}]}
    data = inlined(write_classes_page(combined, tmp_path).read_text(encoding="utf-8"), "page-data")
    assert [item["page"] for item in data["classes"]] == [None, f"bird/{PAGE_NAME}"] and data["absent"] == ["cow"]


# --- the pages testing and compare_results.py write -------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """The upper bound (every search drawn) and the random agent (two drawn) on the tiny synthetic test split, and
    their comparison page."""
    root = tmp_path_factory.mktemp("runs")
    for agent, drawing in (("upper_bound", ["--bool_draw", "1"]), ("random", ["--bool_draw", "1", "--draw_images",
                                                                               "2"])):
        image_zooms_testing.main(["--agent", agent, "--path_voc_test", str(dataset), "--path_testing_folder",
                                  str(root / agent), *drawing])
    compare_results.compare([root / "upper_bound" / "results.json", root / "random" / "results.json"],
                            labels=["upper bound", "random agent"], output=root / "comparison.png", title="tiny")
    return root


def test_testing_writes_the_runs_page_and_compare_results_the_comparison(runs):
    results = json.loads((runs / "random" / "results.json").read_text())
    data = inlined((runs / "random" / PAGE_NAME).read_text(encoding="utf-8"), "page-data")
    assert [image["id"] for image in data["images"]] == list(results["trajectories"]) and data["objects_known"]
    assert [figure["src"] for figure in data["figures"]] == ["precision_recall.png", "regions_per_object.png"]
    drawn = [image["id"] for image in data["images"] if image["drawing"]]
    assert drawn == list(results["trajectories"])[:2]
    assert data["images"][0]["animation"] == f"searches/{drawn[0]}.gif"
    comparison = inlined((runs / "comparison.html").read_text(encoding="utf-8"), "page-data")
    assert [run["page"] for run in comparison["runs"]] == [f"upper_bound/{PAGE_NAME}", f"random/{PAGE_NAME}"]
    assert [figure["src"] for figure in comparison["figures"]] == ["comparison.png", "comparison_regions.png"]
    assert [image["id"] for image in comparison["images"]] == list(results["trajectories"])
    assert comparison["images"][0]["runs"][0]["drawing"] == f"upper_bound/searches/{drawn[0]}.png"


# --- in a real browser ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but no Chromium is installed (apt-get install chromium)")
        pytest.skip("no Chromium installed (apt-get install chromium); REQUIRE_BROWSER=1 makes this a failure")
    with Chromium(width=1280, height=900) as chromium:
        yield chromium


def generated_results(count, seed=0):
    """A test of ``count`` images (000000, 000001, …) with 1–3 objects each and a 10-region search of the trained
    agent's kind (Q-values, triggers, some regions on an object), ranked and matched by metrics.precision_recall."""
    from metrics import precision_recall
    rng = random.Random(seed)
    detections, trajectories, ground_truth = [], {}, {}
    for number in range(count):
        image = f"{number:06d}"
        width, height = rng.randint(200, 500), rng.randint(200, 500)
        boxes = []
        for _ in range(rng.randint(1, 3)):
            x0, y0 = rng.uniform(0, width - 60), rng.uniform(0, height - 60)
            boxes.append([x0, y0, rng.uniform(x0 + 40, width), rng.uniform(y0 + 40, height)])
        ground_truth[image] = {"boxes": boxes, "difficult": [False] * len(boxes)}
        trajectory, search, number_in_search = [], 0, 0
        for index in range(10):
            on_object = index > 0 and rng.random() < 0.3
            if index == 0:
                region = [0.0, 0.0, float(width), float(height)]
            elif on_object:                 # give or take
                box = rng.choice(boxes)
                region = [value + rng.uniform(-8, 8) for value in box]
            else:
                x0, y0 = rng.uniform(0, width / 2), rng.uniform(0, height / 2)
                region = [x0, y0, x0 + width / 3, y0 + height / 3]
            action = 5 if rng.random() < (0.6 if on_object else 0.04) else rng.randrange(5)
            q_values = [rng.gauss(0, 1) for _ in range(6)]
            number_in_search += 1
            trajectory.append(step(region, action, q_values[5], search, number_in_search, action == 5))
            trajectory[-1]["q_values"] = q_values
            if action == 5:
                search, number_in_search = search + 1, 0
        trajectories[image] = trajectory
        detections += [detection(image, one_step, False) for one_step in trajectory]
    curve = precision_recall(detections, ground_truth)
    for item, true_positive in zip(detections, curve["true_positive"]):
        item["true_positive"] = bool(true_positive)
    return {"model": "image_zooms", "agent": "trained", "class_object": "aeroplane", "scale_subregion": 0.75,
            "epoch": 9, "precision": curve["precision"], "recall": curve["recall"], "ap": curve["ap"],
            "ap_voc07": curve["ap_voc07"], "max_recall": curve["max_recall"], "regions_per_found_object": [],
            "num_images": count, "num_objects": int(curve["num_positives"]), "detections": detections,
            "trajectories": trajectories, "ground_truth": ground_truth}


def shown_ids(browser, selector="#gallery .card"):
    return browser.evaluate(f"[...document.querySelectorAll('{selector}')].map(element => element.dataset.id)")


def test_the_run_pages_filters_and_sorts_show_what_they_should(browser, tmp_path):
    results = generated_results(40, seed=1)
    page = write_run_page(results, tmp_path)
    browser.open(page)
    ids = list(results["trajectories"])
    true_positives = {image: 0 for image in ids}
    false_triggers, top_score = set(), {}
    for item in results["detections"]:
        true_positives[item["image"]] += item["true_positive"]
        if item["triggered"] and not item["true_positive"]:
            false_triggers.add(item["image"])
        top_score[item["image"]] = max(top_score.get(item["image"], -1e9), item["score"])
    objects = {image: len(truth["boxes"]) for image, truth in results["ground_truth"].items()}
    expected = {"all": set(ids), "found": {image for image in ids if true_positives[image]},
                "missed": {image for image in ids if true_positives[image] < objects[image]},
                "false-positives": false_triggers}
    assert all(0 < len(expected[name]) < len(ids) for name in ("found", "missed", "false-positives"))
    for name, images in expected.items():
        browser.evaluate(f"document.querySelector('[data-filter=\"{name}\"]').click()")
        assert set(shown_ids(browser)) == images, name
        assert browser.evaluate("document.getElementById('count').textContent") == f"{len(images)} of 40 images"
    assert browser.evaluate("location.hash") == "#filter=false-positives"

    def sort(order):
        browser.evaluate(f"(select => {{ select.value = '{order}'; select.dispatchEvent(new Event('change')); }})"
                         f"(document.getElementById('sort'))")
        return shown_ids(browser)
    browser.evaluate("document.querySelector('[data-filter=\"all\"]').click()")
    assert sort("id") == ids
    assert sort("score") == sorted(ids, key=lambda image: (-round(top_score[image], 3), image))
    worst = sort("worst")
    shares = [true_positives[image] / objects[image] for image in worst]
    assert shares == sorted(shares) and worst != ids
    # the detail of the worst image: its animated search is not drawn, so its sketch; its ten steps, Q-values
    browser.evaluate("document.querySelector('#gallery .card').click()")
    assert browser.evaluate("document.getElementById('detail').open")
    assert browser.evaluate("location.hash") == f"#image={worst[0]}"
    assert browser.evaluate("document.querySelectorAll('#detail table.steps')[1].tBodies[0].rows.length") == 10
    assert browser.evaluate("document.querySelector('#detail td.chosen') !== null")
    assert browser.errors == []


def test_the_pages_of_real_runs_open_from_disk_with_every_image_and_no_error(browser, runs):
    results = json.loads((runs / "random" / "results.json").read_text())
    ids = list(results["trajectories"])
    browser.open(runs / "random" / PAGE_NAME)
    browser.wait_until("[...document.images].every(image => image.complete)")
    assert sorted(shown_ids(browser)) == sorted(ids)
    assert browser.evaluate("[...document.images].filter(image => image.naturalWidth > 0).length") == 2 + 2
    browser.open(runs / "comparison.html")
    assert browser.evaluate("[...document.querySelectorAll('#runs tbody tr')].map(row => row.cells[0].textContent)") \
        == ["upper bound", "random agent"]
    assert shown_ids(browser, "#images tbody tr") == ids
    browser.evaluate("(select => { select.value = 'missed-by-all'; select.dispatchEvent(new Event('change')); })"
                     "(document.getElementById('filter'))")
    upper_bound = json.loads((runs / "upper_bound" / "results.json").read_text())
    missed_by_all = [image for image in ids if all(
        sum(item["true_positive"] for item in run["detections"] if item["image"] == image)
        < run["ground_truth"][image]["difficult"].count(False) for run in (results, upper_bound))]
    assert shown_ids(browser, "#images tbody tr") == missed_by_all
    assert browser.errors == []
    # a cell opens that image's search on its run's page
    link = browser.evaluate("document.querySelector('#images tbody a').href")
    assert link.endswith(f"upper_bound/{PAGE_NAME}#image={missed_by_all[0]}")
    browser.open(link)
    assert browser.evaluate("document.getElementById('detail').open")
    assert browser.evaluate("document.querySelector('#detail h2').textContent").startswith(missed_by_all[0])
    assert browser.errors == []
    # the page of a test of several classes (here one)
    from runs.class_results import combine
    browser.open(write_classes_page(combine([upper_bound]), runs))
    assert browser.evaluate("document.querySelectorAll('#classes tbody tr').length") == 1
    assert browser.errors == []


def test_a_page_of_five_thousand_images_opens_quickly(browser, tmp_path, capsys):
    """The time is measured and printed, not asserted: a shared machine is noisy. The issue asks for under 2 s."""
    results = generated_results(5000)
    started = time.perf_counter()
    page = write_run_page(results, tmp_path)
    written = time.perf_counter() - started
    seconds = browser.open(page)
    ready_ms = browser.evaluate("window.pageReadyMs")
    assert browser.evaluate("document.getElementById('count').textContent") == "5000 of 5000 images"
    assert len(shown_ids(browser)) == 60          # a page at a time
    browser.evaluate("document.getElementById('more').click()")
    assert len(shown_ids(browser)) == 120
    opened = time.perf_counter()
    browser.evaluate("document.querySelector('#gallery .card').click()")
    detail = time.perf_counter() - opened
    assert browser.errors == []
    with capsys.disabled():
        print(f"\n5,000-image results page: {page.stat().st_size / 1e6:.1f} MB written in {written:.1f} s; opened in "
              f"{seconds:.2f} s (navigation to gallery drawn; the page's own clock: {ready_ms / 1000:.2f} s); an "
              f"image's steps in {detail:.2f} s")
