#!/usr/bin/env bash
# The whole test suite, one pytest process per test file. TensorFlow keeps every Q-network that went through a
# compiled Keras optimiser step alive until its process ends (about 320 MB each, with Adam's state), so one
# process for the whole suite would need more memory than a 24 GB machine has; a process per file needs at most a
# few GB. TEST_JOBS files run at once (default 2: most of a test's time is Python and TensorFlow's per-call work on
# one core, so a second file uses the second core; TEST_JOBS=1 runs them one after another). Each file's output is
# printed whole when it ends. Extra arguments go to every pytest call (e.g. -x, -m "not slow").
set -u
cd "$(dirname "$0")/.."
jobs_max=${TEST_JOBS:-2}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
declare -A file_of=()
failed=()
started=$SECONDS

finish_one() {
  local pid status
  wait -n -p pid
  status=$?
  echo "== ${file_of[$pid]}"
  cat "$logs/${file_of[$pid]##*/}.log"
  # 5: every test of the file deselected by the arguments, which is not a failure
  if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
    failed+=("${file_of[$pid]}")
  fi
  unset "file_of[$pid]"
}

for file in tests/test_*.py; do
  while [ "${#file_of[@]}" -ge "$jobs_max" ]; do finish_one; done
  python -m pytest -q "$file" "$@" > "$logs/${file##*/}.log" 2>&1 &
  file_of[$!]=$file
done
while [ "${#file_of[@]}" -gt 0 ]; do finish_one; done

echo "test files run: $(ls tests/test_*.py | wc -l), failed: ${#failed[@]} ($((SECONDS - started)) s)"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
