"""Write the results pages of runs tested before testing wrote them, or take a screenshot of a page.

    python -m results_page results/demo/random/results.json ...   # index.html beside each results.json
    python -m results_page --screenshot results/demo/comparison.html docs/figures/results_page.png [--width 1280]
                           [--height 900] [--full_page] [--click '.card']

The screenshot opens the page in headless Chromium (the system's ``chromium``), waits until it is drawn and its
images are loaded, optionally clicks the first element a CSS selector finds, and writes a PNG.
"""
import argparse
import json
from pathlib import Path

from errors import UserError
from results_page import write_run_page
from runtime import main_guard

# images loaded lazily load now (the whole page may be taken), and every image is there
IMAGES_LOADED = ("document.querySelectorAll('img[loading=lazy]').forEach(image => { image.loading = 'eager'; }) ?? "
                 "[...document.images].every(image => image.complete)")


def screenshot(page, png, width=1280, height=900, full_page=False, click=None):
    """A PNG of ``page`` as headless Chromium shows it at ``width`` × ``height``; UserError when the page writes
    an error to its console."""
    from results_page.browser import Chromium
    if not Path(page).is_file():
        raise UserError(f"{page}: no such page")
    with Chromium(width=width, height=height) as browser:
        browser.open(page)
        if click:
            if not browser.evaluate(f"(element => element ? (element.click(), true) : false)"
                                    f"(document.querySelector({json.dumps(click)}))"):
                raise UserError(f"--click {click!r}: nothing on the page matches it")
        browser.wait_until(IMAGES_LOADED)
        if browser.errors:
            raise UserError(f"{page}: the page reports errors: {'; '.join(browser.errors)[:300]}")
        return browser.screenshot(png, full_page=full_page)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m results_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="*", help="results.json files: write the page beside each")
    parser.add_argument("--screenshot", nargs=2, metavar=("PAGE", "PNG"), help="a PNG of a page, by Chromium")
    parser.add_argument("--width", type=int, default=1280, help="the window's width in CSS pixels")
    parser.add_argument("--height", type=int, default=900, help="the window's height in CSS pixels")
    parser.add_argument("--full_page", action="store_true", help="the whole page, not only the window")
    parser.add_argument("--click", default=None, help="a CSS selector: click the first element it finds first")
    args = parser.parse_args(argv)
    if not args.results and not args.screenshot:
        parser.error("give results.json files, or --screenshot PAGE PNG")
    for path in args.results:
        from class_results import load_results
        from testing_run import OUTPUT_FIGURES
        print(f"results page: {write_run_page(load_results(path), Path(path).parent, OUTPUT_FIGURES)}")
    if args.screenshot:
        print(f"screenshot: {screenshot(*args.screenshot, args.width, args.height, args.full_page, args.click)}")


if __name__ == "__main__":
    main_guard(main)
