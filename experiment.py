"""What the four scripts share: data loading, the training run with checkpoints and log, the test run with
``results.json`` and figures, the search of the user's own images (``--image``). The scripts keep their settings
and call ``train`` or ``test`` with the feature model they use.

Robustness, in short (the README's Troubleshooting section has the full list):
- an image that is missing or unreadable, or whose annotation is missing or does not parse, is skipped with a
  warning and counted (end-of-run summary, ``skipped_images`` in results.json); UserError when nothing is left;
- SIGTERM is handled like Ctrl-C. The epoch in progress is dropped; the checkpoint of the last complete epoch is the
  resume point, and ``-n`` continues from it as the uninterrupted run would have (the checkpoint holds weights,
  optimiser, ε, random generators, settings and replay memory). A signal that arrives while an epoch is being saved
  waits until it is saved. Files are written to a temporary name and renamed, the resume state
  before the weights, so even SIGKILL leaves the last complete epoch resumable;
- a NaN or infinite loss stops training at once; non-finite weights are never saved.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from errors import UserError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")     # TensorFlow's start-up chatter hides the progress lines

DEMO_DATA = Path("data/synthetic_voc")


# ---------------------------------------------------------------------------------------------------------------
# plumbing

def seed_everything(seed):
    """One seed for Python, NumPy and Keras/TensorFlow; deterministic kernels on CPU."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


TEMPORARY_PREFIX = ".tmp_"


def write_atomically(path, write):
    """Call ``write(temporary_path)`` then rename over ``path``: an interrupted run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(TEMPORARY_PREFIX + path.name)     # keeps the suffix, which Keras checks
    try:
        write(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def write_json(path, data):
    def write(temporary):
        with open(temporary, "w") as handle:
            json.dump(data, handle, indent=1)
    write_atomically(path, write)


def main_guard(function):
    """Run a script's main: user errors become one line on stderr and exit code 2; Ctrl-C exits with 130, SIGTERM
    with 143 (128 + the signal number); user warnings print as one line ``warning: ...``."""
    show_warning = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning):
            print(f"warning: {message}", file=sys.stderr if file is None else file, flush=True)
        else:
            show_warning(message, category, filename, lineno, file, line)
    warnings.showwarning = one_line
    try:
        function()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(128 + getattr(interrupt, "signal_number", signal.SIGINT))
    finally:
        warnings.showwarning = show_warning


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, raised in the main thread (KeyboardInterrupt, so it ends a run the way Ctrl-C does)."""

    def __init__(self, signal_number):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = int(signal_number)


class StopSignals:
    """While active, SIGINT and SIGTERM raise :class:`Interrupted`; inside ``deferred()`` they wait until the
    block is done (saving an epoch), then raise. The previous handlers come back at exit. Outside the main thread
    (where Python cannot set handlers) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.previous = {}
        self.pending = []
        self.deferring = False

    def _handle(self, signal_number, frame):
        if self.deferring:
            self.pending.append(signal_number)
        else:
            raise Interrupted(signal_number)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        return False

    @contextlib.contextmanager
    def deferred(self):
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending:
            raise Interrupted(self.pending[0])


def training_flags(parser):
    """Flags of the training scripts beyond their settings."""
    parser.add_argument("-n", "--n", type=int, default=0, metavar="N",
                        help="start at epoch N, resuming from the checkpoint of epoch N-1")
    parser.add_argument("--demo", action="store_true", help="synthetic dataset and demo budgets")


def testing_flags(parser):
    """Flags of the testing scripts beyond their settings (choices checked here)."""
    parser.add_argument("--demo", action="store_true", help="the synthetic dataset")
    parser.add_argument("--agent", choices=("trained", "random", "upper_bound"), default="trained")
    parser.add_argument("--detections", choices=("visited", "triggered"), default="visited",
                        help="visited: every analysed region is a detection (the paper's); triggered: only triggers")
    parser.add_argument("--image", action="append", default=None, metavar="FILE",
                        help="search this image (repeat for more) with the trained agent instead of testing on a "
                             "dataset: no annotations needed; writes <path_testing_folder>/images/<name>.png and "
                             "detections.json. Detections are the triggered regions unless --detections is given")
    parser.add_argument("--epoch", type=parse_epochs, default=-1, metavar="E[,E...]",
                        help="checkpoint epoch (-1: the latest); a comma-separated list or 'all' tests each and "
                             "compares them (the paper's Figure 7)")


def parse_epochs(text):
    """``-1`` or ``4`` → an int; ``0,4,9`` → a list; ``all`` → every saved epoch (resolved in ``test``)."""
    import argparse
    text = str(text).strip()
    if text == "all":
        return "all"
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an epoch, a comma-separated list or 'all', got {text!r}") \
            from None
    if not values:
        raise argparse.ArgumentTypeError("no epoch given")
    return values[0] if len(values) == 1 and "," not in text else values


def apply_demo(settings, demo_values):
    """``--demo``: the synthetic dataset (generated if absent) and demo budgets, except where a flag was given."""
    if not settings.demo:
        return
    for name, value in demo_values.items():
        if name not in settings.explicit:
            setattr(settings, name, value)
    from synthetic_dataset import ensure_synthetic_voc
    ensure_synthetic_voc(DEMO_DATA)


def class_index(settings):
    from parse_xml_annotations import class_id
    return class_id(settings.class_object) - 1


def checkpoint_path(path_model, class_idx, epoch=None):
    name = f"model{class_idx}.weights.h5" if epoch is None else f"model{class_idx}_epoch_{epoch}.weights.h5"
    return Path(path_model) / name


def existing_epochs(path_model, class_idx, prefix="model", suffix=".weights.h5"):
    """Epochs with a file ``<prefix><class_idx>_epoch_<epoch><suffix>`` in ``path_model``, sorted."""
    pattern = re.compile(rf"{re.escape(prefix)}{class_idx}_epoch_(\d+){re.escape(suffix)}")
    return sorted(int(match.group(1)) for path in Path(path_model).glob(f"{prefix}{class_idx}_epoch_*{suffix}")
                  if (match := pattern.fullmatch(path.name)))


# ---------------------------------------------------------------------------------------------------------------
# input that cannot be used

class SkipReport:
    """What a run left out, and why: images (an unreadable image or annotation file) and broken objects."""

    def __init__(self):
        self.images = {}            # "<root>/<id>" (or a file) → the problem
        self.objects = 0            # objects dropped from otherwise readable annotations
        self.size_warned = set()

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
        if not self.images and not self.objects:
            return ""
        parts = [f"{len(self.images)} image{'s' if len(self.images) != 1 else ''}"] if self.images else []
        if self.objects:
            parts.append(f"{self.objects} broken object{'s' if self.objects != 1 else ''} in annotations")
        return "skipped " + " and ".join(parts) + " (see the warnings above)"

    def as_json(self):
        return {"skipped_images": len(self.images), "skipped_objects": self.objects,
                "skipped": [{"image": key, "problem": problem} for key, problem in self.images.items()]}


def load_record_image(record, report):
    """The pixels of an annotated image, or None (recorded in ``report``, warned once) when the file is missing or
    unreadable. An image whose size differs from its annotation's ``<size>`` is used at its own size, with a
    warning (the boxes are clipped to it)."""
    from image_helper import image_path, load_image
    key = f"{record.path_voc}/{record.image_id}"
    try:
        image = load_image(image_path(record.path_voc, record.image_id))
    except UserError as error:
        report.skip_image(key, str(error))
        return None
    height, width = image.shape[:2]
    annotation = record.annotation
    if (height, width) != (annotation.height, annotation.width) and key not in report.size_warned:
        report.size_warned.add(key)
        warnings.warn(f"{image_path(record.path_voc, record.image_id)} is {width} x {height} pixels but its "
                      f"annotation says {annotation.width} x {annotation.height}; the image's size is used",
                      UserWarning, stacklevel=2)
    return image


# ---------------------------------------------------------------------------------------------------------------
# training

LOG_FIELDS = ("epoch", "epsilon", "images", "searches", "steps", "mean_reward", "triggers", "correct_triggers",
              "hit_rate", "mean_trigger_iou", "updates", "mean_loss", "vgg_forwards", "cache_hits", "steps_per_s",
              "seconds")


def train(settings, make_features, model_label):
    """The training run: data → models → epochs of searches with Q-learning → a checkpoint and a log line each.

    Ctrl-C / SIGTERM: the epoch in progress is dropped and the run stops with a message naming the last saved
    epoch and the ``-n`` that continues it.
    """
    from tqdm import tqdm

    from episodes import NonFiniteLoss, make_environment, new_training_stats, train_image
    from parse_xml_annotations import class_name, load_records
    from reinforcement import QLearner, ReplayMemory, build_q_network, epsilon_for_epoch

    if settings.checkpoint_every < 1:
        raise UserError(f"checkpoint_every must be 1 or more (1 keeps every epoch's weights), got "
                        f"{settings.checkpoint_every}")
    seed_everything(settings.seed)
    rng = np.random.default_rng(settings.seed)
    name = class_name(settings.class_object)
    class_idx = class_index(settings)
    path_model = Path(settings.path_model)
    path_model.mkdir(parents=True, exist_ok=True)
    remove_temporary_files(path_model, class_idx)

    # data
    roots = [settings.path_voc] + ([settings.path_voc2] if settings.two_databases else [])
    report, annotation_problems = SkipReport(), []
    records = load_records(roots, name, "trainval", max_images=settings.max_images, skipped=annotation_problems)
    report.add_records(records, annotation_problems)
    print(f"{model_label} training: class {name} (id {class_idx + 1}), {len(records)} images, "
          f"scale {settings.scale_subregion}, {settings.epochs} epochs")

    # models
    features = make_features(settings)
    model = build_q_network(seed=settings.seed)
    learner = QLearner(model, settings.gamma, settings.learning_rate)
    memory = ReplayMemory(settings.buffer_experience_replay)
    log_path = path_model / f"training_log_model{class_idx}.csv"
    log_rows = []
    first_epoch = settings.n
    if first_epoch > 0:
        log_rows = resume(settings, learner, memory, rng, class_idx, log_path)

    # loop
    last_saved = first_epoch - 1
    epoch = first_epoch
    with StopSignals() as signals:
        try:
            for epoch in range(first_epoch, settings.epochs):
                epsilon = epsilon_for_epoch(epoch, settings.epsilon)
                stats = new_training_stats()
                forwards_before, hits_before = features.forward_count, features.cache.hits
                started = time.perf_counter()
                used = 0
                order = rng.permutation(len(records))
                progress = tqdm(order, desc=f"epoch {epoch}", unit="img", leave=False,
                                disable=not sys.stderr.isatty())
                for index in progress:
                    record = records[index]
                    image = load_record_image(record, report)
                    if image is None:
                        continue
                    used += 1
                    env = make_environment(record, name, settings.scale_subregion, image)
                    trajectory = [] if settings.bool_draw else None
                    try:
                        train_image(env, features, learner, memory, rng, epsilon, settings.number_of_steps,
                                    settings.batch_size, stats, trajectory)
                    except NonFiniteLoss as error:
                        raise UserError(non_finite_message(settings, class_idx, epoch, str(error))) from None
                    if trajectory:
                        from visualization import draw_training_search
                        draw_training_search(image, trajectory, Path(settings.path_testing_folder) / "training" /
                                             f"epoch{epoch}_{record.image_id}.png",
                                             title=f"epoch {epoch} {record.image_id}")
                    progress.set_postfix(steps=stats["steps"], triggers=stats["triggers"])
                if used == 0:
                    raise UserError(f"none of the {len(records)} training images could be read (first: "
                                    f"{next(iter(report.images.values()))}); nothing to train on")
                seconds = time.perf_counter() - started

                # save: log line, resume state, weights (epoch and latest); a signal now waits until they are written
                row = epoch_row(epoch, epsilon, used, stats, features.forward_count - forwards_before,
                                features.cache.hits - hits_before, seconds)
                with signals.deferred():
                    if not weights_are_finite(model):
                        raise UserError(non_finite_message(settings, class_idx, epoch, "the weights became NaN or "
                                                           "infinite"))
                    log_rows.append(row)
                    write_log(log_path, log_rows)
                    save_checkpoint(settings, learner, memory, rng, class_idx, epoch)
                    last_saved = epoch
                print(f"epoch {epoch:3d}  eps {epsilon:.2f}  mean reward {row['mean_reward']:+.3f}  searches "
                      f"{row['searches']}  triggers {row['triggers']} (correct {row['correct_triggers']}, mean IoU "
                      f"{row['mean_trigger_iou']:.2f})  loss {row['mean_loss']:.4f}  vgg forwards "
                      f"{row['vgg_forwards']}  {row['steps_per_s']:.1f} steps/s", flush=True)
        except Interrupted as interrupt:
            print(interrupted_message(interrupt, epoch, last_saved, path_model), file=sys.stderr, flush=True)
            raise
    if report.summary():
        print(report.summary())
    print(f"checkpoints in {path_model}/, log {log_path}")


def interrupted_message(interrupt, epoch, last_saved, path_model):
    where = f"{interrupt} after epoch {epoch} was saved" if last_saved == epoch else \
        f"{interrupt} during epoch {epoch}: its progress is dropped"
    if last_saved < 0:
        return f"{where}; no epoch was complete, nothing to resume from"
    return (f"{where}; epochs up to {last_saved} are saved in {path_model}/. Continue with -n {last_saved + 1} "
            f"(resume state and weights of that epoch are complete)")


def non_finite_message(settings, class_idx, epoch, problem):
    saved = [e for e in existing_epochs(settings.path_model, class_idx) if e < epoch]
    keep = (f"the last good checkpoint, epoch {saved[-1]}, is kept in {settings.path_model}; resume it with "
            f"-n {saved[-1] + 1}" if saved else "no checkpoint was saved")
    return (f"epoch {epoch}: {problem}; training stopped without saving this epoch ({keep} and a lower "
            f"learning_rate than {settings.learning_rate:g})")


def weights_are_finite(model):
    return all(np.all(np.isfinite(weights)) for weights in model.get_weights())


def epoch_row(epoch, epsilon, images, stats, forwards, hits, seconds):
    steps = max(stats["steps"], 1)
    return {"epoch": epoch, "epsilon": round(epsilon, 4), "images": images, "searches": stats["searches"],
            "steps": stats["steps"], "mean_reward": stats["reward"] / steps, "triggers": stats["triggers"],
            "correct_triggers": stats["correct_triggers"],
            "hit_rate": stats["correct_triggers"] / max(stats["searches"], 1),
            "mean_trigger_iou": stats["trigger_iou"] / max(stats["triggers"], 1), "updates": stats["updates"],
            "mean_loss": stats["loss"] / stats["updates"] if stats["updates"] else 0.0, "vgg_forwards": forwards,
            "cache_hits": hits, "steps_per_s": stats["steps"] / max(seconds, 1e-9), "seconds": round(seconds, 2)}


def write_log(path, rows):
    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value)
                                 for key, value in row.items()})
    write_atomically(path, write)


def read_log(path):
    if not Path(path).is_file():
        return []
    with open(path, newline="") as handle:
        return [{key: float(value) if key not in ("epoch",) else int(value) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def resume_state_path(path_model, class_idx, epoch):
    return Path(path_model) / f"resume_model{class_idx}_epoch_{epoch}.h5"


def remove_temporary_files(path_model, class_idx):
    """Half-written files a killed run of this class left behind (never read: the real files are intact)."""
    pattern = re.compile(rf"{re.escape(TEMPORARY_PREFIX)}(model{class_idx}(_epoch_\d+)?\.weights\.h5|"
                         rf"resume_model{class_idx}_epoch_\d+\.h5|training_log_model{class_idx}\.csv)")
    for path in Path(path_model).glob(f"{TEMPORARY_PREFIX}*"):
        if pattern.fullmatch(path.name):
            path.unlink(missing_ok=True)


# settings that may change on resume without a warning (they do not change what is learnt)
RESUME_FREE_SETTINGS = {"n", "epochs", "demo", "explicit", "path_model", "path_testing_folder", "bool_draw",
                        "cache_mb", "map_cache_mb", "checkpoint_every"}


def keeps_epoch_weights(settings, epoch):
    """Whether the weights file of ``epoch`` stays once a later epoch is saved: every ``checkpoint_every``-th
    epoch and the last one. The latest epoch always has its file (``-n`` resumes from it)."""
    return (epoch + 1) % settings.checkpoint_every == 0 or epoch == settings.epochs - 1


def save_checkpoint(settings, learner, memory, rng, class_idx, epoch):
    """The state at the end of ``epoch``: the resume state (epoch, ε, optimiser, replay memory, random generators,
    settings), then the weights (of the epoch, and the latest), then older resume states and the previous epoch's
    weights, unless ``checkpoint_every`` keeps them, are removed.

    Each file is written to a temporary name and renamed, and in this order, so a run killed at any moment leaves
    the last complete epoch with both its weights and its resume state.
    """
    import h5py
    from reinforcement import epsilon_for_epoch
    model = learner.model
    path_model = Path(settings.path_model)

    def write_state(temporary):
        with h5py.File(temporary, "w") as handle:
            handle.attrs["epoch"] = epoch
            handle.attrs["epsilon"] = epsilon_for_epoch(epoch, settings.epsilon)
            handle.attrs["numpy_rng"] = json.dumps(rng.bit_generator.state)
            handle.attrs["settings"] = json.dumps({k: v for k, v in vars(settings).items() if k != "explicit"})
            optimizer = handle.create_group("optimizer")
            for index, variable in enumerate(learner.optimizer.variables):
                optimizer[str(index)] = np.asarray(variable)
                optimizer[str(index)].attrs["path"] = variable.path
            seeds = handle.create_group("seed_generators")
            for index, variable in enumerate(_seed_variables(model)):
                seeds[str(index)] = np.asarray(variable)
            if settings.save_replay_memory:
                replay = handle.create_group("replay_memory")
                for name, array in memory.state_dict().items():
                    replay[name] = array
    write_atomically(resume_state_path(path_model, class_idx, epoch), write_state)
    for path in (checkpoint_path(path_model, class_idx, epoch), checkpoint_path(path_model, class_idx)):
        write_atomically(path, model.save_weights)
    for older in existing_epochs(path_model, class_idx, prefix="resume_model", suffix=".h5"):
        if older != epoch:
            resume_state_path(path_model, class_idx, older).unlink(missing_ok=True)
    if epoch > 0 and not keeps_epoch_weights(settings, epoch - 1):
        checkpoint_path(path_model, class_idx, epoch - 1).unlink(missing_ok=True)


def _seed_variables(model):
    """Variables of the dropout layers' seed generators (not part of the weights, needed for an exact resume)."""
    import keras
    variables = []
    for layer in model.layers:
        seed_generator = getattr(layer, "seed_generator", None)
        if isinstance(seed_generator, keras.random.SeedGenerator):
            variables.append(seed_generator.state)
    return variables


def resume(settings, learner, memory, rng, class_idx, log_path):
    """``-n N``: load the checkpoint of epoch N−1 — weights and, when its resume state is there, the optimiser,
    replay memory and random generators, which makes the rest of the run the same as an uninterrupted one — and
    return the log rows of the epochs before N.

    The learning rate is the one given now (changing it on resume is allowed; it is reported).
    """
    import h5py
    model = learner.model
    path_model = Path(settings.path_model)
    previous = settings.n - 1
    weights = checkpoint_path(path_model, class_idx, previous)
    if not weights.is_file():
        found = existing_epochs(path_model, class_idx)
        raise UserError(f"-n {settings.n}: no checkpoint {weights}; epochs saved in {path_model}: "
                        f"{found if found else 'none'}")
    try:
        model.load_weights(weights)
    except Exception as error:      # h5py, Keras and TensorFlow raise several types for a wrong file
        raise UserError(f"{weights}: not a Q-network weights file of this project ({error})") from None
    state_path = resume_state_path(path_model, class_idx, previous)
    notes = []
    if state_path.is_file():
        with h5py.File(state_path, "r") as handle:
            saved = json.loads(handle.attrs["settings"])
            current = {k: v for k, v in vars(settings).items() if k != "explicit"}
            # a setting the checkpoint does not name is newer than it: only a value given now can differ
            changed = sorted(k for k in set(saved) | set(current) if k not in RESUME_FREE_SETTINGS and (
                saved[k] != current.get(k) if k in saved else k in settings.explicit))
            if changed:
                warnings.warn("resuming with settings that differ from the checkpoint's: " + ", ".join(
                    f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in changed) + "; the run continues with the "
                    "new values", UserWarning, stacklevel=2)
            for index, variable in enumerate(learner.optimizer.variables):
                if not variable.path.endswith("learning_rate"):
                    variable.assign(np.asarray(handle["optimizer"][str(index)]))
            for index, variable in enumerate(_seed_variables(model)):
                variable.assign(np.asarray(handle["seed_generators"][str(index)]))
            rng.bit_generator.state = json.loads(handle.attrs["numpy_rng"])
            if "replay_memory" not in handle:
                notes.append("the replay memory was not saved (save_replay_memory 0): it starts empty")
            elif handle["replay_memory"]["actions"].shape[0] != memory.capacity:
                notes.append(f"the saved replay memory holds {handle['replay_memory']['actions'].shape[0]} "
                             f"transitions, buffer_experience_replay is {memory.capacity}: it starts empty")
            else:
                memory.load_state_dict({k: np.asarray(v) for k, v in handle["replay_memory"].items()})
    else:
        notes.append(f"no resume state {state_path.name}: optimiser and replay memory start empty, random "
                     f"generators from the seed")
    print(f"resuming at epoch {settings.n} from {weights}" + (f" ({'; '.join(notes)}: not an exact continuation)"
                                                            if notes else ""))
    return [row for row in read_log(log_path) if row["epoch"] < settings.n]


# ---------------------------------------------------------------------------------------------------------------
# testing

def test(settings, make_features, model_label):
    """The test run: searches with the chosen agent → detections → VOC metrics → results.json and figures.

    With ``--image`` it searches the user's own images instead (:func:`search_own_images`).
    """
    from episodes import RandomAgent, TrainedAgent, UpperBoundAgent, make_environment, run_searches
    from metrics import precision_recall, regions_per_found_object
    from parse_xml_annotations import class_name, load_records

    if getattr(settings, "image", None):
        return search_own_images(settings, make_features, model_label)
    if isinstance(settings.epoch, (list, str)):
        return test_epochs(settings, make_features, model_label)
    seed_everything(settings.seed)
    name = class_name(settings.class_object)
    class_idx = class_index(settings)
    out_folder = Path(settings.path_testing_folder)
    report, annotation_problems = SkipReport(), []
    records = load_records([settings.path_voc_test], name, "test", max_images=settings.max_images,
                           skipped=annotation_problems)
    report.add_records(records, annotation_problems)

    # agent and features
    features, agent, epoch = None, None, None
    if settings.agent == "trained":
        from detection import QNetworkPolicy, load_q_network
        epoch = settings.epoch
        agent = TrainedAgent(QNetworkPolicy(load_q_network(trained_weights(settings, class_idx, model_label))))
        if epoch < 0:       # the latest weights are those of the last saved epoch
            epoch = max(existing_epochs(settings.path_model, class_idx), default=None)
        features = make_features(settings)
    elif settings.agent == "random":
        agent = RandomAgent(np.random.default_rng(settings.seed))
    else:
        agent = UpperBoundAgent()
    needs_pixels = agent.needs_features or settings.bool_draw
    print(f"{model_label} testing: agent {settings.agent}, class {name}, {len(records)} images, scale "
          f"{settings.scale_subregion}" + ("" if needs_pixels else " (annotations only)"))

    # searches, in lockstep over chunks of images (an unreadable image is left out of the evaluation)
    started = time.perf_counter()
    detections, ground_truth, all_trajectories = [], {}, {}
    chunk = 16
    for start in range(0, len(records), chunk):
        pairs = [(r, load_record_image(r, report) if needs_pixels else None) for r in records[start:start + chunk]]
        pairs = [(record, image) for record, image in pairs if image is not None or not needs_pixels]
        environments = [make_environment(r, name, settings.scale_subregion, image) for r, image in pairs]
        trajectories = run_searches(environments, agent, features, settings.number_of_steps,
                                    settings.only_first_object)
        for (record, image), trajectory in zip(pairs, trajectories):
            key = record.image_id
            ground_truth[key] = {"boxes": record.annotation.boxes_of(name),
                                 "difficult": record.annotation.difficult_of(name)}
            for step in trajectory:
                if settings.detections == "visited" or step["triggered"]:
                    detections.append({"image": key, "box": step["region"], "score": step["score"],
                                       "search": step["search"], "step": step["step"],
                                       "triggered": step["triggered"]})
            all_trajectories[key] = trajectory
            if settings.bool_draw:
                from visualization import draw_search
                draw_search(image, trajectory, out_folder / "searches" / f"{key}.png",
                            title=f"{model_label} {settings.agent}: {key}")
        print(f"  {min(start + chunk, len(records))}/{len(records)} images", flush=True)
    if not ground_truth:
        raise UserError(f"none of the {len(records)} test images could be read (first: "
                        f"{next(iter(report.images.values()))}); nothing to test on")
    seconds = time.perf_counter() - started

    # evaluate
    curve = precision_recall(detections, ground_truth)
    regions = regions_per_found_object(detections, curve["true_positive"])
    results = {
        "model": model_label, "agent": settings.agent, "class_object": name,
        "scale_subregion": settings.scale_subregion, "epoch": epoch, "detections_protocol": settings.detections,
        "only_first_object": bool(settings.only_first_object), "number_of_steps": settings.number_of_steps,
        "num_images": len(ground_truth), "num_objects": int(curve["num_positives"]),
        "precision": curve["precision"], "recall": curve["recall"], "ap": curve["ap"], "ap_voc07": curve["ap_voc07"],
        "max_recall": curve["max_recall"], "regions_per_found_object": regions,
        "regions_analysed": int(sum(len(t) for t in all_trajectories.values())),
        "vgg_forwards": None if features is None else features.forward_count, "seconds": round(seconds, 2),
        **report.as_json(),
        "detections": [dict(d, true_positive=bool(tp)) for d, tp in zip(detections, curve["true_positive"])],
        "trajectories": all_trajectories,
    }
    write_json(out_folder / "results.json", results)
    write_figures(results, out_folder)
    print(f"AP {results['ap']:.3f}  AP-07 {results['ap_voc07']:.3f}  max recall {results['max_recall']:.3f}  "
          f"objects {results['num_objects']}  regions analysed {results['regions_analysed']}  ({seconds:.1f} s)")
    if report.summary():
        print(report.summary())
    print(f"results in {out_folder / 'results.json'}")
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
    paths = []
    for epoch in epochs:
        one = copy.copy(settings)
        one.epoch, one.path_testing_folder = epoch, str(out_folder / f"epoch_{epoch}")
        test(one, make_features, model_label)
        paths.append(Path(one.path_testing_folder) / "results.json")
    rows = compare(paths, labels=[f"epoch {epoch}" for epoch in epochs], output=out_folder / "epochs.png",
                   title=f"{model_label}: precision-recall by training epoch")
    print(format_table(rows))
    print(f"comparison of epochs in {out_folder / 'epochs.png'}")
    return rows


def trained_weights(settings, class_idx, model_label):
    """The Q-network checkpoint a test uses: epoch ``settings.epoch``, or the latest when it is -1."""
    epoch = settings.epoch
    weights = checkpoint_path(settings.path_model, class_idx, epoch if epoch >= 0 else None)
    if not weights.is_file():
        found = existing_epochs(settings.path_model, class_idx)
        raise UserError(f"no checkpoint {weights}; epochs saved in {settings.path_model}: "
                        f"{found if found else 'none'}. Train first (python {model_label}_training.py).")
    return weights


def search_own_images(settings, make_features, model_label):
    """``--image FILE …``: the trained agent searches each image (no annotations); one PNG per image with the
    search and its detections, and ``detections.json``, in ``path_testing_folder``. Returns that JSON's content.

    Detections are the triggered regions unless ``--detections`` is given (``visited``: every analysed region).
    An unreadable image is skipped with a warning; UserError when none can be read.
    """
    from detection import as_rgb_image, detect_many, load_q_network
    from parse_xml_annotations import class_name
    from visualization import draw_search

    if settings.agent != "trained":
        raise UserError(f"--image runs the trained agent; --agent {settings.agent} needs annotations")
    seed_everything(settings.seed)
    name = class_name(settings.class_object)
    class_idx = class_index(settings)
    weights = trained_weights(settings, class_idx, model_label)
    protocol = settings.detections if "detections" in settings.explicit else "triggered"
    out_folder = Path(settings.path_testing_folder)
    report = SkipReport()
    images = []
    for path in settings.image:
        try:
            images.append((Path(path), as_rgb_image(path)))
        except UserError as error:
            report.skip_image(str(path), str(error))
    if not images:
        raise UserError(f"none of the {len(settings.image)} images could be read (first: "
                        f"{next(iter(report.images.values()))})")
    model, features = load_q_network(weights), make_features(settings)
    print(f"{model_label}: the {name} agent of {weights} searches {len(images)} image"
          f"{'s' if len(images) != 1 else ''}, scale {settings.scale_subregion}")

    entries, figure_names = [], set()
    chunk = 16
    for start in range(0, len(images), chunk):
        batch = images[start:start + chunk]
        found = detect_many([array for _, array in batch], model, features=features,
                            scale_subregion=settings.scale_subregion, number_of_steps=settings.number_of_steps,
                            only_first_object=settings.only_first_object, detections=protocol)
        for (path, array), (boxes, scores, trajectory) in zip(batch, found):
            stem, number = path.stem, 1
            while stem in figure_names:             # two photo.jpg from different folders
                stem, number = f"{path.stem}_{number}", number + 1
            figure_names.add(stem)
            figure = out_folder / "images" / f"{stem}.png"
            draw_search(array, trajectory, figure, title=detections_title(path.name, trajectory, protocol))
            entries.append({"image": str(path), "width": int(array.shape[1]), "height": int(array.shape[0]),
                            "boxes": boxes.tolist(), "scores": scores.tolist(), "figure": str(figure),
                            "trajectory": trajectory})
            print(f"  {detections_title(path.name, trajectory, protocol)} -> {figure}", flush=True)
    summary = {"model": model_label, "class_object": name, "weights": str(weights),
               "scale_subregion": settings.scale_subregion, "number_of_steps": settings.number_of_steps,
               "only_first_object": bool(settings.only_first_object), "detections_protocol": protocol,
               "box_format": "[x0, y0, x1, y1) in pixels of the image", **report.as_json(), "images": entries}
    write_json(out_folder / "detections.json", summary)
    if report.summary():
        print(report.summary())
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


def write_figures(results, out_folder):
    from visualization import plot_precision_recall, plot_regions_histogram
    label = f"{results['model']} {results['agent']} s={results['scale_subregion']}"
    plot_precision_recall([{"label": label, "recall": results["recall"], "precision": results["precision"],
                            "ap": results["ap"]}], Path(out_folder) / "precision_recall.png")
    plot_regions_histogram({label: results["regions_per_found_object"]}, Path(out_folder) / "regions_per_object.png")
