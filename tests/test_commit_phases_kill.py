"""kill -9 at every named phase of the commit protocol, for every job that writes facts
(see ``tests/commit_phases.py`` for what each scenario checks)."""

from __future__ import annotations

import pytest

from tests.commit_phases import PHASES, jobs, pre_states, reference, scenario

pytestmark = pytest.mark.slow

JOBS = ["annotations", "images", "attention", "metrics", "stats", "probe", "finetune"]
#: The annotation job writes seven Parquet parts: a kill after each of them too.
DEEP = [f"{point}:{n}" for point in ("write", "publish") for n in range(2, 8)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, demo_data, tiny_models):
    _, toml = tiny_models
    root = tmp_path_factory.mktemp("phases_kill")
    pre = pre_states(root / "pre", demo_data, toml, JOBS)
    by_name = {j.name: j for j in jobs(demo_data, toml)}
    refs = {n: reference(pre[n], by_name[n], root / f"ref-{n}") for n in JOBS}
    return pre, by_name, refs


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("job", JOBS)
def test_kill_at_phase(setup, tmp_path, job, phase):
    pre, by_name, refs = setup
    scenario(pre[job], by_name[job], "kill", phase, tmp_path / "wh", refs[job])


@pytest.mark.parametrize("phase", DEEP)
def test_kill_annotations_between_parts(setup, tmp_path, phase):
    pre, by_name, refs = setup
    scenario(pre["annotations"], by_name["annotations"], "kill", phase, tmp_path / "wh",
             refs["annotations"])
