"""experiments/draw_benchmark.py: the drawing of test searches, the two GIF palettes side by side."""
from experiments import draw_benchmark


def test_draw_benchmark_times_both_palettes_on_real_searches(dataset, capsys):
    pairs = draw_benchmark.searches(dataset, "aeroplane", 2)
    assert len(pairs) == 2 and all(trajectory and all(len(step["q_values"]) == 6 for step in trajectory)
                                   for _, trajectory in pairs)
    draw_benchmark.main(["--path_voc", str(dataset), "--images", "2"])
    out = capsys.readouterr().out
    assert "2 test images of" in out and "animation, Pillow's default palette" in out
    assert "animation: Pillow's default / fast palette = " in out and "figure + animation: " in out
