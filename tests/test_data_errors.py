"""InputError / InputErrors formatting and JSON paths."""

from __future__ import annotations

import pytest

from ssl_wc.data.errors import MAX_LISTED, InputError, InputErrors, json_path, raise_if_any


def test_input_error_is_one_line() -> None:
    e = InputError("data/bp.json", '$.annotations["Q1_wd0.jpg"].styles', "expected a list")
    assert str(e) == 'data/bp.json: $.annotations["Q1_wd0.jpg"].styles: expected a list'
    assert "\n" not in str(e)
    assert (e.file, e.reason) == ("data/bp.json", "expected a list")


def test_json_path_quotes_keys_that_are_not_identifiers() -> None:
    assert json_path() == "$"
    assert json_path("meta", 3, "parents", 0) == "$.meta[3].parents[0]"
    assert json_path("annotations", "Q1_wd0.jpg", "bbox_groups", 2, "elements", 0, "left") == \
        '$.annotations["Q1_wd0.jpg"].bbox_groups[2].elements[0].left'
    assert json_path('a "b"') == '$["a \\"b\\""]'
    assert json_path("Q20", "location") == '$["Q20"].location'


def test_input_errors_lists_every_problem_and_is_an_input_error() -> None:
    errs = [InputError("f.json", f"$.x[{i}]", "bad") for i in range(3)]
    agg = InputErrors(errs)
    assert isinstance(agg, InputError)
    assert list(agg) == errs and len(agg) == 3
    text = str(agg)
    assert text.splitlines()[0] == "f.json: 3 problems found, input refused:"
    assert all(f"$.x[{i}]: bad" in text for i in range(3))
    assert str(InputErrors(errs, note="images skipped")).startswith(
        "f.json: 3 problems found, images skipped:")


def test_input_errors_summarises_long_lists_and_mixed_files() -> None:
    errs = [InputError("a.json", "$", "bad")] * (MAX_LISTED + 5)
    assert "... and 5 more" in str(InputErrors(errs))
    mixed = InputErrors([InputError("a.json", "$", "x"), InputError("b.json", "$", "y")])
    assert "a.json: $: x" in str(mixed) and "b.json: $: y" in str(mixed)


def test_raise_if_any() -> None:
    raise_if_any([])
    with pytest.raises(InputErrors) as info:
        raise_if_any([InputError("f", "$", "r")])
    assert len(info.value.errors) == 1
    with pytest.raises(ValueError):
        InputErrors([])
