"""Several classes in one run: ``class_object all`` or a comma list (``1,bird,car``) trains or tests one
agent per class by running the single-class :func:`episodes.train` / :func:`testing_run.test` once per class.

Each class keeps exactly the files, seed and results of its single-class run (``model<k>…`` in ``path_model``;
``<path_testing_folder>/<class>/results.json``), so classes can also run as separate jobs (``--class_object 7``)
into one ``path_model`` and be merged afterwards (``python compare_results.py --merge``).

Training several classes runs each class in a fresh Python process (:func:`in_fresh_process`): a Keras optimiser
step compiled in a ``tf.function`` keeps every Q-network it trained alive until its process ends (about 320 MB each,
with Adam's state; tensorflow/tensorflow#80895), so twenty classes in one process would hold twenty. This process
reads the settings and the class lists and never imports TensorFlow.

Resume with several classes: the same command with ``-n 1`` (any N > 0) continues each class from its own files —
a class whose last epoch is saved is skipped, a class with saved epochs resumes after the latest one, a class with
none starts at epoch 0. Without ``-n`` every class starts at epoch 0, as a single-class run does.
"""
from __future__ import annotations

import copy
import multiprocessing
import os
import signal
import sys
import traceback
from pathlib import Path

from parse_xml_annotations import class_ids, class_name, read_class_image_set, several_classes
from results_page import write_classes_page
from runs.class_results import combine, format_class_table
from runs.errors import UserError
from runs.run_folder import existing_epochs, interrupted_save
from runs.runtime import Interrupted, StopSignals, one_line_warnings, write_json
from settings import apply_demo, configure, ensure_demo_dataset, script_settings, testing_flags, training_flags

# each class of a several-class training in its own process (tests that monkeypatch the training set it False)
CLASSES_APART = True


def run_training(train, script, argv, model_label):
    """A training script's main: ``train`` for one class, or for each in its own process (:func:`train_classes`)."""
    run_classes_script(script, argv, model_label, training_flags, train, train_classes)


def run_testing(test, script, argv, model_label):
    """A testing script's main: ``test`` for one class, or for each class and their mean AP (:func:`test_classes`)."""
    run_classes_script(script, argv, model_label, testing_flags, test, test_classes)


def run_classes_script(script, argv, model_label, flags, run_one, run_each):
    """A script's main: its settings (``script``: its globals), the flags, ``--demo``, then ``run_one(settings,
    make_features, model_label)`` for one class or ``run_each(…, run_one)`` for ``all`` or a list."""
    settings = configure(script_settings(script), argv, script["__doc__"], flags)
    apply_demo(settings, script["DEMO"])
    if several_classes(settings.class_object):
        class_ids(settings.class_object)
        ensure_demo_dataset(settings, getattr(settings, "path_voc", None) or settings.path_voc_test)
        run_each(settings, script["make_features"], model_label, run_one)
    else:
        run_one(settings, script["make_features"], model_label)


def one_class(settings, identifier, **changes):
    """A copy of ``settings`` for the class ``identifier`` alone, with ``changes``."""
    settings = copy.copy(settings)
    vars(settings).update(explicit=set(settings.explicit), class_object=identifier, **changes)
    return settings


def class_present(path_voc, identifier, set_name):
    """Whether ``<class>_<set_name>.txt`` lists an image with the class; a missing or malformed file is an error."""
    try:
        read_class_image_set(path_voc, identifier, set_name)
    except UserError as error:
        if str(error).startswith("no images with label"):
            return False
        raise
    return True


def each_class(settings, roots, set_name, absent):
    """The classes of ``settings.class_object`` as ``(label, name, identifier)``, each announced (label: ``class
    k/N (name)``); one absent from ``set_name`` of every root is said to be skipped and added to ``absent``."""
    identifiers = class_ids(settings.class_object)
    present, problems = {}, []
    for identifier in identifiers:      # every class list read up front: a broken one stops the run at once
        try:
            present[identifier] = any(class_present(root, identifier, set_name) for root in roots)
        except UserError as error:
            problems.append(str(error))
    if problems:
        raise UserError(f"{len(problems)} of the {len(identifiers)} classes asked for cannot be read ({problems[0]}"
                        + (f"; and {len(problems) - 1} more" if len(problems) > 1 else "") +
                        "); nothing was run. Name the classes the dataset lists with --class_object (e.g. "
                        "aeroplane,bird)")
    for number, identifier in enumerate(identifiers, start=1):
        name = class_name(identifier)
        print(f"class {number}/{len(identifiers)}: {name}", flush=True)
        if present[identifier]:
            yield f"class {number}/{len(identifiers)} ({name})", name, identifier
        else:
            print(f"  {name}: absent from the {'training' if set_name == 'trainval' else 'test'} set, skipped")
            absent.append(name)


def resume_epoch(settings, class_idx):
    """Where a resumed several-class run continues this class: an interrupted save's epoch, else after the latest."""
    interrupted = interrupted_save(settings.path_model, class_idx)
    return interrupted[0] if interrupted else max(existing_epochs(settings.path_model, class_idx), default=-1) + 1


def in_fresh_process(function, *arguments):
    """``function(*arguments)``'s value, run in a fresh ``spawn`` process. A UserError comes back as one, Ctrl-C or
    SIGTERM as :class:`Interrupted` (the child saves what a single-class run saves), a bug as a RuntimeError with the
    child's traceback. The child has its own process group and this one passes signals on: one Ctrl-C, once."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_run_child, args=(sender, function, arguments))
    received = []

    def pass_on(signal_number, frame):
        received.append(signal_number)
        if child.pid is not None:
            os.kill(child.pid, signal_number)
    with StopSignals(pass_on):
        child.start()
        sender.close()
        try:
            outcome, value = receiver.recv()
        except EOFError:            # killed before it could answer (SIGKILL, out of memory)
            child.join()
            if received:
                raise Interrupted(received[0]) from None
            code = child.exitcode or 0
            raise RuntimeError(f"the process of this class ended without a result (exit code {child.exitcode}: "
                               f"{f'killed by signal {-code}' if code < 0 else 'an error'})") from None
        child.join()
    if outcome != "done":
        raise {"user_error": UserError, "interrupted": Interrupted, "error": RuntimeError}[outcome](value)
    return value


def _run_child(sender, function, arguments):
    """The child of :func:`in_fresh_process`: warnings as one line, the outcome sent back."""
    os.setpgrp()            # a Ctrl-C in the terminal reaches the parent only, which passes it on
    one_line_warnings()
    try:
        outcome = ("done", function(*arguments))
    except UserError as error:
        outcome = ("user_error", str(error))
    except (Interrupted, KeyboardInterrupt) as interrupt:
        outcome = ("interrupted", getattr(interrupt, "signal_number", int(signal.SIGINT)))
    except BaseException:       # a bug: its traceback goes to the parent, which raises it
        outcome = ("error", f"in the process of this class:\n{traceback.format_exc()}")
    sys.stdout.flush()
    sys.stderr.flush()
    sender.send(outcome)


def train_classes(settings, make_features, model_label, train):
    """Train one agent per class of ``settings.class_object`` (``all`` or a list), one after the other."""
    resuming = settings.n > 0
    if resuming:
        print(f"-n {settings.n} with several classes: each class continues after its own latest saved epoch, a class "
              f"with none starts at epoch 0")
    roots = [settings.path_voc] + ([settings.path_voc2] if settings.two_databases else [])
    trained, absent, finished = [], [], []
    for label, name, identifier in each_class(settings, roots, "trainval", absent):
        one = one_class(settings, identifier, n=resume_epoch(settings, identifier - 1) if resuming else 0)
        if one.n >= settings.epochs:
            print(f"  {name}: all {settings.epochs} epochs already saved, skipped")
            finished.append(name)
            continue
        if resuming:
            print(f"  {name}: " + (f"continues at epoch {one.n} (its latest saved epoch is {one.n - 1})" if one.n
                                   else f"no saved epoch in {settings.path_model}/: starts at epoch 0"), flush=True)
        try:
            if CLASSES_APART:
                in_fresh_process(train, one, make_features, model_label)
            else:
                train(one, make_features, model_label)
        except Interrupted:
            print(f"stopped during {label}; continue every class with the same command and -n 1 (each class resumes "
                  f"from its own files)", file=sys.stderr, flush=True)
            raise
        except UserError as error:      # a damaged file of this class, say: the classes before it are complete
            raise UserError(f"{label} stopped: {error}. Classes complete: {', '.join(finished + trained) or 'none'}; "
                            f"a -n named above is for this class alone (--class_object {name}); once it is fixed, the "
                            f"same command with -n 1 continues every class from its own files") from None
        trained.append(name)
    print(f"classes trained: {', '.join(trained) or 'none'}" +
          (f"; already complete: {', '.join(finished)}" if finished else "") +
          (f"; absent from the training set: {', '.join(absent)}" if absent else ""))


def test_classes(settings, make_features, model_label, test):
    """Test each class's agent on that class's test images into ``<path_testing_folder>/<class>/``, then write the
    combined ``<path_testing_folder>/results.json`` and print the table with the means."""
    # both compare within one class; one table of classes needs one checkpoint per class
    if isinstance(settings.epoch, list) or settings.epoch == "all":
        raise UserError(f"--epoch {settings.epoch}: several epochs are compared one class at a time; give one "
                        f"class_object, or one epoch for several classes")
    if getattr(settings, "image", None):
        raise UserError("--image searches with one class's agent; give one class_object")
    out_folder = Path(settings.path_testing_folder)
    per_class, absent = [], []
    for label, name, identifier in each_class(settings, [settings.path_voc_test], "test", absent):
        try:
            per_class.append(test(one_class(settings, identifier, path_testing_folder=str(out_folder / name)),
                                  make_features, model_label))
        except UserError as error:      # a damaged checkpoint of this class, say
            tested = [results["class_object"] for results in per_class]
            raise UserError(f"{label} stopped: {error}. Classes tested: {', '.join(tested) or 'none'} (each in "
                            f"{out_folder}/<class>/results.json); no combined results were written") from None
    combined = combine(per_class, absent)
    write_json(out_folder / "results.json", combined)
    write_classes_page(combined, out_folder)
    print(format_class_table(combined))
    print(f"per-class results in {out_folder}/<class>/results.json, the table in {out_folder / 'results.json'}")
    return combined
