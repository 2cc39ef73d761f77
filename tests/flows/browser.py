"""Open a page in a real headless Chromium (Debian's, driven by Playwright) and check its 3D viewers draw."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# Software WebGL (SwiftShader): the CI machines have no GPU.
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"]
BACKGROUND = np.array([0xB4, 0xB8, 0xBE])  # model-viewer's background in page.py's style (a mid grey: white and black assets both show)


@dataclass
class PageCheck:
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    outside: list[str] = field(default_factory=list)  # requests for anything outside the page's folder (refused)
    viewers: dict[str, float] = field(default_factory=dict)  # element id -> share of non-background pixels
    images: int = 0  # <img> elements that decoded
    broken_images: int = 0


def chromium() -> str:
    path = shutil.which("chromium")
    assert path is not None, "Chromium is missing: `bash scripts/install.sh --test` installs Debian's chromium"
    return path


def open_page(path: Path, screenshot_dir: Path, timeout_ms: int = 90_000) -> PageCheck:
    """Load `path` from disk, wait until every <model-viewer> has loaded its model and drawn, and measure each
    viewer's pixels (an element screenshot: what a person sees there). Requests for files outside the page's
    folder, or for the network, are refused and listed: a self-contained page makes none."""
    from playwright.sync_api import sync_playwright

    check = PageCheck()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            folder = path.resolve().parent.as_uri() + "/"

            def only_the_folder(route, request) -> None:  # noqa: ANN001 (Playwright's types)
                if request.url.startswith(("data:", "blob:")) or request.url.startswith(folder):
                    route.continue_()
                else:
                    check.outside.append(request.url)
                    route.abort()

            page.route("**/*", only_the_folder)
            page.on("console", lambda message: check.errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: check.errors.append(str(error)))
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.wait_for_function("() => customElements.get('model-viewer') !== undefined", timeout=timeout_ms)
            for viewer in page.locator("model-viewer").all():
                # a viewer loads its model when it comes into view (the gallery may hold hundreds)
                element_id = viewer.get_attribute("id") or f"viewer-{len(check.viewers)}"
                viewer.scroll_into_view_if_needed()
                viewer.evaluate(
                    "v => v.loaded || new Promise((done, fail) => {"
                    " v.addEventListener('load', done); v.addEventListener('error', e => fail(new Error(e.detail?.type)));"
                    f" setTimeout(() => fail(new Error('no load event')), {timeout_ms}); }})"
                )
                page.wait_for_timeout(500)  # a few frames after the model is in view
                shot = screenshot_dir / f"{element_id}.png"
                viewer.screenshot(path=str(shot))
                pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
                drawn = np.abs(pixels - BACKGROUND).max(axis=-1) > 24
                check.viewers[element_id] = float(drawn.mean())
            decoded = page.evaluate("() => [...document.images].map(img => img.complete && img.naturalWidth > 0)")
            check.images = sum(decoded)
            check.broken_images = len(decoded) - sum(decoded)
        finally:
            browser.close()
    return check


def visible_text(path: Path, screenshot: Path) -> str:
    """The text a person sees on the page (its body's innerText), and a full-page screenshot of it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.screenshot(path=str(screenshot), full_page=True)
            return page.inner_text("body")
        finally:
            browser.close()


def linked_viewers(path: Path) -> dict[str, object]:
    """A report's before/after viewers: do their turntables turn in step, does a drag on the second turn the
    camera of both, does the pause button stop them, does "part colours" recolour both models?"""
    from playwright.sync_api import sync_playwright

    angles = "() => [...document.querySelectorAll('model-viewer.linked')].map(v => v.turntableRotation)"
    cameras = "() => [...document.querySelectorAll('model-viewer.linked')].map(v => v.getCameraOrbit().theta)"
    colours = ("() => [...document.querySelectorAll('model-viewer.linked')].map(v => "
               "v.model.materials.map(m => m.pbrMetallicRoughness.baseColorFactor.join(',')))")  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.wait_for_function("() => [...document.querySelectorAll('model-viewer.linked')].every(v => v.loaded)", timeout=90_000)
            page.wait_for_timeout(1000)
            first = page.evaluate(angles)
            # turning: the angle moves on (a loaded machine may draw no frame for a while: wait until it does)
            page.wait_for_function(f"(start) => ({angles})()[0] !== start", arg=first[0], timeout=15_000)
            turning = [first, None, page.evaluate(angles)]
            page.click("#linked-pause")
            page.wait_for_timeout(300)
            paused = [page.evaluate(angles), page.wait_for_timeout(700), page.evaluate(angles)]
            before = page.evaluate(cameras)
            box = page.locator("model-viewer.linked").nth(1).bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2, steps=10)
            page.mouse.up()
            page.wait_for_timeout(500)
            after = page.evaluate(cameras)
            own = page.evaluate(colours)
            page.click("#linked-parts")
            page.wait_for_timeout(300)
            parts = page.evaluate(colours)
            return {"turning": (turning[0], turning[2]), "paused": (paused[0], paused[2]), "dragged": (before, after),
                    "colours": (own, parts)}  # fmt: skip
        finally:
            browser.close()
