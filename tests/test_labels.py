"""The ground floor of the vocabulary (``labels``): the words a reader sees for every key, and the glossary that names
every key of it."""
import re
from pathlib import Path

import pytest

from smplora_nb import attack, labels

GLOSSARY = Path(__file__).resolve().parents[1] / "docs" / "glossary.md"


def test_label_gives_the_words_of_every_kind_of_key():
    assert labels.label("dp_lora_eps8") == "DP-LoRA (eps 8)" == labels.label(labels.dp_key(8.0))
    assert labels.label("smp_lora") == "SMP-LoRA" and labels.label("sima") == "SimA"
    assert labels.label("other") == "other" and labels.label(3) == "3"             # unknown keys as they are
    assert {a.label for a in attack.ATTACKS.values()} == set(labels.ATTACKS.values())   # the registry reads them


@pytest.mark.parametrize("group", ["SETS", "METHODS", "MODELS", "ATTACKS", "UTILITIES", "VERDICTS", "COMPARISONS"])
def test_the_glossary_names_every_key(group):
    named = set(re.findall(r"`([^`]+)`", GLOSSARY.read_text()))
    missing = [k for k in getattr(labels, group) if k not in named]
    assert not missing, f"docs/glossary.md does not name labels.{group} {missing}"
