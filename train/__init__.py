"""Thresher's trainers: pre-training, SFT, reward model, RLHF and DPO on curated shards."""
