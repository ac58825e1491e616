"""Train the Image-Zooms agent (docs/method.md §6): every visited region gets fresh VGG-16 features of its crop.

examples:
  python image_zooms_training.py -n 0     # the paper's setup: edit the paths below or pass them as flags
  python image_zooms_training.py --demo   # the synthetic dataset and hed VGG-16 weights, minutes on a CPU

Every setting can be given as a flag of the same name (--class_object cat). The settings both training scripts
share (Q-learning, the hierarchy, the learning options) are in training_settings.py.
"""
import training_settings  # noqa: F401 (its comments are the shared settings' help)
from training_settings import *  # noqa: F401,F403 (the shared settings, each a flag too)
from runs.classes_run import run_training
from episodes import train
from runs.runtime import main_guard

path_voc = "./VOC2012/"                 # PASCAL VOC root (Annotations/, JPEGImages/, ImageSets/Main/)
path_model = "./models_image_zooms"     # checkpoints, resume state and training log
path_testing_folder = "./testing"       # drawings of training searches (bool_draw)
path_vgg = "./vgg16_weights.h5"         # VGG-16 weights: a file, imagenet, hed or random
class_object = 1                        # VOC id 1-20 or name (1 = aeroplane); all, or 1,bird,car: one agent each
cache_mb = 1024                         # descriptor cache (MiB): regions revisited later are not recomputed

# --demo: where the demo differs from the paper (listed in the README)
DEMO = dict(path_voc="data/synthetic_voc", path_vgg="hed", vgg_precision="auto", epochs=10, learning_rate=1e-5,
            buffer_experience_replay=300, batch_size=32, max_images=50, trigger_targets=1, expert_margin=0.8,
            refine=1, score_head=1)


def make_features(settings):
    from features import ImageZoomsFeatures
    return ImageZoomsFeatures(settings.path_vgg, cache_mb=settings.cache_mb, precision=settings.vgg_precision)


def main(argv=None):
    run_training(train, globals(), argv, "image_zooms")    # train: the loop (episodes.py), for one class or each


if __name__ == "__main__":
    main_guard(main)
