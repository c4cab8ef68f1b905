"""The fine-tuning job on a small warehouse: splits, epochs, models, idempotence, crash
safety, variant ingest, scoring, variant_deltas (the linear probe's delta is exactly 0),
and the ``ssl-wc finetune`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ingest.attention import AttentionJob, ingest_attention
from ingest.finetune import (
    FinetuneInputError,
    ingest_variant,
    materialise_variant_deltas,
    run_finetune,
    variant_delta_rows,
)
from ingest.metrics import materialise_metrics
from ssl_wc.finetune import STRATEGIES
from ssl_wc.metrics.protocol import MetricProtocol
from ssl_wc.models.registry import build_random_model
from ssl_wc.options import BadOption
from ssl_wc.paths import WarehousePaths
from tests.conftest import query_catalog

TINY: dict[str, Any] = {"grid": 2, "hidden_size": 32, "num_layers": 2, "num_heads": 2}
METHODS = ("cls", "mean")
TRAIN: dict[str, Any] = {"epochs": 1, "batch_size": 32, "lr_head": 5e-2, "device": "cpu"}
LR = {"linear_probe": None, "lora": 5e-3, "full": 1e-3}
PROTOCOL = MetricProtocol(eval_size=(48, 48), percentiles=(50, 90))  # small: fast tests


q = query_catalog


@pytest.fixture(scope="module")
def ft_wh(tmp_path_factory: pytest.TempPathFactory, annotated_wh_template: Path,
          demo_data: Any) -> dict[str, Any]:
    """Frozen maps, the three strategies fine-tuned, ingested and scored, deltas."""
    import shutil

    root = tmp_path_factory.mktemp("ftwh") / "wh"
    shutil.copytree(annotated_wh_template, root)
    wh = WarehousePaths.of(root)
    spec = build_random_model("dinov2", wh.artifacts / "tiny", seed=0, **TINY)
    specs = {spec.key: spec}
    frozen = ingest_attention(wh, AttentionJob(models=[spec.key], methods=METHODS,
                                               device="cpu", batch_size=8, features=False,
                                               specs=specs, progress=False, strict=True))
    results = {}
    for strategy in STRATEGIES:
        res = run_finetune(wh, spec.key, strategy, lr_backbone=LR[strategy], specs=specs,
                           strict=True, **TRAIN)
        variant = ingest_variant(wh, res.finetune_id, METHODS, device="cpu", batch_size=8,
                                 features=False, specs=specs, progress=False, strict=True)
        results[strategy] = (res, variant)
    metrics = materialise_metrics(wh, baselines=False, protocol=PROTOCOL)
    deltas = materialise_variant_deltas(wh, resamples=200)
    return {"wh": wh, "spec": spec, "specs": specs, "frozen": frozen, "results": results,
            "metrics": metrics, "deltas": deltas, "demo": demo_data}


def test_jobs_commit_and_write_the_tables(ft_wh: dict[str, Any]) -> None:
    wh = ft_wh["wh"]
    assert [r.status for r in ft_wh["frozen"]] == ["committed"]
    for strategy, (res, variant) in ft_wh["results"].items():
        assert res.status == "committed", res.message
        assert res.finetune_id.startswith(f"dinov2-random-{strategy}-")
        assert (wh.root / res.checkpoint / "manifest.json").is_file()
        assert [v.status for v in variant] == ["committed"]
    assert ft_wh["deltas"].status == "committed"
    runs = q(wh, "SELECT strategy, best_epoch, n_trainable, n_params, n_train, n_val, "
                 "status FROM finetune_runs ORDER BY strategy")
    assert [r[0] for r in runs] == sorted(STRATEGIES)
    assert all(r[6] == "committed" and r[4] > 0 and r[5] > 0 for r in runs)
    by = {r[0]: r for r in runs}
    assert by["linear_probe"][2] < by["lora"][2] < by["full"][2] == by["full"][3]
    assert q(wh, "SELECT count(*) FROM finetune_epochs")[0][0] == 3 * TRAIN["epochs"]
    assert q(wh, "SELECT count(DISTINCT split_id) FROM finetune_splits")[0][0] == 1
    sources = q(wh, "SELECT variant, config_json FROM map_sources ORDER BY variant")
    assert [s[0] for s in sources] == ["frozen", "full", "linear_probe", "lora"]
    assert all("finetune_id" in json.loads(s[1]) for s in sources if s[0] != "frozen")


def test_split_in_the_warehouse_excludes_the_benchmark(ft_wh: dict[str, Any]) -> None:
    wh, demo = ft_wh["wh"], ft_wh["demo"]
    used = {r[0] for r in q(wh, "SELECT image_id FROM finetune_splits WHERE used_for_training")}
    assert used and not used & set(demo.annotated_ids)
    trap = demo.leak_trap.replace("_wd1", "_wd0")
    assert q(wh, f"SELECT split FROM finetune_splits WHERE image_id = '{trap}'") == \
        [("annotated_church",)]


def test_linear_probe_delta_is_exactly_zero(ft_wh: dict[str, Any]) -> None:
    wh = ft_wh["wh"]
    rows = q(wh, "SELECT metric, method, layer, n, mean_delta, sd_delta, p, p_holm, "
                 "stats_current FROM variant_deltas WHERE strategy = 'linear_probe'")
    assert rows and all(r[4] == 0.0 for r in rows)  # exactly, not approximately
    assert all(r[3] == len(ft_wh["demo"].annotated_ids) for r in rows)
    assert all(r[6] is None and r[7] is None and r[8] for r in rows)  # no p for no change
    n_nonzero = q(wh, "SELECT count(*) FROM variant_image_deltas "
                      "WHERE strategy = 'linear_probe' AND delta <> 0")
    assert n_nonzero == [(0,)]
    same = q(wh, """SELECT count(*), count(*) FILTER (WHERE f."values" = z."values")
                    FROM attention_maps f JOIN attention_maps z
                    USING (model, method, layer, head, image_id)
                    WHERE f.variant = 'linear_probe' AND z.variant = 'frozen'""")[0]
    assert same[0] > 0 and same[0] == same[1]


def test_trained_variants_move_attention_with_stats(ft_wh: dict[str, Any]) -> None:
    wh = ft_wh["wh"]
    for strategy in ("lora", "full"):
        rows = q(wh, f"""SELECT mean_delta, ci_low, ci_high, p, p_holm, family, family_size,
                                d_z, t_stat, stats_current
                         FROM variant_deltas WHERE strategy = '{strategy}'""")
        assert any(r[0] != 0 for r in rows)
        tested = [r for r in rows if r[3] is not None]
        assert tested and all(r[4] >= r[3] for r in tested)  # Holm never lowers p
        assert all(r[1] <= r[0] + 1e-12 and r[0] <= r[2] + 1e-12 for r in tested)
        assert all(strategy in r[5] and ("layer x method" in r[5] if r[6] else
                                         "every difference is zero" in r[5]) for r in rows)
        assert all(r[9] for r in rows)
    by_style = q(wh, "SELECT DISTINCT style_rule FROM variant_deltas_by_style")
    assert by_style == [("first listed style",)]
    feats = q(wh, "SELECT count(*), count(*) FILTER (WHERE rollup) FROM "
                  "variant_deltas_by_feature WHERE strategy = 'full'")[0]
    assert feats[0] > feats[1] > 0
    zero = q(wh, "SELECT max(abs(mean_delta)) FROM variant_deltas_by_feature "
                 "WHERE strategy = 'linear_probe'")
    assert zero == [(0.0,)]


def test_delta_statistics_match_the_stats_module() -> None:
    import numpy as np
    import polars as pl

    from ssl_wc.stats.bootstrap import paired_bootstrap_ci
    from ssl_wc.stats.multiple import holm
    from ssl_wc.stats.paired import paired_compare

    rng = np.random.default_rng(1)
    a, b = rng.random(20), rng.random(20)
    frame = pl.DataFrame({
        "model": ["m"] * 40, "strategy": ["full"] * 40, "method": ["cls"] * 40,
        "layer": [0] * 20 + [1] * 20, "protocol_hash": ["p"] * 40, "metric": ["iou"] * 40,
        "percentile": [90] * 40, "image_id": [f"i{k:02d}" for k in range(20)] * 2,
        "finetuned": np.concatenate([a, a + 0.3]), "frozen": np.concatenate([b, b])})
    rows = variant_delta_rows(frame, resamples=500)
    assert len(rows) == 2 and all(r["family_size"] == 2 for r in rows)
    ref = paired_compare(a, b)
    ci = paired_bootstrap_ci(a, b, n_resamples=500)
    r0 = rows[0]
    assert r0["mean_delta"] == pytest.approx(ref.mean_diff)
    assert (r0["ci_low"], r0["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert r0["p_t"] == pytest.approx(ref.ttest.p)
    assert r0["p_wilcoxon"] == pytest.approx(ref.wilcoxon.p)
    assert [r["p_holm"] for r in rows] == pytest.approx(
        list(holm(np.array([r["p_t"] for r in rows]))))


def test_rerun_is_skipped_and_force_supersedes(ft_wh: dict[str, Any]) -> None:
    wh, spec, specs = ft_wh["wh"], ft_wh["spec"], ft_wh["specs"]
    first = ft_wh["results"]["linear_probe"][0]
    again = run_finetune(wh, spec.key, "linear_probe", specs=specs, **TRAIN)
    assert again.status == "skipped" and again.finetune_id == first.finetune_id
    variant = ingest_variant(wh, first.finetune_id, METHODS, device="cpu", batch_size=8,
                             features=False, specs=specs, progress=False)
    assert [v.status for v in variant] == ["skipped"]
    assert materialise_variant_deltas(wh, resamples=200).status == "skipped"
    other = run_finetune(wh, spec.key, "linear_probe", specs=specs, **{**TRAIN, "seed": 1})
    assert other.status == "committed" and other.finetune_id != first.finetune_id
    # a failure at the commit point leaves the committed result in place
    import os

    os.environ["SSL_WC_FAIL_AT"] = "manifest"
    try:
        failed = run_finetune(wh, spec.key, "linear_probe", specs=specs, force=True, **TRAIN)
    finally:
        del os.environ["SSL_WC_FAIL_AT"]
    assert failed.status == "failed" and "No space left" in failed.message
    forced = run_finetune(wh, spec.key, "linear_probe", specs=specs, force=True, **TRAIN)
    assert forced.status == "committed" and forced.finetune_id == first.finetune_id
    rows = q(wh, f"SELECT count(*) FROM finetune_runs WHERE finetune_id = "
                 f"'{first.finetune_id}'")
    assert rows == [(1,)]
    assert q(wh, f"SELECT count(*) FROM finetune_epochs WHERE finetune_id = "
                 f"'{first.finetune_id}'") == [(TRAIN["epochs"],)]


def test_missing_inputs_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    wh = WarehousePaths.of(tmp_path / "empty").ensure()
    with pytest.raises(FinetuneInputError, match="images"):
        run_finetune(wh, "dinov2", "lora")
    with pytest.raises(BadOption, match="--strategy adapter: unknown strategy"):
        run_finetune(wh, "dinov2", "adapter")


def test_cli_finetune(annotated_wh: WarehousePaths, tmp_path: Path) -> None:
    from ssl_wc.cli import app

    wh = annotated_wh
    spec = build_random_model("dinov2", tmp_path / "tiny", seed=0, **TINY)
    cfg = tmp_path / "models.json"
    cfg.write_text(json.dumps({"models": {"tinycli": {"source": spec.local_dir}}}))
    runner = CliRunner()
    base = ["-w", str(wh.root), "finetune", "--model", "tinycli", "--model-config", str(cfg),
            "--device", "cpu", "--epochs", "1", "--batch-size", "32"]
    res = runner.invoke(app, [*base, "--strategy", "linear_probe", "--methods", "cls",
                              "--lr-head", "0.05"])
    assert res.exit_code == 0, res.output
    assert "finetune:tinycli:linear_probe: committed" in res.output
    # the frozen maps (none yet), then the variant, both for model key tinycli
    assert res.output.count("attention:tinycli: committed") == 2
    assert "variant_deltas: committed" in res.output
    rows = q(wh, "SELECT count(*), max(abs(mean_delta)) FROM variant_deltas "
                 "WHERE model = 'tinycli' AND strategy = 'linear_probe'")
    assert rows[0][0] > 0 and rows[0][1] == 0.0
    again = runner.invoke(app, [*base, "--strategy", "linear_probe", "--methods", "cls",
                                "--lr-head", "0.05", "--no-ingest"])
    assert again.exit_code == 0 and "skipped" in again.output
    bad = runner.invoke(app, [*base, "--strategy", "adapter"])
    assert bad.exit_code == 2
    bad_methods = runner.invoke(app, [*base, "--strategy", "lora", "--methods", "nope"])
    assert bad_methods.exit_code == 2 and "unknown" in bad_methods.output


# --------------------------------------------------------------------------- dashboard
def _page(root: Path, monkeypatch: pytest.MonkeyPatch, **params: str) -> Any:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(root))
    app = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=90)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page("pages/finetune.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _decode(value: Any) -> Any:
    """A Plotly JSON array: a plain list or a typed ``{"dtype", "bdata"}`` array."""
    import base64

    import numpy as np

    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value, dtype=float)


def test_dashboard_page_shows_curves_accuracy_and_deltas(
        ft_wh: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page(ft_wh["wh"].root, monkeypatch, metric="iou", pct="90")
    assert not at.error
    specs = {json.loads(el.proto.spec)["layout"]["meta"]["chart"]: json.loads(el.proto.spec)
             for el in at.get("plotly_chart")}
    assert {"finetune_accuracy", "finetune_loss", "finetune_acc", "variant_deltas"} <= set(specs)
    lines = {t["name"]: t for t in specs["variant_deltas"]["data"]
             if t.get("mode") == "lines+markers"}
    assert set(lines) == set(STRATEGIES)
    values = _decode(lines["linear_probe"]["y"])
    assert values.size == TINY["num_layers"] and (values == 0).all()
    assert (_decode(lines["full"]["y"]) != 0).any()
    assert any("Holm family" in str(c.value) for c in at.caption)
    assert len(at.dataframe) >= 4  # runs, deltas, gained, lost


def test_dashboard_page_without_finetuning_says_what_to_run(
        annotated_wh: WarehousePaths, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page(annotated_wh.root, monkeypatch)
    assert not at.error
    assert any("ssl-wc finetune" in str(i.value) for i in at.info)


def test_finetune_page_has_one_model_choice_and_p_values_as_text(
        ft_wh: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The Fine-tuning page: one model selector drives curves and deltas; p-value
    columns are text, '—' where there is no test (the linear probe), never 'None'."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(ft_wh["wh"].root))
    app = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.switch_page("pages/finetune.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    models = [s for s in at.selectbox if "model" in str(s.label).lower()]
    assert [s.key for s in models] == ["qp_model"]
    assert models[0].value == ft_wh["spec"].key
    assert any("Training curves" in str(h.value) for h in at.subheader)
    tables = [d.value for d in at.dataframe if "p_holm" in d.value.columns]
    assert tables, "the delta table is shown"
    table = tables[0]
    for col in ("p", "p_holm"):
        values = [str(v) for v in table[col].tolist()]
        assert "None" not in values and "nan" not in values
        assert all(v == "—" or "e" in v for v in values), values
    probe = table[table["strategy"] == "linear_probe"]
    assert len(probe) and set(probe["p"].tolist()) == {"—"}
