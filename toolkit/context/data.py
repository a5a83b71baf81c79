"""Bundled text for the context concept (slides "Prompt engineering: zero-shot vs few-shot", "Context
engineering: the window is a budget").

REVIEWS: 48 short product and film reviews written for this toolkit, half positive, half negative (the test set);
DEMOS: 8 more, alternating positive and negative (the pool few-shot examples are drawn from, never tested on).
HISTORY: an earlier conversation, oldest first, that the context budget may have to drop.
"""

from __future__ import annotations

LABELS = ("positive", "negative")

_POSITIVE = (
    "The battery lasts for days and the screen is bright.",
    "I loved every minute of this film.",
    "Fast delivery, and the shoes fit perfectly.",
    "The soup was warm, rich and full of flavour.",
    "A clever story with a wonderful ending.",
    "This kettle boils water in no time. Great buy.",
    "The staff were friendly and the room was spotless.",
    "Best headphones I have owned: clear sound, soft pads.",
    "The actors were brilliant and the music was moving.",
    "It works exactly as described and was easy to set up.",
    "My kids read this book twice in one week.",
    "Comfortable chair, sturdy, and it looks great.",
    "The guide was funny and the tour was worth every penny.",
    "Sharp photos even at night. I am impressed.",
    "A delightful little cafe with excellent coffee.",
    "The update made the app faster and simpler.",
    "Gorgeous colours and the fabric feels lovely.",
    "I would happily watch it again tomorrow.",
    "The recipe was simple and the cake came out perfect.",
    "Quiet, powerful and easy to clean. Highly recommended.",
    "The ending made the whole audience cheer.",
    "Setup took two minutes and it has worked flawlessly since.",
    "A warm, funny and honest film.",
    "Great value for the price, and it arrived early.",
)
_NEGATIVE = (
    "The battery died after an hour.",
    "I walked out of the cinema halfway through.",
    "The shoes fell apart after a week.",
    "The soup was cold and far too salty.",
    "A dull story with a predictable ending.",
    "The kettle leaks and the handle gets hot.",
    "The room was dirty and the staff were rude.",
    "The headphones crackle and hurt my ears.",
    "Wooden acting and a forgettable soundtrack.",
    "It stopped working the day after the warranty ended.",
    "My kids got bored after two pages.",
    "The chair wobbles and the cushion is thin.",
    "The tour was rushed and the guide was late.",
    "Blurry photos, even in daylight.",
    "The coffee was bitter and the service slow.",
    "The update made the app crash constantly.",
    "The colours faded after the first wash.",
    "Two hours of my life I will never get back.",
    "The recipe was confusing and the cake collapsed.",
    "Loud, weak and impossible to clean.",
    "The ending made no sense at all.",
    "Setup failed three times and support never replied.",
    "A cold, boring and dishonest film.",
    "Overpriced, and it arrived broken.",
)

REVIEWS: tuple[tuple[str, str], ...] = tuple(
    pair for p, n in zip(_POSITIVE, _NEGATIVE) for pair in ((p, "positive"), (n, "negative"))
)
DEMOS: tuple[tuple[str, str], ...] = (
    ("The pizza was hot, fresh and delicious.", "positive"),
    ("The charger stopped working after two days.", "negative"),
    ("A beautiful film with a great cast.", "positive"),
    ("The hotel was noisy and the bed was hard.", "negative"),
    ("The lamp is bright, cheap and easy to assemble.", "positive"),
    ("Terrible sound and the remote never worked.", "negative"),
    ("The museum was fascinating and not crowded.", "positive"),
    ("The book was long, slow and pointless.", "negative"),
)

HISTORY: tuple[tuple[str, str], ...] = (
    ("Hi! I am learning Python.", "Great! What would you like to know?"),
    ("How do I write a loop over a list?", "Use a for statement: for item in items: print(item)."),
    ("And how do I stop a loop early?", "Use break inside the loop; it ends the nearest enclosing loop."),
    ("What if I only want to skip one item?", "Use continue: it goes on with the next cycle of the loop."),
    ("Can a function return two values?", "Yes: return a, b returns a tuple of both."),
    ("How do I check a condition while debugging?", "Use assert condition, message."),
    ("What does None mean?", "None is the value that means 'nothing here'."),
    ("How do I handle an error?", "Wrap the code in try and handle it in except."),
)
