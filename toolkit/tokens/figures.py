"""Tokens and embeddings figures: slides "Tokenization: the real input to LLMs" (pieces side by side) and
"Embeddings" (cosine heatmap, PCA map, king − man + woman's nearest vocabulary rows). One function per view."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from toolkit import style
from toolkit.tokens import chips, maths
from toolkit.tokens.trace import AnalogyTrace, EmbeddingTrace, TokenizationTrace

PIECE_FONT = 26  # px: a token's text, read from the back of the room; its id under it is style.MIN_FONT
MAX_LINES = 4  # lines of chips per tokenizer; more tokens are left out (the header says how many)
MIN_ROWS = 5.5  # the y range never shrinks below this, so few chips stay chip-sized, not stretched
HEADER = 0.75  # rows taken by a tokenizer's header line


def _shown(piece: str) -> str:
    return piece.replace(" ", "␣").replace("\n", "⏎") or "∅"


def _label(piece: str, raw: str, partial: bool, unknown: bool) -> str:
    """What a chip says: the piece (␣ = its leading space); a byte-fallback piece as its bytes, e.g. ␣<F0 9F>."""
    if partial:
        shown = maths.byte_label(raw)
        if shown:
            return shown
    return ("⚠" if partial or unknown else "") + _shown(piece)


def pieces(t: TokenizationTrace, dark: bool = False) -> go.Figure:
    """Each tokenizer's pieces as chips, read left to right like the text: colour = the word a piece belongs to,
    ␣ = a leading space that is part of the piece, the token id under each chip, byte fallbacks as their bytes."""
    pal = style.palette(dark)
    fig = go.Figure()
    shapes, notes = [], []
    y = 0.0
    for v in t.views:
        items = [
            chips.Chip(
                text=_label(piece, raw, partial, unknown),
                sub=str(i),
                colour=pal[word % 7] if word >= 0 else "#888888",
                hover=f"piece {style.plain(repr(piece))}<br>raw {style.plain(repr(raw))}<br>id {i}"
                + (" (byte fallback)" if partial else " (unknown)" if unknown else ""),
            )
            for piece, raw, i, partial, unknown, word in zip(
                v["pieces"], v["raw"], v["ids"], v["partial"], v["unknown"], v["word"]
            )
        ]
        top = y + HEADER
        y, drawn, boxes = chips.draw(fig, items, top, PIECE_FONT, dark, MAX_LINES)
        shapes += boxes
        left = len(items) - drawn
        head = f"<b>{style.plain(v['model'])}</b>: {len(v['ids'])} tokens" + (
            f" ({left} more not drawn)" if left else ""
        )
        if v["truncated"]:
            head += " (text cut at the token limit)"
        notes.append(dict(x=0, y=top - HEADER / 2, text=head, xanchor="left", showarrow=False, font=dict(size=20)))
        y += 0.25
    chips.frame(fig, PIECE_FONT, y, MIN_ROWS, shapes)
    fig.update_layout(annotations=notes)
    title = "The same text, two tokenizers: colour = word, ␣ = leading space, number = token id"
    style.apply(fig, dark, title=title, height=int(90 + 64 * max(y, MIN_ROWS)))
    return fig.update_layout(margin=dict(l=10, r=10, t=56, b=8))


CELL_TEXT_MAX = 12  # a heatmap writes its numbers in the cells up to this many words; beyond, hover only


def similarity(e: EmbeddingTrace, dark: bool = False) -> go.Figure:
    n = len(e.words)
    words = [style.plain(w) for w in e.words]
    fig = go.Figure(
        go.Heatmap(
            z=e.similarity,
            x=words,
            y=words,
            colorscale=style.DIVERGING,
            zmid=0,
            zmin=-1,
            zmax=1,
            texttemplate="%{z:.2f}" if n <= CELL_TEXT_MAX else None,
            textfont=dict(size=20 if n <= 8 else style.MIN_FONT),
            hovertemplate="%{y} · %{x}: cos %{z:.3f}<extra></extra>",
            colorbar=dict(title="cos"),
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-45 if n > 6 else 0)
    what = "sentence embeddings (mean pooled)" if e.source == "sentence" else "input embeddings (tokens averaged)"
    return style.apply(fig, dark, title=f"Cosine similarity, {e.meta.get('model', '')} {what}", height=520)


def similarity_difference(a: EmbeddingTrace, b: EmbeddingTrace, dark: bool = False) -> go.Figure:
    """Two models side by side on the same words: cos_B − cos_A for every pair (red: B puts them closer), the pair
    that moved most in the title. Two models with their own embedding sizes compare fine: cosine has no units."""
    if list(a.words) != list(b.words):
        raise ValueError("the two embeddings are of different words: compare the same word list")
    n = len(a.words)
    words = [style.plain(w) for w in a.words]
    diff = (b.similarity.astype(np.float32) - a.similarity.astype(np.float32)).astype(np.float32)  # (word, word)
    top = float(np.abs(diff).max())
    i, j = np.unravel_index(int(np.abs(diff).argmax()), diff.shape)
    fig = go.Figure(
        go.Heatmap(
            z=diff,
            x=words,
            y=words,
            colorscale=style.DIVERGING,
            reversescale=True,  # red: B finds the pair more similar
            zmid=0,
            zmin=-max(top, 1e-6),
            zmax=max(top, 1e-6),
            texttemplate="%{z:+.2f}" if n <= CELL_TEXT_MAX else None,
            textfont=dict(size=20 if n <= 8 else style.MIN_FONT),
            hovertemplate="%{y} · %{x}: Δcos %{z:+.3f}<extra></extra>",
            colorbar=dict(title="Δ cos"),
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-45 if n > 6 else 0)
    names = f"{style.plain(b.meta.get('model', 'B'))} − {style.plain(a.meta.get('model', 'A'))}"
    moved = f"most moved: {words[i]}–{words[j]} ({diff[i, j]:+.2f})" if top > 0 else "identical"
    return style.apply(fig, dark, title=f"Cosine similarity, {names}: {moved}", height=520)


POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "top left")


def _label_positions(xy: np.ndarray, words: list[str], width_px: float = 1000, height_px: float = 330) -> list[str]:
    """A text position per point so that labels overlap neither each other nor a point, greedily; the plot's size
    in px is a guess (the hero's), enough to tell near points apart."""
    span = np.ptp(xy, axis=0)
    span[span == 0] = 1.0
    p = (xy - xy.min(0)) / span * [width_px, height_px]  # (n, 2) px, y up
    boxes: list[tuple[float, float, float, float]] = []
    out = []
    for (x, y), w in zip(p, words):
        bw, bh = 0.62 * 24 * len(w), 28.0
        for pos in POSITIONS:
            vert, horiz = pos.split()
            cx = x + {"center": 0, "right": 12 + bw / 2, "left": -12 - bw / 2}[horiz]
            cy = y + {"top": 12 + bh / 2, "bottom": -12 - bh / 2, "middle": 0}[vert]
            box = (cx - bw / 2, cx + bw / 2, cy - bh / 2, cy + bh / 2)
            clash = any(box[0] < o[1] and o[0] < box[1] and box[2] < o[3] and o[2] < box[3] for o in boxes)
            hits_point = any(box[0] < px < box[1] and box[2] < py < box[3] for px, py in p)
            if not clash and not hits_point:
                break
        else:
            pos, box = POSITIONS[0], (x - bw / 2, x + bw / 2, y + 12, y + 12 + bh)
        boxes.append(box)
        out.append(pos)
    return out


def projection(e: EmbeddingTrace, dark: bool = False, dims: int = 2) -> go.Figure:
    pal = style.palette(dark)
    ev = [f"PC{i + 1} ({100 * r:.0f}% of the variance)" for i, r in enumerate(e.explained)]
    words = [style.plain(w) for w in e.words]
    if dims == 3:
        fig = go.Figure(
            go.Scatter3d(
                x=e.coords[:, 0],
                y=e.coords[:, 1],
                z=e.coords[:, 2],
                text=words,
                mode="markers+text",
                marker=dict(size=7, color=pal[4]),
                textfont=dict(size=22),
            )
        )
        fig.update_layout(scene=dict(xaxis_title=ev[0], yaxis_title=ev[1], zaxis_title=ev[2]))
    else:
        fig = go.Figure(
            go.Scatter(
                x=e.coords[:, 0],
                y=e.coords[:, 1],
                text=words,
                mode="markers+text",
                textposition=_label_positions(e.coords[:, :2], e.words),
                textfont=dict(size=24),
                marker=dict(size=16, color=pal[4]),
                cliponaxis=False,
            )
        )
        pad = lambda v: 0.18 * float(np.ptp(v) or 1.0)  # noqa: E731  room for the labels
        x, y = e.coords[:, 0], e.coords[:, 1]
        fig.update_xaxes(title=ev[0], range=[x.min() - pad(x), x.max() + pad(x)], zeroline=False)
        fig.update_yaxes(title=ev[1], range=[y.min() - pad(y), y.max() + 1.6 * pad(y)], zeroline=False)
    what = "sentence embeddings" if e.source == "sentence" else "input embeddings"
    model = e.meta.get("model", "")
    title = f"{len(e.words)} words, {e.vectors.shape[1]}-dimensional {what} of {model}, PCA to {dims}-D"
    return style.apply(fig, dark, title=title, height=520)


def neighbours(a: AnalogyTrace, dark: bool = False) -> go.Figure:
    pal = style.palette(dark)
    labels = [f"{style.plain(_shown(n))}{'  (input)' if i else ''}" for n, i in zip(a.neighbours, a.is_input)]
    colours = [pal[5] if i else pal[2] for i in a.is_input]
    fig = go.Figure(
        go.Bar(
            x=a.scores,
            y=labels,
            orientation="h",
            marker_color=colours,
            text=[f"{s:.3f}" for s in a.scores],
            textposition="outside",
            textfont=dict(size=18),
            cliponaxis=False,
        )
    )
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=20))
    top = float(np.max(a.scores)) if len(a.scores) else 1.0
    fig.update_xaxes(title="cosine similarity to a − b + c", range=[min(0.0, float(np.min(a.scores))), 1.12 * top])
    fig.update_layout(uniformtext=dict(minsize=style.MIN_FONT, mode="show"))
    title = f"{style.plain(a.a)} − {style.plain(a.b)} + {style.plain(a.c)}: nearest rows of the vocabulary"
    return style.apply(fig, dark, title=title, height=520)


# ---- the demo's views from Python: toolkit.views.show("tokens", view, **preset) --------------------------------

TEXT = "unhappiness, unhappiness don't 😊 tokenization"  # the leading space is part of a byte-level BPE piece
WORDS = "cat, dog, horse, car, truck, train, apple, banana, orange"  # one SmolLM2 token each
EMBEDDINGS = {  # the demo's "embeddings" choices: (model, source)
    "SmolLM2 input embeddings": ("smollm2-135m", "input"),
    "MiniLM input embeddings": ("minilm-l6", "input"),
    "MiniLM sentence embeddings": ("minilm-l6", "sentence"),
}
SOURCE = "SmolLM2 input embeddings"
ANALOGY = ("king", "man", "woman", "queen")


def words_list(words: str | list[str]) -> list[str]:
    """'cat, dog' or ['cat', 'dog'] -> ['cat', 'dog']."""
    if isinstance(words, str):
        return [w.strip() for w in words.replace("\n", ",").split(",") if w.strip()]
    return list(words)


def _embedding(words, source: str, dims: int = 2) -> EmbeddingTrace:
    from toolkit.tokens.capture import embed

    model, kind = EMBEDDINGS[source]
    return embed(model, words_list(words), source=kind, dims=dims)


def view_pieces(
    text: str = TEXT, model: str = "smollm2-135m", compare: str = "minilm-l6", dark: bool = False
) -> go.Figure:
    """Two tokenizers on the same text (the demo's pair by default)."""
    from toolkit.tokens.capture import compare as tokenize_both

    return pieces(tokenize_both([model, compare], text), dark)


def view_embedding(words: str = WORDS, source: str = SOURCE, dims: int = 2, dark: bool = False) -> go.Figure:
    return projection(_embedding(words, source, dims), dark, dims)


def view_similarity(words: str = WORDS, source: str = SOURCE, dark: bool = False) -> go.Figure:
    return similarity(_embedding(words, source), dark)


def view_analogy(
    a: str = ANALOGY[0],
    b: str = ANALOGY[1],
    c: str = ANALOGY[2],
    expected: str = ANALOGY[3],
    source: str = SOURCE,
    dark: bool = False,
) -> go.Figure:
    from toolkit.tokens.capture import analogy

    return neighbours(analogy(EMBEDDINGS[source][0], a, b, c, expected=expected), dark)


def view_compare(
    words: str = WORDS, model: str = "smollm2-135m", compare: str = "minilm-l6", dark: bool = False
) -> go.Figure:
    """Two models' input embeddings of the same words: the change in every pair's cosine similarity."""
    from toolkit import variants  # noqa: F401  (registers the embedded model's variants)
    from toolkit.tokens.capture import embed

    ws = words_list(words)
    return similarity_difference(embed(model, ws), embed(compare, ws), dark)


VIEWS = {  # the demo's hero first
    "pieces": view_pieces,
    "embedding": view_embedding,
    "similarity": view_similarity,
    "analogy": view_analogy,
    "compare": view_compare,
}
