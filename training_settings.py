"""The training settings both training scripts share: the hierarchy, Q-learning and its options (docs/method.md).

Edit them here, or pass any of them as a flag of the same name to either script (``--learning_rate 1e-5``). Each
comment is the setting's meaning, shown by ``--help`` and in the README's settings table.
"""
# data
path_voc2 = "./VOC2007/"                # second PASCAL VOC root, used when two_databases = 1
two_databases = 0                       # 1: train on VOC 2012 + VOC 2007 trainval (the paper's second setup)
max_images = None                       # use only the first N training images (None: all)
max_pixels = 50_000_000                 # most pixels an image may have (read from its header, before decoding);
                                        # a larger one is skipped with a warning (image_helper.MAX_PIXELS: why)
vgg_precision = "float32"               # VGG-16's arithmetic: float32 (the paper's), bfloat16 (fast with AVX-512
                                        # BF16, AMX, recent GPUs) or auto (bfloat16 where it is native)
initial_weights = ""                    # Q-network weights to start epoch 0 from (fine-tuning: a checkpoint of ours
                                        # or a 2016 Keras 1/2 file such as model_image_zooms_2); "": random
weights_order = "auto"                  # initial_weights' descriptor rows: auto | channels_first | channels_last
# the hierarchy and the searches
scale_subregion = 3.0 / 4               # size of a sub-window relative to its parent: 3/4 overlapped, 1/2 not
number_of_steps = 10                    # most steps of one search
bool_draw = 0                           # 1: draw the training searches as PNGs in path_testing_folder/training
draw_every = 1                          # with bool_draw: draw every k-th epoch's searches and the last's
# Q-learning (the paper's values)
epochs = 50                             # epochs in all (-n N resumes at epoch N of these)
gamma = 0.90                            # discount factor
epsilon = 1.0                           # ε in epoch 0, then minus 0.1 per epoch (floor 0.1)
batch_size = 100                        # replay minibatch
buffer_experience_replay = 1000         # replay memory size in transitions; learning starts once it is full
learning_rate = 1e-6                    # Adam's learning rate
seed = 0                                # one seed for Python, NumPy and Keras: the same seed gives the same run
# run folder and speed (they do not change what is learnt)
save_replay_memory = 1                  # 1: keep the replay memory in the resume state (an exact -n resume)
checkpoint_every = 1                    # keep the weights of every k-th epoch and the last (each about 107 MB)
# learning options, off by default (0: the paper's method); docs/method.md §9 says what each does
trigger_targets = 0                     # 1: every update also regresses the trigger's Q-value to the reward a
                                        # trigger would get in the sampled state (±3 by its IoU)
expert_margin = 0.0                     # m > 0: DQfD's large-margin loss towards the upper-bound agent's action
                                        # in each sampled state, added to Q-learning's (0.8: DQfD's)
oracle = 0                              # 1: a diagnostic, not Q-learning: act like the upper bound and regress Q
                                        # to its values (the ceiling of network and features; docs/learning.md)
refine = 0                              # 1: also train the box-refinement head (beyond the paper: refinement.py) on
                                        # the windows the searches visit; the agent is trained as without it
score_head = 0                          # 1: also train the score head (beyond the paper: refinement.py), for
                                        # testing's score learned; boxes pooled from their image's maps
