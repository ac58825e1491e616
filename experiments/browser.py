"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``): no port, no
websocket, no Python package and no browser downloaded at run time — the system's ``chromium`` (Debian's package).
It opens the pages in the tests, collects their console errors, runs their controls and takes the README's
screenshot.

    with Chromium() as browser:
        browser.open(Path("results/demo/comparison.html"))
        browser.evaluate("document.title"), browser.errors, browser.screenshot("page.png")
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from runs.errors import UserError

EXECUTABLES = ("chromium", "chromium-browser")      # Debian's, and other distributions' name
BROWSER_FD_IN, BROWSER_FD_OUT = 3, 4                # where --remote-debugging-pipe reads and writes


def find_chromium():
    """The path of the system's Chromium, or None."""
    return next((path for path in map(shutil.which, EXECUTABLES) if path), None)


class Chromium:
    """One headless Chromium with one tab of ``width`` × ``height`` CSS pixels. ``errors`` lists what the page
    opened last wrote to the console as errors, threw uncaught, or failed to load."""

    def __init__(self, executable=None, width=1280, height=900, timeout=30.0):
        executable = executable or find_chromium()
        if executable is None:
            raise UserError(f"no Chromium found ({' or '.join(EXECUTABLES)}); install it, e.g. apt-get install "
                            f"chromium")
        self.timeout, self.errors, self.events, self._next_id = timeout, [], [], 0
        self._profile = tempfile.mkdtemp(prefix="results_page_chromium_")
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()

        def on_the_browser_side():      # the protocol's pipe is the browser's fds 3 (in) and 4 (out)
            moved_in, moved_out = os.dup(to_browser), os.dup(from_browser)
            os.dup2(moved_in, BROWSER_FD_IN)
            os.dup2(moved_out, BROWSER_FD_OUT)
        self._log = open(Path(self._profile) / "chromium.log", "wb")     # what it says if it fails to start
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--remote-debugging-pipe", "--hide-scrollbars",
             f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            preexec_fn=on_the_browser_side, pass_fds=(BROWSER_FD_IN, BROWSER_FD_OUT))
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        try:
            target = self.send("Target.createTarget", url="about:blank", session=None)["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True,
                                     session=None)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    # --- the protocol ----------------------------------------------------------------------------------------

    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise self._ended()
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _ended(self):
        """The error of a browser that closed its end of the pipe: its exit code and the last it said."""
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        said = (Path(self._profile) / "chromium.log").read_text(errors="replace")[-600:].strip()
        return RuntimeError(f"Chromium closed the protocol pipe (exit code {self.process.poll()})" +
                            (f"; it said: {said}" if said else ""))

    def send(self, method, session="", **params):
        """Send one protocol command (to the tab, or with ``session=None`` to the browser) and return its result;
        events that arrive meanwhile are kept (:meth:`_note`)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session or self.session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise self._ended() from None
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error'].get('message')}")
                return answer.get("result", {})
            self._note(answer)

    def _note(self, event):
        self.events.append(event)
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(argument.get("value", argument.get("description", "")))
                                                      for argument in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append("exception: " + details.get("exception", {}).get("description",
                                                                               details.get("text", "")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())

    def wait_for_event(self, method, timeout=None):
        """Wait for the next event ``method`` (one already kept counts) and return its parameters."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    del self.events[index]
                    return event.get("params", {})
            self._note(self._read_message(deadline))

    # --- what the tests and the screenshot do ------------------------------------------------------------------

    def open(self, page, ready="document.body && document.body.dataset.ready === 'true'"):
        """Open ``page`` (a path, or a URL) and wait until its load event and until ``ready`` is true; returns the
        seconds from the command to ready."""
        url = page if "://" in str(page) or str(page).startswith("about:") else Path(page).resolve().as_uri()
        started = time.perf_counter()
        self.events.clear()
        self.errors = []
        self.send("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired")
        self.wait_until(ready)
        return time.perf_counter() - started

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (a promise is awaited); its exception raises."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description", details.get("text")))
        return result["result"].get("value")

    def wait_until(self, expression, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout or self.timeout:.0f} s: {expression}")
            time.sleep(0.05)

    def screenshot(self, path, full_page=False):
        """Write a PNG of the tab (``full_page``: the whole page's height) to ``path``, atomically; returns it."""
        from runs.runtime import write_atomically
        parameters = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")["cssContentSize"]
            parameters["clip"] = {"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1}
            parameters["captureBeyondViewport"] = True
        png = base64.b64decode(self.send("Page.captureScreenshot", **parameters)["data"])
        write_atomically(path, lambda temporary: Path(temporary).write_bytes(png))
        return path

    def close(self):
        try:
            if self.process.poll() is None:
                try:
                    os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                    self.process.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    self.process.kill()
                    self.process.wait()
        finally:
            for descriptor in (self._to_browser, self._from_browser):
                try:
                    os.close(descriptor)
                except OSError:
                    pass
            self._log.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
