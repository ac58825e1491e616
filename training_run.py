"""The training run (method.md §6): data → models → epochs of searches with Q-learning → a checkpoint and a log
line each, and ``-n`` resuming from a checkpoint.

- SIGTERM is handled like Ctrl-C. The epoch in progress is dropped; the checkpoint of the last complete epoch is the
  resume point, and ``-n`` continues from it as the uninterrupted run would have (the checkpoint holds weights,
  optimiser, ε, random generators, settings and replay memory). A signal that arrives while an epoch is being saved
  waits until it is saved. An epoch's files are all written to temporary names, then renamed, the resume state
  before the weights, and the previous epoch's removed last, so even SIGKILL leaves the last complete epoch
  resumable, and a save that fails (disk full, permission) leaves the folder as the previous epoch left it;
- a damaged file that ``-n`` reads stops the run in one line naming the file and the way on, before anything is
  used (a torn last line of the log is dropped with a warning); see ``run_folder``;
- a NaN or infinite loss stops training at once; non-finite weights are never saved.

The files of a run folder are named, found and read in ``run_folder``.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

from dataset import SkipReport, load_record_image
from errors import UserError
from parse_xml_annotations import class_ids, several_classes
from run_folder import (DamagedFile, best_path, check_weights, checkpoint_path, existing_epochs, features_path,
                        log_path, read_log, read_resume_state, remove_temporary_files, resume_epochs, resume_options,
                        resume_state_path, write_features_file, write_log, write_resume_state,
                        write_together)
from runtime import Interrupted, StopSignals, seed_everything
from settings import check_dataset, check_path_vgg, class_index, is_whole_number


def preflight(settings):
    """The user's mistakes a training run can see without TensorFlow, each answered in one line (UserError) before
    the seconds TensorFlow takes to import: class, dataset folders, VGG-16 weights, ``-n`` and its checkpoint."""
    if settings.n < 0:
        raise UserError(f"-n {settings.n}: the first epoch to train cannot be negative (0 starts afresh, N resumes "
                        f"from the checkpoint of epoch N-1)")
    if settings.n >= settings.epochs:
        # the 2016 script trained range(n, n + epochs); here epochs is the total, so resuming needs a larger one
        raise UserError(f"-n {settings.n} with --epochs {settings.epochs}: nothing to train. epochs counts all "
                        f"epochs, not epochs to add (unlike the 2016 script); to train k more epochs pass "
                        f"-n {settings.n} --epochs {settings.n}+k, e.g. --epochs {settings.n + 10}")
    class_ids(settings.class_object)
    check_dataset(settings.path_voc, "trainval", settings.class_object, "path_voc")
    if settings.two_databases:
        check_dataset(settings.path_voc2, "trainval", settings.class_object, "path_voc2")
    check_path_vgg(settings.path_vgg)
    check_learning_options(settings)
    if settings.checkpoint_every < 1:
        raise UserError(f"checkpoint_every must be 1 or more (1 keeps every epoch's weights), got "
                        f"{settings.checkpoint_every}")
    if settings.draw_every < 1:
        raise UserError(f"draw_every must be 1 or more (1 draws every epoch's searches), got {settings.draw_every}")
    if settings.n > 0 and not several_classes(settings.class_object):
        class_idx = class_index(settings)
        weights = checkpoint_path(settings.path_model, class_idx, settings.n - 1)
        if not weights.is_file():
            found = existing_epochs(settings.path_model, class_idx) if Path(settings.path_model).is_dir() else []
            raise UserError(f"-n {settings.n}: no checkpoint {weights} to resume from; epochs saved in "
                            f"{settings.path_model}: {found if found else 'none'}")


# learning options (docs/method.md §9): off by default, the paper's method; a settings namespace without them
# (an older checkpoint's, a library caller's) gets these values
LEARNING_OPTIONS = {"target_update": 0, "double_dqn": 0, "loss": "mse", "weight_decay": 0.0, "flip": 0,
                    "validation_images": 0, "guided_exploration": 0, "oracle": 0, "trigger_targets": 0,
                    "standardize": 0, "update_every": 1, "images_per_epoch": 0, "expert_margin": 0.0}
# options that change how the searches are run (the rest change the update or the data); printed when on
SEARCH_OPTIONS = ("flip", "guided_exploration", "oracle")


def learning_option(settings, name):
    return getattr(settings, name, LEARNING_OPTIONS[name])


def check_learning_options(settings):
    from reinforcement import LOSSES
    target_update, double_dqn = learning_option(settings, "target_update"), learning_option(settings, "double_dqn")
    if target_update < 0:
        raise UserError(f"target_update must be 0 (no target network) or a number of updates, got {target_update}")
    if double_dqn not in (0, 1):
        raise UserError(f"double_dqn takes 0 or 1, got {double_dqn}")
    if double_dqn and not target_update:
        raise UserError("double_dqn 1 needs a target network: give target_update N (e.g. 100: copy the Q-network "
                        "every 100 updates)")
    if learning_option(settings, "loss") not in LOSSES:
        raise UserError(f"loss takes {' or '.join(LOSSES)}, got {learning_option(settings, 'loss')!r}")
    if learning_option(settings, "weight_decay") < 0:
        raise UserError(f"weight_decay cannot be negative, got {learning_option(settings, 'weight_decay')}")
    if learning_option(settings, "oracle") and (target_update or learning_option(settings, "loss") != "mse"
                                                or learning_option(settings, "trigger_targets")
                                                or learning_option(settings, "expert_margin")):
        raise UserError("oracle 1 regresses Q to the upper bound's returns with the squared error: it takes no "
                        "target_update, double_dqn, loss huber, trigger_targets or expert_margin")
    if not learning_option(settings, "expert_margin") >= 0:
        raise UserError(f"expert_margin must be 0 (off, the paper's) or a margin > 0 (DQfD's is 0.8), got "
                        f"{learning_option(settings, 'expert_margin')}")
    for name in (*SEARCH_OPTIONS, "trigger_targets", "standardize"):         # the switches
        if learning_option(settings, name) not in (0, 1):
            raise UserError(f"{name} takes 0 or 1, got {learning_option(settings, name)}")
    if learning_option(settings, "validation_images") < 0:
        raise UserError(f"validation_images cannot be negative, got {learning_option(settings, 'validation_images')}")
    update_every = learning_option(settings, "update_every")
    if not is_whole_number(update_every, least=1):
        raise UserError(f"update_every must be a whole number of steps, 1 or more (1: a minibatch step after "
                        f"every agent step, the paper's), got {update_every}")
    images_per_epoch = learning_option(settings, "images_per_epoch")
    if not is_whole_number(images_per_epoch):
        raise UserError(f"images_per_epoch must be a whole number of images, 0 (every training image, the paper's) "
                        f"or more, got {images_per_epoch}")


def make_learner(settings, model):
    """The Q-learning update with the settings' learning options (none: the paper's)."""
    from reinforcement import QLearner
    return QLearner(model, settings.gamma, settings.learning_rate,
                    target_update=learning_option(settings, "target_update"),
                    double_dqn=bool(learning_option(settings, "double_dqn")), loss=learning_option(settings, "loss"),
                    weight_decay=learning_option(settings, "weight_decay"),
                    trigger_targets=bool(learning_option(settings, "trigger_targets")),
                    expert_margin=learning_option(settings, "expert_margin"))


def split_validation(records, count):
    """The last ``count`` records held out for validation (``validation_images``); the rest train."""
    if count == 0:
        return records, []
    if count >= len(records):
        raise UserError(f"validation_images {count}: only {len(records)} training images; keep at least one to "
                        f"train on")
    return records[:-count], records[-count:]


def validate(records, name, settings, features, learner, report):
    """The greedy agent on the held-out images with the paper's test protocol (every visited region a detection,
    ``number_of_steps`` regions per image, all objects): (AP, max recall)."""
    from episodes import TrainedAgent, make_environment, run_searches
    from metrics import precision_recall
    detections, ground_truth = [], {}
    pairs = [(record, load_record_image(record, report)) for record in records]
    pairs = [(record, image) for record, image in pairs if image is not None]
    for start in range(0, len(pairs), 16):
        chunk = pairs[start:start + 16]
        environments = [make_environment(record, name, settings.scale_subregion, image) for record, image in chunk]
        for (record, _), trajectory in zip(chunk, run_searches(environments, TrainedAgent(learner), features,
                                                                settings.number_of_steps, False)):
            ground_truth[record.image_id] = {"boxes": record.annotation.boxes_of(name),
                                             "difficult": record.annotation.difficult_of(name)}
            detections += [{"image": record.image_id, "box": step["region"], "score": step["score"]}
                           for step in trajectory]
    curve = precision_recall(detections, ground_truth)
    return curve["ap"], curve["max_recall"]


def fit_standardization(records, name, settings, features, report):
    """The ``standardize`` option's descriptor mean and scale (features.DescriptorStandardization), from the regions
    every search starts among: each training image's whole window and its five children. Each region is described
    alone, as the searches describe theirs, so the descriptor cache holds what a search would have computed."""
    from episodes import make_environment
    from features import DescriptorStandardization
    from reinforcement import child_regions
    descriptors = []
    for record in records:
        image = load_record_image(record, report)
        if image is None:
            continue
        env = make_environment(record, name, settings.scale_subregion, image)
        whole = env.whole_image()
        for region in (whole, *child_regions(whole, settings.scale_subregion)):
            descriptors.append(features.describe([(env.image_key, image, region)])[0])
    if len(descriptors) < 2:
        raise UserError(f"standardize 1: none of the {len(records)} training images could be read; nothing to "
                        f"fit the descriptor standardisation on")
    standardization = DescriptorStandardization.fit(np.stack(descriptors))
    print(f"standardize 1: descriptor mean and scale from {len(descriptors)} regions (whole window and its "
          f"children) of {len(descriptors) // 6} training images")
    return standardization


def train(settings, make_features, model_label):
    """The training run: data → models → epochs of searches with Q-learning → a checkpoint and a log line each.

    Ctrl-C / SIGTERM: the epoch in progress is dropped and the run stops with a message naming the last saved
    epoch and the ``-n`` that continues it.
    """
    preflight(settings)
    from tqdm import tqdm

    from episodes import NonFiniteLoss, make_environment, new_training_stats, train_image
    from parse_xml_annotations import class_name, load_records
    from reinforcement import ReplayMemory, build_q_network, epsilon_for_epoch

    initial_weights = check_initial_weights(settings)
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
    records, validation = split_validation(records, learning_option(settings, "validation_images"))
    print(f"{model_label} training: class {name} (id {class_idx + 1}), {len(records)} images"
          + (f" (+{len(validation)} held out for validation)" if validation else "")
          + f", scale {settings.scale_subregion}, {settings.epochs} epochs")

    # models
    features = make_features(settings)
    model = build_q_network(seed=settings.seed)
    if initial_weights is not None:     # fine-tuning: epoch 0 starts from these weights instead of N(0, 0.01)
        from detection import set_q_network_weights
        description = set_q_network_weights(model, initial_weights, getattr(settings, "weights_order", "auto"))
        print(f"starting from the Q-network weights {initial_weights} ({description})")
    learner = make_learner(settings, model)
    switched_on = {name: 1 for name in (*SEARCH_OPTIONS, "standardize") if learning_option(settings, name)}
    if learning_option(settings, "update_every") != 1:
        switched_on["update_every"] = learning_option(settings, "update_every")
    per_epoch = learning_option(settings, "images_per_epoch")
    if per_epoch:
        switched_on["images_per_epoch"] = per_epoch
        if per_epoch >= len(records):
            print(f"images_per_epoch {per_epoch}: only {len(records)} training images, so every epoch searches "
                  f"all of them")
    if learner.options or switched_on or validation:
        extras = {**learner.options, **switched_on, **({"validation_images": len(validation)} if validation else {})}
        print("learning options (not the paper's method): " + ", ".join(f"{k} {v}" for k, v in extras.items())
              + ("; the log's loss adds the margin's to Q-learning's" if extras.get("expert_margin") else ""))
    memory = ReplayMemory(settings.buffer_experience_replay)
    log_rows, standardization = [], None
    first_epoch = settings.n
    if first_epoch > 0:
        log_rows, standardization = resume(settings, learner, memory, rng, class_idx)
    elif learning_option(settings, "standardize"):
        standardization = fit_standardization(records, name, settings, features, report)
        if initial_weights is not None:     # the same function of the raw descriptors as the file's
            first = model.layers[0]
            first.set_weights(list(standardization.unfold(*first.get_weights())))
    if standardization is not None:
        from features import StandardizedFeatures
        features = StandardizedFeatures(features, standardization)

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
                if per_epoch:           # a fresh draw of the training images each epoch, the same stream of draws
                    order = order[:per_epoch]
                progress = tqdm(order, desc=f"epoch {epoch}", unit="img", leave=False,
                                disable=not sys.stderr.isatty())
                for index in progress:
                    record = records[index]
                    image = load_record_image(record, report)
                    if image is None:
                        continue
                    used += 1
                    mirror = bool(learning_option(settings, "flip")) and rng.random() < 0.5
                    env = make_environment(record, name, settings.scale_subregion, image, mirror=mirror)
                    trajectory = [] if draws_epoch(settings, epoch) else None
                    try:
                        train_image(env, features, learner, memory, rng, epsilon, settings.number_of_steps,
                                    settings.batch_size, stats, trajectory,
                                    guided_exploration=bool(learning_option(settings, "guided_exploration")),
                                    oracle=bool(learning_option(settings, "oracle")),
                                    trigger_targets=learner.trigger_targets,
                                    update_every=learning_option(settings, "update_every"),
                                    expert_actions=learner.expert_margin > 0)
                    except NonFiniteLoss as error:
                        raise UserError(non_finite_message(settings, class_idx, epoch, str(error))) from None
                    if trajectory:
                        from visualization import draw_training_search
                        draw_training_search(image[:, ::-1] if mirror else image, trajectory,
                                             Path(settings.path_testing_folder) / "training" /
                                             f"epoch{epoch}_{record.image_id}{'_mirrored' if mirror else ''}.png",
                                             title=f"epoch {epoch} {record.image_id}" + (" mirrored" * mirror))
                    progress.set_postfix(steps=stats["steps"], triggers=stats["triggers"])
                if used == 0:
                    raise UserError(f"none of the {len(records)} training images could be read (first: "
                                    f"{next(iter(report.images.values()))}); nothing to train on")
                seconds = time.perf_counter() - started

                # save: resume state, weights, log line, all or none; a signal now waits until they are written
                row = epoch_row(epoch, epsilon, used, stats, features.forward_count - forwards_before,
                                features.cache.hits - hits_before, seconds)
                if validation:
                    row["validation_ap"], row["validation_max_recall"] = validate(
                        validation, name, settings, features, learner, report)
                with signals.deferred():
                    if not weights_are_finite(model):
                        raise UserError(non_finite_message(settings, class_idx, epoch, "the weights became NaN or "
                                                           "infinite"))
                    log_rows.append(row)
                    best = bool(validation) and row["validation_ap"] >= max(r.get("validation_ap") or 0.0
                                                                           for r in log_rows)
                    save_epoch(settings, learner, memory, rng, class_idx, epoch, log_rows, best, standardization)
                    last_saved = epoch
                print(f"epoch {epoch:3d}  eps {epsilon:.2f}  mean reward {row['mean_reward']:+.3f}  searches "
                      f"{row['searches']}  triggers {row['triggers']} (correct {row['correct_triggers']}, mean IoU "
                      f"{row['mean_trigger_iou']:.2f})  loss {row['mean_loss']:.4f}  vgg forwards "
                      f"{row['vgg_forwards']}  {row['steps_per_s']:.1f} steps/s"
                      + (f"  validation AP {row['validation_ap']:.3f}" if validation else ""), flush=True)
        except Interrupted as interrupt:
            print(interrupted_message(interrupt, epoch, last_saved, path_model), file=sys.stderr, flush=True)
            raise
    if report.summary():
        print(report.summary())
    print(f"checkpoints in {path_model}/, log {log_path(path_model, class_idx)}")


def check_initial_weights(settings):
    """The ``initial_weights`` file that epoch 0 starts from, or None (random weights, or a resumed run, which
    starts from its checkpoint)."""
    path = getattr(settings, "initial_weights", "")
    if path in (None, "", "None"):
        return None
    from detection import check_weights_order
    check_weights_order(getattr(settings, "weights_order", "auto"))
    if settings.n > 0:
        if "initial_weights" in settings.explicit:
            print(f"note: initial_weights is for epoch 0; -n {settings.n} resumes from the checkpoint of epoch "
                  f"{settings.n - 1}")
        return None
    if not Path(path).is_file():
        raise UserError(f"initial_weights: no file {path}")
    return Path(path)


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


# settings that may change on resume without a warning (they do not change what is learnt)
RESUME_FREE_SETTINGS = {"n", "epochs", "demo", "explicit", "path_model", "path_testing_folder", "bool_draw",
                        "draw_every", "cache_mb", "map_cache_mb", "checkpoint_every", "initial_weights",
                        "weights_order"}


def draws_epoch(settings, epoch):
    """Whether the searches of ``epoch`` are drawn: with ``bool_draw``, every ``draw_every``-th epoch and the last,
    as ``checkpoint_every`` keeps weights (a drawing takes most of a second: drawing every search of every epoch adds
    minutes to a demo-sized training)."""
    return bool(settings.bool_draw) and ((epoch + 1) % settings.draw_every == 0 or epoch == settings.epochs - 1)


def keeps_epoch_weights(settings, epoch):
    """Whether the weights file of ``epoch`` stays once a later epoch is saved: every ``checkpoint_every``-th
    epoch and the last one. The latest epoch always has its file (``-n`` resumes from it)."""
    return (epoch + 1) % settings.checkpoint_every == 0 or epoch == settings.epochs - 1


def save_epoch(settings, learner, memory, rng, class_idx, epoch, log_rows, best, standardization=None):
    """The files of ``epoch``: the resume state (epoch, ε, optimiser, replay memory, random generators, settings),
    the weights (of the epoch, the latest and, when ``best``, the best epoch's), the log and the describing settings
    (``run_folder.features_path``: what testing checks its features against), written together
    (``run_folder.write_together``: all of them, or none, replace the files before); then older resume states and
    the previous epoch's weights, unless ``checkpoint_every`` keeps them, are removed.

    A write that fails part-way (disk full, permission, an exception in a writer) removes this epoch's temporary
    files and stops the run with a UserError naming the folder and the cause; the previous epoch's files are as
    they were.

    With ``standardization`` (the ``standardize`` option) the weights files hold the Q-network folded onto raw
    descriptors (``DescriptorStandardization.fold``): testing reads them as any checkpoint; the resume state keeps
    the standardisation and the unfolded first layer, so ``-n`` continues exactly.
    """
    model = learner.model
    path_model = Path(settings.path_model)
    state = resume_state(settings, learner, memory, rng, epoch, standardization)
    save_weights = model.save_weights if standardization is None else folded_writer(model, standardization)
    writes = [(resume_state_path(path_model, class_idx, epoch), lambda temporary: write_resume_state(temporary, state)),
              (checkpoint_path(path_model, class_idx, epoch), save_weights),
              (checkpoint_path(path_model, class_idx), save_weights)]
    if best:
        writes.append((best_path(path_model, class_idx), save_weights))
    writes.append((log_path(path_model, class_idx), lambda temporary: write_log(temporary, log_rows)))
    writes.append((features_path(path_model, class_idx), lambda temporary: write_features_file(temporary, settings)))
    try:
        write_together(writes)
    except Exception as error:      # whatever stopped the write, the folder is as before: say so in one line
        cause = str(error) if isinstance(error, OSError) else f"{type(error).__name__}: {error}"
        kept = (f"epoch {epoch - 1} is kept as it was (-n {epoch} resumes it)"
                if checkpoint_path(path_model, class_idx, epoch - 1).is_file() else "no earlier epoch was saved")
        raise UserError(f"could not save epoch {epoch} in {path_model}/ ({cause}); none of its files were kept, "
                        f"{kept}") from None
    stale = [resume_state_path(path_model, class_idx, older) for older in resume_epochs(path_model, class_idx)
             if older != epoch]
    if epoch > 0 and not keeps_epoch_weights(settings, epoch - 1):
        stale.append(checkpoint_path(path_model, class_idx, epoch - 1))
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            warnings.warn(f"epoch {epoch} is saved, but {path} could not be removed ({error})", UserWarning,
                          stacklevel=2)


def folded_writer(model, standardization):
    """Writes ``model`` folded onto raw descriptors (its first layer swapped for the folded one while it is saved,
    then put back as it was)."""
    first = model.layers[0]
    kernel, bias = first.get_weights()
    folded = list(standardization.fold(kernel, bias))

    def save(path):
        first.set_weights(folded)
        try:
            model.save_weights(path)
        finally:
            first.set_weights([kernel, bias])
    return save


def resume_state(settings, learner, memory, rng, epoch, standardization=None):
    """What ``run_folder.write_resume_state`` writes at the end of ``epoch``, besides the weights."""
    from reinforcement import epsilon_for_epoch
    unfolded = None
    if standardization is not None:
        kernel, bias = learner.model.layers[0].get_weights()
        unfolded = {**standardization.state_dict(), "kernel": kernel, "bias": bias}
    return {"epoch": epoch, "epsilon": epsilon_for_epoch(epoch, settings.epsilon),
            "numpy_rng": rng.bit_generator.state,
            "settings": {k: v for k, v in vars(settings).items() if k != "explicit"},
            "optimizer": [np.asarray(variable) for variable in learner.optimizer.variables],
            "optimizer_paths": [variable.path for variable in learner.optimizer.variables],
            "target_network": None if learner.target_model is None else [np.asarray(variable) for variable in
                                                                         learner.target_model.weights],
            "seed_generators": [np.asarray(variable) for variable in _seed_variables(learner.model)],
            "replay_memory": memory.state_dict() if settings.save_replay_memory else None,
            "standardization": unfolded}


def _seed_variables(model):
    """Variables of the dropout layers' seed generators (not part of the weights, needed for an exact resume)."""
    import keras
    variables = []
    for layer in model.layers:
        seed_generator = getattr(layer, "seed_generator", None)
        if isinstance(seed_generator, keras.random.SeedGenerator):
            variables.append(seed_generator.state)
    return variables


def resume(settings, learner, memory, rng, class_idx):
    """``-n N``: load the checkpoint of epoch N−1 — weights and, when its resume state is there, the optimiser,
    replay memory and random generators, which makes the rest of the run the same as an uninterrupted one — and
    return the log rows of the epochs before N.

    Every file is read and checked before anything is used: a damaged one stops the run with a UserError naming it
    and the way on, and changes nothing. The learning rate is the one given now (changing it on resume is allowed;
    it is reported).
    """
    model = learner.model
    path_model = Path(settings.path_model)
    previous = settings.n - 1
    weights = checkpoint_path(path_model, class_idx, previous)
    if not weights.is_file():
        found = existing_epochs(path_model, class_idx)
        raise UserError(f"-n {settings.n}: no checkpoint {weights}; epochs saved in {path_model}: "
                        f"{found if found else 'none'}")
    try:
        check_weights(weights)
    except DamagedFile as damage:
        raise UserError(f"{damage}; epoch {previous} cannot be resumed: "
                        f"{resume_options(path_model, class_idx, previous)}") from None
    state_path = resume_state_path(path_model, class_idx, previous)
    state = None
    if state_path.is_file():
        try:
            state = read_resume_state(state_path, previous)
            check_state_fits(state, state_path, learner, memory)
        except DamagedFile as damage:
            raise UserError(f"{damage}; epoch {previous} cannot be resumed exactly. To continue from its weights "
                            f"alone (inexact: a fresh optimiser and replay memory, said so when it starts), delete "
                            f"{state_path.name} and run -n {settings.n} again") from None
    saved_standardization = None if state is None else state["standardization"]
    if learning_option(settings, "standardize") and saved_standardization is None:
        raise UserError(f"-n {settings.n} with standardize 1: " + (
            f"no resume state {state_path.name}, which holds the descriptor standardisation" if state is None else
            f"{state_path.name} holds no descriptor standardisation (epoch {previous} was trained without "
            f"standardize)") + "; resume with standardize 0, or train again from epoch 0")
    log = log_path(path_model, class_idx)
    try:
        log_rows = [row for row in read_log(log) if row["epoch"] < settings.n]
    except DamagedFile as damage:
        raise UserError(f"{damage}. Repair it, or delete it to resume with a log that starts at epoch {settings.n} "
                        f"(the checkpoints are not affected)") from None
    try:
        model.load_weights(weights)
    except Exception as error:      # h5py, Keras and TensorFlow raise several types for a wrong file
        raise UserError(f"{weights}: not a Q-network weights file of this project ({error}); epoch {previous} cannot "
                        f"be resumed: {resume_options(path_model, class_idx, previous)}") from None

    standardization = None
    if learning_option(settings, "standardize"):     # the weights file is folded: the run goes on unfolded
        from features import DescriptorStandardization
        standardization = DescriptorStandardization(saved_standardization["mean"], saved_standardization["scale"])
        model.layers[0].set_weights([saved_standardization["kernel"], saved_standardization["bias"]])
    notes = []
    if state is not None:
        saved = state["settings"]
        current = {k: v for k, v in vars(settings).items() if k != "explicit"}
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
        if learner.target_model is not None:
            if state["target_network"] is not None:
                for variable, array in zip(learner.target_model.weights, state["target_network"]):
                    variable.assign(array)
            else:
                learner.target_model.set_weights(model.get_weights())
                notes.append("the checkpoint has no target network: it starts as a copy of the Q-network")
        rng.bit_generator.state = state["numpy_rng"]
        replay = state["replay_memory"]
        if replay is None:
            notes.append("the replay memory was not saved (save_replay_memory 0): it starts empty")
        elif replay["actions"].shape[0] != memory.capacity:
            notes.append(f"the saved replay memory holds {replay['actions'].shape[0]} transitions, "
                         f"buffer_experience_replay is {memory.capacity}: it starts empty")
        else:
            memory.load_state_dict(replay)
    else:
        notes.append(f"no resume state {state_path.name}: optimiser and replay memory start empty, random "
                     f"generators from the seed")
    print(f"resuming at epoch {settings.n} from {weights}" + (f" ({'; '.join(notes)}: not an exact continuation)"
                                                            if notes else ""))
    return log_rows, standardization


def check_state_fits(state, path, learner, memory):
    """Raise ``DamagedFile`` unless the resume state's arrays fit this run's optimiser, dropout seeds, target network
    and replay memory (a file that reads but holds fewer or other arrays is incomplete)."""
    def compare(what, arrays, variables):
        shapes = [tuple(array.shape) for array in arrays]
        expected = [tuple(variable.shape) for variable in variables]
        if shapes != expected:
            raise DamagedFile(path, f"incomplete ({what}: {len(shapes)} arrays where this run has {len(expected)}"
                                    + ("" if len(shapes) != len(expected) else ", of other shapes") + ")")
    compare("optimiser", state["optimizer"], learner.optimizer.variables)
    compare("dropout seeds", state["seed_generators"], _seed_variables(learner.model))
    if learner.target_model is not None and state["target_network"] is not None:
        compare("target network", state["target_network"], learner.target_model.weights)
    standardization = state["standardization"]
    if standardization is not None:
        from reinforcement import DESCRIPTOR_SIZE
        first = learner.model.layers[0]
        expected = {"mean": (DESCRIPTOR_SIZE,), "scale": (DESCRIPTOR_SIZE,), "kernel": tuple(first.kernel.shape),
                    "bias": tuple(first.bias.shape)}
        wrong = [name for name, shape in expected.items() if tuple(standardization[name].shape) != shape]
        if wrong:
            raise DamagedFile(path, f"incomplete (standardisation arrays {', '.join(wrong)} of other shapes)")
    replay = state["replay_memory"]
    if replay is not None and replay["actions"].shape[0] == memory.capacity:
        wrong = [name for name, array in memory.state_dict().items() if replay[name].shape != array.shape]
        if wrong:
            raise DamagedFile(path, f"incomplete (replay memory arrays {', '.join(wrong)} of other shapes)")
