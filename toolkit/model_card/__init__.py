"""Model card (slide "What are large language models?"): a real model's architecture facts and where its
parameters live.

    from toolkit import model_card
    c = model_card.card("smollm2-135m")   # ModelCard: layers, heads, kv_heads, rope_theta, params_by_part...
    model_card.figures.parameters(c)

capture: ModelCard and card() (sizes from toolkit.arch); figures: the parameter bar chart. No trace: a card is
facts, not a recording.
"""

from toolkit.model_card import figures
from toolkit.model_card.capture import ModelCard, card, part

__all__ = ["card", "ModelCard", "part", "figures"]
