"""Figures: an agent's search over one image (a PNG, and an animated GIF), precision–recall curves, the
regions-per-object histogram (the paper's Figure 8), per-class AP bars and training curves.

Every function writes one PNG (or another format matplotlib knows, chosen by the file's suffix) and returns its
path; ``animate_search`` writes a GIF with Pillow. Figures are built on matplotlib's Agg canvas directly, without
pyplot: no window, no global figure state, nothing left open between calls, so these functions are safe to call in
long training and test loops. Each file is written under a temporary name and renamed (``runtime.write_atomically``):
two runs drawing into one folder at once leave whole files.

Regions are float ``[x0, y0, x1, y1)`` corners in pixels of the image, the project's one box format.
"""

import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from image_helper import crop as _crop, paint_mean   # _crop: a region's pixels as the descriptors see them
from reinforcement import ACTION_NAMES, ACTION_SHORT_NAMES, TRIGGER
from runs.runtime import write_atomically

DPI = 120
TRIGGER_COLOUR = 'red'
SEARCH_COLOURS = ['yellow', 'cyan', 'lime', 'magenta', 'orange']  # movement regions, one colour per search
MIN_STEP_COLUMNS = 3
MAX_STEP_COLUMNS = 8
ANIMATION_HEIGHT = 240  # pixels of the animation's image panel and crop panel
ANIMATION_CAPTION = 34  # pixels of the caption strip under them
ANIMATION_FRAME_MS = 800


def _new_figure(width, height, layout=None):
    """A figure of ``width`` x ``height`` inches on an Agg canvas (``layout='tight'``: fitted to what it shows each
    time it is drawn)."""
    return FigureCanvasAgg(Figure(figsize=(width, height), dpi=DPI, layout=layout)).figure


def _save(figure, path, tight=True):
    """Write ``figure`` to ``path`` (creating its folder) and return the path. ``tight`` crops the figure to what it
    shows and keeps outside legends whole, at the cost of a second rendering (a figure laid out to fit can skip it)."""
    path = os.fspath(path)
    file_format = os.path.splitext(path)[1][1:] or 'png'
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=DPI, format=file_format,
                                                            bbox_inches='tight' if tight else None))
    return path


def _as_rgb_uint8(image):
    """An HxWx3 uint8 RGB copy of ``image`` (uint8 or float in 0..255; greyscale HxW is expanded)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image[..., :3]


def _is_trigger(step):
    return bool(step.get('triggered', step.get('action') == TRIGGER))


def _search(step):
    return int(step.get('search', 0) or 0)


def _region_colour(step):
    return TRIGGER_COLOUR if _is_trigger(step) else SEARCH_COLOURS[_search(step) % len(SEARCH_COLOURS)]


def _outline(box, colour, **style):
    """An unfilled rectangle over the box ``[x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = (float(value) for value in box)
    return Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, **style)


def _as_seen(image, steps, paint_triggers):
    """Each step with the image as the agent saw it then: after each step, the boxes it lists under 'painted' are
    painted with the mean colour; without them, with ``paint_triggers``, the step's region if it triggered."""
    seen = image
    for step in steps:
        yield step, seen
        painted = step.get('painted')
        if painted is None:
            painted = [step['region']] if paint_triggers and _is_trigger(step) else []
        for box in painted:
            seen = paint_mean(seen, box).astype(np.uint8)


def _action_name(action):
    action = int(action)
    return ACTION_NAMES[action] if 0 <= action < len(ACTION_NAMES) else f'action {action}'


def _draw_q_values(axes, q_values, action):
    """A tiny bar chart of the six Q-values; the chosen action's bar stands out."""
    q_values = np.asarray(q_values, dtype=np.float64).reshape(-1)
    colours = ['lightgray'] * len(q_values)
    if 0 <= action < len(q_values):
        colours[action] = TRIGGER_COLOUR if action == TRIGGER else 'tab:blue'
    axes.bar(ACTION_SHORT_NAMES[:len(q_values)], q_values, color=colours, edgecolor='black', linewidth=0.4)
    axes.axhline(0.0, color='black', linewidth=0.5)
    axes.tick_params(axis='y', labelsize=6, length=2, pad=1)
    axes.tick_params(axis='x', labelsize=6, length=0, pad=1)
    axes.yaxis.set_major_locator(MaxNLocator(3))
    axes.set_ylabel('Q', fontsize=6, labelpad=1)


def draw_search(image, steps, path, title=None, paint_triggers=True):
    """Draw a whole test search of one image into one PNG at ``path``; returns the path.

    image: HxWx3 RGB, uint8 or float in 0..255. steps, in the order visited: dicts {'region': [x0, y0, x1, y1],
    'action': int 0..5 (0..4 zoom to child 1..5, 5 trigger), 'q_values': 6 floats or None (baseline agents),
    'search': int, 'triggered': bool, optionally 'painted': the boxes painted after the step}.
    Top: the full image with every step's region outlined and numbered (triggers in red, the others one colour per
    search). Below: one panel per step, its region's crop as the agent saw it (:func:`_as_seen`; with
    ``paint_triggers``, testing, every region triggered before is painted), the caption 'step k: action name' and
    the Q-values, when given, as a small bar chart.
    """
    image = _as_rgb_uint8(image)
    height, width = image.shape[:2]
    num_steps = len(steps)
    searches = sorted({_search(step) for step in steps})
    has_q_values = any(step.get('q_values') is not None for step in steps)

    # a short search keeps small panels instead of one huge one
    columns = max(MIN_STEP_COLUMNS, min(num_steps, MAX_STEP_COLUMNS, math.ceil(math.sqrt(2 * num_steps))))
    rows = math.ceil(num_steps / columns)
    panel_height = 2.1 + (0.7 if has_q_values else 0.0) + (0.15 if len(searches) > 1 else 0.0)
    figure_width = max(6.0, 2.1 * columns)
    # the overview leaves about a quarter of the width to its legend
    overview_height = min(8.0, max(2.5, figure_width * 0.75 * height / max(width, 1)))
    figure_height = overview_height + rows * panel_height
    figure = _new_figure(figure_width, figure_height)
    # margins in inches: the Q-values' axis labels on the left, their action names below, the title above
    grid = figure.add_gridspec(1 + rows, 1, height_ratios=[overview_height] + [panel_height] * rows,
                               hspace=0.12, left=0.4 / figure_width, right=1 - 0.1 / figure_width,
                               top=1 - 0.35 / figure_height, bottom=0.25 / figure_height)

    # the legend in an axes of its own: the figure holds everything it shows, so saving needs no second rendering
    overview, legend_axes = grid[0].subgridspec(1, 2, width_ratios=[3, 1], wspace=0.02).subplots()
    legend_axes.axis('off')
    overview.imshow(image)
    label_width, label_height = 0.035 * width, 0.05 * height  # roughly one number label, in pixels of the image
    placed_labels = []
    for number, step in enumerate(steps, start=1):
        colour = _region_colour(step)
        overview.add_patch(_outline(step['region'], colour, linewidth=2.5 if _is_trigger(step) else 1.5))
        if step.get('refined') is not None:        # the refine option: the box the head fits to the region
            overview.add_patch(_outline(step['refined'], colour, linewidth=1.5, linestyle='--'))
        # nested regions often share a corner: move the number right until it does not cover an earlier one
        label_x, label_y = float(step['region'][0]) + 2, float(step['region'][1]) + 2
        while any(abs(label_x - x) < label_width and abs(label_y - y) < label_height for x, y in placed_labels):
            label_x += label_width
        placed_labels.append((label_x, label_y))
        overview.text(label_x, label_y, str(number), color='black', fontsize=8, va='top', ha='left',
                      bbox=dict(facecolor=colour, edgecolor='none', pad=1.0, alpha=0.85))
    overview.set(xlim=(0, width), ylim=(height, 0), xticks=[], yticks=[])
    legend_handles = [Patch(fill=False, edgecolor=TRIGGER_COLOUR, linewidth=2.5, label='trigger')]
    legend_handles += [Patch(fill=False, edgecolor=SEARCH_COLOURS[search % len(SEARCH_COLOURS)], linewidth=1.5,
                             label=f'search {search}' if len(searches) > 1 else 'visited region')
                       for search in searches]
    if any(step.get('refined') is not None for step in steps):
        legend_handles.append(Patch(fill=False, edgecolor='black', linewidth=1.5, linestyle='--', label='refined box'))
    if num_steps:
        legend_axes.legend(handles=legend_handles, loc='upper left', bbox_to_anchor=(0.0, 1.0), fontsize=8,
                           frameon=False, borderaxespad=0.0)
    else:
        overview.text(0.5, 0.5, 'no steps', transform=overview.transAxes, ha='center', va='center',
                      fontsize=14, color='white', bbox=dict(facecolor='black', alpha=0.6))
    overview.set_title(title or f'{num_steps} region{"s" if num_steps != 1 else ""} analysed', fontsize=11)

    for index, (step, seen) in enumerate(_as_seen(image, steps, paint_triggers)):
        cell = grid[1 + index // columns].subgridspec(1, columns, wspace=0.35)[index % columns]
        parts = cell.subgridspec(2, 1, height_ratios=[3.2, 1.0], hspace=0.15) if has_q_values else [cell]
        crop_axes = figure.add_subplot(parts[0])
        crop_axes.imshow(_crop(seen, step['region']))
        crop_axes.spines[:].set(edgecolor=_region_colour(step), linewidth=2.5)
        crop_axes.set(xticks=[], yticks=[])
        caption = (f'search {_search(step)}\n' if len(searches) > 1 else '') + \
            f'step {index + 1}: {_action_name(step.get("action", -1))}' + \
            (f'\nscore {step["score"]:.2f} (learned)' if 'scores' in step else '')   # score learned: the one used
        crop_axes.set_title(caption, fontsize=8, color=TRIGGER_COLOUR if _is_trigger(step) else 'black')
        if has_q_values and step.get('q_values') is not None:
            _draw_q_values(figure.add_subplot(parts[1]), step['q_values'], int(step.get('action', -1)))
    return _save(figure, path, tight=False)


def draw_training_search(image, steps, path, title=None):
    """Draw one training search (same layout and arguments as ``draw_search``): the crops after a correct trigger
    show the found object painted, as the next searches see the image (the steps' 'painted' boxes)."""
    return draw_search(image, steps, path, title=title or 'training search', paint_triggers=False)


def animate_search(image, steps, path, title=None, paint_triggers=True, frame_ms=ANIMATION_FRAME_MS,
                   fast_palette=True):
    """Write a search of one image as an animated GIF at ``path`` (one frame per step); returns the path.
    Arguments as ``draw_search``; ``fast_palette`` False leaves each frame's 256 colours to Pillow's median cut
    (about 10× slower: ``experiments/draw_benchmark.py``'s baseline). A frame shows the image as the agent saw it,
    its search's earlier regions thin and the step's thick (red: trigger), the step's region zoomed beside it, and
    'step k/N: action' with the trigger's Q-value below. The last frame stays three times as long."""
    from PIL import Image, ImageDraw, ImageFont

    image = _as_rgb_uint8(image)
    height, width = image.shape[:2]
    scale = ANIMATION_HEIGHT / max(height, 1)
    panel_width = max(1, round(width * scale))
    font = ImageFont.load_default()
    frames = []
    for index, (step, seen) in enumerate(_as_seen(image, steps, paint_triggers)):
        frame = Image.new('RGB', (panel_width + ANIMATION_HEIGHT + 8, ANIMATION_HEIGHT + ANIMATION_CAPTION), 'white')
        frame.paste(Image.fromarray(seen).resize((panel_width, ANIMATION_HEIGHT), Image.BILINEAR), (0, 0))
        draw = ImageDraw.Draw(frame)
        for earlier in (earlier for earlier in steps[:index] if _search(earlier) == _search(step)):
            draw.rectangle([value * scale for value in earlier['region']], outline=_region_colour(earlier), width=1)
        draw.rectangle([value * scale for value in step['region']], outline=_region_colour(step), width=4)
        if step.get('refined') is not None:        # the refine option: the refined box, thin and white
            draw.rectangle([value * scale for value in step['refined']], outline='white', width=2)
        # the crop, fitted into a square panel without changing its aspect
        crop = Image.fromarray(_crop(seen, step['region']))
        fit = ANIMATION_HEIGHT / max(crop.size)
        crop = crop.resize((max(1, round(crop.width * fit)), max(1, round(crop.height * fit))), Image.BILINEAR)
        left = panel_width + 8 + (ANIMATION_HEIGHT - crop.width) // 2
        frame.paste(crop, (left, (ANIMATION_HEIGHT - crop.height) // 2))
        caption = (f'{title}\n' if title else '') + \
            f'step {index + 1}/{len(steps)}: {_action_name(step.get("action", -1))}'
        if step.get('q_values') is not None:
            caption += f'   trigger Q {float(np.asarray(step["q_values"]).reshape(-1)[TRIGGER]):.2f}'
        draw.multiline_text((4, ANIMATION_HEIGHT + 3), caption, fill=TRIGGER_COLOUR if _is_trigger(step) else 'black',
                            font=font, spacing=3)
        frames.append(frame)
    frames = frames or [Image.fromarray(image)]
    path = os.fspath(path)
    durations = [frame_ms] * (len(frames) - 1) + [3 * frame_ms]
    if fast_palette:        # a GIF frame holds 256 colours: a fast octree palette for each
        frames = [frame.quantize(256, method=Image.Quantize.FASTOCTREE) for frame in frames]
    write_atomically(path, lambda temporary: frames[0].save(
        temporary, format='GIF', save_all=True, loop=0, append_images=frames[1:], duration=durations, optimize=False))
    return path


def plot_precision_recall(runs, path, title='Precision-recall'):
    """Overlay precision–recall curves; returns the path. runs: list of dicts {'label': str, 'recall': list,
    'precision': list, 'ap': float (optional)}; the legend shows each label with its AP."""
    axes = _new_figure(7.0, 5.5, layout='tight').add_subplot()
    for run in runs:
        recall, precision = run.get('recall', []), run.get('precision', [])
        label = str(run.get('label', '')) + ('' if run.get('ap') is None else f' (AP {float(run["ap"]):.3f})')
        label += ', no curve' if len(recall) == 0 else ''
        axes.plot(recall, precision, label=label, linewidth=1.6, marker='o' if len(recall) == 1 else None)
    axes.set(xlim=(0.0, 1.0), ylim=(0.0, 1.02), xlabel='Recall', ylabel='Precision', title=title)
    axes.grid(True, alpha=0.3)
    if runs:
        axes.legend(loc='upper right', fontsize=8)
    return _save(axes.figure, path)


def plot_regions_histogram(counts_by_label, path, title='Regions analysed per found object'):
    """The paper's Figure 8: how many objects were found after analysing 1, 2, ... regions; returns the path.
    counts_by_label: dict label -> list of ints (one per found object); the labels' bars stand side by side."""
    axes = _new_figure(7.0, 4.5, layout='tight').add_subplot()
    all_counts = [int(count) for counts in counts_by_label.values() for count in counts]
    positions = np.arange(1, max([1, *all_counts]) + 1)
    bar_width = 0.8 / max(len(counts_by_label), 1)
    for index, (label, counts) in enumerate(counts_by_label.items()):
        counts = np.asarray(counts, dtype=np.int64)
        heights = np.bincount(counts[counts >= 1], minlength=positions[-1] + 1)[1:positions[-1] + 1]
        offset = (index - (len(counts_by_label) - 1) / 2) * bar_width
        axes.bar(positions + offset, heights, width=bar_width, label=f'{label} ({len(counts)} objects)')
    if not all_counts:
        axes.text(0.5, 0.5, 'no objects found', transform=axes.transAxes, ha='center', va='center', fontsize=12)
    axes.set_xlim(0.4, positions[-1] + 0.6)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel='Regions analysed per found object', ylabel='Number of objects', title=title)
    axes.grid(True, axis='y', alpha=0.3)
    if counts_by_label:
        axes.legend(fontsize=8)
    return _save(axes.figure, path)


def plot_class_bars(combined_list, labels, path, title=None):
    """Per-class AP of several combined results (``runs.class_results.combine``) side by side, one bar group per
    class, the mAP in the legend; returns the path."""
    from parse_xml_annotations import VOC_CLASSES
    names = [name for name in VOC_CLASSES if any(row["class_object"] == name for combined in combined_list
                                                for row in combined["classes"])]
    width = 0.8 / len(combined_list)
    axes = _new_figure(max(6, 0.6 * len(names) + 2), 4, layout='tight').add_subplot()
    for index, (combined, label) in enumerate(zip(combined_list, labels)):
        ap = {row["class_object"]: row["ap"] for row in combined["classes"]}
        axes.bar(np.arange(len(names)) + (index - (len(combined_list) - 1) / 2) * width,
                 [ap.get(name, 0.0) for name in names], width, label=f"{label} (mAP {combined['map']:.3f})")
    axes.set_xticks(np.arange(len(names)), names, rotation=60, ha="right")
    axes.set(ylabel="AP", ylim=(0, 1), title=title or '')
    axes.legend(fontsize=8)
    return _save(axes.figure, path, tight=False)


def _as_number(value):
    """``value`` as a float, or None when it is missing, empty or not a number (CSV cells are strings)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plot_training_log(log_rows, path):
    """Line plots per epoch of the training log; returns the path. log_rows: dicts as read from the training CSV
    log (values may be strings). 'mean_reward' and 'hit_rate' come first, then any other numeric column; a missing
    or empty value is skipped, a missing 'epoch' is replaced by the row's position."""
    numeric = [name for row in log_rows for name in row if name != 'epoch' and _as_number(row[name]) is not None]
    columns = list(dict.fromkeys([name for name in ('mean_reward', 'hit_rate') if name in numeric] + numeric))
    epochs = [position if _as_number(row.get('epoch')) is None else _as_number(row.get('epoch'))
              for position, row in enumerate(log_rows)]

    panels = max(len(columns), 1)
    figure = _new_figure(7.0, 2.2 * panels + 0.6, layout='tight')
    all_axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]  # one epoch axis for every metric
    for axes, name in zip(all_axes, columns):
        points = [(epoch, _as_number(row.get(name))) for epoch, row in zip(epochs, log_rows)
                  if _as_number(row.get(name)) is not None]
        axes.plot(*zip(*points), marker='o' if len(points) < 30 else None, markersize=3, linewidth=1.5)
        axes.set_ylabel(name.replace('_', ' '))
        axes.grid(True, alpha=0.3)
    all_axes[-1].set_xlabel('epoch')
    all_axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if not columns:
        axes = all_axes[0]
        axes.text(0.5, 0.5, 'no training data', transform=axes.transAxes, ha='center', va='center', fontsize=12)
        axes.set(xticks=[], yticks=[])
    figure.suptitle('Training log')
    return _save(figure, path)


