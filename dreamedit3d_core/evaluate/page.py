"""The look shared by the per-edit report and the batch gallery: self-contained HTML pages with 3D viewers.

Everything a page shows is inside it: pictures as PNG data URLs, meshes as GLB data URLs, and Google's
<model-viewer> web component inlined once per page (vendored at install time by scripts/fetch_viewer.py), so a
page opens offline, from a copied folder, from any store URL and as a Prefect artifact. Without the vendored
viewer a page shows the pictures and says how to get the 3D view.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

VIEWER_DIR = Path(__file__).resolve().parent / "viewer"
VIEWER_LOCK = VIEWER_DIR / "model-viewer.json"
VIEWER_MISSING = "3D view not installed: run `bash scripts/install.sh` (it vendors <model-viewer> from npm)."

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; } h3 { font-size: 1.05em; margin: 0.3em 0; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figure img { width: min(100%, 1024px); } .card img { width: 320px; }
table { border-collapse: collapse; } th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
td.good { color: #555; } code { background: #f4f4f4; padding: 0 0.2em; }
.pair { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em; background: #fff; }
model-viewer { width: 320px; height: 320px; background-color: #b4b8be; --progress-bar-height: 0px; }
.failed { color: #b00020; } .completed, .computed { color: #1b5e20; } .cached { color: #555; }
.note { color: #555; font-size: 0.9em; } pre { background: #f4f4f4; padding: 0.5em; white-space: pre-wrap; }
.verdict { font-size: 1.1em; padding: 0.4em 0.8em; border-radius: 6px; display: inline-block; margin: 0.3em 0; }
.verdict-applied { background: #e3f4e4; color: #1b5e20; } .verdict-partly-applied { background: #fff4d6; color: #7a4f00; }
.verdict-not-applied, .verdict-noise-random-model { background: #fde4e6; color: #b00020; }
.verdict-not-measured { background: #eee; color: #444; }
.controls button { margin-right: 0.5em; }
"""

# The report's before and after viewers move as one: their turntables turn in step (the first one's angle is
# the others'); dragging any of them turns the camera of all of them (and pauses the turning); a button pauses
# and resumes it, another colours every material of both models in a colour of its own (the parts, where each
# part has its material) and back.
LINKED_VIEWERS_JS = """
(() => {
  const viewers = [...document.querySelectorAll('model-viewer.linked')];
  if (viewers.length < 2) return;
  const [leader, ...others] = viewers;
  const pause = document.getElementById('linked-pause');
  const setTurning = on => { viewers.forEach(v => { v.autoRotate = on; }); if (pause) pause.textContent = on ? 'pause' : 'turn'; };
  // auto-rotate turns each model on its own turntable: keep the others' turntables where the leader's is
  const step = () => {
    for (const v of others) {
      if (v.loaded && leader.loaded && Math.abs(v.turntableRotation - leader.turntableRotation) > 0.005) {
        v.resetTurntableRotation(leader.turntableRotation);
      }
    }
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
  let copying = false;
  const follow = from => {  // a drag turns the camera: the same camera for all
    if (copying) return;
    copying = true;
    const orbit = from.getCameraOrbit();
    for (const v of viewers) if (v !== from) { v.cameraOrbit = `${orbit.theta}rad ${orbit.phi}rad auto`; v.jumpCameraToGoal(); }
    copying = false;
  };
  viewers.forEach(v => v.addEventListener('camera-change', e => {
    if (e.detail.source === 'user-interaction') { setTurning(false); follow(v); }
  }));
  if (pause) pause.addEventListener('click', () => setTurning(!leader.autoRotate));
  const palette = [[0.9,0.3,0.2,1],[0.2,0.5,0.9,1],[0.3,0.75,0.3,1],[0.95,0.75,0.2,1],[0.6,0.35,0.8,1],[0.2,0.8,0.8,1],[0.9,0.5,0.7,1],[0.55,0.4,0.25,1]];
  const saved = new Map();
  const parts = document.getElementById('linked-parts');
  if (parts) parts.addEventListener('click', () => {
    const on = parts.dataset.on !== 'true';
    parts.dataset.on = String(on);
    parts.textContent = on ? 'own colours' : 'part colours';
    for (const v of viewers) (v.model?.materials || []).forEach((m, i) => {
      const pbr = m.pbrMetallicRoughness;
      if (on) {
        saved.set(m, [pbr.baseColorFactor.slice(), pbr.baseColorTexture.texture]);
        pbr.baseColorTexture.setTexture(null);
        pbr.setBaseColorFactor(palette[i % palette.length]);
      } else if (saved.has(m)) {
        const [factor, texture] = saved.get(m);
        pbr.setBaseColorFactor(factor);
        pbr.baseColorTexture.setTexture(texture);
      }
    });
  });
})();
"""


def png_data_url(image: np.ndarray | bytes) -> str:
    if isinstance(image, np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        image = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(image).decode("ascii")


def figure(caption: str, image: np.ndarray | bytes, width: int | None = None) -> str:
    """A picture with its caption; `width` (CSS pixels) caps how large it is shown."""
    style = f' style="width: min(100%, {width}px)"' if width else ""
    return (
        f'<figure><img src="{png_data_url(image)}" alt="{html.escape(caption)}"{style}>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


@cache
def viewer_lock() -> dict:
    return json.loads(VIEWER_LOCK.read_text())


def viewer_script() -> str | None:
    """The vendored <model-viewer> bundle, or None when it is not installed (or not the locked file)."""
    lock = viewer_lock()
    path = VIEWER_DIR / Path(lock["file"]).name
    if not path.is_file():
        return None
    script = path.read_bytes()
    if hashlib.sha256(script).hexdigest() != lock["sha256"]:
        return None
    return script.decode("utf-8")


def viewer_version() -> str | None:
    """`@google/model-viewer@4.4.0` when the bundle is installed, else None (part of the report's cache key)."""
    lock = viewer_lock()
    return f"{lock['package']}@{lock['version']}" if viewer_script() is not None else None


def model_viewer(label: str, glb: bytes, element_id: str, linked: bool = False) -> str:
    """An interactive 3D view of one GLB (drag to turn, scroll to zoom), the GLB inlined as a data URL;
    `linked` viewers of a page turn together (LINKED_VIEWERS_JS)."""
    source = "data:model/gltf-binary;base64," + base64.b64encode(glb).decode("ascii")
    linked_class = ' class="linked"' if linked else ""
    return (
        f'<model-viewer id="{html.escape(element_id)}"{linked_class} src="{source}" alt="{html.escape(label)}" camera-controls '
        'auto-rotate auto-rotate-delay="0" rotation-per-second="20deg" camera-orbit="30deg 70deg auto" '
        'interaction-prompt="none" shadow-intensity="0.6" exposure="1.1">'
        "</model-viewer>"
    )


def view(
    element_id: str, label: str, glb: bytes | None, picture: np.ndarray | bytes | None, viewer_js: str | None,
    linked: bool = False,
) -> str:  # fmt: skip
    """A 3D viewer of the GLB when there is one and the viewer is installed, else its picture."""
    if glb is not None and viewer_js is not None:
        return model_viewer(label, glb, element_id, linked)
    if picture is not None:
        return figure(label, picture)
    return "<p class=note>nothing to show</p>"


def side_by_side(cards: Sequence[tuple[str, str]]) -> str:
    """Cards (title, inner HTML) in a row that wraps."""
    return '<div class="pair">' + "".join(
        f'<div class="card"><h3>{html.escape(title)}</h3>{inner}</div>' for title, inner in cards
    ) + "</div>"


def page(title: str, body: str, viewer_js: str | None, uses_viewer: bool) -> str:
    """A whole page; the viewer script is inlined once when the body has 3D views (and, when some of them are
    linked, the script that turns them together, at the end of the body)."""
    script = tail = ""
    if uses_viewer and viewer_js:
        escaped = viewer_js.replace("</", "<\\/")  # `<\/` is `</` to JavaScript and never ends the element early
        script = f"<script>{escaped}</script>"
        if 'class="linked"' in body:
            tail = f"<script>{LINKED_VIEWERS_JS}</script>"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>{script}<style>{STYLE}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n{tail}</body></html>\n"
    )
