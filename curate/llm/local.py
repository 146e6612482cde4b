"""Local generation with Hugging Face transformers (CPU or GPU), batched with left padding."""

from __future__ import annotations

from itertools import groupby

from curate.llm.base import LLM, Generation, GenerationRequest, LLMError, cut_at_stop
from curate.llm.config import LLMConfig
from curate.llm.models import model_path


class TransformersLLM(LLM):
    """Requests are generated `batch_size` at a time. Sampling is seeded per batch (with the
    batch's first seed), so the same requests in the same batches give the same texts."""

    name = "transformers"

    def __init__(self, config: LLMConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.torch = torch
        self.path = model_path(config.model, config.cache_dir)
        if config.threads:  # on a shared or busy CPU, fewer threads than cores avoids oversubscription
            torch.set_num_threads(config.threads)
        try:
            dtype = getattr(torch, config.dtype)
        except AttributeError:
            raise LLMError(f"llm.dtype: unknown torch dtype '{config.dtype}'") from None
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype)
        self.model.eval()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        # PreTrainedModel.to is functools.wraps(nn.Module.to): typeshed's _Wrapped does not bind self
        self.model.to(self.device)  # type: ignore[arg-type]

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.config.model, "path": str(self.path), "mode": self.config.mode}

    def text_of(self, request: GenerationRequest) -> str:
        if self.config.mode == "chat":
            messages = (
                request.prompt if isinstance(request.prompt, list) else [{"role": "user", "content": request.prompt}]
            )
            if not self.tokenizer.chat_template:
                raise LLMError(f"llm.mode=chat: the model '{self.config.model}' has no chat template")
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            assert isinstance(text, str)  # tokenize=False: the text, not ids
            return text
        if not isinstance(request.prompt, str):
            raise LLMError("llm.mode=completion needs text prompts; set llm.mode=chat for messages")
        return request.prompt

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        results: list[Generation] = []
        size = self.config.batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            # requests with different sampling options cannot share one generate() call
            for _, group in groupby(
                chunk, key=lambda r: (r.max_new_tokens, r.temperature, r.top_p, r.stop, r.presence_penalty)
            ):
                results += self.generate_batch(list(group))
        return results

    def generate_batch(self, batch: list[GenerationRequest]) -> list[Generation]:
        torch, first = self.torch, batch[0]
        encoded = self.tokenizer([self.text_of(r) for r in batch], return_tensors="pt", padding=True).to(self.device)
        sample = first.temperature > 0
        options = {
            "max_new_tokens": first.max_new_tokens,
            "do_sample": sample,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sample:
            options.update(temperature=first.temperature, top_p=first.top_p, top_k=0)
        if first.stop:
            options.update(stop_strings=list(first.stop), tokenizer=self.tokenizer)
        if first.presence_penalty:
            from transformers import LogitsProcessorList

            options["logits_processor"] = LogitsProcessorList(
                [PresencePenalty(first.presence_penalty, encoded["input_ids"].shape[1])]
            )
        torch.manual_seed(first.seed)
        with torch.inference_mode():
            output = self.model.generate(**encoded, **options)
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        eos = self.tokenizer.eos_token_id
        generations = []
        for ids in new_tokens.tolist():
            ended = eos in ids
            if ended:
                ids = ids[: ids.index(eos)]
            decoded = self.tokenizer.decode(ids, skip_special_tokens=True)
            assert isinstance(decoded, str)  # one sequence of ids decodes to one string
            text, stopped = cut_at_stop(decoded, first.stop)
            generations.append(
                Generation(text, "stop" if stopped or ended else "length", {"completion_tokens": len(ids)})
            )
        return generations

    def close(self) -> None:
        del self.model


class PresencePenalty:
    """OpenAI's presence penalty as a transformers logits processor: every token that already
    appears in the generated part (not the prompt) has `penalty` subtracted from its logit."""

    def __init__(self, penalty: float, prompt_length: int):
        self.penalty, self.prompt_length = penalty, prompt_length

    def __call__(self, input_ids, scores):
        generated = input_ids[:, self.prompt_length :]
        if generated.shape[1] == 0:
            return scores
        seen = scores.new_zeros(scores.shape, dtype=scores.dtype).scatter_(1, generated, 1.0)
        return scores - self.penalty * seen
