"""Sentence splitting, tokens and lemmas on real IU report text (CC BY-NC-ND 4.0, short quotes)."""

from training.reports.lexicon import default_lexicon
from training.reports.text import find_phrases, lemmatize, split_sentences, tokenize


def test_split_handles_deid_tokens_bullets_and_missing_spaces() -> None:
    text = ("Normal chest x-XXXX. 1. Bullous emphysema and interstitial fibrosis. "
            "2. Probably scarring in the left apex.There are streaky opacities in the right upper lobe, "
            "XXXX scarring.")
    assert split_sentences(text) == [
        "Normal chest xray",
        "Bullous emphysema and interstitial fibrosis",
        "Probably scarring in the left apex",
        "There are streaky opacities in the right upper lobe, XXXX scarring",
    ]


def test_split_keeps_decimal_numbers() -> None:
    assert split_sentences("A 2.5 cm nodule. No effusion") == ["A 2.5 cm nodule", "No effusion"]


def test_tokenize_splits_hyphens_and_keeps_commas() -> None:
    tokens = tokenize("Well-expanded lungs, no effusion")
    assert tokens == ["well", "expanded", "lungs", ",", "no", "effusion"]


def test_lemmas_from_table_and_plural_rule() -> None:
    lexicon = default_lexicon()
    lemmas = [lemmatize(t, lexicon.lemmas, lexicon.known_words)
              for t in ["opacities", "effusions", "infiltrates", "atelectatic", "pneumothoraces", "nodules",
                        "consolidative", "enlarged", "granulomas", "sentences"]]
    assert lemmas == ["opacity", "effusion", "infiltrate", "atelectasis", "pneumothorax", "nodule",
                      "consolidation", "enlarge", "granuloma", "sentences"]


def test_longest_phrase_wins() -> None:
    table = {("air",): "air", ("air", "space", "disease"): "disease", ("space",): "x"}
    matches = find_phrases(["air", "space", "disease", "and", "air"], table)
    assert [(m.start, m.end, m.value) for m in matches] == [(0, 3, "disease"), (4, 5, "air")]
