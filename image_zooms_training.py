"""Train the Image-Zooms agent (method.md §6): every visited region gets fresh VGG-16 features of its zoomed crop.

    python image_zooms_training.py -n 0            # paper setup: edit the paths below or pass them as flags
    python image_zooms_training.py --demo          # synthetic dataset, random VGG-16, minutes on a CPU

Every setting below can be given as a flag of the same name (``--class_object cat``).
"""
from classes_run import train_classes
from parse_xml_annotations import several_classes
from runtime import main_guard
from settings import apply_demo, training_flags
from training_run import train
from settings import configure, script_settings

# data
path_voc = "./VOC2012/"                 # PASCAL VOC root (Annotations/, JPEGImages/, ImageSets/Main/)
path_voc2 = "./VOC2007/"                # second root, used when two_databases = 1
two_databases = 0                       # 1: train on VOC 2012 + VOC 2007 trainval
max_images = None                       # use only the first N training images (None: all)
# models
path_model = "./models_image_zooms"     # checkpoints and the training log
path_testing_folder = "./testing"       # drawings of training searches (bool_draw)
path_vgg = "./vgg16_weights.h5"         # VGG-16 weights file, 'imagenet', 'hed' or 'random'
vgg_precision = "float32"               # float32 (the paper's) | bfloat16 (fast with AVX-512 BF16, AMX, GPUs) | auto
class_object = 1                        # VOC id 1-20 or name (1 = aeroplane); all, or 1,bird,car: one agent each
initial_weights = ""                    # fine-tuning: Q-network weights to start epoch 0 from (a checkpoint of
                                        # ours or a 2016 Keras 1/2 file such as model_image_zooms_2); "": random
weights_order = "auto"                  # initial_weights' descriptor rows: auto | channels_first | channels_last
# the hierarchy and the episodes
scale_subregion = 3.0 / 4               # 3/4: overlapped hierarchy, 1/2: non-overlapped
number_of_steps = 10                    # maximum steps of one search
bool_draw = 0                           # 1: draw the training searches as PNGs
draw_every = 1                          # with bool_draw: draw every k-th epoch's searches and the last's
# Q-learning
epochs = 50
gamma = 0.90                            # discount
epsilon = 1.0                           # ε in epoch 0, then minus 0.1 per epoch (floor 0.1)
batch_size = 100                        # replay minibatch
buffer_experience_replay = 1000         # replay memory size; learning starts once it is full
learning_rate = 1e-6                    # Adam
save_replay_memory = 1                  # keep the replay memory in the resume state (exact resume)
checkpoint_every = 1                    # keep the weights of every k-th epoch and the last (each ~107 MB)
cache_mb = 1024                         # descriptor cache (MiB): regions revisited later are not recomputed
# learning options, off by default (0: the paper's method); docs/method.md §9 says what each does
target_update = 0                       # N > 0: a target network, copied from the Q-network every N updates
double_dqn = 0                          # 1: double DQN, the online network picks a′ and the target network values it
loss = "mse"                            # mse (the paper's) | huber
weight_decay = 0.0                      # w > 0: AdamW, each update shrinks the weights by learning_rate × w
flip = 0                                # 1: each image is searched as it is or mirrored left-right, at random
guided_exploration = 0                  # 1: the ε-random actions are drawn among those the annotations reward
                                        # (IoU-raising moves; Caicedo & Lazebnik 2015), uniformly when none is
oracle = 0                              # 1: a diagnostic, not the paper's method: act like the upper bound and
                                        # regress Q to its returns (the oracle ceiling; docs/learning.md)
trigger_targets = 0                     # 1: every update also regresses the trigger's Q-value to the reward a trigger
                                        # would get in the sampled state (±3 by its IoU, from the annotations)
standardize = 0                         # 1: centre and scale each descriptor entry by its spread over the training
                                        # images' first regions (folded into the checkpoint's first layer)
expert_margin = 0.0                     # m > 0: DQfD's large-margin loss (Hester et al. 2018) towards the upper-bound
                                        # agent's action in each sampled state is added to Q-learning's (0.8: DQfD's)
update_every = 1                        # k > 1: one minibatch step after every k-th agent step (1: after each)
images_per_epoch = 0                    # N > 0: each epoch searches N training images drawn afresh from all of them
                                        # (0: every image every epoch); more images at the same number of steps
validation_images = 0                   # N > 0: hold out the last N training images, test the greedy agent on them
                                        # after every epoch; testing with --epoch best uses the best epoch
seed = 0

# --demo: where the demo differs from the paper (listed in the README)
DEMO = dict(path_voc="data/synthetic_voc", path_vgg="hed", vgg_precision="auto", epochs=10, learning_rate=1e-5,
            buffer_experience_replay=300, batch_size=32, max_images=50, trigger_targets=1, expert_margin=0.8)


def make_features(settings):
    from features import ImageZoomsFeatures
    return ImageZoomsFeatures(settings.path_vgg, cache_mb=settings.cache_mb, precision=settings.vgg_precision)


def main(argv=None):
    settings = configure(script_settings(globals()), argv, __doc__, training_flags)
    apply_demo(settings, DEMO)
    if several_classes(settings.class_object):     # all, or a comma list: one agent per class
        train_classes(settings, make_features, "image_zooms", train)
    else:
        train(settings, make_features, "image_zooms")


if __name__ == "__main__":
    main_guard(main)
