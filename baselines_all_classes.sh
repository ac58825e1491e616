#!/usr/bin/env bash
# The upper-bound and random baselines for all 20 classes, both hierarchies, from the VOC 2007 test annotations
# alone (the paper's protocol: first object per image, the images with the class). Usage:
#   bash baselines_all_classes.sh [annotations folder] [output folder] [figure]     ~3 minutes on a CPU
# Writes <output>/<agent>_<scale>/results.json (per-class table and means; one folder per class beside it),
# prints the four tables and draws the per-class AP bars (default <output>/baselines_all_classes.png; the figure in
# docs/ is regenerated with: bash baselines_all_classes.sh "" results/baselines_all_classes docs/figures/baselines_all_classes.png).
set -euo pipefail
cd "$(dirname "$0")"
voc=${1:-$(python -c "from parse_xml_annotations import ensure_voc2007_test_annotations as e; print(e())")}
out=${2:-results/baselines_all_classes}
figure=${3:-$out/baselines_all_classes.png}
runs=()
for scale in 0.75 0.5; do
  for agent in upper_bound random; do
    python image_zooms_testing.py --agent $agent --class_object all --only_first_object 1 --path_voc_test "$voc" \
      --scale_subregion $scale --path_testing_folder "$out/${agent}_$scale" | grep -v "images$"
    runs+=("$out/${agent}_$scale/results.json")
  done
done
python compare_results.py "${runs[@]}" --output "$figure" \
  --labels "upper bound, 3/4" "random, 3/4" "upper bound, 1/2" "random, 1/2" \
  --title "VOC 2007 test, first object per image: baselines per class"
