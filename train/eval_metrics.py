"""Held-out measurements of a causal LM: bits per byte, answer loss, memorisation, win rate.

Everything but the win rate is one teacher-forced forward pass over token sequences in which some
positions are *scored*: the model's log-probability of the token at a scored position, given all
the tokens before it in the sequence, is added up (`score_sequences`). What differs is which
sequences are built and which positions are scored:

- bits per byte (`document_windows`): every token of a document, preceded by the start-of-document
  token the model was trained with, in windows of at most `context` tokens; a document longer
  than a window is scored in consecutive chunks of `stride` targets, each chunk seeing the
  `context - stride` tokens before it (Hugging Face's sliding-window perplexity, without losing a
  token at the window boundary). Bits per byte = total NLL / ln 2 / UTF-8 bytes of the text: it
  does not depend on the tokenizer, so models with different tokenizers compare (Paloma, The
  Pile's BPB);
- answer loss (`answer_sequences`): the assistant turns of held-out conversations, as the chat
  template's `{% generation %}` markers delimit them (what SFT trains on);
- memorisation (`memorization_sequences`): the first `prompt_tokens` tokens of a training
  document as the prompt, the next `continuation_tokens` as the target (Lee et al. 2022, Carlini
  et al. 2023: 50 + 50). Greedy decoding reproduces the continuation exactly if and only if the
  model's top token is the true one at every continuation position when fed the true prefix, so
  one teacher-forced pass gives the exact-extraction share without generating;
- win rate (`win_rate`): completions of the model and a reference model for the same prompts,
  scored by a reward model; a win counts 1, a tie 1/2 (AlpacaEval's convention).

Memory per batch: about batch_size x context x vocabulary x 8 bytes for the logits and their
log-softmax (float32), plus the model's activations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

LN2 = math.log(2.0)


@dataclass
class Scored:
    """What one scored sequence contributed: NLL in nats over its scored tokens, and how many of
    them were the model's top prediction."""

    nll: float
    tokens: int
    top1: int

    @property
    def all_top1(self) -> bool:
        return self.tokens > 0 and self.top1 == self.tokens


# A token sequence and, per position, whether that position's token is scored (position 0 never is).
TokenSequence = tuple[list[int], list[bool]]


def score_sequences(
    model: PreTrainedModel,
    sequences: Sequence[TokenSequence],
    batch_size: int,
    pad_id: int,
) -> list[Scored]:
    """Teacher-forced scores of `sequences`, in their order.

    Sequences are batched longest first (less padding), right-padded with `pad_id` and masked;
    the result does not depend on the batching beyond float rounding.
    """
    device = next(model.parameters()).device
    results: list[Scored | None] = [None] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(sequences[i][0]) for i in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            targets = torch.full((len(chunk), width), -100, dtype=torch.long)
            for row, index in enumerate(chunk):
                tokens, scored = sequences[index]
                if scored and scored[0]:
                    raise ValueError("position 0 cannot be scored: nothing precedes it")
                length = len(tokens)
                ids[row, :length] = torch.tensor(tokens, dtype=torch.long)
                attention[row, :length] = 1
                keep = torch.tensor(scored, dtype=torch.bool)
                targets[row, :length] = torch.where(keep, ids[row, :length], torch.full_like(ids[row, :length], -100))
            logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits[:, :-1].float()
            labels = targets[:, 1:].to(device)
            valid = labels != -100
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="none"
            ).view(labels.shape)
            top1 = (logits.argmax(-1) == labels) & valid
            sums = nll.double().sum(1).tolist()
            counts = valid.sum(1).tolist()
            hits = top1.sum(1).tolist()
            for row, index in enumerate(chunk):
                results[index] = Scored(sums[row], int(counts[row]), int(hits[row]))
    return [r for r in results if r is not None]


# -- bits per byte ---------------------------------------------------------------------------------


def document_windows(ids: Sequence[int], start_id: int, context: int, stride: int) -> list[TokenSequence]:
    """The windows that score every token of one document exactly once.

    The document is `[start_id] + ids`; targets are positions 1..n-1, taken in chunks of `stride`
    (<= context - 1), each chunk in a window of at most `context` tokens that ends with it.
    """
    if not 1 <= stride <= context - 1:
        raise ValueError(f"stride must be within [1, context - 1], got {stride} with context {context}")
    tokens = [start_id, *ids]
    windows: list[TokenSequence] = []
    first = 1
    while first < len(tokens):
        end = min(first + stride, len(tokens))
        begin = max(0, end - context)
        windows.append((tokens[begin:end], [begin + i >= first for i in range(end - begin)]))
        first = end
    return windows


def bits_per_byte(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    start_id: int,
    context: int,
    stride: int,
    batch_size: int,
) -> dict[str, Any]:
    """Bits per UTF-8 byte of `texts` (every token scored once, see `document_windows`)."""
    windows: list[TokenSequence] = []
    documents = n_bytes = 0
    for text in texts:
        if not text:
            continue
        documents += 1
        n_bytes += len(text.encode("utf-8"))
        windows += document_windows(tokenizer(text, add_special_tokens=False)["input_ids"], start_id, context, stride)
    scored = score_sequences(model, windows, batch_size, pad_id(tokenizer))
    nll = sum(s.nll for s in scored)
    tokens = sum(s.tokens for s in scored)
    return {
        "documents": documents,
        "bytes": n_bytes,
        "tokens": tokens,
        "windows": len(windows),
        "nll_nats": nll,
        "bits_per_byte": nll / LN2 / n_bytes if n_bytes else None,
        "bits_per_token": nll / LN2 / tokens if tokens else None,
        "bytes_per_token": n_bytes / tokens if tokens else None,
    }


# -- answers of chat models ------------------------------------------------------------------------


def answer_sequences(
    tokenizer: PreTrainedTokenizerBase, conversations: Iterable[list[dict]], context: int
) -> tuple[list[TokenSequence], list[int], dict[str, int]]:
    """Each conversation rendered by the chat template, its assistant turns scored.

    Returns the sequences, the UTF-8 bytes of each one's assistant turns, and the conversations
    left out by reason (`no_answer`, `too_long`: longer than `context` tokens).
    """
    sequences: list[TokenSequence] = []
    sizes: list[int] = []
    skipped = {"no_answer": 0, "too_long": 0}
    for messages in conversations:
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        if not answers or not messages or messages[0]["role"] == "assistant":
            skipped["no_answer"] += 1
            continue
        encoded = rendered(tokenizer, messages, return_assistant_tokens_mask=True)
        ids, mask = list(encoded["input_ids"]), [bool(m) for m in encoded["assistant_masks"]]
        if not any(mask):
            skipped["no_answer"] += 1
            continue
        if len(ids) > context:
            skipped["too_long"] += 1
            continue
        sequences.append((ids, mask))
        sizes.append(sum(len(a.encode("utf-8")) for a in answers))
    return sequences, sizes, skipped


def answer_loss(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Iterable[list[dict]],
    context: int,
    batch_size: int,
) -> dict[str, Any]:
    """Mean NLL per assistant token (and bits per byte of the answers' text) on held-out conversations.

    The scored tokens are those the template marks as the assistant's, including its end-of-turn
    token: the cost of ending the answer is part of the answer.
    """
    sequences, sizes, skipped = answer_sequences(tokenizer, conversations, context)
    scored = score_sequences(model, sequences, batch_size, pad_id(tokenizer))
    nll = sum(s.nll for s in scored)
    tokens = sum(s.tokens for s in scored)
    n_bytes = sum(sizes)
    return {
        "conversations": len(sequences),
        "skipped": skipped,
        "tokens": tokens,
        "bytes": n_bytes,
        "nll_nats": nll,
        "loss": nll / tokens if tokens else None,
        "bits_per_byte": nll / LN2 / n_bytes if n_bytes else None,
    }


def has_generation_markers(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True if the chat template marks the assistant's tokens (`{% generation %}`), as trl's
    assistant-only loss needs too."""
    template = tokenizer.chat_template
    return isinstance(template, str) and re.search(r"{%-?\s*generation\s*-?%}", template) is not None


# -- memorisation ----------------------------------------------------------------------------------


def memorization_sequences(
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    start_id: int,
    prompt_tokens: int,
    continuation_tokens: int,
) -> tuple[list[TokenSequence], int]:
    """One sequence per document long enough: start token + prompt + continuation (scored).

    Returns the sequences and how many documents were too short.
    """
    sequences: list[TokenSequence] = []
    short = 0
    need = prompt_tokens + continuation_tokens
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) < need:
            short += 1
            continue
        tokens = [start_id, *ids[:need]]
        sequences.append((tokens, [i > prompt_tokens for i in range(len(tokens))]))
    return sequences, short


def memorization(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    start_id: int,
    prompt_tokens: int,
    continuation_tokens: int,
    batch_size: int,
) -> dict[str, Any]:
    """Share of prompts whose greedy continuation is the document's exact next tokens."""
    sequences, short = memorization_sequences(tokenizer, texts, start_id, prompt_tokens, continuation_tokens)
    scored = score_sequences(model, sequences, batch_size, pad_id(tokenizer))
    n = len(scored)
    exact = sum(s.all_top1 for s in scored)
    return {
        "prompts": n,
        "too_short": short,
        "prompt_tokens": prompt_tokens,
        "continuation_tokens": continuation_tokens,
        "exact": exact,
        "exact_share": exact / n if n else None,
        "token_accuracy": sum(s.top1 for s in scored) / sum(s.tokens for s in scored) if n else None,
        "continuation_loss": sum(s.nll for s in scored) / sum(s.tokens for s in scored) if n else None,
    }


# -- win rate under a reward model -----------------------------------------------------------------


def complete(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: list[dict],
    max_new_tokens: int,
    temperature: float,
    seed: int,
) -> str:
    """The model's answer to a conversation (greedy at temperature 0, else seeded sampling)."""
    device = next(model.parameters()).device
    ids = rendered(tokenizer, prompt, add_generation_prompt=True)["input_ids"]
    inputs = torch.tensor([ids], dtype=torch.long, device=device)
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    with torch.no_grad():
        output = cast(Any, model).generate(  # nn.Module's __getattr__ hides GenerationMixin from mypy
            inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=max_new_tokens,
            pad_token_id=pad_id(tokenizer),
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )
    return str(tokenizer.decode(output[0, len(ids) :], skip_special_tokens=True))


def reward(
    reward_model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, conversation: list[dict], max_length: int
) -> float:
    """The reward model's score of a conversation, rendered with its own tokenizer's chat template."""
    device = next(reward_model.parameters()).device
    ids = rendered(tokenizer, conversation)["input_ids"][-max_length:]
    with torch.no_grad():
        logits = reward_model(input_ids=torch.tensor([ids], dtype=torch.long, device=device)).logits
    return float(logits[0, 0])


def win_rate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reference: PreTrainedModel,
    reference_tokenizer: PreTrainedTokenizerBase,
    reward_model: PreTrainedModel,
    reward_tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[dict]],
    max_new_tokens: int,
    temperature: float,
    seed: int,
    max_length: int,
) -> dict[str, Any]:
    """How often the reward model prefers the model's answer to the reference model's (ties: 1/2).

    The interval is Wilson's 95% score interval over the prompts (ties counted as half a win).
    """
    wins = ties = 0
    margins = []
    for index, prompt in enumerate(prompts):
        ours = complete(model, tokenizer, prompt, max_new_tokens, temperature, seed + index)
        theirs = complete(reference, reference_tokenizer, prompt, max_new_tokens, temperature, seed + index)
        mine = reward(reward_model, reward_tokenizer, [*prompt, {"role": "assistant", "content": ours}], max_length)
        other = reward(reward_model, reward_tokenizer, [*prompt, {"role": "assistant", "content": theirs}], max_length)
        wins += mine > other
        ties += mine == other
        margins.append(mine - other)
    n = len(prompts)
    rate = (wins + ties / 2) / n if n else None
    return {
        "prompts": n,
        "wins": wins,
        "ties": ties,
        "losses": n - wins - ties,
        "win_rate": rate,
        "interval95": wilson_interval(rate, n) if rate is not None else None,
        "mean_reward_margin": sum(margins) / n if n else None,
    }


def wilson_interval(rate: float, n: int, z: float = 1.959964) -> list[float]:
    """Wilson's score interval for a proportion `rate` observed over `n` trials."""
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def rendered(tokenizer: PreTrainedTokenizerBase, messages: list[dict], **options: Any) -> dict[str, Any]:
    """A conversation through the tokenizer's chat template: `input_ids` (and what `options` ask for)."""
    return cast(dict[str, Any], tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **options))


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """Any id will do for padding (padded positions are masked and never scored)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0
