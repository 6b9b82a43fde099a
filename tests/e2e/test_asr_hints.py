"""asr.kb_hotwords and asr.final_model reach faster-whisper: the engine built from configuration decodes a
phone-line caller's final with whisper-base and the example KB's hotwords, partials with tiny.en."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.audio import load_audio
from asr.metrics import wer
from voice_agent.config import load_config
from voice_agent.engine import Engine

pytestmark = pytest.mark.e2e
Gen = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    home = tmp_path_factory.mktemp("home")
    config = load_config(env={"VOICE_AGENT_HOME": str(home), "HF_HUB_OFFLINE": "1"},
                         overrides={"asr": {"final_model": "whisper-base", "kb_hotwords": True}})
    return Engine.from_config(config)


def test_final_model_and_kb_hotwords_reach_faster_whisper(engine: Engine, generated: Gen,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from faster_whisper import WhisperModel

    rec = engine.recognizer
    assert rec.final is not rec.model and rec.final.model.is_multilingual and not rec.model.model.is_multilingual
    assert rec.hotwords and rec.prompt
    seen: list[tuple[Any, dict[str, Any]]] = []
    real = WhisperModel.transcribe

    def spy(self: Any, audio: Any, **kwargs: Any) -> Any:
        seen.append((self, kwargs))
        return real(self, audio, **kwargs)

    monkeypatch.setattr(WhisperModel, "transcribe", spy)
    out, manifest = generated
    audio = np.asarray(load_audio(out / "utt_move_ulaw8k.wav")[0], dtype=np.float32)
    final = rec.recognize_final(audio, 1)
    partial = rec.recognize(audio, 1)
    assert [m for m, _ in seen] == [rec.final, rec.model]
    for _, kwargs in seen:
        assert kwargs["hotwords"] == rec.hotwords and kwargs["initial_prompt"] == rec.prompt
    assert seen[0][1]["language"] == "en"  # the multilingual final follows the English partial model
    reference = manifest["files"]["utt_move_ulaw8k.wav"]["text"]
    assert wer(reference, final.text) <= 0.2, final.text
    assert partial.text

