"""Test an agent with the Image-Zooms model (docs/method.md §7): greedy searches, VOC precision-recall, results.json.

examples:
  python image_zooms_testing.py          # the latest checkpoint on VOC 2007 test
  python image_zooms_testing.py --demo   # the demo's synthetic test split
  python image_zooms_testing.py --agent upper_bound --path_voc_test data/VOC2007_test_annotations
                                  # the upper bound on the VOC 2007 test annotations the repository carries

Every setting can be given as a flag of the same name. The settings both testing scripts share are in
testing_settings.py.
"""
import testing_settings  # noqa: F401 (its comments are the shared settings' help)
from testing_settings import *  # noqa: F401,F403 (the shared settings, each a flag too)
from image_zooms_training import make_features  # noqa: F401 (the features are built as in training)
from runs.classes_run import run_testing
from runs.runtime import main_guard
from runs.testing_run import test

path_voc_test = "./VOC2007_test/"       # PASCAL VOC root with the test images
path_model = "./models_image_zooms"     # where training wrote the checkpoints
path_testing_folder = "./testing"       # results.json, figures and drawn searches
path_vgg = "./vgg16_weights.h5"         # VGG-16 weights: a file, imagenet, hed or random (as in training)
class_object = 1                        # VOC id 1-20 or name; all, or 1,bird,car: each class and the mAP
cache_mb = 1024                         # descriptor cache (MiB): regions revisited later are not recomputed

DEMO = dict(path_voc_test="data/synthetic_voc", path_vgg="hed", vgg_precision="auto", refine=1, duplicates="demote",
            score="learned")


def main(argv=None):
    run_testing(test, globals(), argv, "image_zooms")   # test: searches, metrics, results.json; one class or each


if __name__ == "__main__":
    main_guard(main)
