"""Figures and the results comparison: every function writes a readable PNG; broken input is a UserError."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compare_results import compare, default_label, format_table, load_results, main
from runs.errors import UserError
from visualization import (animate_search, draw_search, draw_training_search, plot_precision_recall,
                           plot_regions_histogram, plot_training_log)

REPOSITORY = Path(__file__).resolve().parents[1]


def assert_png(path, min_width=300, min_height=200):
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == 'PNG'
        width, height = image.size
    assert min_width <= width <= 6000 and min_height <= height <= 8000
    return width, height


def make_image(height=120, width=160, dtype=np.uint8):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, size=(height, width, 3)).astype(dtype)
    image[40:80, 60:120] = [220, 40, 40]
    return image


def make_steps(count, with_q_values=True, searches=1):
    """A descent that zooms towards the lower right, triggering at every fourth step and the last one."""
    rng = np.random.default_rng(1)
    steps = []
    for index in range(count):
        triggered = index % 4 == 3 or index == count - 1
        steps.append({'region': [4.0 * index, 3.0 * index, 160.0 - 2 * index, 120.0 - 1.5 * index],
                      'action': 5 if triggered else index % 5,
                      'q_values': rng.normal(size=6).tolist() if with_q_values else None,
                      'search': index * searches // max(count, 1),
                      'triggered': triggered})
    return steps


# --- visualization -----------------------------------------------------------------------------------------------

def test_draw_search_with_q_values_and_trigger(tmp_path):
    path = draw_search(make_image(), make_steps(3), tmp_path / 'search.png', title='image 000001')
    assert Path(path) == tmp_path / 'search.png'
    assert_png(path)


def test_animate_search_writes_one_frame_per_step(tmp_path):
    from PIL import Image
    path = animate_search(make_image(), make_steps(4, searches=2), tmp_path / 'new_folder' / 'search.gif',
                          title='image 000001')
    with Image.open(path) as gif:
        assert gif.format == 'GIF' and gif.is_animated and gif.n_frames == 4
        frames = [np.asarray(gif.seek(index) or gif.convert('RGB')) for index in range(gif.n_frames)]
    assert any(not np.array_equal(frames[0], frame) for frame in frames[1:])     # the region moves
    # the 256-colour palette keeps the image's colours: the red block (rows 40-80, columns 60-120) at twice the size
    assert np.abs(frames[0][100:140, 140:220].astype(int) - [220, 40, 40]).max() <= 24
    with Image.open(animate_search(make_image(dtype=np.float32), make_steps(1, with_q_values=False),
                                   tmp_path / 'one.gif')) as gif:
        assert gif.n_frames == 1
    with Image.open(animate_search(make_image(), [], tmp_path / 'none.gif')) as gif:
        assert gif.n_frames == 1


def test_draw_search_without_q_values_float_image(tmp_path):
    # baseline agents have no Q-values; images may come as float32 in 0..255
    assert_png(draw_search(make_image(dtype=np.float32), make_steps(2, with_q_values=False), tmp_path / 'a.png'))


def test_draw_search_twelve_steps_wraps_into_a_grid(tmp_path):
    steps = make_steps(12, searches=3)
    steps[5]['q_values'] = None  # a mix is allowed
    width, height = assert_png(draw_search(make_image(), steps, tmp_path / 'twelve.png'))
    assert height > width * 0.8  # the panels wrap onto several rows instead of one long strip


def test_draw_search_edge_cases(tmp_path):
    assert_png(draw_search(make_image(), [], tmp_path / 'none.png'))
    # a degenerate region still gives a one-pixel crop; the folder is created
    steps = [{'region': [159.6, 119.7, 159.9, 119.9], 'action': 5, 'q_values': None, 'search': 0,
              'triggered': True}]
    assert_png(draw_search(make_image(), steps, tmp_path / 'new_folder' / 'tiny.png'))


def test_draw_search_crops_show_triggered_regions_painted(tmp_path, monkeypatch):
    # the crops are what the agent saw: after a trigger on the whole image, every later crop is the mean colour
    import visualization
    from image_helper import MEAN_RGB
    crops, crop = [], visualization._crop
    monkeypatch.setattr(visualization, '_crop', lambda image, region: crops.append(crop(image, region)) or crops[-1])
    whole, inner = [0.0, 0.0, 160.0, 120.0], [40.0, 30.0, 120.0, 90.0]
    steps = [{'region': whole, 'action': 5, 'q_values': None, 'search': 0, 'triggered': True},
             {'region': whole, 'action': 4, 'q_values': None, 'search': 1, 'triggered': False},
             {'region': inner, 'action': 0, 'q_values': None, 'search': 1, 'triggered': False}]
    draw_search(make_image(), steps, tmp_path / 'painted.png')
    assert not np.all(crops[0] == MEAN_RGB.astype(np.uint8))            # the trigger's own crop: the image
    assert np.all(crops[1] == MEAN_RGB.astype(np.uint8)) and np.all(crops[2] == MEAN_RGB.astype(np.uint8))
    crops.clear()
    draw_training_search(make_image(), steps, tmp_path / 'training.png')  # training paints the found box instead
    assert not np.all(crops[1] == MEAN_RGB.astype(np.uint8))


def test_draw_training_search_crops_show_the_found_object_painted(tmp_path, monkeypatch):
    # training paints the object a correct trigger found (the step's 'painted' boxes), not the triggered region
    import visualization
    from image_helper import MEAN_RGB
    crops, crop = [], visualization._crop
    monkeypatch.setattr(visualization, '_crop', lambda image, region: crops.append(crop(image, region)) or crops[-1])
    mean = MEAN_RGB.astype(np.uint8)
    found, inner = [40.0, 30.0, 120.0, 90.0], [50.0, 40.0, 110.0, 80.0]
    steps = [{'region': [0.0, 0.0, 160.0, 120.0], 'action': 5, 'q_values': None, 'search': 1, 'triggered': True,
              'painted': [found]},
             {'region': inner, 'action': 0, 'q_values': None, 'search': 2, 'triggered': False, 'painted': []}]
    draw_training_search(make_image(), steps, tmp_path / 'training.png')
    assert not np.all(crops[0] == mean) and np.all(crops[1] == mean)
    crops.clear()
    steps[0]['painted'] = []                                 # a trigger that found nothing paints nothing
    draw_training_search(make_image(), steps, tmp_path / 'missed.png')
    assert not np.all(crops[1] == mean)


def test_draw_training_search(tmp_path):
    assert_png(draw_training_search(make_image(), make_steps(4), tmp_path / 'training.png'))


def test_plot_precision_recall(tmp_path):
    runs = [{'label': 'image_zooms trained', 'recall': [0.1, 0.2, 0.33], 'precision': [1.0, 0.9, 0.77], 'ap': 0.3},
            {'label': 'random', 'recall': [0.05], 'precision': [0.2]},
            {'label': 'empty', 'recall': [], 'precision': [], 'ap': 0.0}]
    assert_png(plot_precision_recall(runs, tmp_path / 'pr.png'))
    assert_png(plot_precision_recall([], tmp_path / 'pr_empty.png', title='nothing'))


def test_plot_regions_histogram(tmp_path):
    counts = {'trained': [1, 1, 1, 2, 3, 10], 'upper bound': [1, 2, 2, 4], 'nothing found': []}
    assert_png(plot_regions_histogram(counts, tmp_path / 'regions.png'))
    assert_png(plot_regions_histogram({}, tmp_path / 'regions_empty.png', title='none'))


def test_plot_training_log(tmp_path):
    # rows as csv.DictReader gives them: strings, some empty, one metric missing in places
    rows = [{'epoch': '0', 'mean_reward': '-1.5', 'hit_rate': '0.1', 'epsilon': '1.0'},
            {'epoch': '1', 'mean_reward': '0.25', 'hit_rate': '', 'epsilon': '0.9'},
            {'epoch': '2', 'mean_reward': '1.0', 'epsilon': '0.8', 'note': 'resumed'}]
    width, height = assert_png(plot_training_log(rows, tmp_path / 'log.png'))
    assert height > width  # three panels stacked
    assert_png(plot_training_log([{'mean_reward': 1.0}, {'mean_reward': 2.0}], tmp_path / 'no_epoch.png'),
               min_height=150)
    assert_png(plot_training_log([], tmp_path / 'empty.png'), min_height=150)


# --- compare_results ---------------------------------------------------------------------------------------------

def write_results(path, **overrides):
    results = {'model': 'image_zooms', 'agent': 'trained', 'class_object': 1, 'scale_subregion': 0.75, 'epoch': 49,
               'num_images': 10, 'num_objects': 12, 'detections': 100,
               'precision': [1.0, 0.5, 2 / 3], 'recall': [0.25, 0.25, 0.5], 'ap': 0.41, 'ap_voc07': 0.45,
               'max_recall': 0.5, 'regions_per_found_object': [1, 3]}
    results.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return path


def test_compare_two_runs(tmp_path):
    first = write_results(tmp_path / 'zooms' / 'results.json')
    second = write_results(tmp_path / 'random' / 'results.json', agent='random', scale_subregion=0.5, epoch=None,
                           precision=[0.2], recall=[0.1], ap=0.02, ap_voc07=0.05, max_recall=0.1,
                           regions_per_found_object=[])
    output = tmp_path / 'figures' / 'compare.png'
    rows = compare([first, second], output=output, title='aeroplane')
    assert [row['label'] for row in rows] == ['image_zooms trained s=0.75 epoch 49', 'image_zooms random s=0.5']
    assert rows[0]['ap'] == pytest.approx(0.41) and rows[0]['ap_voc07'] == pytest.approx(0.45)
    assert rows[0]['max_recall'] == pytest.approx(0.5)
    assert rows[0]['mean_regions_per_found_object'] == pytest.approx(2.0) and rows[0]['found_objects'] == 2
    assert rows[1]['mean_regions_per_found_object'] is None
    assert_png(output)
    assert_png(tmp_path / 'figures' / 'compare_regions.png')

    table = format_table(rows).splitlines()
    assert table[0].split() == ['label', 'AP', 'AP-07', 'max', 'recall', 'regions/object']
    assert '0.4100' in table[2] and '2.00' in table[2]
    assert table[3].rstrip().endswith('-')


def test_compare_into_a_folder_writes_its_figures_inside_it(tmp_path):
    folder = tmp_path / 'figures'
    folder.mkdir()
    compare([write_results(tmp_path / 'a' / 'results.json')], output=folder)
    assert sorted(path.name for path in folder.iterdir()) == ['comparison.html', 'comparison.png',
                                                              'comparison_regions.png']
    assert not (tmp_path / 'figures.png').exists()


def test_compare_labels_and_duplicates(tmp_path):
    first = write_results(tmp_path / 'a' / 'results.json')
    second = write_results(tmp_path / 'b' / 'results.json')
    rows = compare([first, second], labels=['one', 'two'], output=tmp_path / 'c.png')
    assert [row['label'] for row in rows] == ['one', 'two']
    rows = compare([first, second], output=tmp_path / 'd')  # no suffix: PNG
    # same settings twice still get distinct legend entries: each copy names its results file
    label = default_label(json.loads(first.read_text()))
    assert [row['label'] for row in rows] == [f'{label} ({first})', f'{label} ({second})']
    assert_png(tmp_path / 'd.png')
    assert_png(tmp_path / 'd_regions.png')
    with pytest.raises(UserError, match='1 labels given for 2 results files'):
        compare([first, second], labels=['one'], output=tmp_path / 'e.png')


def test_default_label():
    assert default_label({'model': 'pool45_crops', 'agent': 'upper_bound', 'scale_subregion': 0.5}) == \
        'pool45_crops upper_bound s=0.5'
    assert default_label({'model': 'image_zooms', 'agent': 'trained', 'scale_subregion': 0.75, 'epoch': 3}) == \
        'image_zooms trained s=0.75 epoch 3'


@pytest.mark.parametrize('content, problem', [
    (None, 'not found'),
    ('{"model": ', 'not a valid JSON'),
    ('[1, 2]', 'expected a JSON object'),
    ('{"model": "image_zooms", "agent": "trained"}', 'missing key'),
])
def test_broken_results_file_names_it(tmp_path, content, problem):
    path = tmp_path / 'broken.json'
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=problem) as caught:
        load_results(path)
    assert str(path) in str(caught.value)
    good = write_results(tmp_path / 'good.json')
    with pytest.raises(UserError, match='broken.json'):
        compare([good, path], output=tmp_path / 'out.png')


def test_results_with_wrong_types(tmp_path):
    with pytest.raises(UserError, match="'recall' must be a list of numbers"):
        load_results(write_results(tmp_path / 'r.json', recall='0.5'))
    with pytest.raises(UserError, match='precision has 3 values but recall 2'):
        load_results(write_results(tmp_path / 'r.json', recall=[0.1, 0.2]))
    with pytest.raises(UserError, match="'ap' must be a number"):
        load_results(write_results(tmp_path / 'r.json', ap=None))


def test_main_prints_table(tmp_path, capsys):
    first = write_results(tmp_path / 'results.json')
    assert main([str(first), '--labels', 'zooms', '--output', str(tmp_path / 'cmp.png')]) == 0
    out = capsys.readouterr().out
    assert 'zooms' in out and '0.4100' in out and 'cmp_regions.png' in out
    assert_png(tmp_path / 'cmp.png')


def test_cli_error_exits_2_with_one_line(tmp_path):
    missing = tmp_path / 'missing' / 'results.json'
    completed = subprocess.run([sys.executable, str(REPOSITORY / 'compare_results.py'), str(missing),
                                '--output', str(tmp_path / 'x.png')],
                               cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('error: ') and str(missing) in lines[0]
    assert 'Traceback' not in completed.stderr
    assert not (tmp_path / 'x.png').exists()


def test_learning_curves_add_a_transitions_column_where_the_rows_have_training_steps(tmp_path):
    from experiments.learning_benchmark import plot_learning_curves

    def rows(steps):        # budgets of 2 epochs of 100 steps, 4 of 300 ('some': without steps), 1 of 50
        return [{'model': 'image_zooms', 'variant': variant, 'seed': seed, 'epoch': epoch, 'split': 'test',
                 'ap': 0.1 * (epoch + 1), 'max_recall': 0.2, 'training_seconds': 10.0 * (epoch + 1),
                 'training_steps': None if steps is None or variant == 'long' and steps == 'some'
                 else size * (epoch + 1)}
                for variant, size, epochs in (('short', 100, 2), ('long', 300, 4), ('one epoch', 50, 1))
                for seed in (0, 1) for epoch in range(epochs)]

    baselines = [{'agent': 'random', 'split': 'test', 'ap': 0.01, 'max_recall': 0.1}]
    without, _ = assert_png(plot_learning_curves(rows(None), baselines, tmp_path / 'two.png'))
    with_steps, _ = assert_png(plot_learning_curves(rows('all'), baselines, tmp_path / 'three.png'))
    partly, _ = assert_png(plot_learning_curves(rows('some'), baselines, tmp_path / 'partly.png'))
    assert with_steps > 1.3 * without and partly > 1.3 * without
