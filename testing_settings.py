"""The testing settings both testing scripts share (docs/method.md §7).

Edit them here, or pass any of them as a flag of the same name to either script (``--only_first_object 1``).
Each comment is the setting's meaning, shown by ``--help`` and in the README's settings table.
"""
vgg_precision = "float32"               # VGG-16's arithmetic: float32, bfloat16 or auto; best as in training
scale_subregion = 3.0 / 4               # size of a sub-window relative to its parent; as in training
number_of_steps = 10                    # regions analysed per image, in all searches together
only_first_object = 0                   # 1: one search per image, as the paper's comparisons; 0: a new search
                                        # after each trigger, until number_of_steps
agent = "trained"                       # trained | random (the lower baseline) | upper_bound (guided by the
                                        # annotations)
epoch = -1                              # checkpoint epoch, -1: the latest; a list 0,4,9 or all compares epochs
refine = 0                              # 1: report each analysed window as the box the refinement head fits to
                                        # it (beyond the paper; needs a training with refine 1); the search is
                                        # unchanged
score = "trigger"                       # what ranks the detections: trigger (the trigger's Q-value, the paper's)
                                        # | learned (the score head's predicted IoU; needs score_head 1)
duplicates = "keep"                     # demote: rank a detection that repeats a better one of its image
                                        # (IoU ≥ 0.5) after all others (beyond the paper) | keep: the paper's
detections = "visited"                  # visited (every analysed region, the paper's) | triggered
bool_draw = 0                           # 1: one PNG and one GIF per image with its whole search
draw_images = 0                         # with bool_draw: draw the first N images' searches only; 0: all
model_name = ""                         # a weights file in path_model instead of our checkpoints, as in 2016
                                        # (e.g. the authors' model_image_zooms_2, Keras 1/2 save_weights)
weights_order = "auto"                  # model_name's descriptor rows: auto (channels first if Theano or unsaid)
                                        # | channels_first | channels_last
max_images = None                       # test on the first N images only (None: all)
max_pixels = 50_000_000                 # most pixels an image may have (read from its header, before decoding);
                                        # a larger one is skipped with a warning (image_helper.MAX_PIXELS: why)
seed = 0                                # the random agent's seed
