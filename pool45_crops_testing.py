"""Test an agent with the Pool45-Crops model: the same searches and evaluation as image_zooms_testing.py, with
regions cropped from the pool4/pool5 maps as in training.

examples:
  python pool45_crops_testing.py --demo --epoch all   # every saved epoch on one precision-recall plot
  python pool45_crops_testing.py --image photo.jpg    # your own image, no annotations

Settings: the paths here, the rest in testing_settings.py, each also a flag.
"""
import testing_settings  # noqa: F401 (its comments are the shared settings' help)
from testing_settings import *  # noqa: F401,F403 (the shared settings, each a flag too)
from pool45_crops_training import make_features  # noqa: F401 (the features are built as in training)
from runs.classes_run import run_testing
from runs.runtime import main_guard
from runs.testing_run import test

path_voc_test = "./VOC2007_test/"       # PASCAL VOC root with the test images
path_model = "./models_pool45_crops"    # where training wrote the checkpoints
path_testing_folder = "./testing"       # results.json, figures and drawn searches
path_vgg = "./vgg16_weights.h5"         # VGG-16 weights: a file, imagenet, hed or random (as in training)
class_object = 1                        # VOC id 1-20 or name; all, or 1,bird,car: each class and the mAP
map_cache_mb = 2048                     # pool4/pool5 maps kept while the searches of an image go on (MiB)

DEMO = dict(path_voc_test="data/synthetic_voc", path_vgg="hed", vgg_precision="auto", refine=1, duplicates="demote",
            score="learned")


def main(argv=None):
    run_testing(test, globals(), argv, "pool45_crops")   # test: searches, metrics, results.json; one class or each


if __name__ == "__main__":
    main_guard(main)
