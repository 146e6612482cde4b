"""Model-based scores of conversations, both optional: a reward model's score, and a small causal
LM's mean log-likelihood of the responses given the prompt. Models come from local folders (or a
packaged model name, see `curate.llm.models`); nothing is downloaded."""

from __future__ import annotations

import numpy as np

from curate.llm.models import model_path


def conversation_text(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """A conversation as the model's chat template renders it (or 'role: content' blocks without one)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
    return text + ("\n\nassistant:" if add_generation_prompt else "")


class RewardModelScorer:
    """A sequence-classification reward model with one output (as trl's RewardTrainer trains):
    the score of each whole conversation (prompt and response)."""

    def __init__(self, model: str, batch_size: int = 8, max_length: int = 1024, threads: int = 1, device: str = "cpu"):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = model_path(model)
        self.torch, self.device = torch, device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        self.model.to(device)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size, self.max_length = batch_size, max_length

    def logits(self, conversations: list[list[dict]]) -> np.ndarray:
        """The model's outputs for each whole conversation: (conversations, labels)."""
        out = []
        for start in range(0, len(conversations), self.batch_size):
            texts = [conversation_text(self.tokenizer, c) for c in conversations[start : start + self.batch_size]]
            encoded = self.tokenizer(
                texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
            ).to(self.device)
            with self.torch.inference_mode():
                out.append(self.model(**encoded).logits.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.num_labels), np.float32)

    def score(self, conversations: list[list[dict]]) -> np.ndarray:
        return self.logits(conversations)[:, 0]


class LMLikelihoodScorer:
    """Mean log-probability per token of the final assistant turn given everything before it, under
    a small causal LM: a cheap fluency/coherence signal (higher is better)."""

    def __init__(self, model: str, max_length: int = 1024, threads: int = 1):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = model_path(model)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        self.max_length = max_length

    def score(self, conversations: list[list[dict]]) -> np.ndarray:
        torch, out = self.torch, []
        for messages in conversations:
            prompt = conversation_text(self.tokenizer, messages[:-1], add_generation_prompt=True)
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            response_ids = self.tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
            if not response_ids:
                out.append(np.nan)
                continue
            ids = (prompt_ids + response_ids)[-self.max_length :]  # keep the response, cut the prompt's start
            start = max(1, len(ids) - len(response_ids))  # first predicted response token
            tensor = torch.tensor([ids])
            with torch.inference_mode():
                logprobs = torch.log_softmax(self.model(tensor).logits[0].float(), dim=-1)
            targets = tensor[0, start:]
            out.append(float(logprobs[torch.arange(start - 1, len(ids) - 1), targets].mean()))
        return np.asarray(out, dtype=np.float64)
