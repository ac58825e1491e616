"""What the four scripts share: data loading, the training run with checkpoints and log, the test run with
``results.json`` and figures. The scripts keep their settings and call ``train`` or ``test`` with the feature
model they use.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import time
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


def write_atomically(path, write):
    """Call ``write(temporary_path)`` then rename over ``path``: an interrupted run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp_{path.name}")     # keeps the suffix, which Keras checks
    write(temporary)
    os.replace(temporary, path)


def write_json(path, data):
    def write(temporary):
        with open(temporary, "w") as handle:
            json.dump(data, handle, indent=1)
    write_atomically(path, write)


def main_guard(function):
    """Run a script's main: user errors become one line on stderr and exit code 2, Ctrl-C exit code 130."""
    try:
        function()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


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


def existing_epochs(path_model, class_idx):
    prefix = f"model{class_idx}_epoch_"
    epochs = []
    for path in Path(path_model).glob(f"{prefix}*.weights.h5"):
        number = path.name[len(prefix):-len(".weights.h5")]
        if number.isdigit():
            epochs.append(int(number))
    return sorted(epochs)


# ---------------------------------------------------------------------------------------------------------------
# training

LOG_FIELDS = ("epoch", "epsilon", "images", "searches", "steps", "mean_reward", "triggers", "correct_triggers",
              "hit_rate", "mean_trigger_iou", "updates", "mean_loss", "vgg_forwards", "cache_hits", "steps_per_s",
              "seconds")


def train(settings, make_features, model_label):
    """The training run: data → models → epochs of searches with Q-learning → a checkpoint and a log line each."""
    from tqdm import tqdm

    from episodes import make_environment, new_training_stats, train_image
    from image_helper import image_path, load_image
    from parse_xml_annotations import class_name, load_records
    from reinforcement import QLearner, ReplayMemory, build_q_network, epsilon_for_epoch

    seed_everything(settings.seed)
    rng = np.random.default_rng(settings.seed)
    name = class_name(settings.class_object)
    class_idx = class_index(settings)
    path_model = Path(settings.path_model)
    path_model.mkdir(parents=True, exist_ok=True)

    # data
    roots = [settings.path_voc] + ([settings.path_voc2] if settings.two_databases else [])
    records = load_records(roots, name, "trainval", max_images=settings.max_images)
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
    for epoch in range(first_epoch, settings.epochs):
        epsilon = epsilon_for_epoch(epoch, settings.epsilon)
        stats = new_training_stats()
        forwards_before, hits_before = features.forward_count, features.cache.hits
        started = time.perf_counter()
        order = rng.permutation(len(records))
        progress = tqdm(order, desc=f"epoch {epoch}", unit="img", leave=False, disable=not sys.stderr.isatty())
        for index in progress:
            record = records[index]
            image = load_image(image_path(record.path_voc, record.image_id))
            env = make_environment(record, name, settings.scale_subregion, image)
            trajectory = [] if settings.bool_draw else None
            train_image(env, features, learner, memory, rng, epsilon, settings.number_of_steps,
                        settings.batch_size, stats, trajectory)
            if trajectory:
                from visualization import draw_training_search
                draw_training_search(image, trajectory, Path(settings.path_testing_folder) / "training" /
                                     f"epoch{epoch}_{record.image_id}.png", title=f"epoch {epoch} {record.image_id}")
            progress.set_postfix(steps=stats["steps"], triggers=stats["triggers"])
        seconds = time.perf_counter() - started

        # save: weights (epoch and latest), resume state, log line
        row = epoch_row(epoch, epsilon, len(records), stats, features.forward_count - forwards_before,
                        features.cache.hits - hits_before, seconds)
        if stats["updates"] and not np.isfinite(row["mean_loss"]):
            raise UserError(f"epoch {epoch}: the loss became {row['mean_loss']}; the last good checkpoint is "
                            f"kept in {path_model}. Lower learning_rate.")
        save_checkpoint(settings, learner, memory, rng, class_idx, epoch)
        log_rows.append(row)
        write_log(log_path, log_rows)
        print(f"epoch {epoch:3d}  eps {epsilon:.2f}  mean reward {row['mean_reward']:+.3f}  searches "
              f"{row['searches']}  triggers {row['triggers']} (correct {row['correct_triggers']}, mean IoU "
              f"{row['mean_trigger_iou']:.2f})  loss {row['mean_loss']:.4f}  vgg forwards {row['vgg_forwards']}  "
              f"{row['steps_per_s']:.1f} steps/s", flush=True)
    print(f"checkpoints in {path_model}/, log {log_path}")


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


def resume_state_path(path_model, class_idx):
    return Path(path_model) / f"resume_model{class_idx}.h5"


def save_checkpoint(settings, learner, memory, rng, class_idx, epoch):
    """Epoch weights, latest weights, and the resume state (optimiser, replay memory, random generators)."""
    import h5py
    model = learner.model
    path_model = Path(settings.path_model)
    for path in (checkpoint_path(path_model, class_idx, epoch), checkpoint_path(path_model, class_idx)):
        write_atomically(path, model.save_weights)

    def write_state(temporary):
        with h5py.File(temporary, "w") as handle:
            handle.attrs["epoch"] = epoch
            handle.attrs["numpy_rng"] = json.dumps(rng.bit_generator.state)
            handle.attrs["settings"] = json.dumps({k: v for k, v in vars(settings).items() if k != "explicit"})
            optimizer = handle.create_group("optimizer")
            for index, variable in enumerate(learner.optimizer.variables):
                optimizer[str(index)] = np.asarray(variable)
            seeds = handle.create_group("seed_generators")
            for index, variable in enumerate(_seed_variables(model)):
                seeds[str(index)] = np.asarray(variable)
            if settings.save_replay_memory:
                replay = handle.create_group("replay_memory")
                for name, array in memory.state_dict().items():
                    replay[name] = array
    write_atomically(resume_state_path(path_model, class_idx), write_state)


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
    """``-n N``: load the checkpoint of epoch N−1 (weights; and, when it belongs to that epoch, the optimiser,
    replay memory and random generators) and return the log rows of the epochs before N."""
    import h5py
    model = learner.model
    path_model = Path(settings.path_model)
    previous = settings.n - 1
    weights = checkpoint_path(path_model, class_idx, previous)
    if not weights.is_file():
        found = existing_epochs(path_model, class_idx)
        raise UserError(f"-n {settings.n}: no checkpoint {weights}; epochs saved in {path_model}: "
                        f"{found if found else 'none'}")
    model.load_weights(weights)
    state_path = resume_state_path(path_model, class_idx)
    exact = False
    if state_path.is_file():
        with h5py.File(state_path, "r") as handle:
            if int(handle.attrs["epoch"]) == previous:
                for index, variable in enumerate(learner.optimizer.variables):
                    variable.assign(np.asarray(handle["optimizer"][str(index)]))
                for index, variable in enumerate(_seed_variables(model)):
                    variable.assign(np.asarray(handle["seed_generators"][str(index)]))
                rng.bit_generator.state = json.loads(handle.attrs["numpy_rng"])
                if "replay_memory" in handle:
                    memory.load_state_dict({k: np.asarray(v) for k, v in handle["replay_memory"].items()})
                exact = True
    print(f"resuming at epoch {settings.n} from {weights}" +
          ("" if exact else " (weights only: no resume state for that epoch, optimiser and replay memory start "
                            "empty)"))
    return [row for row in read_log(log_path) if row["epoch"] < settings.n]


# ---------------------------------------------------------------------------------------------------------------
# testing

def test(settings, make_features, model_label):
    """The test run: searches with the chosen agent → detections → VOC metrics → results.json and figures."""
    from episodes import RandomAgent, TrainedAgent, UpperBoundAgent, make_environment, run_searches
    from image_helper import image_path, load_image
    from metrics import precision_recall, regions_per_found_object
    from parse_xml_annotations import class_name, load_records
    from reinforcement import QLearner, build_q_network

    seed_everything(settings.seed)
    name = class_name(settings.class_object)
    class_idx = class_index(settings)
    out_folder = Path(settings.path_testing_folder)
    records = load_records([settings.path_voc_test], name, "test", max_images=settings.max_images)

    # agent and features
    features, agent, epoch = None, None, None
    if settings.agent == "trained":
        epoch = settings.epoch
        weights = checkpoint_path(settings.path_model, class_idx, epoch if epoch >= 0 else None)
        if not weights.is_file():
            found = existing_epochs(settings.path_model, class_idx)
            raise UserError(f"no checkpoint {weights}; epochs saved in {settings.path_model}: "
                            f"{found if found else 'none'}. Train first (python {model_label}_training.py).")
        model = build_q_network()
        model.load_weights(weights)
        agent = TrainedAgent(QLearner(model))
        features = make_features(settings)
    elif settings.agent == "random":
        agent = RandomAgent(np.random.default_rng(settings.seed))
    else:
        agent = UpperBoundAgent()
    needs_pixels = agent.needs_features or settings.bool_draw
    print(f"{model_label} testing: agent {settings.agent}, class {name}, {len(records)} images, scale "
          f"{settings.scale_subregion}" + ("" if needs_pixels else " (annotations only)"))

    # searches, in lockstep over chunks of images
    started = time.perf_counter()
    detections, ground_truth, all_trajectories = [], {}, {}
    chunk = 16
    for start in range(0, len(records), chunk):
        batch = records[start:start + chunk]
        images = [load_image(image_path(r.path_voc, r.image_id)) if needs_pixels else None for r in batch]
        environments = [make_environment(r, name, settings.scale_subregion, image) for r, image in zip(batch, images)]
        trajectories = run_searches(environments, agent, features, settings.number_of_steps,
                                    settings.only_first_object)
        for record, image, trajectory in zip(batch, images, trajectories):
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
    seconds = time.perf_counter() - started

    # evaluate
    curve = precision_recall(detections, ground_truth)
    regions = regions_per_found_object(detections, curve["true_positive"])
    results = {
        "model": model_label, "agent": settings.agent, "class_object": name,
        "scale_subregion": settings.scale_subregion, "epoch": epoch, "detections_protocol": settings.detections,
        "only_first_object": bool(settings.only_first_object), "number_of_steps": settings.number_of_steps,
        "num_images": len(records), "num_objects": int(curve["num_positives"]),
        "precision": curve["precision"], "recall": curve["recall"], "ap": curve["ap"], "ap_voc07": curve["ap_voc07"],
        "max_recall": curve["max_recall"], "regions_per_found_object": regions,
        "regions_analysed": int(sum(len(t) for t in all_trajectories.values())),
        "vgg_forwards": None if features is None else features.forward_count, "seconds": round(seconds, 2),
        "detections": [dict(d, true_positive=bool(tp)) for d, tp in zip(detections, curve["true_positive"])],
        "trajectories": all_trajectories,
    }
    write_json(out_folder / "results.json", results)
    write_figures(results, out_folder)
    print(f"AP {results['ap']:.3f}  AP-07 {results['ap_voc07']:.3f}  max recall {results['max_recall']:.3f}  "
          f"objects {results['num_objects']}  regions analysed {results['regions_analysed']}  ({seconds:.1f} s)")
    print(f"results in {out_folder / 'results.json'}")
    return results


def write_figures(results, out_folder):
    from visualization import plot_precision_recall, plot_regions_histogram
    label = f"{results['model']} {results['agent']} s={results['scale_subregion']}"
    plot_precision_recall([{"label": label, "recall": results["recall"], "precision": results["precision"],
                            "ap": results["ap"]}], Path(out_folder) / "precision_recall.png")
    plot_regions_histogram({label: results["regions_per_found_object"]}, Path(out_folder) / "regions_per_object.png")
