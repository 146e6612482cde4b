"""Scripted rewards for the PPO tests (`task.reward_function=tests.ppo_rewards:<name>`)."""

from __future__ import annotations


def letter_e(prompts: list[list[dict]], completions: list[str]) -> list[float]:
    """The share of a completion's letters that are an "e" (0 for a completion without letters)."""
    out = []
    for text in completions:
        letters = [c for c in text.lower() if c.isalpha()]
        out.append(sum(c == "e" for c in letters) / len(letters) if letters else 0.0)
    return out


def e_rich(prompts: list[list[dict]], completions: list[str]) -> list[float]:
    """5 x min(share of "e" / 0.25, 1): saturates once a quarter of the letters are "e"."""
    return [5 * min(r / 0.25, 1.0) for r in letter_e(prompts, completions)]
