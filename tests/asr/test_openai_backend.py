"""The openai-whisper backend loads and decodes a checkpoint the test builds itself.

The weights are random (no hub download here), so only the loading and
decoding path is checked; accuracy is the faster-whisper backend's job.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr import Transcriber
from asr.errors import ModelNotFoundError

Gen = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    whisper_model = pytest.importorskip("whisper.model")
    dims = whisper_model.ModelDimensions(
        n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
        n_vocab=51864, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1,
    )
    torch.manual_seed(0)
    model = whisper_model.Whisper(dims)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-random.en.pt"
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


def test_checkpoint_loads_and_decodes(tiny_checkpoint: Path, generated: Gen) -> None:
    tr = Transcriber(str(tiny_checkpoint), backend="openai-whisper")
    assert type(tr.backend).__name__ == "OpenAIWhisperBackend"
    assert not tr.multilingual
    t = tr.transcribe(generated[0] / "utt_cancel.wav", beam_size=1, word_timestamps=False)
    assert t.model == "tiny-random.en" and t.language == "en"
    for seg in t.segments:
        assert 0.0 <= seg.start <= seg.end <= t.duration + 0.5
    # Silence never reaches the model at all.
    assert tr.transcribe(np.zeros(16000 * 3, np.float32)).segments == []


def test_shipped_ct2_model_is_refused_by_openai_backend() -> None:
    with pytest.raises(ModelNotFoundError, match="CTranslate2"):
        Transcriber("whisper-tiny.en", backend="openai-whisper")
