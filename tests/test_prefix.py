"""Prefix caching: a kept prompt beginning gives the same tokens as reading the whole prompt, is bounded by bytes,
and belongs to the model object that made it. RAG reuses it for questions that retrieve the same passages."""

from __future__ import annotations

import gc

import torch

from toolkit import prefix, rag

QUESTION = "How do I convert a Python object to a JSON string?"


def _ids(smol, text: str) -> list[int]:
    return smol.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_generating_from_a_kept_prefix_gives_the_tokens_of_the_whole_prompt(smol):
    store = prefix.PrefixCache()
    ids = _ids(smol, "The keys and values of a shared system prompt are kept. Then the question: why?")
    shared = ids[:10]
    first, reused_first = prefix.prefilled(smol.model, shared, store)
    again, reused_again = prefix.prefilled(smol.model, shared, store)
    assert (reused_first, reused_again) == (False, True)
    assert again.get_seq_length() == 10 and again is not first  # a copy: generating from it changes nothing kept
    with torch.no_grad():
        whole = smol.model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False)
        for cache in (first, again):
            out = smol.model.generate(torch.tensor([ids]), cache=cache, max_new_tokens=6, do_sample=False)
            assert torch.equal(out, whole)
            assert cache.get_seq_length() == len(ids) + 5  # generate() read the rest into the cache it was given
    assert store.get(smol.model, shared).get_seq_length() == 10  # still the prefix alone


def test_kept_prefixes_are_bounded_by_bytes_and_tied_to_their_model(smol):
    ids = _ids(smol, "one two three four five six seven eight nine ten eleven twelve")
    probe = prefix.PrefixCache()
    prefix.prefilled(smol.model, ids[:8], probe)
    one = probe.bytes
    assert one == 30 * 2 * 3 * 64 * 4 * 8  # layers x (K, V) x kv heads x head dim x fp32 x tokens
    store = prefix.PrefixCache(max_bytes=one + one // 2)
    prefix.prefilled(smol.model, ids[:8], store)
    prefix.prefilled(smol.model, ids[1:9], store)  # a second entry pushes the first out
    assert store.bytes == one
    assert store.get(smol.model, ids[:8]) is None and store.get(smol.model, ids[1:9]) is not None
    assert store.get(torch.nn.Linear(2, 2), ids[1:9]) is None  # another model: nothing kept for it


def test_a_dead_model_s_prefixes_go_first_and_its_address_gets_nothing(smol):
    ids = _ids(smol, "one two three four five six seven eight nine ten eleven twelve")
    kept = prefix.PrefixCache()
    cache, _ = prefix.prefilled(smol.model, ids[:4], kept)
    small = kept.bytes
    store = prefix.PrefixCache(max_bytes=2 * small + small // 2)
    prefix.prefilled(smol.model, ids[:4], store)  # the oldest entry: a live model's
    other = torch.nn.Linear(2, 2)
    store.put(other, ids[:4], cache)  # the most recent: a model about to die
    address = id(other)
    del other
    gc.collect()
    prefix.prefilled(smol.model, ids[4:8], store)  # over the bound: the dead model's entry goes, not the older one
    assert store.bytes == 2 * small
    assert store.get(smol.model, ids[:4]) is not None and store.get(smol.model, ids[4:8]) is not None
    assert (address, tuple(ids[:4])) not in store._entries
    prefix.prefilled(smol.model, ids[8:12], store)  # full again: now the least recently used live entry goes
    assert store.get(smol.model, ids[:4]) is None


def test_rag_reuses_the_prompt_before_the_question(smol, minilm):
    prefix.SHARED.clear()
    first = rag.capture(smol, QUESTION, corpus="sample", k=2, candidates=6, max_new_tokens=6)
    again = rag.capture(smol, QUESTION, corpus="sample", k=2, candidates=6, max_new_tokens=6)
    assert first.meta["prefix_cached"] == 0
    ids = _ids(smol, again.prompt_with)
    question_at = again.prompt_with.index("Question: ")
    before = len(_ids(smol, again.prompt_with[:question_at]))
    assert abs(again.meta["prefix_cached"] - before) <= 1  # template, system prompt and passages: all but the question
    assert 0 < again.meta["prefix_cached"] < len(ids)
    assert again.answer_with == first.answer_with
    with torch.no_grad():  # the answer from the kept prefix is plain generate() on the whole prompt
        out = smol.model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False)
    assert again.answer_with == smol.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()
