"""Option parsers: known answers for what is accepted and the one line that refuses."""

from __future__ import annotations

import math

import pytest

from ssl_wc import options
from ssl_wc.options import BadOption


def test_bad_option_line_names_option_value_and_valid_values():
    err = BadOption("batch_size", -3, "must be at least 1")
    assert str(err) == "--batch-size -3: must be at least 1"
    assert err.line("attention.batch_size") == "attention.batch_size -3: must be at least 1"
    assert str(BadOption("fuse", "", "give one", "mean, max")) == "--fuse '': give one; " \
                                                                   "valid: mean, max"
    assert str(BadOption("models", None, "required")) == "--models: required"
    assert "\n" not in str(BadOption("images", "a\nb", "unknown"))


def test_lists():
    assert options.split_list("models", " a, b,,a ") == ["a", "b"]
    with pytest.raises(BadOption, match=r"--models ,: give at least one value"):
        options.split_list("models", ",")
    assert options.choices("fuse", "max,mean", ("mean", "max", "min")) == ["max", "mean"]
    with pytest.raises(BadOption, match="--fuse avg,med: unknown; valid: mean, max, min"):
        options.choices("fuse", "mean,avg,med", ("mean", "max", "min"))
    assert options.int_list("layers", "all") == "all"
    assert options.int_list("heads", "none", ("all", "none")) == "none"
    assert options.int_list("layers", "0, 5,11") == [0, 5, 11]
    with pytest.raises(BadOption, match=r"--layers 1\.5: not an integer"):
        options.int_list("layers", "0,1.5")
    assert options.listing(range(3)) == "0, 1, 2"
    assert options.listing(range(20), limit=3) == "0, 1, 2, ... (20 in all)"


@pytest.mark.parametrize("values, ok", [([0, 11], True), ([12], False), ([-1], False)])
def test_ranges_never_wrap(values, ok):
    if ok:
        options.in_range("layers", values, 0, 11, "m")
    else:
        with pytest.raises(BadOption, match=r"out of range for m; valid: 0\.\.11"):
            options.in_range("layers", values, 0, 11, "m")


@pytest.mark.parametrize("check, value, ok", [
    (options.positive, 1e-5, True), (options.positive, 0.0, False),
    (options.positive, math.nan, False), (options.positive, math.inf, False),
    (options.open_fraction, 0.2, True), (options.open_fraction, 1.0, False),
    (options.open_fraction, 0.0, False)])
def test_numbers(check, value, ok):
    if ok:
        check("x", value)
    else:
        with pytest.raises(BadOption, match=r"^--x "):
            check("x", value)
    options.at_least("n", 2, 2)
    with pytest.raises(BadOption, match="--n 1: must be at least 2"):
        options.at_least("n", 1, 2)


def test_labels_and_shards():
    options.label("variant", "lora")
    options.label("variant", "finetuned-full.v2")
    for bad in ("", "a|b", "a/b", "-x", "x" * 65, "é"):
        with pytest.raises(BadOption, match="--variant"):
            options.label("variant", bad)
    assert options.shard(None) is None and options.shard("2/4") == (2, 4)
    for bad, why in (("0/3", "between 1 and N"), ("5/2", "between 1 and N"),
                     ("1-2", "k/N"), ("a/b", "k/N")):
        with pytest.raises(BadOption, match=why):
            options.shard(bad)
