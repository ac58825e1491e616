"""The test run (method.md §7): searches with the chosen agent → detections → VOC metrics → ``results.json`` and
figures; ``--epoch`` lists compare checkpoints (the paper's Figure 7); ``--image`` searches the user's own images.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from episodes import RandomAgent, TrainedAgent, UpperBoundAgent, search_records
from metrics import mark_duplicates, precision_recall, regions_per_found_object
from runs.dataset import SkipReport
from runs.errors import UserError
from parse_xml_annotations import (VOC2007_TEST_FOLDER, class_ids, class_name, ensure_voc2007_test_annotations,
                                   load_records, several_classes)
from results_page import PAGE_NAME, write_run_page
from runs.run_folder import (DamagedFile, check_trained_features, check_weights, checkpoint_path, existing_epochs,
                             interrupted_save, missing_checkpoint, test_options, training_holder)
from runs.runtime import seed_everything, write_json
from settings import (check_dataset, check_output_folder, check_path_vgg, check_settings, class_index,
                      ensure_demo_dataset)


def preflight(settings, model_label):
    """The user's mistakes a test run can see before TensorFlow is imported, each a one-line UserError: class, test
    dataset, checkpoint, VGG-16 weights, and the output folder (before the first search, not to lose its searches)."""
    check_settings(settings)
    class_ids(settings.class_object)
    own_images = bool(getattr(settings, "image", None))
    one_class = not several_classes(settings.class_object)
    one_epoch = one_class and isinstance(settings.epoch, int)   # lists: test_epochs
    if own_images:
        if isinstance(settings.epoch, list) or settings.epoch == "all":
            raise UserError("--image searches with one epoch's weights, --epoch names several: give one "
                            "(--epoch N) or none (the latest)")
        missing = [str(path) for path in settings.image if not Path(path).is_file()]
        if len(missing) == len(settings.image):     # with some images there, the others are skipped with a warning
            raise UserError(f"--image {missing[0]}: " + ("a folder; give the image files in it (e.g. folder/*.jpg)"
                                                        if Path(missing[0]).is_dir() else "no such file")
                            + (f" (nor any of the other {len(missing) - 1} images)" if len(missing) > 1 else ""))
    else:
        if Path(settings.path_voc_test) == VOC2007_TEST_FOLDER:     # the annotations the repository carries
            ensure_voc2007_test_annotations()
        ensure_demo_dataset(settings, settings.path_voc_test)
        check_dataset(settings.path_voc_test, "test", settings.class_object, "path_voc_test")
    if settings.agent == "trained":
        if not Path(settings.path_model).is_dir():
            raise UserError(f"path_model {settings.path_model!r}: folder not found. Train first (python "
                            f"{model_label}_training.py) or point path_model at the checkpoints")
        if one_epoch:
            trained_weights(settings, class_index(settings), model_label)
        check_path_vgg(settings.path_vgg)
        if one_class and not model_name(settings):
            check_trained_features(settings.path_model, class_index(settings), settings.path_vgg,
                                   settings.scale_subregion, model=model_label)
    if settings.refine and one_epoch:
        check_refinement_head(settings, class_index(settings), model_label)
    if settings.score == "learned" and one_epoch:
        check_score_head(settings, class_index(settings), model_label)
    outputs = ("detections.json",) if own_images else \
        ("results.json", PAGE_NAME, *(OUTPUT_FIGURES if one_class else ()))
    check_output_folder(settings.path_testing_folder, "path_testing_folder", outputs)
    drawings = "images" if own_images else "searches" if settings.bool_draw and one_class else None
    if drawings:
        check_output_folder(Path(settings.path_testing_folder) / drawings, "path_testing_folder")


def test(settings, make_features, model_label):
    """The test run: searches with the chosen agent → detections → VOC metrics → results.json and figures; with
    ``--image``, :func:`search_own_images`."""
    if settings.refine and settings.agent != "trained" and refine_from_demo(settings):
        settings.refine = 0     # the demo's refine 1 is its trained agent's; the baselines need no training
        print(f"--demo: the {settings.agent} agent reports the hierarchy's windows (--refine 1 refines them with the "
              f"trained agent's head)")
    preflight(settings, model_label)
    if getattr(settings, "image", None):
        return search_own_images(settings, make_features, model_label)
    if isinstance(settings.epoch, list) or settings.epoch == "all":
        return test_epochs(settings, make_features, model_label)
    seed_everything(settings.seed)
    name, class_idx = class_name(settings.class_object), class_index(settings)
    out_folder = Path(settings.path_testing_folder)
    report, annotation_problems = SkipReport(), []
    # the learning benchmark also tests on the training images (image_set "trainval"); the scripts test on "test"
    records = load_records([settings.path_voc_test], name, getattr(settings, "image_set", "test"),
                           max_images=settings.max_images, skipped=annotation_problems)
    report.add_records(records, annotation_problems)

    # agent and features
    features = epoch = weights = refiner = scorer = None
    if settings.agent == "trained":
        from detection import QNetworkPolicy, load_q_network
        from reinforcement import state_size
        epoch = None if model_name(settings) else settings.epoch      # a named file (the 2016 models): no epoch known
        weights = while_training(settings, class_idx, trained_weights(settings, class_idx, model_label))
        features = make_features(settings)      # first: the Q-network reads states of its descriptor's size
        agent = TrainedAgent(QNetworkPolicy(load_q_network(weights, state_size(features.descriptor_size),
                                                           settings.weights_order, verbose=True)))
        if epoch is not None and epoch < 0:     # the latest weights are those of the last saved epoch
            epoch = max(existing_epochs(settings.path_model, class_idx), default=None)
    elif settings.agent == "random":
        agent = RandomAgent(np.random.default_rng(settings.seed))
    else:
        agent = UpperBoundAgent()
    if settings.refine:         # the head trained beside the weights tested (the latest, for the baselines)
        from refinement import load_refiner
        features = features or make_features(settings)
        refiner = load_refiner(weights or trained_weights(settings, class_idx, model_label), features.descriptor_size)
        print(f"refine 1: each analysed window is reported as its refined box (head fitted on {refiner.samples} "
              f"training windows)")
    if settings.score == "learned" and weights is not None:     # ranked by the score head beside the weights
        from refinement import ScoreHead, load_refiner
        scorer = load_refiner(weights, features.score_descriptor_size, ScoreHead)
        print(f"score learned: detections ranked by the score head's predicted IoU (fitted on {scorer.samples} "
              f"training boxes), the trigger's Q-value kept beside it")
        if settings.duplicates == "keep":
            print("note: the score head scores the repeats of one object alike; --duplicates demote ranks them last "
                  "(without it they cost AP: docs/learning.md)")
    needs_pixels = agent.needs_features or settings.bool_draw or refiner is not None
    print(f"{model_label} testing: agent {settings.agent}, class {name}, {len(records)} images, scale "
          f"{settings.scale_subregion}" + ("" if needs_pixels else " (annotations only)"))

    # searches, in lockstep over chunks of images (an unreadable image is left out of the evaluation)
    started = time.perf_counter()
    drawn = []

    def draw(record, image, trajectory):
        if settings.bool_draw and (not settings.draw_images or len(drawn) < settings.draw_images):
            drawn.append(record.image_id)
            from visualization import animate_search, draw_search
            title = f"{model_label} {settings.agent}: {record.image_id}"
            draw_search(image, trajectory, out_folder / "searches" / f"{record.image_id}.png", title=title)
            animate_search(image, trajectory, out_folder / "searches" / f"{record.image_id}.gif", title=title)
    detections, ground_truth, all_trajectories = search_records(
        records, name, agent, features, settings, report, settings.only_first_object, needs_pixels, visit=draw,
        refiner=refiner, scorer=scorer)
    if settings.detections == "triggered":
        detections = [detection for detection in detections if detection["triggered"]]
    if settings.duplicates == "demote":     # beyond the paper: a repeat of a better detection is ranked last
        for detection, duplicate in zip(detections, mark_duplicates(detections)):
            detection["duplicate"] = bool(duplicate)
    if not ground_truth:
        raise UserError(f"none of the {len(records)} test images could be read (first: "
                        f"{next(iter(report.images.values()))}); nothing to test on")
    seconds = time.perf_counter() - started

    # evaluate
    curve = precision_recall(detections, ground_truth)
    regions = regions_per_found_object(detections, curve["true_positive"])
    results = {"model": model_label, "agent": settings.agent, "class_object": name,
               "scale_subregion": settings.scale_subregion, "epoch": epoch,
               "weights": None if weights is None else str(weights), "detections_protocol": settings.detections,
               "only_first_object": bool(settings.only_first_object), "number_of_steps": settings.number_of_steps,
               "refine": bool(settings.refine), "refine_missing": getattr(settings, "refine_missing", None),
               "duplicates": settings.duplicates, "score": settings.score,
               "score_missing": getattr(settings, "score_missing", None),
               "score_auc": score_aucs(detections, ground_truth), "num_images": len(ground_truth),
               "num_objects": int(curve["num_positives"]), "precision": curve["precision"], "recall": curve["recall"],
               "ap": curve["ap"], "ap_voc07": curve["ap_voc07"], "max_recall": curve["max_recall"],
               "regions_per_found_object": regions,
               "regions_analysed": int(sum(len(trajectory) for trajectory in all_trajectories.values())),
               "vgg_forwards": None if features is None else features.forward_count, "seconds": round(seconds, 2),
               **report.as_json(),
               "detections": [dict(detection, true_positive=bool(true_positive))
                              for detection, true_positive in zip(detections, curve["true_positive"])],
               "trajectories": all_trajectories,
               "ground_truth": {image: {key: value.tolist() for key, value in truth.items()}
                                for image, truth in ground_truth.items()}}
    print(f"AP {results['ap']:.3f}  AP-07 {results['ap_voc07']:.3f}  max recall {results['max_recall']:.3f}  "
          f"objects {results['num_objects']}  regions analysed {results['regions_analysed']}  ({seconds:.1f} s)")
    write_json(out_folder / "results.json", results)
    write_figures(results, out_folder)
    write_run_page(results, out_folder, OUTPUT_FIGURES)
    report.print_summary()
    print(f"results in {out_folder / 'results.json'}, to browse: {out_folder / PAGE_NAME}")
    return results


def test_epochs(settings, make_features, model_label):
    """``--epoch 0,4,9`` (or ``all``): test each checkpoint into ``<path_testing_folder>/epoch_<E>/`` and draw them
    on one precision-recall plot, ``epochs.png``, with a table (the paper's Figure 7)."""
    import copy

    from compare_results import compare, format_table
    if settings.agent != "trained":
        raise UserError(f"--epoch with several epochs tests checkpoints; --agent {settings.agent} has none")
    epochs = settings.epoch
    if epochs == "all":
        epochs = existing_epochs(settings.path_model, class_index(settings))
        if not epochs:
            raise UserError(f"no checkpoints in {settings.path_model}; train first")
    out_folder = Path(settings.path_testing_folder)
    for epoch in epochs:
        one = copy.copy(settings)
        one.epoch, one.path_testing_folder = epoch, str(out_folder / f"epoch_{epoch}")
        test(one, make_features, model_label)
    rows = compare([out_folder / f"epoch_{epoch}" / "results.json" for epoch in epochs],
                   labels=[f"epoch {epoch}" for epoch in epochs], output=out_folder / "epochs.png",
                   title=f"{model_label}: precision-recall by training epoch")
    print(format_table(rows))
    print(f"comparison of epochs in {out_folder / 'epochs.png'}")
    return rows


def check_score_head(settings, class_idx, model_label):
    """``score learned`` ranks the trained agent's detections by the score head beside the weights tested (the
    baselines keep their own scores). Without a head: a UserError if asked for on the command line; from ``--demo``,
    a warning, and ``settings.score`` becomes ``trigger`` with ``settings.score_missing`` saying why (in the
    results), as :func:`check_refinement_head` does."""
    from refinement import MIN_WINDOWS, scorer_path
    if settings.agent != "trained":
        if "score" in settings.explicit:
            print(f"note: score learned ranks the trained agent's detections; the {settings.agent} agent keeps its own")
        settings.score = "trigger"      # the results say the agent's own score
        return
    weights = trained_weights(settings, class_idx, model_label)
    if scorer_path(weights).is_file():
        return
    why = (f"model_name {model_name(settings)!r} is a weights file without a score head (the 2016 files have none)"
           if model_name(settings) else f"no score head {scorer_path(weights).name} beside {weights.name} (a "
           f"training with score_head 1 writes one once {MIN_WINDOWS} boxes have been sampled)")
    if "score" in settings.explicit or not getattr(settings, "demo", False):
        raise UserError(f"score learned: {why}; train with --score_head 1 for one, or rank by --score trigger")
    warnings.warn(f"--demo: {why}; the detections are ranked by the trigger's Q-value", UserWarning, stacklevel=2)
    settings.score, settings.score_missing = "trigger", why


def score_aucs(detections, ground_truth):
    """For each score the detections carry (``trigger``, ``learned``; else ``score``), its ROC AUC for telling
    the boxes that overlap an object at IoU ≥ 0.5 from the rest; None where only one kind is present."""
    from metrics import roc_auc
    from refinement import best_objects
    positive = [best_objects([d["box"]], ground_truth[d["image"]]["boxes"])[1][0] >= 0.5 for d in detections]
    names = detections[0]["scores"] if detections and "scores" in detections[0] else {"score": None}
    return {name: roc_auc([d["scores"][name] if name != "score" else d["score"] for d in detections], positive)
            for name in names}


def refine_from_demo(settings):
    """Whether ``refine 1`` comes from ``--demo`` rather than the command line."""
    return bool(getattr(settings, "demo", False)) and "refine" not in settings.explicit


def check_refinement_head(settings, class_idx, model_label):
    """``refine 1`` needs the refinement head beside the weights tested (the latest, for the baselines). Without one:
    a UserError if asked for on the command line; from ``--demo`` (a short training may have none), a warning, and
    ``settings.refine`` becomes 0 with ``settings.refine_missing`` saying why (it goes into the results)."""
    from refinement import MIN_WINDOWS, refiner_path
    weights = trained_weights(settings, class_idx, model_label)
    if refiner_path(weights).is_file():
        return
    if model_name(settings):
        why = (f"model_name {model_name(settings)!r} is a weights file without a refinement head (the 2016 files "
               f"have none)")
        way = "test it with --refine 0"
    else:
        why = (f"no refinement head {refiner_path(weights).name} beside {weights.name} (a training with refine 1 "
               f"writes one once {MIN_WINDOWS} visited windows have overlapped an object)")
        way = ("train on more images or epochs with --refine 1 for one, or test the hierarchy's windows with "
               "--refine 0")
    if not refine_from_demo(settings):
        raise UserError(f"refine 1: {why}; {way}")
    warnings.warn(f"--demo: {why}; the hierarchy's windows are reported, not refined boxes", UserWarning,
                  stacklevel=2)
    settings.refine, settings.refine_missing = 0, why


def model_name(settings):
    """The ``model_name`` setting: a weights file in ``path_model`` (the 2016 scripts' setting); '' or None: none."""
    name = getattr(settings, "model_name", None)
    return None if name in (None, "", "None") else str(name)


def while_training(settings, class_idx, weights):
    """The weights to test while a training holds ``path_model``: the latest epoch's numbered file, as
    ``model<k>.weights.h5`` and its head are replaced each epoch; says so in one line."""
    holder = None if model_name(settings) else training_holder(settings.path_model, class_idx)
    if holder is None:
        return weights
    saved = existing_epochs(settings.path_model, class_idx)
    if settings.epoch == -1 and saved and checkpoint_path(settings.path_model, class_idx, saved[-1]).is_file():
        weights = checkpoint_path(settings.path_model, class_idx, saved[-1])
    print(f"note: a training is writing {settings.path_model}/ ({holder}); this test reads {weights.name}, a "
          f"complete epoch (later epochs are not seen)")
    return weights


def trained_weights(settings, class_idx, model_label):
    """The Q-network weights a test uses: the file ``model_name`` in ``path_model`` when set (e.g. the 2016
    ``model_image_zooms_2``), else the checkpoint of epoch ``settings.epoch`` (-1: the latest); checked whole
    (UserError with the way on)."""
    epoch, name, folder = settings.epoch, model_name(settings), settings.path_model
    if name:
        if epoch != -1:
            raise UserError(f"model_name {name!r} names one weights file; --epoch {epoch} chooses among this "
                            f"project's checkpoints: give one of them")
        weights = Path(folder) / name
        if not weights.is_file():
            raise UserError(f"model_name {name!r}: no file {weights}")
        return weights
    interrupted = interrupted_save(folder, class_idx)
    if interrupted and not (isinstance(epoch, int) and 0 <= epoch < interrupted[0]):
        earlier = [saved for saved in existing_epochs(folder, class_idx) if saved < interrupted[0]]
        way = f"Test an earlier epoch with --epoch {earlier[-1]}, or train" if earlier else "Train"
        raise UserError(f"{interrupted[1]}. {way} epoch {interrupted[0]} again with -n {interrupted[0]}")
    weights = checkpoint_path(folder, class_idx, epoch if epoch >= 0 else None)
    if not weights.is_file():
        raise UserError(f"{missing_checkpoint(folder, class_idx, weights)}. Train first (python "
                        f"{model_label}_training.py).")
    try:
        check_weights(weights)
    except DamagedFile as damage:
        raise UserError(f"{damage}; {test_options(folder, class_idx, weights)}") from None
    return weights


def search_own_images(settings, make_features, model_label):
    """``--image FILE …``: the trained agent searches each image (no annotations), writing one PNG per image and
    ``detections.json`` in ``path_testing_folder``; returns that JSON's content. Detections are the triggered regions
    unless ``--detections`` is given. An unreadable image, or one over ``max_pixels``, is skipped with a warning;
    UserError when none can be read."""
    from detection import as_rgb_image, detect_many, load_q_network
    from reinforcement import state_size
    from refinement import ScoreHead, load_refiner
    from visualization import animate_search, draw_search

    if settings.agent != "trained":
        raise UserError(f"--image runs the trained agent; --agent {settings.agent} needs annotations")
    seed_everything(settings.seed)
    name, class_idx = class_name(settings.class_object), class_index(settings)
    weights = while_training(settings, class_idx, trained_weights(settings, class_idx, model_label))
    protocol = settings.detections if "detections" in settings.explicit else "triggered"
    out_folder = Path(settings.path_testing_folder)
    report = SkipReport()
    features = make_features(settings)
    model = load_q_network(weights, state_size(features.descriptor_size), settings.weights_order, verbose=True)
    refiner = load_refiner(weights, features.descriptor_size) if settings.refine else None
    scorer = load_refiner(weights, features.score_descriptor_size, ScoreHead) if settings.score == "learned" else None
    count = len(settings.image)
    print(f"{model_label}: the {name} agent of {weights} searches {count} image{'s' if count != 1 else ''}, "
          f"scale {settings.scale_subregion}")

    entries, figure_names = [], set()
    chunk = 16      # images are decoded a chunk at a time: a long list of large images is not held at once
    for start in range(0, count, chunk):
        batch = []
        for path in settings.image[start:start + chunk]:
            try:
                batch.append((Path(path), as_rgb_image(path, settings.max_pixels)))
            except UserError as error:
                report.skip_image(str(path), str(error))
        if not batch:
            continue
        found = detect_many([array for _, array in batch], model, features=features,
                            scale_subregion=settings.scale_subregion, number_of_steps=settings.number_of_steps,
                            only_first_object=settings.only_first_object, detections=protocol,
                            refiner=refiner, duplicates=settings.duplicates, scorer=scorer)
        for (path, array), (boxes, scores, trajectory) in zip(batch, found):
            stem, number = path.stem, 1
            while stem in figure_names:             # two photo.jpg from different folders
                stem, number = f"{path.stem}_{number}", number + 1
            figure_names.add(stem)
            figure = out_folder / "images" / f"{stem}.png"
            draw_search(array, trajectory, figure, title=detections_title(path.name, trajectory, protocol))
            if settings.bool_draw:
                animate_search(array, trajectory, figure.with_suffix(".gif"), title=path.name)
            entries.append({"image": str(path), "width": int(array.shape[1]), "height": int(array.shape[0]),
                            "boxes": boxes.tolist(), "scores": scores.tolist(), "figure": str(figure),
                            "trajectory": trajectory})
            print(f"  {detections_title(path.name, trajectory, protocol)} -> {figure}", flush=True)
    if not entries:
        raise UserError(f"none of the {count} images could be read (first: {next(iter(report.images.values()))})")
    summary = {"model": model_label, "class_object": name, "weights": str(weights),
               "scale_subregion": settings.scale_subregion, "number_of_steps": settings.number_of_steps,
               "only_first_object": bool(settings.only_first_object), "detections_protocol": protocol,
               "refine": bool(settings.refine), "refine_missing": getattr(settings, "refine_missing", None),
               "duplicates": settings.duplicates, "score": settings.score,
               "score_missing": getattr(settings, "score_missing", None),
               "box_format": "[x0, y0, x1, y1) in pixels of the image", **report.as_json(), "images": entries}
    write_json(out_folder / "detections.json", summary)
    report.print_summary()
    print(f"detections in {out_folder / 'detections.json'}")
    return summary


def detections_title(name, trajectory, protocol, shown=4):
    """'photo.jpg: 2 detections: region 3 (score 1.52), region 5 (0.80)', numbered as in the drawn search."""
    numbered = sorted(((number, step) for number, step in enumerate(trajectory, start=1)
                       if protocol == "visited" or step["triggered"]), key=lambda item: -item[1]["score"])
    if not numbered:
        return f"{name}: no trigger in {len(trajectory)} regions, no detection"
    best = ", ".join(f"region {number} ({'score ' if index == 0 else ''}{step['score']:.2f})"
                     for index, (number, step) in enumerate(numbered[:shown]))
    return f"{name}: {len(numbered)} detection{'s' if len(numbered) != 1 else ''}: {best}" + \
        (", ..." if len(numbered) > shown else "")


OUTPUT_FIGURES = ("precision_recall.png", "regions_per_object.png")       # what write_figures writes


def write_figures(results, out_folder):
    from visualization import plot_precision_recall, plot_regions_histogram
    from compare_results import refinement_label
    label = refinement_label(f"{results['model']} {results['agent']} s={results['scale_subregion']}", results)
    plot_precision_recall([{"label": label, "recall": results["recall"], "precision": results["precision"],
                            "ap": results["ap"]}], Path(out_folder) / OUTPUT_FIGURES[0])
    plot_regions_histogram({label: results["regions_per_found_object"]}, Path(out_folder) / OUTPUT_FIGURES[1])
