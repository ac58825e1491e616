"""What the README tells a newcomer that the code can check in a second: the ``detect()`` call it shows gives the
boxes of ``--demo --image`` (the demo's testing values), its VOC commands use the folders the VOC archives unpack
to, and it and docs/performance.md stay within their word budgets."""
import ast
import inspect
import re
from pathlib import Path

import image_zooms_testing
from detection import detect
from refinement import refiner_path, scorer_path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_detect_call():
    """The keyword arguments of the README's ``detect(...)`` example."""
    code = next(block for block in re.findall(r"```python\n(.*?)```", README, re.S) if "detect(" in block)
    call = next(node for node in ast.walk(ast.parse(code))
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "detect")
    return call, {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}


def test_the_readme_detect_example_gives_the_demos_boxes():
    call, arguments = readme_detect_call()
    demo = image_zooms_testing.DEMO
    assert set(arguments) <= set(inspect.signature(detect).parameters)
    assert arguments["path_vgg"] == demo["path_vgg"] and arguments["vgg_precision"] == demo["vgg_precision"]
    assert arguments["duplicates"] == demo["duplicates"]
    weights = ast.literal_eval(call.args[1])
    assert demo["refine"] and arguments["refiner"] == str(refiner_path(weights))
    assert demo["score"] == "learned" and arguments["scorer"] == str(scorer_path(weights))
    # and detect()'s own defaults are the paper's, which the README says
    defaults = {name: parameter.default for name, parameter in inspect.signature(detect).parameters.items()}
    assert (defaults["vgg_precision"], defaults["refiner"], defaults["duplicates"], defaults["scorer"]) == \
        ("float32", None, "keep", None)
    assert "float32, the windows unrefined, duplicates kept, the trigger's score" in " ".join(README.split())


def test_the_voc_commands_use_the_folders_the_archives_unpack_to():
    section = README[README.index("## The paper's experiment on PASCAL VOC"):README.index("## All twenty classes")]
    assert "--path_voc VOCdevkit/VOC2012" in section and "--path_voc_test VOCdevkit/VOC2007" in section
    assert "--path_voc2 VOCdevkit/VOC2007" in section
    assert not re.search(r"VOC2007_test/|--path_voc2? VOC20", section)


def test_the_readme_and_the_performance_page_keep_to_their_word_budgets():
    # words as `wc -w` counts them: the README reads in minutes; docs/performance.md holds today's figures only
    assert len(README.split()) <= 2500
    assert len((ROOT / "docs" / "performance.md").read_text(encoding="utf-8").split()) <= 1800
