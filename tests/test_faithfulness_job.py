"""`ssl-wc faithfulness`: the job on tiny random-weight models and the synthetic demo data.
Views from plain duckdb, idempotence, incrementality per layer and image, --force,
recomputation after a new attention run, the cascade read per layer, refused requests,
and the rows it adds to metric_long, layer_progression and leaderboard."""

from __future__ import annotations

import subprocess

import pytest

from ingest.faithfulness import FaithfulnessInputError, FaithfulnessJob, run_faithfulness
from ssl_wc.faithfulness.protocol import DeletionProtocol
from tests.conftest import ROOT, SSL_WC, cli_env, query_catalog

DINO = "dinov2-random"  # 12 blocks, CLS + 4 registers, grid 4x4
SIGLIP = "siglip-random"  # 2 blocks, MAP head


def _ids(wh, n=2):
    rows = query_catalog(wh, "SELECT image_id FROM images ORDER BY image_id")
    return [r[0] for r in rows[:n]]


def _job(specs, **kw):
    base = {"specs": specs, "device": "cpu", "progress": False, "batch_size": 64,
            "deletion": DeletionProtocol(steps=4)}
    base.update(kw)
    return FaithfulnessJob(**base)


def _count(wh, sql):
    return query_catalog(wh, sql)[0][0]


def test_job_views_idempotence_and_summaries(scored_wh, tiny_models):
    specs, _ = tiny_models
    ids = _ids(scored_wh)
    job = _job(specs, models=[DINO, SIGLIP], methods=["cls", "map", "rollout"], layers=[-1],
               images=ids)
    res = run_faithfulness(scored_wh, job)
    assert {r.status for r in res} == {"committed"}, [r.line() for r in res]
    # deletion: dinov2 cls + rollout, siglip map + rollout at the last layer, + 4 controls
    n_maps = 2 * 2 + 2 * 2
    assert _count(scored_wh, "SELECT count(*) FROM faithfulness_metrics WHERE NOT is_control") \
        == n_maps
    assert _count(scored_wh, "SELECT count(*) FROM faithfulness_metrics WHERE is_control") \
        == 2 * 2 * 4
    row = query_catalog(scored_wh, """
        SELECT steps, n_cells, deletion_auc, insertion_auc, road_gap, deletion_gain,
               random_deletion_auc, deletion_auc_prob
        FROM faithfulness_metrics WHERE model = 'dinov2-random' AND method = 'cls'
        ORDER BY image_id LIMIT 1""")[0]
    steps, n_cells, dele, ins, gap, gain, rnd, prob = row
    assert steps == 4 and n_cells == 16 and prob is None
    assert 0 <= dele <= 1.0 + 1e-9 and 0 <= ins <= 1.0 + 1e-9
    assert gap == pytest.approx(ins - dele) and gain == pytest.approx(rnd - dele)
    # curves: 5 points per curve; t runs 0..1
    pts = query_catalog(scored_wh, """
        SELECT count(*), min(t), max(t) FROM faithfulness_curves
        WHERE model = 'dinov2-random' AND method = 'cls' AND curve = 'deletion'
          AND score = 'cosine'""")[0]
    assert pts == (2 * 5, 0.0, 1.0)
    # randomisation: (blocks + 1) steps per map; dinov2's last-layer cls, rollout;
    # siglip's map, rollout
    assert _count(scored_wh, "SELECT count(*) FROM sanity_checks WHERE model = 'dinov2-random'") \
        == 2 * 2 * 13
    assert _count(scored_wh, "SELECT count(*) FROM sanity_checks WHERE model = 'siglip-random'") \
        == 2 * 2 * 3
    full = query_catalog(scored_wh, """
        SELECT count(*), bool_and(fully_random), bool_and(randomised_from = -1)
        FROM sanity_checks WHERE cascade_step = 13 AND model = 'dinov2-random'""")[0]
    assert full == (4, True, True)
    deltas = query_catalog(scored_wh, """
        SELECT count(DISTINCT metric), bool_and(direction IN ('higher', 'lower'))
        FROM sanity_metric_deltas""")[0]
    assert deltas[0] >= 8 and deltas[1]
    flags = query_catalog(scored_wh, """
        SELECT count(*) FROM sanity_summary
        WHERE survival_threshold = 0.5 AND survives_randomisation IS NOT NULL""")[0][0]
    assert flags > 0
    # metric_long, layer_progression, leaderboard carry the faithfulness metrics
    metrics = {r[0] for r in query_catalog(scored_wh, """
        SELECT DISTINCT metric FROM metric_long WHERE protocol_hash IN
        (SELECT protocol_hash FROM faithfulness_protocols)""")}
    assert {"deletion_auc", "insertion_auc", "road_gap", "deletion_gain", "insertion_gain",
            "mprt_spearman_abs", "mprt_ssim", "emprt"} <= metrics
    assert "deletion_auc_prob" not in metrics  # frozen models have no class head
    assert _count(scored_wh, "SELECT count(*) FROM layer_progression "
                             "WHERE metric = 'deletion_gain' AND head = -1") == 4
    lb = query_catalog(scored_wh, """
        SELECT model, direction, default_method, best_layer FROM leaderboard
        WHERE metric = 'mprt_spearman_abs' ORDER BY model""")
    assert [r[0] for r in lb] == [DINO, SIGLIP] and {r[1] for r in lb} == {"lower"}
    assert lb[0][2] == "cls" and lb[1][2] == "map"
    assert _count(scored_wh, "SELECT count(*) FROM metric_catalogue "
                             "WHERE metric IN ('deletion_auc', 'emprt', 'mprt_ssim')") == 3
    # a second run has nothing to do
    runs = _count(scored_wh, "SELECT count(*) FROM runs")
    again = run_faithfulness(scored_wh, job)
    assert {r.status for r in again} == {"skipped"}
    assert _count(scored_wh, "SELECT count(*) FROM runs") == runs


def test_incremental_by_layer_and_image_and_force(scored_wh, tiny_models):
    specs, _ = tiny_models
    ids = _ids(scored_wh, 3)
    kw = {"models": [SIGLIP], "methods": ["map", "mean"], "checks": ["deletion"]}
    run_faithfulness(scored_wh, _job(specs, layers=[1], images=ids[:2], **kw))
    first = dict(query_catalog(scored_wh, """
        SELECT image_id || '|' || method || '|' || layer, m.source_run_id || c.run_id
        FROM faithfulness_metrics m JOIN _raw_faithfulness_curves c
        USING (model, variant, method, layer, head, image_id, protocol_hash)"""))
    # more layers and one more image: only the new units are computed
    res = run_faithfulness(scored_wh, _job(specs, images=ids, **kw))
    assert res[0].status == "committed"
    after = dict(query_catalog(scored_wh, """
        SELECT image_id || '|' || method || '|' || layer, m.source_run_id || c.run_id
        FROM faithfulness_metrics m JOIN _raw_faithfulness_curves c
        USING (model, variant, method, layer, head, image_id, protocol_hash)"""))
    assert all(after[k] == v for k, v in first.items())  # untouched
    # mean at layers 0, 1 and map at layer 1 for 3 images, + 4 controls per image
    assert len(after) == 3 * 3 + 3 * 4
    # --force recomputes everything selected; rows are superseded, never duplicated
    run_faithfulness(scored_wh, _job(specs, images=ids, force=True, **kw))
    assert _count(scored_wh, "SELECT count(*) FROM faithfulness_metrics") == len(after)
    assert _count(scored_wh, "SELECT count(DISTINCT source_run_id || image_id || method || "
                             "layer) FROM faithfulness_metrics") == len(after)
    # a changed protocol is a new set of rows beside the old one
    run_faithfulness(scored_wh, _job(specs, images=ids[:1], layers=[1],
                                     deletion=DeletionProtocol(steps=4, imputation="blur"),
                                     **kw))
    assert _count(scored_wh, "SELECT count(DISTINCT protocol_hash) FROM faithfulness_metrics") \
        == 2


def test_new_attention_run_recomputes_only_its_units(scored_wh, tiny_models):
    from ingest.attention import AttentionJob, ingest_attention

    specs, _ = tiny_models
    ids = _ids(scored_wh)
    kw = {"models": [SIGLIP], "methods": ["map"], "checks": ["deletion"], "images": ids,
          "controls": False}
    run_faithfulness(scored_wh, _job(specs, **kw))
    # without the baseline controls the random order is still scored (the gains need it)
    assert query_catalog(scored_wh, "SELECT method, count(*), count(deletion_gain) FROM "
                                    "faithfulness_metrics GROUP BY method ORDER BY method") \
        == [("baseline:random", 2, 2), ("map", 2, 2)]
    before = dict(query_catalog(scored_wh, "SELECT image_id, source_run_id FROM "
                                           "faithfulness_metrics WHERE method = 'map'"))
    ingest_attention(scored_wh, AttentionJob(models=[SIGLIP], methods=("map",), specs=specs,
                                             images=ids[:1], force=True, progress=False,
                                             device="cpu"))
    res = run_faithfulness(scored_wh, _job(specs, **kw))
    assert res[0].status == "committed" and res[0].new == 1
    after = dict(query_catalog(scored_wh, "SELECT image_id, source_run_id FROM "
                                          "faithfulness_metrics WHERE method = 'map'"))
    assert after[ids[1]] == before[ids[1]] and after[ids[0]] != before[ids[0]]


def test_cascade_per_layer_in_the_views(scored_wh, tiny_models):
    """A 12-block model: after step k only maps at layers >= 12 - k may move; the
    forward-attention maps below stay identical (Spearman 1, SSIM 1, deltas 0)."""
    specs, _ = tiny_models
    ids = _ids(scored_wh, 1)
    run_faithfulness(scored_wh, _job(specs, models=[DINO], methods=["cls", "rollout"],
                                     layers=[0, 6, 11], images=ids, checks=["mprt"]))
    rows = query_catalog(scored_wh, """
        SELECT method, layer, cascade_step, randomised_from, depends, unchanged, spearman,
               ssim
        FROM sanity_checks WHERE model = 'dinov2-random' ORDER BY ALL""")
    assert len(rows) == 2 * 3 * 13
    for method, layer, step, first, depends, unchanged, rho, ss in rows:
        assert first == (12 - step if step <= 12 else -1)
        assert depends == (first < 0 or layer >= first)  # cls and rollout: forward maps
        assert unchanged == (not depends), (method, layer, step)
        if unchanged:
            assert rho == pytest.approx(1.0) and ss == pytest.approx(1.0)
    moved = query_catalog(scored_wh, """
        SELECT count(*) FILTER (WHERE d.randomised <> d.trained), count(*)
        FROM sanity_metric_deltas d JOIN sanity_checks s
        USING (model, variant, method, layer, head, image_id, protocol_hash, cascade_step)
        WHERE s.unchanged""")[0]
    assert moved[0] == 0 and moved[1] > 0


def test_bad_requests_name_the_option_and_valid_values(scored_wh, tiny_models):
    specs, _ = tiny_models
    cases = [({"models": ["vit-huge"]}, "--models: no committed maps for vit-huge; valid: "
                                         "dinov2-random, siglip-random"),
             ({"methods": ["lime"]}, "--methods: no committed maps for lime; valid:"),
             ({"variants": ["lora"]}, "--variants: no committed maps for lora; valid: frozen"),
             ({"layers": [12]}, "--layers: 12 out of range; valid: 0..11"),
             ({"images": ["nope.jpg"]}, "--images: no committed maps for nope.jpg"),
             ({"checks": ["lime"]}, "--checks: unknown ['lime']; valid: deletion, mprt")]
    runs = _count(scored_wh, "SELECT count(*) FROM runs")
    for kw, needle in cases:
        with pytest.raises(FaithfulnessInputError) as err:
            run_faithfulness(scored_wh, _job(specs, **kw))
        assert needle in str(err.value)
    assert _count(scored_wh, "SELECT count(*) FROM runs") == runs  # nothing written


@pytest.mark.parametrize("args, needle", [
    (["--imputation", "inpaint"], "--imputation: unknown 'inpaint'; valid: road, blur, constant"),
    (["--steps", "1"], "--steps: must be an integer >= 2, got 1"),
    (["--checks", "deletion,lime"], "--checks: unknown lime; valid: deletion, mprt"),
    (["--layers", "last"], "--layers: 'last' is not 'all' or comma-separated integers"),
    (["--models", "vit-huge"], "--models: no committed maps for vit-huge"),
])
def test_cli_refuses_bad_input_with_exit_2_and_one_line(scored_wh, args, needle):
    out = subprocess.run([*SSL_WC, "-w", str(scored_wh.root), "faithfulness", *args],
                         cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr


@pytest.mark.slow
def test_kill_faithfulness(scored_wh, tiny_models, tmp_path):
    """SIGKILL at random points while a plain-duckdb reader queries the views: the state
    after each kill is the last committed one, and the final rerun reaches the state of
    an uninterrupted run."""
    from tests.test_job_faults import _cycle
    from tests.test_spine_faults import snapshot

    _, toml = tiny_models
    ids = ",".join(_ids(scored_wh, 2))
    args = ["faithfulness", "--models", "siglip-random,dinov2-random", "--methods",
            "map,cls", "--layers", "-1", "--images", ids, "--steps", "4", "--model-config",
            str(toml), "--device", "cpu", "--force"]
    first = subprocess.run([*SSL_WC, "-w", str(scored_wh.root), *args], cwd=ROOT,
                           env=cli_env(), capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    n = _count(scored_wh, "SELECT count(*) FROM faithfulness_metrics")
    m = _count(scored_wh, "SELECT count(*) FROM sanity_checks")
    assert n == 2 * (1 + 1 + 2 * 4) and m == 2 * (13 + 3)
    checks = [["curves", "SELECT count(*) FROM faithfulness_metrics", [n]],
              ["cascade", "SELECT count(*) FROM sanity_checks", [m]],
              ["no duplicates", "SELECT count(*) - count(DISTINCT (model, method, layer, "
               "image_id)) FROM faithfulness_metrics", [0]]]
    views = ["faithfulness_metrics", "sanity_checks", "sanity_metric_deltas"]
    _cycle(scored_wh, tmp_path, "faithfulness", args, views, checks, kills=4, max_delay=20.0,
           reference=snapshot(scored_wh.catalog, views))


@pytest.fixture(scope="module")
def variant_wh(tmp_path_factory, annotated_wh_template):
    """A tiny model, fine-tuned (LoRA, one epoch) and ingested as a variant."""
    import shutil

    from ingest.attention import AttentionJob, ingest_attention
    from ingest.finetune import ingest_variant, run_finetune
    from ssl_wc.models.registry import build_random_model
    from ssl_wc.paths import WarehousePaths

    root = tmp_path_factory.mktemp("faith_variant") / "wh"
    shutil.copytree(annotated_wh_template, root)
    wh = WarehousePaths.of(root)
    spec = build_random_model("dinov2", wh.artifacts / "tiny", seed=0, grid=3,
                              hidden_size=32, num_layers=2, num_heads=2)
    specs = {spec.key: spec}
    ingest_attention(wh, AttentionJob(models=[spec.key], methods=("cls",), device="cpu",
                                      features=False, specs=specs, progress=False,
                                      strict=True))
    res = run_finetune(wh, spec.key, "lora", lr_backbone=5e-3, specs=specs, strict=True,
                       epochs=1, batch_size=32, lr_head=5e-2, device="cpu")
    ingest_variant(wh, res.finetune_id, ("cls",), device="cpu", features=False, specs=specs,
                   progress=False, strict=True)
    return wh, specs


def test_fine_tuned_variant_gets_class_probability_curves(variant_wh):
    wh, specs = variant_wh
    ids = _ids(wh, 2)
    res = run_faithfulness(wh, _job(specs, variants=["lora"], images=ids))
    assert res[0].status == "committed", [r.line() for r in res]
    rows = query_catalog(wh, """
        SELECT count(*), count(deletion_auc_prob), count(insertion_auc_prob),
               bool_and(deletion_auc_prob BETWEEN 0 AND 1)
        FROM faithfulness_metrics WHERE variant = 'lora'""")[0]
    assert rows[0] == 2 * (2 + 4) and rows[1] == rows[0] and rows[2] == rows[0] and rows[3]
    assert _count(wh, "SELECT count(*) FROM faithfulness_curves WHERE variant = 'lora' AND "
                      "score = 'class_prob'") == rows[0] * 2 * 5
    assert _count(wh, "SELECT count(*) FROM metric_long WHERE variant = 'lora' AND "
                      "metric = 'deletion_auc_prob'") == 2 * 2
    # the classifier is randomised with the top of the cascade
    from ssl_wc.lake.catalog import read_manifests

    summ = next(m for m in read_manifests(wh).manifests
                if m["kind"] == "faithfulness")["summary"]
    assert summ["mprt"]["randomisation"]["extra_top"] == ["classifier"]
    assert summ["deletion"]["forwards"] > 0 and summ["deletion"]["road_unsolved"] == 0
