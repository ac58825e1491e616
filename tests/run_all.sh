#!/usr/bin/env bash
# The whole test suite, one pytest process per test file. TensorFlow keeps every Q-network that went through a
# compiled Keras optimiser step alive until its process ends (about 320 MB each, with Adam's state), so one
# process for the whole suite would need more memory than a 24 GB machine has; a process per file needs at most a
# few GB. Extra arguments go to every pytest call (e.g. -x, -m "not slow").
set -u
cd "$(dirname "$0")/.."
failed=()
started=$SECONDS
for file in tests/test_*.py; do
  python -m pytest -q "$file" "$@"
  status=$?
  # 5: every test of the file deselected by the arguments, which is not a failure
  if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
    failed+=("$file")
  fi
done
echo "test files run: $(ls tests/test_*.py | wc -l), failed: ${#failed[@]} ($((SECONDS - started)) s)"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
