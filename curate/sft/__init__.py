"""The logic behind the SFT and preference stages (selection scores, embeddings, ROUGE-L novelty,
self-instruct prompting and parsing), kept apart from the stage classes that wire it to the engine."""
