#!/usr/bin/env bash
# The paper's Figure 5 from the VOC 2007 test annotations alone: upper-bound and random agents, both hierarchies,
# aeroplane, first object per image. Usage: bash figure5.sh [annotations folder] [output folder]. ~1 minute.
# Without a folder it uses the VOC 2007 test annotations the repository carries (annotations/voc2007_test.tsv.gz),
# unpacked to data/VOC2007_test_annotations on first use.
set -euo pipefail
cd "$(dirname "$0")"
voc=${1:-$(python -c "from parse_xml_annotations import ensure_voc2007_test_annotations as e; print(e())")}
out=${2:-results/figure5}
runs=()
for scale in 0.75 0.5; do
  for agent in upper_bound random; do
    python image_zooms_testing.py --agent $agent --only_first_object 1 --path_voc_test "$voc" \
      --scale_subregion $scale --path_testing_folder "$out/${agent}_$scale"
    runs+=("$out/${agent}_$scale/results.json")
  done
done
python compare_results.py "${runs[@]}" --output "$out/figure5.png" \
  --labels "upper bound, overlapped (3/4)" "random, overlapped (3/4)" "upper bound, non-overlapped (1/2)" \
  "random, non-overlapped (1/2)" --title "VOC 2007 test, aeroplane, first object per image"
