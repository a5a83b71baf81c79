"""The Slidev deck (slides/) against the demos and the lecture: every demo has a slide, every slide's demo exists,
presets are readable, every image the deck shows is there, nothing comes from a remote host, installs are pinned."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from lecture import deck as deck_cli
from lecture import figures as figures_export

ROOT = Path(__file__).resolve().parent.parent
SLIDES = ROOT / "slides"
DECK = SLIDES / "slides.md"


@pytest.fixture(scope="module")
def demos() -> dict:
    from lecture.server import discover

    return discover()


@pytest.fixture(scope="module")
def deck_demos() -> list[deck_cli.DeckDemo]:
    return deck_cli.demos_in_deck(DECK)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_every_demo_has_a_slide(demos, deck_demos):
    on_slides = {d.name for d in deck_demos}
    missing = sorted(set(demos) - on_slides)
    assert not missing, f"demos without a slide: {missing}; add <Demo name=...> to the slide that teaches each"


def test_every_slide_demo_exists(demos, deck_demos):
    unknown = sorted({d.name for d in deck_demos} - set(demos))
    assert not unknown, f"slides name demos that do not exist in demos/: {unknown}"


def test_presets_name_parameters_the_demo_reads(demos, deck_demos):
    import importlib

    for d in deck_demos:
        if d.name not in demos:
            continue  # reported by test_every_slide_demo_exists
        source = Path(importlib.import_module(f"demos.{d.name}").__file__).read_text(encoding="utf-8")
        for key in d.preset:
            assert re.search(rf"\b{re.escape(key)}\b", source), (
                f"slide {d.slide}: demo {d.name} never reads preset {key!r}"
            )


def test_each_deck_demo_has_its_snapshots(deck_demos):
    """A light and a dark snapshot per distinct <Demo>, the size of its frame; one shot name, one preset."""
    presets: dict[str, tuple] = {}
    for d in deck_demos:
        key = (d.name, json.dumps(d.preset, sort_keys=True), d.viewport())
        assert presets.setdefault(d.snapshot, key) == key, (
            f"slide {d.slide}: snapshot {d.snapshot!r} is used by demos with different presets or sizes: give each "
            'its own shot="..."'
        )
        for file in d.snapshot_files():
            snap = SLIDES / "public" / "snapshots" / file
            assert snap.is_file(), f"no snapshot {file}: run `lecture snapshots {d.snapshot} --serve`"
            vw, vh = d.viewport()
            assert png_size(snap) == (deck_cli.SNAPSHOT_SCALE * vw, deck_cli.SNAPSHOT_SCALE * vh), (
                f"{snap} is {png_size(snap)}, but the slide's frame lays the demo out {vw}x{vh} CSS px: "
                "re-run `lecture snapshots`"
            )


def test_every_local_image_exists_and_nothing_is_remote():
    text = DECK.read_text(encoding="utf-8")
    refs = re.findall(r"""(?:src=["']|\]\()(/[^"')\s]+)""", text)
    assert refs, "the deck shows no figure at all"
    for ref in refs:
        assert (SLIDES / "public" / ref.lstrip("/")).is_file(), f"broken image {ref}: run `lecture export-figures`"
    assert "/figs/" not in text
    sources = [text, (SLIDES / "components" / "Demo.vue").read_text(encoding="utf-8")]
    for src in sources:
        for url in re.findall(r"https?://[^\s\"'`)<>]+", src):
            assert re.match(r"https?://(127\.0\.0\.1|localhost)\b", url), f"remote address in the deck: {url}"
    head = text.split("\n---\n", 1)[0]
    assert re.search(r"^fonts:\n\s+provider: none", head, re.M), "web fonts would load from a CDN"
    assert re.search(r"^favicon: /", head, re.M), "the default favicon loads from a CDN"
    assert "background:" not in head


def test_every_figure_is_exported():
    for name in figures_export.FIGURES:
        path = SLIDES / "public" / "figures" / f"{name}.png"
        assert path.is_file(), f"run `lecture export-figures` ({path} missing)"
        assert png_size(path) == (2 * figures_export.WIDTH, 2 * figures_export.HEIGHT)


def test_deck_follows_the_lecture_order():
    text = DECK.read_text(encoding="utf-8")
    order = [
        "What are large language models",
        "Tokenization",
        "sinusoidal positional encoding",
        "RoPE",
        "Self-attention computation",
        "Multi-head attention",
        "Feed-forward network and Add & Norm",
        "Encoder and decoder",
        "Next-token prediction",
        "Training objective: cross-entropy",
        "Pre-training vs SFT",
        "SFT loss masking",
        "RLHF: the three stages",
        "Bradley-Terry",
        "Algorithm I: PPO",
        "DPO",
        "What is RLVR",
        "GRPO",
        "GxPO variants",
        "Applications",
        "challenges",
    ]
    titles = [t.lower() for t in re.findall(r"^# (.+)$", text, re.M)]
    position = -1
    for topic in order:
        hits = [i for i, t in enumerate(titles) if topic.lower() in t and i > position]
        assert hits, f"no slide title with {topic!r} after slide title {titles[position] if position >= 0 else '-'}"
        position = hits[0]
    for folded in [
        "Mixture of experts",
        "LoRA and QLoRA",
        "Catastrophic forgetting",
        "Sampling strategies",
        "KV cache",
    ]:
        assert any(folded.lower() in t for t in titles), f"{folded} from the notes is missing"


def test_install_is_pinned():
    pkg = json.loads((SLIDES / "package.json").read_text())
    assert pkg["dependencies"]["@slidev/cli"] == "52.14.2"
    assert pkg["overrides"]["unocss"] == "66.10.5"
    lock = json.loads((SLIDES / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@slidev/cli"]["version"] == "52.14.2"
    assert lock["packages"]["node_modules/unocss"]["version"] == "66.10.5"
    resolved = [p.get("resolved", "") for p in lock["packages"].values()]
    assert all(r.startswith("https://registry.npmjs.org/") for r in resolved if r)


# -- the parser the tests above rely on ------------------------------------------------------------------------


def test_slide_numbers_follow_slidev_separators(tmp_path):
    md = tmp_path / "s.md"
    md.write_text("""---
theme: default
---

# one

---
layout: section
---

# two

```yaml
---
not: a separator inside a fence
---
```

<Demo name="alpha" :preset='{"layer": 3, "text": "a b"}' :height="300" :zoom="0.5" />

---

# three
<Demo
  name="beta"
/>
""")
    found = deck_cli.demos_in_deck(md)
    assert [(d.name, d.slide) for d in found] == [("alpha", 2), ("beta", 3)]
    assert found[0].preset == {"layer": 3, "text": "a b"}
    assert found[0].viewport() == (deck_cli.CONTENT_WIDTH * 2, 600)
    assert "layer=3" in found[0].url("http://127.0.0.1:1") and "__theme=light" in found[0].url("http://127.0.0.1:1")
    assert "__theme=dark" in found[1].url("http://127.0.0.1:1/", dark=True)


@pytest.mark.parametrize(
    "tag",
    [
        "<Demo :preset='{layer: 3}' name=\"x\" />",
        "<Demo :preset='[1]' name=\"x\" />",
        "<Demo :preset='{}' />",
        '<Demo name="x" :zoom="9" />',
    ],
)
def test_bad_demo_tags_are_refused(tmp_path, tag):
    md = tmp_path / "s.md"
    md.write_text(f"# one\n\n{tag}\n")
    with pytest.raises(ValueError):
        deck_cli.demos_in_deck(md)


def test_lecture_commands_are_registered():
    from lecture.cli import parser

    args = parser().parse_args(["present", "--port", "7999", "--deck-port", "3999"])
    from lecture import cli

    assert args.func is cli.cmd_present and (args.port, args.deck_port) == (7999, 3999)
    assert parser().parse_args(["snapshots", "--serve"]).func is cli.cmd_snapshots
    assert parser().parse_args(["export-figures"]).func is cli.cmd_export_figures


def test_snapshots_refuse_without_a_server(capsys):
    from conftest import free_port

    from lecture.cli import main

    assert main(["snapshots", "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "no demo server" in capsys.readouterr().err
