"""Settings are described once, by the commented variables at the top of the scripts and of training_settings.py /
testing_settings.py: ``--help``, the checks and the README's tables all derive from that description."""
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import settings
from experiments.settings_tables import settings_tables
from runs.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("image_zooms_training", "pool45_crops_training", "image_zooms_testing", "pool45_crops_testing")


def flag_helps(help_text):
    """``{flag: its help}`` from argparse's ``--help`` output (the help of a flag may span several lines)."""
    section = help_text.split("options:", 1)[1].split("\n\n")[0]
    helps, current = {}, None
    for line in section.splitlines():
        match = re.match(r"  (-\w, )?(--\w+)( \S+)?(\s{2,}(.*))?$", line)
        if match:
            current = match.group(2)
            helps[current] = match.group(5) or ""
        elif current:
            helps[current] += " " + line.strip()
    return helps


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_gives_every_flag_a_meaning_and_a_default(script):
    done = subprocess.run([sys.executable, f"{script}.py", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    helps = flag_helps(done.stdout)
    module = __import__(script)
    described = settings.script_settings(vars(module))
    assert set(described) <= {flag[2:] for flag in helps}            # every setting is a flag
    for flag, text in helps.items():
        if flag == "--help":
            continue
        assert "default" in text, f"{script} {flag}: no default in {text!r}"
        meaning = re.split(r"\s\((takes |a path; |default)", text)[0].strip()
        assert len(meaning) > 10, f"{script} {flag}: no meaning in {text!r}"
    for name, value in described.items():                          # the comment and the default, as written
        assert described.comments[name].split()[0] in helps[f"--{name}"], name
        assert f"default: {value!r}" in " ".join(helps[f"--{name}"].split()), name
    # the description's examples stay separate lines
    assert re.search(rf"\n  python {script}\.py[^\n]*#", done.stdout)


def test_every_setting_of_the_four_scripts_has_a_comment_and_no_meaning_is_written_twice():
    for script in SCRIPTS:
        described = settings.script_settings(vars(__import__(script)))
        missing = [name for name in described if not described.comments.get(name)]
        assert not missing, f"{script}: settings without a comment: {missing}"
    own = {script: settings.read_comments(ROOT / f"{script}.py") for script in SCRIPTS}
    shared = {**settings.read_comments(ROOT / "training_settings.py"),
              **settings.read_comments(ROOT / "testing_settings.py")}
    for script, comments in own.items():                     # a script does not repeat a shared setting
        kind = "training" if script.endswith("training") else "testing"
        repeated = set(comments) & set(settings.read_comments(ROOT / f"{kind}_settings.py"))
        assert not repeated, f"{script} repeats {repeated}"
    assert shared


def test_read_comments_joins_continuation_lines(tmp_path):
    source = tmp_path / "card.py"
    source.write_text('a = 1                # first line\n'
                      '                     # and its continuation\n'
                      'b = "x"  # bee\n'
                      '# a section title, not a continuation\n'
                      'c = 2\n')
    assert settings.read_comments(source) == {"a": "first line and its continuation", "b": "bee"}


def test_the_readme_and_docs_settings_tables_are_the_ones_the_description_makes():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- settings tables:")
    block = readme[readme.index("\n", start) + 1:readme.index("<!-- end of settings tables -->")]
    assert block.strip() == settings_tables(short=True).strip(), \
        "README settings tables are stale: paste the output of `python experiments/settings_tables.py --markdown readme`"
    docs = (ROOT / "docs" / "settings.md").read_text()
    assert settings_tables().strip() in docs, \
        "docs/settings.md is stale: paste the output of `python experiments/settings_tables.py --markdown docs`"
    for script in SCRIPTS:                       # every setting, with its whole comment, in docs/settings.md
        described = settings.script_settings(vars(__import__(script)))
        assert all(f"| `{name}` | {described.comments[name].replace('|', chr(92) + '|')} |" in docs
                   for name in described)


def test_the_settings_tables_cut_nothing_short():
    """No "…" in the README's or docs/settings.md's tables: each meaning whole, as written beside the variable, and a
    default that differs between the two models' scripts named by model."""
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("<!-- settings tables:"):readme.index("<!-- end of settings tables -->")]
    for tables in (block, settings_tables(short=True), settings_tables()):
        assert "…" not in tables and not re.search(r"— /|/ —", tables)
    rows = set()
    for script in SCRIPTS:
        described = settings.script_settings(vars(__import__(script)))
        rows.update({f"| `{name}` | {described.comments[name].replace('|', chr(92) + '|')} |" for name in described})
    readme_rows = [line for line in block.splitlines() if line.startswith("| `")]
    assert readme_rows and all(any(row.startswith(whole) for whole in rows) for row in readme_rows)
    assert "| `cache_mb` | descriptor cache (MiB): regions revisited later are not recomputed | a whole number ≥ 0 | " \
           "`1024` (Image-Zooms only) |" in settings_tables()
    assert "`./models_image_zooms` (Image-Zooms), `./models_pool45_crops` (Pool45-Crops)" in block


@pytest.mark.parametrize("name, value, message", [
    ("scale_subregion", 1.0, "scale_subregion must be a number > 0 and < 1"),
    ("scale_subregion", float("nan"), "scale_subregion must be a number > 0 and < 1, got nan"),
    ("number_of_steps", 0, "number_of_steps must be a whole number ≥ 1"),
    ("buffer_experience_replay", 0, "buffer_experience_replay must be a whole number ≥ 1"),
    ("batch_size", 0, "batch_size must be a whole number ≥ 1"),
    ("gamma", float("nan"), "gamma must be a number ≥ 0 and ≤ 1"),
    ("learning_rate", -1e-5, "learning_rate must be a number ≥ 0"),
    ("expert_margin", -0.5, "expert_margin must be a number ≥ 0, got -0.5"),
    ("seed", 2 ** 32, "seed must be a whole number from 0 to 4294967295, got 4294967296"),
    ("batch_size", 2000, "batch_size 2000 is larger than the replay memory"),
])
def test_impossible_numbers_are_refused_in_one_line_naming_the_setting(name, value, message):
    from runs import training_run  # noqa: F401 (the scripts' defaults)
    import image_zooms_training
    values = dict(settings.script_settings(vars(image_zooms_training)))
    with pytest.raises(UserError, match=re.escape(message)):
        settings.check_settings(SimpleNamespace(**{**values, name: value}))


@pytest.mark.parametrize("value, holds", [(-1, True), (0, True), ([0, 4, 9], True), ("all", True), ("best", False),
                                          (-5, False), ([3, -2], False), ([], False), (True, False), ("x", False)])
def test_the_testing_epoch_is_the_latest_a_saved_one_a_list_or_all(value, holds):
    import image_zooms_testing
    values = dict(settings.script_settings(vars(image_zooms_testing)))
    check = lambda: settings.check_settings(SimpleNamespace(**{**values, "epoch": value}))   # noqa: E731
    if holds:
        check()
    else:
        with pytest.raises(UserError, match=r"epoch must be -1 \(the latest\), an epoch ≥ 0"):
            check()


@pytest.mark.parametrize("flags", [["--scale_subregion", "nan"], ["--number_of_steps", "-3"],
                                   ["--buffer_experience_replay", "0"], ["--gamma", "nan"]])
def test_scripts_stop_on_impossible_numbers_before_tensorflow_loads(flags, tmp_path):
    done = subprocess.run([sys.executable, "image_zooms_training.py", "--demo", "--path_model", str(tmp_path),
                           *flags], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and flags[0][2:] in done.stderr
    assert "Traceback" not in done.stderr and not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv, named", [(["--epochs", "1.5"], "--epochs: invalid int value: '1.5'"),
                                         (["--agent", "bogus"], "--agent: invalid choice: 'bogus'"),
                                         (["--no_such_flag", "3"], "unrecognized arguments: --no_such_flag 3")])
def test_a_mistyped_flag_or_value_is_one_line_not_the_usage(argv, named):
    script = "image_zooms_testing.py" if argv[0] == "--agent" else "image_zooms_training.py"
    run = subprocess.run([sys.executable, script, *argv], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert lines[0].endswith("(--help lists every setting)")
