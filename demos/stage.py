"""Stage mode: every demo leads with its picture (deck slide, projector, student laptop).

Layout of every demo, top to bottom:
    header      title and one line (hidden inside a slide: ``?embed=1``)
    strip       the few controls a lecturer changes live, in one compact row (``with strip():``)
    status      one line of notes (``status()``)
    hero        the main figure, sized by the page script to fill the frame down to its bottom edge (``hero(...)``)
    more        secondary views in tabs under the hero (``with more():`` then ``gr.Tab``)
    options     everything else, in a drawer on the right, closed (``with options():``)

The page script (HEAD) also forwards the deck's keys: inside a slide, → ← space PageUp PageDown (and Esc) pressed
while the focus is not in a text field go to the deck with ``postMessage``; ``slides/components/Demo.vue`` turns
them into Slidev navigation (Esc closes an expanded demo).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

HERO_MIN_PX = 300  # a hero never shrinks below this (a very short frame scrolls instead)

CSS = """
.lecture-strip { gap: 6px !important; align-items: flex-end !important; flex-wrap: wrap !important; }
.lecture-strip > div, .lecture-strip > button, .lecture-strip .form > * { min-width: 80px !important; }
.lecture-strip .block { padding: 2px 6px !important; border-width: 0 !important; box-shadow: none !important; }
.lecture-strip label > span, .lecture-strip .label-wrap span {
  font-size: 15px !important; margin-bottom: 2px !important; }
.lecture-strip input, .lecture-strip textarea { padding: 4px 8px !important; font-size: 18px !important; }
.lecture-strip textarea { min-height: 0 !important; }
.lecture-strip button { min-height: 38px; max-height: 44px; }
.lecture-status { min-height: 0 !important; padding: 0 4px !important; }
.lecture-status p { margin: 0 !important; font-size: 17px; line-height: 1.35; }
.lecture-hero { padding: 0 !important; }
.lecture-hero [data-testid="plotly"] { height: var(--lecture-hero-h, 62vh) !important; }
.lecture-hero-html { height: var(--lecture-hero-h, 62vh); overflow: auto; }
.lecture-embed .gradio-container { padding: 2px 6px !important; }
.lecture-embed .lecture-strip { padding-right: 30px !important; }  /* clear of the options drawer's toggle */
.lecture-embed .gradio-container > .main { max-width: 100% !important; padding: 0 4px !important; }
.gradio-container > .main.fillable { max-width: min(100%, 1600px) !important; }
.lecture-embed .contain { gap: 6px !important; }
"""

# Runs in every demo page. Sizes the hero to the frame; forwards deck keys to the parent (the slide).
SCRIPT = """
<script>
(() => {
  const embedded = new URLSearchParams(location.search).has('embed');
  if (embedded) document.documentElement.classList.add('lecture-embed');
  const fit = () => {
    document.querySelectorAll('.lecture-hero').forEach((el) => {
      const top = el.getBoundingClientRect().top + window.scrollY;
      const h = Math.max(HERO_MIN, Math.floor(window.innerHeight - top - 6));
      if (el.style.getPropertyValue('--lecture-hero-h') !== h + 'px') {
        el.style.setProperty('--lecture-hero-h', h + 'px');
        const plot = el.querySelector('.js-plotly-plot');
        if (plot && window.Plotly) window.Plotly.Plots.resize(plot);
      }
    });
  };
  window.addEventListener('resize', fit);
  setInterval(fit, 400);
  const TEXT = /^(TEXTAREA|SELECT)$/;
  const TYPED = ['text', 'number', 'search', 'email', 'password', 'url', 'tel'];
  const KEYS = ['ArrowRight', 'ArrowLeft', ' ', 'PageUp', 'PageDown', 'Escape'];
  document.addEventListener('keydown', (e) => {
    if (window.parent === window || !KEYS.includes(e.key) || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target || {};
    const typing = t.isContentEditable || TEXT.test(t.tagName || '') ||
      (t.tagName === 'INPUT' && TYPED.includes((t.type || 'text').toLowerCase()));
    const slider = t.tagName === 'INPUT' && t.type === 'range' && e.key.startsWith('Arrow');
    if (e.key !== 'Escape' && (typing || slider)) return;
    window.parent.postMessage({lecture: 'key', key: e.key}, '*');
    e.preventDefault();
  }, true);
})();
</script>
""".replace("HERO_MIN", str(HERO_MIN_PX))


def strip() -> gr.Row:
    """The row of live controls: ``with stage.strip(): ...``."""
    return gr.Row(elem_classes=["lecture-strip"], equal_height=False)


def status(value: str = "") -> gr.Markdown:
    return gr.Markdown(value, elem_classes=["lecture-status"])


def hero(component: Any = None, **kw: Any) -> Any:
    """The main figure (a gr.Plot by default; pass an HTML component for HTML views), filling the frame."""
    if component is None:
        return gr.Plot(show_label=False, elem_classes=["lecture-hero"], **kw)
    return component


def hero_html(**kw: Any) -> gr.HTML:
    return gr.HTML(elem_classes=["lecture-hero", "lecture-hero-html"], **kw)


def more() -> gr.Tabs:
    """Secondary views, in tabs under the hero: ``with stage.more(): with gr.Tab("..."): ...``."""
    return gr.Tabs(elem_classes=["lecture-more"])


def options(label: str = "options") -> gr.Sidebar:
    """Everything a lecturer rarely changes, in a drawer on the right, closed until opened."""
    return gr.Sidebar(label=label, open=False, position="right", width=340, elem_classes=["lecture-options"])


def fill(fig: Any) -> Any:
    """A figure sized by its container (the hero), not by its own layout height."""
    if fig is not None and hasattr(fig, "update_layout"):
        fig.layout.height = None
        fig.layout.width = None
    return fig
