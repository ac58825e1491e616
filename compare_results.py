"""Compare test runs: their precision–recall curves on one plot, their regions-per-found-object histograms (the
paper's Figure 8) beside it, and a table of the numbers that matter.

    python compare_results.py OUT/results.json other/results.json ... [--labels a b ...] [--output compare.png]
                              [--title ...]

Each results.json is written by a testing script (trained agent or a baseline). The curves go to ``--output`` (in a
folder: its ``comparison.png``), the histogram to ``<output stem>_regions<suffix>`` beside it, a page that shows the
runs side by side, per image too, to ``<output stem>.html`` (results_page), the table to standard output.
"""

import os
import sys
from pathlib import Path

from results_page import METRICS, comparison_page_data, metrics_of, write_page
from runs.class_results import format_class_table, load_combined, load_results, merge, number
from runs.errors import UserError
from runs.runtime import OneLineParser, main_guard
from visualization import plot_class_bars, plot_precision_recall, plot_regions_histogram

def default_label(results):
    """'<model> <agent> s=<scale_subregion>', plus ' epoch <epoch>' when the results name an epoch."""
    epoch = f' epoch {results["epoch"]}' if results.get('epoch') is not None else ''
    return f'{results["model"]} {results["agent"]} s={results["scale_subregion"]}{epoch}'


def refinement_label(label, results):
    """``label`` plus ', refined' if the boxes were (and it does not say so), or ', windows (no refinement head)'
    if refine was asked for without a head; and ', learned score' if the score head ranked them (', trigger score
    (no score head)' if it was asked for without one)."""
    if results.get('refine_missing'):
        label = f'{label}, windows (no refinement head)'
    elif results.get('refine') and 'refine' not in label.lower():
        label = f'{label}, refined'
    if results.get('score_missing'):
        return f'{label}, trigger score (no score head)'
    return f'{label}, learned score' if results.get('score') == 'learned' and 'score' not in label else label


def output_paths(output):
    """The two figures' paths and the page's: ``output`` (a PNG when it has no suffix; ``comparison.png`` in it when
    it is a folder), ``<output stem>_regions<suffix>`` and ``<output stem>.html``."""
    output = Path(output)
    output = output / 'comparison.png' if output.is_dir() else output.with_suffix(output.suffix or '.png')
    return output, output.with_name(f'{output.stem}_regions{output.suffix}'), output.with_suffix('.html')


def compare(paths, labels=None, output='comparison.png', title=None):
    """Write the two figures and the page comparing the results files at ``paths`` (``labels``: one per path, or
    None for the defaults). Returns one row per file: 'label', 'path', 'ap', 'ap_voc07', 'max_recall',
    'mean_regions_per_found_object' (None: no object found), 'found_objects', 'num_images', 'num_objects' (or None)."""
    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise UserError('no results files given')
    if labels is not None and len(labels) != len(paths):
        raise UserError(f'{len(labels)} labels given for {len(paths)} results files')
    all_results = [load_results(path) for path in paths]
    if labels is None:
        defaults = [default_label(results) for results in all_results]
        # two runs with the same settings (e.g. two output folders) still need distinct legend entries
        labels = [f'{label} ({path})' if defaults.count(label) > 1 else label for label, path in zip(defaults, paths)]
    labels = [refinement_label(label, results) for label, results in zip(labels, all_results)]

    curves_path, regions_path, page = output_paths(output)
    rows = [{'label': label, 'path': path, **metrics_of(results)}
            for path, label, results in zip(paths, labels, all_results)]
    try:
        plot_precision_recall([{**results, 'label': label} for label, results in zip(labels, all_results)],
                              curves_path, title or 'Precision-recall')
        plot_regions_histogram({label: results['regions_per_found_object'] for label, results in
                                zip(labels, all_results)}, regions_path,
                               f'{title}: regions per found object' if title else 'Regions analysed per found object')
    except (OSError, ValueError) as error:  # unwritable folder, or a suffix matplotlib cannot write
        raise UserError(f'{curves_path}: cannot write the figures ({error})') from None
    write_page(page, comparison_page_data(rows, all_results, page.parent, (curves_path, regions_path), title))
    return rows


def format_table(rows):
    """The comparison table as text: label, AP, AP-07, max recall, mean regions per found object."""
    header = ['label', 'AP', 'AP-07', 'max recall', 'regions/object']
    lines = [[row['label'], *(number(row[key], 4) for key in METRICS), number(row['mean_regions_per_found_object'], 2)]
             for row in rows]
    widths = [max(len(line[column]) for line in [header] + lines) for column in range(len(header))]

    def render(line):
        cells = [line[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
        return '  '.join(cells).rstrip()

    return '\n'.join([render(header), '  '.join('-' * width for width in widths)] + [render(line) for line in lines])


def main(argv=None):
    parser = OneLineParser(description='Compare precision-recall and regions per found object of test runs '
                                       '(results.json files written by the testing scripts).', listed='option')
    parser.add_argument('results', nargs='+', help='results.json files')
    parser.add_argument('--labels', nargs='+', default=None, help='one legend label per results file')
    parser.add_argument('--output', default='comparison.png',
                        help='precision-recall figure (a folder: its comparison.png); the histogram goes to '
                             '<stem>_regions.png beside it')
    parser.add_argument('--title', default=None, help='title of the figures')
    parser.add_argument('--merge', default=None, metavar='OUT',
                        help='merge single-class results.json files (one job per class) into one combined OUT with '
                             'the per-class table and the mAP')
    args = parser.parse_args(argv)
    try:
        if args.merge:
            print(f'{format_class_table(merge(args.results, args.merge))}\n\ncombined results: {args.merge}')
        elif all(combined := [load_combined(path) for path in args.results]):
            # combined (several-class) results: per-class AP bars side by side
            labels = args.labels or [default_label(results) for results in combined]
            if len(labels) != len(combined):
                raise UserError(f'{len(labels)} labels given for {len(combined)} results files')
            bars = output_paths(args.output)[0]
            try:
                plot_class_bars(combined, labels, bars, args.title)
            except (OSError, ValueError) as error:  # as in compare()
                raise UserError(f'{bars}: cannot write the figure ({error})') from None
            print(*(f'{label}\n{format_class_table(results)}\n' for label, results in zip(labels, combined)),
                  f'per-class AP: {bars}', sep='\n')
        else:
            rows = compare(args.results, labels=args.labels, output=args.output, title=args.title)
            curves_path, regions_path, page = output_paths(args.output)
            print(f'{format_table(rows)}\n\nprecision-recall: {curves_path}\nregions per found object: '
                  f'{regions_path}\nto browse, side by side: {page}')
    except UserError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    main_guard(lambda: sys.exit(main()))
