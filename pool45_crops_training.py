"""Train the Pool45-Crops agent (docs/method.md §6): VGG-16 runs once per image (and once more after each trigger
paints an object), and each visited region is cropped from the pool4 or pool5 map, ROI-pooled to 7×7.

examples:
  python pool45_crops_training.py -n 0 --class_object cat
  python pool45_crops_training.py --demo --epochs 3   # a shorter demo

Settings as in image_zooms_training.py: the paths here, the rest in training_settings.py, each also a flag.
"""
import training_settings  # noqa: F401 (its comments are the shared settings' help)
from training_settings import *  # noqa: F401,F403 (the shared settings, each a flag too)
from runs.classes_run import run_training
from episodes import train
from runs.runtime import main_guard

path_voc = "./VOC2012/"                 # PASCAL VOC root (Annotations/, JPEGImages/, ImageSets/Main/)
path_model = "./models_pool45_crops"    # checkpoints, resume state and training log
path_testing_folder = "./testing"       # drawings of training searches (bool_draw)
path_vgg = "./vgg16_weights.h5"         # VGG-16 weights: a file, imagenet, hed or random
class_object = 1                        # VOC id 1-20 or name (1 = aeroplane); all, or 1,bird,car: one agent each
map_cache_mb = 2048                     # pool4/pool5 maps kept across epochs (MiB, about 2 per VOC image and mask)

# --demo: where the demo differs from the paper (listed in the README)
DEMO = dict(path_voc="data/synthetic_voc", path_vgg="hed", vgg_precision="auto", epochs=10, learning_rate=1e-5,
            buffer_experience_replay=300, batch_size=32, max_images=50, trigger_targets=1, refine=1,
            score_head=1)


def make_features(settings):
    from features import Pool45CropsFeatures
    return Pool45CropsFeatures(settings.path_vgg, map_cache_mb=settings.map_cache_mb,
                               precision=settings.vgg_precision)


def main(argv=None):
    run_training(train, globals(), argv, "pool45_crops")    # train: the loop (episodes.py), for one class or each


if __name__ == "__main__":
    main_guard(main)
