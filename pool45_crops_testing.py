"""Test an agent with the Pool45-Crops model (method.md §7): greedy searches, VOC precision-recall, results.json.

    python pool45_crops_testing.py                         # latest checkpoint on VOC 2007 test
    python pool45_crops_testing.py --demo                  # the demo's synthetic test split
    python pool45_crops_testing.py --agent upper_bound --path_voc_test VOC2007_test_annotations  # no images needed

Every setting below can be given as a flag of the same name.
"""
from classes_run import test_classes
from parse_xml_annotations import several_classes
from runtime import main_guard
from settings import apply_demo, testing_flags
from testing_run import test
from pool45_crops_training import make_features      # the features are built as in training
from settings import configure, script_settings

path_voc_test = "./VOC2007_test/"       # PASCAL VOC root with the test images
path_model = "./models_pool45_crops"    # where training wrote the checkpoints
path_testing_folder = "./testing"       # results.json, figures, drawn searches
path_vgg = "./vgg16_weights.h5"         # VGG-16 weights file, 'imagenet', 'hed' or 'random' (as in training)
vgg_precision = "float32"               # float32 | bfloat16 | auto (bfloat16 if native); best as in training
class_object = 1                        # VOC id 1-20 or name; all, or 1,bird,car: each class and the mAP
scale_subregion = 3.0 / 4               # must match training
number_of_steps = 10                    # regions analysed per image, in all
only_first_object = 0                   # 1: one search per image (the paper's protocol)
bool_draw = 0                           # 1: one PNG per image with its whole search
draw_images = 0                         # with bool_draw: the first N images' searches only; 0: all
agent = "trained"                       # trained | random | upper_bound
epoch = -1                              # checkpoint epoch; -1: the latest
model_name = ""                         # a weights file in path_model instead of our checkpoints, as in 2016:
                                        # e.g. the authors' model_image_zooms_2 or model0h5 (Keras 1/2 save_weights)
weights_order = "auto"                  # its descriptor rows: auto (channels first if Theano or unsaid) |
                                        # channels_first | channels_last
detections = "visited"                  # visited (every analysed region, the paper's) | triggered
trigger_bias = 0.0                      # test-time option: added to the trigger's Q-value when choosing the
                                        # action (not to its score); b > 0 triggers within b of the best move.
                                        # 0: the paper's greedy argmax
max_images = None                       # test on the first N images only
map_cache_mb = 2048                     # pool4/pool5 maps kept while the searches of an image go on (MiB)
seed = 0

DEMO = dict(path_voc_test="data/synthetic_voc", path_vgg="hed", vgg_precision="auto")


def main(argv=None):
    settings = configure(script_settings(globals()), argv, __doc__, testing_flags)
    apply_demo(settings, DEMO)
    if several_classes(settings.class_object):     # all, or a comma list: one agent per class
        test_classes(settings, make_features, "pool45_crops", test)
    else:
        test(settings, make_features, "pool45_crops")


if __name__ == "__main__":
    main_guard(main)
