"""A screenshot of a results page, as headless Chromium (the system's ``chromium``) shows it: the README's figure.

    python experiments/screenshot.py PAGE PNG [--width 1280] [--height 900] [--full_page] [--scroll SELECTOR]
                                     [--click SELECTOR] [--colors N]

It opens the page (``PAGE#filter=missed``: in that state), scrolls to an element, clicks one, waits until its images
are loaded and writes a PNG. The README's, after ``bash demo.sh``:

    python experiments/screenshot.py results/demo/image_zooms_trained/index.html docs/figures/results_page.png \
        --scroll '#gallery-section' --height 760 --colors 256
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from runs.errors import UserError  # noqa: E402
from runs.runtime import OneLineParser, main_guard  # noqa: E402

# images loaded lazily load now (the whole page may be taken), and every image is there
IMAGES_LOADED = """(() => {
    document.querySelectorAll("img[loading=lazy]").forEach((image) => { image.loading = "eager"; });
    return [...document.images].every((image) => image.complete);
})()"""


def screenshot(page, png, width=1280, height=900, full_page=False, click=None, scroll=None, colors=None):
    """A PNG of ``page`` (a path, with a ``#filter=…`` state if wanted) as headless Chromium shows it at ``width`` ×
    ``height``, scrolled to the element of the CSS selector ``scroll``, after a click on the first element of
    ``click``, in ``colors`` colours (None: all; 256 makes the README's a quarter the size); UserError when the
    page writes an error to its console."""
    from experiments.browser import Chromium
    path, _, state = str(page).partition("#")
    if not Path(path).is_file():
        raise UserError(f"{path}: no such page")
    with Chromium(width=width, height=height) as browser:
        browser.open(Path(path).resolve().as_uri() + (f"#{state}" if state else ""))
        if scroll and not browser.evaluate(f"(element => element ? (element.scrollIntoView(), true) : false)"
                                           f"(document.querySelector({json.dumps(scroll)}))"):
            raise UserError(f"--scroll {scroll!r}: nothing on the page matches it")
        if click:
            if not browser.evaluate(f"(element => element ? (element.click(), true) : false)"
                                    f"(document.querySelector({json.dumps(click)}))"):
                raise UserError(f"--click {click!r}: nothing on the page matches it")
        browser.wait_until(IMAGES_LOADED)
        if browser.errors:
            raise UserError(f"{page}: the page reports errors: {'; '.join(browser.errors)[:300]}")
        browser.screenshot(png, full_page=full_page)
    if colors:
        from PIL import Image
        from runs.runtime import write_atomically
        with Image.open(png) as image:
            fewer = image.convert("RGB").quantize(colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        write_atomically(png, lambda temporary: fewer.save(temporary, format="PNG", optimize=True))
    return png


def main(argv=None):
    parser = OneLineParser(prog="python experiments/screenshot.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("page", help="the page (a path, with #filter=… for a state)")
    parser.add_argument("png", help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280, help="the window's width in CSS pixels")
    parser.add_argument("--height", type=int, default=900, help="the window's height in CSS pixels")
    parser.add_argument("--full_page", action="store_true", help="the whole page, not only the window")
    parser.add_argument("--click", default=None, help="a CSS selector: click the first element it finds first")
    parser.add_argument("--scroll", default=None, help="a CSS selector: scroll to the first element it finds")
    parser.add_argument("--colors", type=int, default=None, help="N: a PNG of N colours at most (smaller)")
    args = parser.parse_args(argv)
    png = screenshot(args.page, args.png, args.width, args.height, args.full_page, args.click, args.scroll,
                     args.colors)
    print(f"screenshot: {png}")


if __name__ == "__main__":
    main_guard(main)
