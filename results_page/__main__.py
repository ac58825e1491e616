"""Write the results page of runs tested before testing wrote one.

    python -m results_page results/demo/random/results.json ...   # index.html beside each results.json
"""
from pathlib import Path

from results_page import write_run_page
from runs.runtime import OneLineParser, main_guard


def main(argv=None):
    parser = OneLineParser(prog="python -m results_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results.json files: write the page beside each")
    args = parser.parse_args(argv)
    from runs.class_results import load_results
    from runs.testing_run import OUTPUT_FIGURES
    for path in args.results:
        print(f"results page: {write_run_page(load_results(path), Path(path).parent, OUTPUT_FIGURES)}")


if __name__ == "__main__":
    main_guard(main)
