"""The training run (method.md §6): data → models → epochs of searches with Q-learning → a checkpoint and a log
line each, and ``-n`` resuming from a checkpoint.

- SIGTERM is handled like Ctrl-C. The epoch in progress is dropped; the checkpoint of the last complete epoch is the
  resume point, and ``-n`` continues from it as the uninterrupted run would have (the checkpoint holds weights,
  optimiser, ε, random generators, settings and replay memory). A signal that arrives while an epoch is being saved
  waits until it is saved. An epoch's files are all written to temporary names and flushed to the disk, then
  renamed, and the previous epoch's removed last, so even SIGKILL leaves the last complete epoch resumable, and a
  save that fails (disk full, permission) leaves the folder as the previous epoch left it. A kill or a power cut
  between two renames leaves ``saving_model<k>`` (``run_folder.saving_path``): ``-n`` and testing then name the
  epoch to train again rather than use files of two epochs together;
- a damaged file that ``-n`` reads stops the run in one line naming the file and the way on, before anything is
  used (a torn last line of the log is dropped with a warning); see ``run_folder``;
- a NaN or infinite loss stops training at once; non-finite weights are never saved.

The files of a run folder are named, found and read in ``run_folder``.
"""
from __future__ import annotations

import sys
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm import tqdm

from reinforcement import FORMER_FIELD_NAMES, NUM_ACTIONS, NonFiniteLoss, OracleLearner, QLearner, epsilon_for_epoch
from runs.dataset import SkipReport, load_record_image
from runs.errors import UserError
from parse_xml_annotations import class_name, load_records
from runs.run_folder import (NAMED_ARRAYS, DamagedFile, check_weights, checkpoint_path, existing_epochs, features_path,
                             interrupted_save, log_path, missing_checkpoint, read_log, read_resume_state,
                             remove_temporary_files, resume_epochs, resume_options, resume_state_path, saving_path,
                             training_lock, write_features_file, write_log, write_resume_state, write_together)
from refinement import MIN_WINDOWS, BoxRefiner, refiner_path, scorer_path
from runs.q_network_files import set_q_network_weights
from runs.runtime import Interrupted, StopSignals, seed_everything
from settings import (REMOVED_OPTIONS, check_dataset, check_output_folder, check_path_vgg, check_removed_in,
                      check_settings, class_index, ensure_demo_dataset)


def preflight(settings):
    """The user's mistakes a training run can see before TensorFlow is imported, each a one-line UserError: class,
    dataset folders, VGG-16 weights, the drawings' folder, ``-n`` and its checkpoint, ``path_model`` (writable,
    no folder where the run writes a file; it is created when its lock is taken) and ``initial_weights``."""
    check_settings(settings)
    if settings.n < 0:
        raise UserError(f"-n {settings.n}: the first epoch to train cannot be negative (0 starts afresh, N resumes "
                        f"from the checkpoint of epoch N-1)")
    if settings.n >= settings.epochs:
        raise UserError(f"-n {settings.n} with --epochs {settings.epochs}: nothing to train. epochs counts all "
                        f"epochs, not epochs to add (unlike the 2016 script); to train k more epochs pass "
                        f"-n {settings.n} --epochs {settings.n}+k, e.g. --epochs {settings.n + 10}")
    class_idx = class_index(settings)       # one class: classes_run trains several one at a time
    if settings.n > 0:
        interrupted = interrupted_save(settings.path_model, class_idx)
        if interrupted and settings.n > interrupted[0]:
            epoch = interrupted[0]
            raise UserError(f"-n {settings.n}: {interrupted[1]}. " + (f"-n {epoch} trains epoch {epoch} again from "
                            f"epoch {epoch - 1}" if epoch else "-n 0 starts afresh"))
        weights = checkpoint_path(settings.path_model, class_idx, settings.n - 1)
        if not weights.is_file():
            raise UserError(f"-n {settings.n}: {missing_checkpoint(settings.path_model, class_idx, weights)}")
    ensure_demo_dataset(settings, settings.path_voc)
    for setting in ("path_voc", "path_voc2") if settings.two_databases else ("path_voc",):
        check_dataset(getattr(settings, setting), "trainval", settings.class_object, setting)
    check_path_vgg(settings.path_vgg)
    if settings.bool_draw:      # the drawings of the searches, written during the epochs
        check_output_folder(Path(settings.path_testing_folder) / "training", "path_testing_folder")
    written = run_files(settings.path_model, class_idx, range(settings.n, settings.epochs))
    check_output_folder(settings.path_model, "path_model", [path.name for path in written])
    replaced = [epoch for epoch in existing_epochs(settings.path_model, class_idx) if epoch > settings.n]
    if replaced:    # testing would read them as this run's (save_epoch removes them)
        span = f"epoch {replaced[0]}" if len(replaced) == 1 else f"epochs {replaced[0]} to {replaced[-1]}"
        warnings.warn(f"{settings.path_model}/ holds the weights of {span} of class {class_name(settings.class_object)}"
                      f" from an earlier run; -n {settings.n} replaces them (removed when it saves epoch "
                      f"{settings.n})", UserWarning, stacklevel=2)
    if settings.n == 0 and settings.initial_weights not in (None, "", "None"):
        if not Path(settings.initial_weights).is_file():
            raise UserError(f"initial_weights: no file {settings.initial_weights}")


def run_files(path_model, class_idx, epochs):
    """Every file a training of ``epochs`` writes in ``path_model``."""
    weights = [checkpoint_path(path_model, class_idx, epoch) for epoch in [*epochs, None]]     # None: the latest
    states = [resume_state_path(path_model, class_idx, epoch) for epoch in epochs]
    return [*weights, *map(refiner_path, weights), *map(scorer_path, weights), *states, log_path(path_model, class_idx),
            features_path(path_model, class_idx), saving_path(path_model, class_idx)]


def make_learner(settings, model):
    """The Q-learning update with the settings' learning options (none: the paper's), or the oracle diagnostic's."""
    if settings.oracle:
        return OracleLearner(model, settings.gamma, settings.learning_rate, settings.batch_size)
    return QLearner(model, settings.gamma, settings.learning_rate, settings.batch_size,
                    trigger_targets=bool(settings.trigger_targets), expert_margin=settings.expert_margin)


class TrainingRun:
    """What surrounds the training loop (``episodes.train``): checks and lock (:func:`preflight`), seed, data,
    resume (:meth:`start`), the epoch's images (:meth:`images`), drawings, and :meth:`end_epoch` (saving, log line).
    As a context manager it holds the lock and turns SIGTERM into Ctrl-C (the epoch in progress is dropped; the
    message names the ``-n`` that continues); a NaN or infinite loss raises a UserError, the epoch unsaved."""

    def __init__(self, settings, model_label):
        self.settings, self.model_label = settings, model_label
        preflight(settings)
        self.class_name, self.class_idx = class_name(settings.class_object), class_index(settings)
        self.path_model = Path(settings.path_model)
        self.epoch, self.last_saved, self.log_rows = settings.n, settings.n - 1, []
        self.refiner = None         # the latest epoch's refinement head (refine 1), for the score head's sample

    def __enter__(self):
        settings = self.settings
        with ExitStack() as stack:      # should the preparation fail, the lock and the signal handlers are released
            stack.enter_context(training_lock(self.path_model, self.class_idx))     # creates path_model
            self.signals = stack.enter_context(StopSignals())
            seed_everything(settings.seed)
            self.rng = np.random.default_rng(settings.seed)
            remove_temporary_files(self.path_model, self.class_idx)
            roots = [settings.path_voc] + ([settings.path_voc2] if settings.two_databases else [])
            self.report, annotation_problems = SkipReport(), []
            self.records = load_records(roots, self.class_name, "trainval", max_images=settings.max_images,
                                        skipped=annotation_problems)
            self.report.add_records(self.records, annotation_problems)
            print(f"{self.model_label} training: class {self.class_name} (id {self.class_idx + 1}), "
                  f"{len(self.records)} images, scale {settings.scale_subregion}, {settings.epochs} epochs")
            self._stack = stack.pop_all()
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if isinstance(error, NonFiniteLoss):
                raise UserError(non_finite_message(self.settings, self.class_idx, self.epoch, str(error))) from None
            if isinstance(error, Interrupted):
                saved, epoch = self.last_saved, self.epoch
                where = f"{error} after epoch {epoch} was saved" if saved == epoch else \
                    f"{error} during epoch {epoch}: its progress is dropped"
                print(f"{where}; no epoch was complete, nothing to resume from" if saved < 0 else
                      f"{where}; epochs up to {saved} are saved in {self.path_model}/. Continue with -n {saved + 1} "
                      f"(resume state and weights of that epoch are complete)", file=sys.stderr, flush=True)
        finally:
            self._stack.close()
        if error is None:
            self.report.print_summary()
            print(f"checkpoints in {self.path_model}/, log {log_path(self.path_model, self.class_idx)}")

    def start(self, learner, memory, sample, scores=None):
        """Epoch ``n``'s start: the initial weights (fine-tuning) or, with ``-n``, the checkpoint of epoch n − 1
        (:func:`resume`); says which learning options are on. Returns the random generator of the loop."""
        settings = self.settings
        if settings.initial_weights not in (None, "", "None"):
            if settings.n == 0:     # fine-tuning: epoch 0 starts from these weights, not N(0, 0.01)
                description = set_q_network_weights(learner.model, settings.initial_weights, settings.weights_order)
                print(f"starting from the Q-network weights {Path(settings.initial_weights)} ({description})")
            elif "initial_weights" in settings.explicit:
                print(f"note: initial_weights is for epoch 0; -n {settings.n} resumes from the checkpoint of epoch "
                      f"{settings.n - 1}")
        extras = {**learner.options, **{name: 1 for name in ("refine", "score_head") if getattr(settings, name)}}
        if extras:
            print("learning options (not the paper's method): " + ", ".join(f"{k} {v}" for k, v in extras.items())
                  + ("; the log's loss adds the margin's to Q-learning's" if extras.get("expert_margin") else ""))
        if settings.n > 0:
            self.log_rows = resume(settings, learner, memory, self.rng, self.class_idx, sample, scores)
            weights = refiner_path(checkpoint_path(self.path_model, self.class_idx, settings.n - 1))
            if sample is not None and weights.is_file():
                self.refiner = BoxRefiner.load(weights)
        return self.rng

    def images(self, epoch, stats, features):
        """``epoch``'s images as ``(record, image)`` in random order, with a progress bar; unreadable ones skipped."""
        self.epoch, self.stats, self.used = epoch, stats, 0
        self.forwards, self.hits, self.started = features.forward_count, features.cache.hits, time.perf_counter()
        progress = self.progress = tqdm(self.rng.permutation(len(self.records)), desc=f"epoch {epoch}", unit="img",
                                        leave=False, disable=not sys.stderr.isatty())
        for index in progress:
            record = self.record = self.records[index]
            image = load_record_image(record, self.report, self.settings.max_pixels)
            if image is not None:
                self.used += 1
                yield record, image
                progress.set_postfix(steps=stats["steps"], triggers=stats["triggers"])
        if self.used == 0:
            raise UserError(f"none of the {len(self.records)} training images could be read (first: "
                            f"{next(iter(self.report.images.values()))}); nothing to train on")
        # the epoch's own VGG-16 forwards, cache hits and seconds
        self.counts = (features.forward_count - self.forwards, features.cache.hits - self.hits,
                       time.perf_counter() - self.started)

    def searched(self, count, objects):
        """Progress within an image of many objects: every :data:`SEARCHES_PER_LINE` searches, in the progress bar or,
        where stderr is not a terminal (a log file), as a line."""
        if count % SEARCHES_PER_LINE == 0:
            where = f"image {self.record.image_id}: {count} of {objects} objects searched"
            if self.progress.disable:
                print(f"  epoch {self.epoch}, {where}", flush=True)
            else:
                self.progress.set_postfix_str(where)

    def draw(self, epoch, record, image, steps):
        """The searches of an image as a PNG, with ``bool_draw`` (every ``draw_every``-th epoch and the last)."""
        if draws_epoch(self.settings, epoch) and steps:
            from visualization import draw_training_search
            draw_training_search(image, steps, Path(self.settings.path_testing_folder) / "training" /
                                 f"epoch{epoch}_{record.image_id}.png", title=f"epoch {epoch} {record.image_id}")

    def end_epoch(self, epoch, epsilon, features, learner, memory, sample, scores=None):
        """Save the epoch's log row and files, all or none (a signal waits meanwhile); print one progress line."""
        row = epoch_row(epoch, epsilon, self.used, self.stats, *self.counts)
        with self.signals.deferred():
            if not all(np.all(np.isfinite(weights)) for weights in learner.model.get_weights()):
                raise UserError(non_finite_message(self.settings, self.class_idx, epoch, "the weights became NaN "
                                                   "or infinite"))
            self.log_rows.append(row)
            self.refiner = save_epoch(self.settings, learner, memory, self.rng, self.class_idx, epoch, self.log_rows,
                                      sample, features, scores)
            self.last_saved = epoch
        print(f"epoch {epoch:3d}  eps {epsilon:.2f}  mean reward {row['mean_reward']:+.3f}  searches "
              f"{row['searches']}  triggers {row['triggers']} (correct {row['correct_triggers']}, mean IoU "
              f"{row['mean_trigger_iou']:.2f})  loss {row['mean_loss']:.4f}  vgg forwards "
              f"{row['vgg_forwards']}  {row['steps_per_s']:.1f} steps/s", flush=True)


SEARCHES_PER_LINE = 100     # an image with more objects than this says how far its searches are


def non_finite_message(settings, class_idx, epoch, problem):
    saved = [e for e in existing_epochs(settings.path_model, class_idx) if e < epoch]
    keep = (f"the last good checkpoint, epoch {saved[-1]}, is kept in {settings.path_model}; resume it with "
            f"-n {saved[-1] + 1}" if saved else "no checkpoint was saved")
    return (f"epoch {epoch}: {problem}; training stopped without saving this epoch ({keep} and a lower "
            f"learning_rate than {settings.learning_rate:g})")


def epoch_row(epoch, epsilon, images, stats, forwards, hits, seconds):
    return {"epoch": epoch, "epsilon": round(epsilon, 4), "images": images, "searches": stats["searches"],
            "steps": stats["steps"], "mean_reward": stats["reward"] / max(stats["steps"], 1),
            "triggers": stats["triggers"], "correct_triggers": stats["correct_triggers"],
            "hit_rate": stats["correct_triggers"] / max(stats["searches"], 1),
            "mean_trigger_iou": stats["trigger_iou"] / max(stats["triggers"], 1), "updates": stats["updates"],
            "mean_loss": stats["loss"] / stats["updates"] if stats["updates"] else 0.0, "vgg_forwards": forwards,
            "cache_hits": hits, "steps_per_s": stats["steps"] / max(seconds, 1e-9), "seconds": round(seconds, 2)}


# settings that may change on resume without a warning (they do not change what is learnt), and removed options
RESUME_FREE_SETTINGS = {"n", "epochs", "demo", "explicit", "path_model", "path_testing_folder", "bool_draw",
                        "draw_every", "cache_mb", "map_cache_mb", "checkpoint_every", "initial_weights",
                        "weights_order", *REMOVED_OPTIONS}


def draws_epoch(settings, epoch):
    """Whether the searches of ``epoch`` are drawn: with ``bool_draw``, every ``draw_every``-th epoch and the last
    (a drawing takes most of a second; every epoch's would add minutes to a demo-sized training)."""
    return bool(settings.bool_draw) and ((epoch + 1) % settings.draw_every == 0 or epoch == settings.epochs - 1)


def save_epoch(settings, learner, memory, rng, class_idx, epoch, log_rows, sample=None, features=None, scores=None):
    """Write the files of ``epoch`` together (``run_folder.write_together``: all or none replace the previous ones):
    resume state, weights (the epoch's and the latest), log and describing settings (``run_folder.features_path``);
    then remove older resume states and the previous epoch's weights unless ``checkpoint_every`` keeps them.
    With a window ``sample`` (``refine``) or a score sample (``scores``, ``score_head``) the head fitted on each is
    saved beside each weights file; returns the refinement head (None without one). A failed write raises a UserError
    naming the folder and the cause, the previous epoch's files as they were."""
    path_model = Path(settings.path_model)
    state = resume_state(settings, learner, memory, rng, epoch, sample, scores)
    weights_files = [checkpoint_path(path_model, class_idx, epoch), checkpoint_path(path_model, class_idx)]
    writes = [(resume_state_path(path_model, class_idx, epoch), lambda temporary: write_resume_state(temporary, state))]
    heads, stale = {}, []
    for head_path, held, few in ((refiner_path, sample, "refine 1: {} visited windows overlapped an object so far, "
                                  "fewer than the {} the refinement head needs"),
                                 (scorer_path, scores, "score_head 1: {} boxes sampled so far, fewer than the {} the "
                                  "score head needs")):
        head = heads[head_path] = None if held is None else held.fit()
        if head is not None:    # before the weights: a test during the training finds the head of the weights it reads
            writes += [(head_path(path), head.save) for path in weights_files]
        else:                   # a head an earlier run left beside these weights' names is not this run's
            stale += [head_path(path) for path in weights_files]
        if held is not None and head is None:
            warnings.warn(few.format(len(held), MIN_WINDOWS) + f"; epoch {epoch} is saved without one (train on more "
                          f"images or epochs)", UserWarning, stacklevel=2)
    writes += [*((path, learner.model.save_weights) for path in weights_files),
               (log_path(path_model, class_idx), lambda temporary: write_log(temporary, log_rows)),
               (features_path(path_model, class_idx),
                lambda temporary: write_features_file(temporary, settings, features))]
    try:
        write_together(writes, marker=(saving_path(path_model, class_idx), f"{epoch}\n"))
    except Exception as error:      # whatever stopped the write, the folder is as before: say so in one line
        cause = str(error) if isinstance(error, OSError) else f"{type(error).__name__}: {error}"
        kept = (f"epoch {epoch - 1} is kept as it was (-n {epoch} resumes it)"
                if checkpoint_path(path_model, class_idx, epoch - 1).is_file() else "no earlier epoch was saved")
        raise UserError(f"could not save epoch {epoch} in {path_model}/ ({cause}); none of its files were kept, "
                        f"{kept}") from None
    stale += [resume_state_path(path_model, class_idx, older) for older in resume_epochs(path_model, class_idx)
              if older != epoch]
    # later epochs of an earlier run (preflight warns), and the previous epoch's unless it is a checkpoint_every-th
    old = [saved for saved in existing_epochs(path_model, class_idx) if saved > epoch]
    old += [epoch - 1] if epoch > 0 and epoch % settings.checkpoint_every else []
    old_weights = [checkpoint_path(path_model, class_idx, saved) for saved in old]
    stale += [*old_weights, *map(refiner_path, old_weights), *map(scorer_path, old_weights)]
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            warnings.warn(f"epoch {epoch} is saved, but {path} could not be removed ({error})", UserWarning,
                          stacklevel=2)
    return heads[refiner_path]


def resume_state(settings, learner, memory, rng, epoch, sample=None, scores=None):
    """What ``run_folder.write_resume_state`` writes at the end of ``epoch``, besides the weights."""
    return {"epoch": epoch, "epsilon": epsilon_for_epoch(epoch, settings.epsilon),
            "numpy_rng": rng.bit_generator.state,
            "settings": {k: v for k, v in vars(settings).items() if k != "explicit"},
            "optimizer": [np.asarray(variable) for variable in learner.optimizer.variables],
            "optimizer_paths": [variable.path for variable in learner.optimizer.variables],
            "seed_generators": [np.asarray(variable) for variable in _seed_variables(learner.model)],
            "replay_memory": memory.state_dict() if settings.save_replay_memory else None,
            "refine_sample": None if sample is None else sample.state_dict(),
            "score_sample": None if scores is None else scores.state_dict()}


def _seed_variables(model):
    """Variables of the dropout layers' seed generators (not part of the weights, needed for an exact resume)."""
    import keras
    return [layer.seed_generator.state for layer in model.layers
            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)]


def resume(settings, learner, memory, rng, class_idx, sample=None, scores=None):
    """``-n N``: load the checkpoint of epoch N−1 (weights and, with its resume state, optimiser, replay memory and
    random generators, for an exact continuation) and return the log rows of the epochs before N. Every file is
    checked before anything is used (a damaged one: UserError naming it and the way on). The learning rate is the
    one given now (a change is reported)."""
    model, path_model, previous = learner.model, Path(settings.path_model), settings.n - 1
    weights = checkpoint_path(path_model, class_idx, previous)       # there: preflight checked it
    try:
        check_weights(weights)
    except DamagedFile as damage:
        raise UserError(f"{damage}; epoch {previous} cannot be resumed: "
                        f"{resume_options(path_model, class_idx, previous)}") from None
    state, state_path = None, resume_state_path(path_model, class_idx, previous)
    if state_path.is_file():
        try:
            state = read_resume_state(state_path, previous)
            check_removed_in(state["settings"], state_path)
            check_state_fits(state, state_path, learner, memory)
            for held, name in ((sample, "refine_sample"), (scores, "score_sample")):
                if held is not None and state[name] is not None:
                    try:        # a sample reads its own arrays and random state: loading is its check
                        held.load_state_dict(state[name])
                    except Exception as error:
                        raise DamagedFile(state_path, f"damaged (its {NAMED_ARRAYS[name][0]}: "
                                                      f"{type(error).__name__}: {str(error)[:200]})") from None
        except DamagedFile as damage:
            raise UserError(f"{damage}; epoch {previous} cannot be resumed exactly. To continue from its weights "
                            f"alone (inexact: a fresh optimiser and replay memory, said so when it starts), delete "
                            f"{state_path.name} and run -n {settings.n} again") from None
    try:
        log_rows = [row for row in read_log(log_path(path_model, class_idx)) if row["epoch"] < settings.n]
    except DamagedFile as damage:
        raise UserError(f"{damage}. Repair it, or delete it to resume with a log that starts at epoch {settings.n} "
                        f"(the checkpoints are not affected)") from None
    try:
        model.load_weights(weights)
    except Exception as error:      # h5py, Keras and TensorFlow raise several types for a wrong file
        raise UserError(f"{weights}: not a Q-network weights file of this project ({error}); epoch {previous} cannot "
                        f"be resumed: {resume_options(path_model, class_idx, previous)}") from None

    notes = []
    if state is not None:
        saved = state["settings"]
        current = vars(settings)        # explicit is among RESUME_FREE_SETTINGS
        # a setting the checkpoint does not name is newer than it: only a value given now can differ
        changed = sorted(k for k in set(saved) | set(current) if k not in RESUME_FREE_SETTINGS and (
            saved[k] != current.get(k) if k in saved else k in settings.explicit))
        if changed:
            warnings.warn("resuming with settings that differ from the checkpoint's: " + ", ".join(
                f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in changed) + "; the run continues with the "
                "new values", UserWarning, stacklevel=2)
        for variable, array in zip(learner.optimizer.variables, state["optimizer"]):
            if not variable.path.endswith("learning_rate"):
                variable.assign(array)
        for variable, array in zip(_seed_variables(model), state["seed_generators"]):
            variable.assign(array)
        rng.bit_generator.state = state["numpy_rng"]
        replay = state["replay_memory"]
        if replay is None:
            notes.append("the replay memory was not saved (save_replay_memory 0): it starts empty")
        elif replay["actions"].shape[0] != memory.capacity:
            notes.append(f"the saved replay memory holds {replay['actions'].shape[0]} transitions, "
                         f"buffer_experience_replay is {memory.capacity}: it starts empty")
        elif lacking := memory.lacking(replay):
            notes.append(f"the saved replay memory has no {', '.join(lacking)} (saved with other learning options): "
                         f"it starts empty")
        else:
            memory.load_state_dict(replay)
        if sample is not None and state["refine_sample"] is None:
            notes.append("the resume state has no window sample for the refinement head (trained without refine): "
                         "it starts empty")
        if scores is not None and state["score_sample"] is None:
            notes.append("the resume state has no score sample for the score head (trained without score_head): "
                         "it starts empty")
    else:
        notes.append(f"no resume state {state_path.name}: optimiser and replay memory start empty, random "
                     f"generators from the seed")
    print(f"resuming at epoch {settings.n} from {weights}" + (f" ({'; '.join(notes)}: not an exact continuation)"
                                                            if notes else ""))
    return log_rows


def check_state_fits(state, path, learner, memory):
    """Raise ``DamagedFile`` unless the resume state's arrays fit this run's optimiser, dropout seeds and replay
    memory and hold numbers (replay position within it, actions among the six)."""
    def compare(what, arrays, variables):
        shapes, expected = [tuple(array.shape) for array in arrays], [tuple(variable.shape) for variable in variables]
        if shapes != expected:
            raise DamagedFile(path, f"incomplete ({what}: {len(shapes)} arrays where this run has {len(expected)}"
                                    + ("" if len(shapes) != len(expected) else ", of other shapes") + ")")
        numbers(what, dict(enumerate(arrays)))

    def numbers(what, arrays):
        wrong = [(name, array.dtype) for name, array in arrays.items() if array.dtype.kind not in "biuf"]
        if wrong:
            raise DamagedFile(path, f"damaged ({what} array {wrong[0][0]} holds {wrong[0][1]}, not numbers)")
        infinite = [name for name, array in arrays.items() if array.dtype.kind == "f" and
                    not np.all(np.isfinite(array))]
        if infinite:
            raise DamagedFile(path, f"damaged ({what} array {infinite[0]} holds a value that is not finite)")
    compare("optimiser", state["optimizer"], learner.optimizer.variables)
    compare("dropout seeds", state["seed_generators"], _seed_variables(learner.model))
    replay = state["replay_memory"]
    if replay is not None and replay["actions"].shape[0] == memory.capacity:
        saved = {FORMER_FIELD_NAMES.get(name, name): array for name, array in replay.items()}
        wrong = [name for name, array in memory.state_dict().items()
                 if name in saved and saved[name].shape != array.shape]
        if wrong:
            raise DamagedFile(path, f"incomplete (replay memory arrays {', '.join(wrong)} of other shapes)")
        numbers("replay memory", saved)
        if not 0 <= saved["pos"] < memory.capacity:
            raise DamagedFile(path, f"damaged (replay memory position {saved['pos']} outside 0..{memory.capacity - 1})")
        if np.any((saved["actions"] < 0) | (saved["actions"] >= NUM_ACTIONS)):
            raise DamagedFile(path, f"damaged (replay memory actions outside 0..{NUM_ACTIONS - 1})")
