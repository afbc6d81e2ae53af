"""The matrix itself: it must cover every value of every question and every pair of the
pairwise questions, so adding a question without testing it fails here."""

import itertools
from pathlib import Path
from typing import Any

from support import answer_sets, load_matrix, questions


def _values(spec: dict[str, Any]) -> list[Any]:
    if spec.get("type") == "bool":
        return [True, False]
    choices = spec.get("choices")
    if isinstance(choices, dict):
        return list(choices.values())
    return list(choices or [])


def _effective(rendered_sets: dict[str, tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    # example_feature is not asked (and so not recorded) without a database: it is false there.
    return [{"example_feature": False, **answers} for _, answers in rendered_sets.values()]


def test_ids_are_unique_and_defaults_and_everything_on_are_present() -> None:
    ids = [answer_set.id for answer_set in answer_sets()]
    assert len(ids) == len(set(ids))
    assert {"defaults", "defaults-lowest", "everything-on"} <= set(ids)
    assert next(s for s in answer_sets() if s.id == "defaults").answers == {}


def test_every_value_of_every_question_is_covered(
    rendered_sets: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    effective = _effective(rendered_sets)
    missing = [
        (name, value)
        for name, spec in questions().items()
        for value in _values(spec)
        if not any(answers.get(name) == value for answers in effective)
    ]
    assert missing == []


def test_every_pair_of_pairwise_values_is_covered(
    rendered_sets: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    asked = questions()
    pairwise = [name for name in load_matrix()["pairwise"] if name in asked]
    effective = _effective(rendered_sets)
    missing = []
    for first, second in itertools.combinations(pairwise, 2):
        for a, b in itertools.product(_values(asked[first]), _values(asked[second])):
            if _impossible({first: a, second: b}):
                continue
            if not any(ans.get(first) == a and ans.get(second) == b for ans in effective):
                missing.append({first: a, second: b})
    assert missing == []


def _impossible(pair: dict[str, Any]) -> bool:
    """Pairs copier refuses (listed under `invalid` in the matrix) need no valid set."""
    return any(entry["answers"] == pair for entry in load_matrix()["invalid"])


def test_every_auth_database_and_example_feature_combination_is_covered(
    rendered_sets: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    """The auth modes are tested with and without the example feature on each database."""
    effective = _effective(rendered_sets)
    missing = [
        (auth, database, items)
        for auth, database, items in itertools.product(
            ["jwt", "api_key", "none"], ["postgresql", "sqlite"], [True, False]
        )
        if not any(
            (a["auth"], a["database"], a["example_feature"]) == (auth, database, items)
            for a in effective
        )
    ]
    assert missing == []
