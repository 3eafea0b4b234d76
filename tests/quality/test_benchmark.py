"""`supportbot bench`'s comparison with the model alone: the same messages, the model's figures, the engine's share."""

from __future__ import annotations

from bot.nlu.encoders import E5Encoder
from bot.quality.benchmark import engine_share, model_alone


def test_the_model_alone_embeds_every_message_once_on_the_workers(encoder: E5Encoder) -> None:
    texts = [f"where is my parcel number {n}" for n in range(12)]
    calls: list[list[str]] = []

    class Counting:
        def encode(self, batch: list[str]) -> object:
            calls.append(batch)
            return encoder.encode(batch)

    figures = model_alone(Counting(), texts, workers=2)  # type: ignore[arg-type]
    assert sorted(t for batch in calls[2:] for t in batch) == sorted(texts)  # after one warm-up call a worker
    assert all(len(batch) == 1 for batch in calls)  # one message at a time, as the engine's workers embed
    assert figures["model_sentences_per_s"] > 0 and figures["model_cpu_ms_per_sentence"] > 0


def test_the_engine_share_is_the_cpu_beyond_the_model() -> None:
    engine = {"cpu_ms_per_msg": 20.0, "msgs_per_s": 80.0}
    model = {"model_cpu_ms_per_sentence": 15.0, "model_sentences_per_s": 100.0}
    assert engine_share(engine, model) == {
        "engine_cpu_ms_per_msg": 5.0,
        "engine_share_of_cpu": 0.25,
        "end_to_end_vs_model_alone": 0.8,
    }
