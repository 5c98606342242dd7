"""T5 tokens counted before charging: the model's own tokenizer file gives the engine's count, so a prompt of few
words but many tokens is refused before anything is charged; without the file the word count stands."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from bot.errors import PromptError
from bot.requests.preparation import prepare_imagine
from bot.requests.t5_tokens import t5_token_counts, t5_tokenizer_file
from config.model_registry import ModelSpec
from config.settings import Settings
from engine.tiny import ensure_tiny_model
from tests.conftest import make_settings

TEXTS = ["a red fox in the snow", "", "Überraschung 漢字 snow-covered\tpeaks", "a " * 300]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD3 and FLUX.1 built where the engine builds them."""
    folder = tmp_path_factory.mktemp("data") / "models"
    for family in ("sd3", "flux"):
        ensure_tiny_model(family, folder)
    return folder


@pytest.mark.parametrize(("family", "subfolder"), [("flux", "tokenizer_2"), ("sd3", "tokenizer_3")])
def test_the_count_is_the_engines(models_dir: Path, family: str, subfolder: str) -> None:
    """The tokenizers library on the model's file counts what transformers' tokenizer (the engine's) counts."""
    spec = ModelSpec(source=f"tiny:{family}", family=family)
    path = t5_tokenizer_file(spec, models_dir)
    assert path == models_dir / f"tiny-{family}" / subfolder / "tokenizer.json"
    engine = AutoTokenizer.from_pretrained(path.parent)
    assert t5_token_counts(path, TEXTS) == [len(engine(text).input_ids) for text in TEXTS]


def test_where_the_file_comes_from(models_dir: Path, tmp_path: Path) -> None:
    """A folder model's own; a single file's config folder; none for a UNet family, a hub model not downloaded, or
    a folder without the file."""
    flux = models_dir / "tiny-flux"
    assert t5_tokenizer_file(ModelSpec(source=str(flux), family="flux"), models_dir) is not None
    single = ModelSpec(source=str(tmp_path / "flux.safetensors"), config=str(flux), family="flux")
    assert t5_tokenizer_file(single, models_dir) == flux / "tokenizer_2" / "tokenizer.json"
    assert t5_tokenizer_file(ModelSpec(source="tiny:sd15", family="sd15"), models_dir) is None
    missing = ModelSpec(source="imaginebot-tests/not-downloaded", family="flux")
    assert t5_tokenizer_file(missing, models_dir) is None
    bare = tmp_path / "bare"
    shutil.copytree(flux, bare, ignore=shutil.ignore_patterns("tokenizer.json"))
    assert t5_tokenizer_file(ModelSpec(source=str(bare), family="flux"), models_dir) is None


def _settings(models_dir: Path, database: Path) -> Settings:
    schnell = {"source": "tiny:flux", "family": "flux", "steps": 4, "max_steps": 4, "cfg": 0.0, "max_cfg": 0.0}
    return make_settings(
        models_dir.parent,
        database_path=database,
        model="tiny-flux",
        models={"tiny-schnell": schnell},
        enabled_models=["tiny-sd3", "tiny-schnell"],
    )


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("a lighthouse " + "Überraschungsei" * 40, "it reads at most 512 T5 tokens and yours is"),
        ("a lighthouse " + "supercalifragilistic " * 30 + "--model tiny-schnell", "at most 256 T5 tokens and yours is"),
        ("a lighthouse --model tiny-sd3 --no " + "blurrinessisms " * 40, "at most 256 T5 tokens and yours is"),
        ("a:: lighthouse " + "qz" * 300 + "::2 --model tiny-sd3", "at most 256 T5 tokens and yours is"),
    ],
)
def test_few_words_of_many_tokens_are_refused_before_charging(
    models_dir: Path, tmp_path: Path, prompt: str, says: str
) -> None:
    """Fewer words than the limit, more tokens: refused in preparation (nothing charged), with the exact count."""
    settings = _settings(models_dir, tmp_path / "imagine.db")
    with pytest.raises(PromptError) as refused:
        prepare_imagine(settings, prompt)
    assert says in str(refused.value) and "words" not in str(refused.value)
    assert refused.value.flag == "prompt"


def test_a_prompt_within_the_limit_passes(models_dir: Path, tmp_path: Path) -> None:
    """A prompt within the limit is prepared."""
    settings = _settings(models_dir, tmp_path / "imagine.db")
    [prepared] = prepare_imagine(settings, "a lighthouse on a cliff at dusk, " * 4)
    assert prepared.params.model == "tiny-flux"
