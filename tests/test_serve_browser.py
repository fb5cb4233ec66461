"""End to end in a real browser: ``eksplain serve`` on 127.0.0.1, driven by headless Chromium.

Debian's chromium (``.ci/run`` installs it); Playwright only drives it, it downloads nothing.
The test skips only where /usr/bin/chromium is missing and EKSPLAIN_REQUIRE_BROWSER is unset,
so CI (which sets it) can never skip it silently.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]

if not CHROMIUM.exists() and not os.environ.get("EKSPLAIN_REQUIRE_BROWSER"):
    pytest.skip("no /usr/bin/chromium (apt-get install chromium), and "
                "EKSPLAIN_REQUIRE_BROWSER is unset", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    proc: subprocess.Popen[str]

    def wait(self) -> None:
        """Until the server accepts connections (it starts while the browser does)."""
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    pytest.fail(f"eksplain serve did not start: {self.proc.communicate()[1]}")
                time.sleep(0.05)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    port = _free_port()
    eksplain = Path(sys.executable).with_name("eksplain")
    proc = subprocess.Popen([str(eksplain), "serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield Server(f"http://127.0.0.1:{port}", port, proc)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        server.wait()
        page.goto(server.url + "/")
        yield page
        browser.close()
        assert not errors, errors


def test_plan_charts_glossary_and_manifests(page: Page) -> None:
    # choose a model from the catalogue's list, submit, see the plan
    expect(page.locator("#model-list option")).not_to_have_count(0)
    page.fill("#model", "meta-llama/Llama-3.1-8B-Instruct")
    expect(page.locator("#model-note")).to_contain_text("32 layers")
    page.select_option("#duration", "10m")
    page.focus("#submit")  # by keyboard, as a person without a mouse would
    page.keyboard.press("Enter")
    expect(page.locator("#summary")).to_contain_text("meta-llama/Llama-3.1-8B-Instruct",
                                                     timeout=20_000)
    expect(page.locator("#bill")).to_contain_text("Per month")
    expect(page.locator("#alternatives tbody tr").first).to_be_visible()

    # charts are SVG with content: points on the Pareto chart, one highlighted choice
    dots = page.locator("#pareto-chart svg circle")
    assert dots.count() > 5
    expect(page.locator("#pareto-chart svg .choice-dot")).to_have_count(1)
    assert page.locator("#memory-chart svg rect").count() >= 6
    expect(page.locator("#sim-chart svg polyline").first).to_be_visible(timeout=30_000)

    # a glossary term opens its explanation
    page.locator("#decisions a[data-term]").first.click()
    dialog = page.locator("#term-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#term-body h3").first).to_have_text("On the infrastructure")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # download the manifests: a zip of the rendered files
    expect(page.locator("#download")).to_be_enabled(timeout=20_000)
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename.endswith("-manifests.zip")
    names = zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes())).namelist()
    assert any(n.endswith("kustomization.yaml") for n in names)


def test_results_fit_a_phone(page: Page) -> None:
    # the results of the first test, redrawn at a phone's width: nothing wider than the screen
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)  # the charts redraw after a resize settles
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    width = page.locator("#pareto-chart svg").get_attribute("width")
    assert width is not None
    assert int(width) <= 390
    page.set_viewport_size({"width": 1280, "height": 900})


def test_errors_show_next_to_their_field(page: Page) -> None:
    page.fill("#model", "llama-9000")
    page.click("#submit")
    expect(page.locator("#model-error")).to_contain_text("Unknown model")
    expect(page.locator("#model")).to_have_attribute("aria-invalid", "true")
    page.fill("#model", "llama-3.1-8b")
    page.fill("#rps", "-3")
    page.click("#submit")
    expect(page.locator("#rps-error")).to_contain_text("greater than 0")
    expect(page.locator("#model-error")).to_be_empty()
    page.fill("#rps", "20")
