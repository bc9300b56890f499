"""`mr3 label`: strategies on the scripted backend, input errors, outputs, resume after a stop, Ray, the real
small judge and the label-then-DPO example. Resume after SIGKILL: tests/reliability/test_persistence.py."""

import json
import sys
from pathlib import Path

import pytest

from mr3_reward.backends.fake import FakeBackend
from mr3_reward.judge import Judge
from mr3_reward.labeling import LabelConfig, LabelRow, label, label_rows, main, read_rows
from mr3_reward.records import InputError
from test_reward import answer, prefers_longer, response_under  # the scripted judges of the reward tests

REPO = Path(__file__).resolve().parents[1]


# -- scripted judges: they read the responses out of the rendered prompt ------------------------------------
def scores_by_length(prompt, sampling):
    """Pointwise: a response's length is its score (1..5); a response reading 'garbage' gets no verdict."""
    text = response_under(prompt, "Response")
    return "I cannot decide" if text == "garbage" else answer(str(min(5, max(1, len(text)))))


def judge_of(respond, **kw):
    return Judge(backend=FakeBackend(respond), cache=kw.pop("cache", None), **kw)


def rows(*responses, prompt="q", **extra):
    return [LabelRow(i, f"row {i}", prompt, tuple(r), **extra) for i, r in enumerate(responses)]


def write_jsonl(path, lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l, ensure_ascii=False)) + "\n" for l in lines),
                    encoding="utf-8")
    return path


def tree_bytes(*paths):
    """Every file under the given paths (files or folders), by relative name: for byte-for-byte comparison."""
    out = {}
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
        for f in files:
            out[f"{p.name}/{f.relative_to(p)}" if p.is_dir() else p.name] = f.read_bytes()
    return out


# -- strategies ----------------------------------------------------------------------------------------------
def test_best_worst_picks_max_and_min_ties_by_index_and_margin():
    fb = FakeBackend(scores_by_length)
    judge = Judge(backend=fb, cache=None)
    out = label_rows(judge, rows(["a", "ccc", "bb", "ccc"], ["xx", "yy"], ["a", "bbbbb"]),
                     LabelConfig(min_margin=0.5))
    first, tie, far = out
    assert (first["chosen"], first["rejected"]) == ("ccc", "a")
    assert (first["chosen_index"], first["rejected_index"]) == (1, 0)  # the two 'ccc' tie: the lower index wins
    assert first["scores"] == [0.0, 0.5, 0.25, 0.5] and first["margin"] == 0.5 and first["reason"] is None
    assert [j["responses"] for j in first["judgments"]] == [[0], [1], [2], [3]]
    assert tie["reason"] == "tie" and tie["chosen"] is None and tie["margin"] == 0.0
    assert far["reason"] is None and far["margin"] == 1.0
    assert fb.items == 6  # one pointwise judgment per distinct (prompt, response): 'ccc' and 'a' repeat
    low = label_rows(judge, rows(["a", "bb"]), LabelConfig(min_margin=0.5))[0]
    assert low["reason"] == "low_margin" and low["margin"] == 0.25


def test_best_worst_failures_and_empty_responses():
    judge = judge_of(scores_by_length)
    failed, empty, one_left = label_rows(judge, rows(["garbage", "garbage", "ccc"], ["", "bbb"], ["garbage", ""]))
    assert failed["reason"] == "judge_failed" and failed["scores"] == [None, None, 0.5]
    assert [j["failure"] for j in failed["judgments"]] == ["no_answer", "no_answer", None]
    # An empty response gets the lowest score without a judgment, as in MR3Reward.
    assert (empty["chosen"], empty["rejected"], empty["reason"]) == ("bbb", "", None)
    assert [j["responses"] for j in empty["judgments"]] == [[1]]
    assert one_left["reason"] == "judge_failed"


def test_best_worst_uses_the_rows_numeric_rubric():
    judge = judge_of(lambda p, s: answer("10" if "good" in p.user else "0"))
    [r] = label_rows(judge, rows(["bad", "good"], rubric=(("0", "bad"), ("5", "ok"), ("10", "good"))))
    assert r["scores"] == [0.0, 1.0] and r["chosen"] == "good"


def test_tournament_round_robin_gives_win_rates_in_both_orders():
    fb = FakeBackend(prefers_longer)
    [r] = label_rows(Judge(backend=fb, cache=None), rows(["a", "bbb", "cc", "dddd"]), LabelConfig(strategy="tournament"))
    assert r["scores"] == [0.0, 2 / 3, 1 / 3, 1.0]
    assert (r["chosen"], r["rejected"], r["margin"]) == ("dddd", "a", 1.0)
    assert fb.items == 4 * 3  # n(n-1)/2 pairs, both orders
    assert r["consistency"] == 1.0
    first = r["comparisons"][0]
    assert first == {"a": 0, "b": 1, "p_a": 0.0, "consistent": True, "forward": "Assistant B", "backward": "Assistant A"}
    assert [j["responses"] for j in r["judgments"][:2]] == [[0, 1], [1, 0]]


def test_tournament_position_bias_cancels_to_a_tie():
    biased = judge_of(lambda p, s: answer("Assistant A"))  # always prefers the first slot
    [r] = label_rows(biased, rows(["one", "two", "three"]), LabelConfig(strategy="tournament"))
    assert r["reason"] == "tie" and r["scores"] == [0.5, 0.5, 0.5] and r["consistency"] == 0.0
    first = label_rows(biased, rows(["one", "two"]), LabelConfig(strategy="tournament", on_disagree="first"))[0]
    assert (first["chosen"], first["reason"]) == ("one", None)


def test_tournament_large_groups_use_a_cheaper_schedule():
    texts = ["x" * k for k in range(1, 9)]  # n = 8 > 6: each response meets the next 3
    fb = FakeBackend(prefers_longer)
    [r] = label_rows(Judge(backend=fb, cache=None), rows(texts), LabelConfig(strategy="tournament"))
    assert fb.items == 8 * 3 * 2 and (r["chosen"], r["rejected"]) == (texts[-1], texts[0])
    fb = FakeBackend(prefers_longer)
    label_rows(Judge(backend=fb, cache=None), rows(texts), LabelConfig(strategy="tournament", opponents=1))
    assert fb.items == 8 * 2


def test_pair_keeps_consistent_verdicts_only():
    judge = judge_of(prefers_longer)
    [r] = label_rows(judge, rows(["short", "much longer"]), LabelConfig(strategy="pair"))
    assert (r["chosen"], r["rejected"], r["scores"], r["margin"]) == ("much longer", "short", [0.0, 1.0], 1.0)
    assert r["comparisons"][0]["forward"] == "Assistant B" and r["comparisons"][0]["backward"] == "Assistant A"

    biased = judge_of(lambda p, s: answer("Assistant A"))
    [r] = label_rows(biased, rows(["one", "two"]), LabelConfig(strategy="pair"))
    assert r["reason"] == "inconsistent" and r["consistency"] == 0.0
    [r] = label_rows(biased, rows(["one", "two"]), LabelConfig(strategy="pair", keep_ties=True))
    assert r["reason"] is None and r["tie"] is True and (r["chosen"], r["rejected"], r["margin"]) == ("one", "two", 0.0)

    # One order fails: consistency cannot be checked, so the pair is not kept.
    one_order = judge_of(lambda p, s: answer("Assistant B") if response_under(p, "Assistant A") == "one" else "?")
    assert label_rows(one_order, rows(["one", "two"]), LabelConfig(strategy="pair"))[0]["reason"] == "judge_failed"
    # Identical responses tie without a judgment.
    fb = FakeBackend(prefers_longer)
    [r] = label_rows(Judge(backend=fb, cache=None), rows(["same", "same"]), LabelConfig(strategy="pair"))
    assert r["reason"] == "tie" and fb.items == 0


def test_pair_strength_scale():
    judge = judge_of(lambda p, s: answer("2" if len(response_under(p, "Response 1")) > len(response_under(p, "Response 2")) else "6"))
    [r] = label_rows(judge, rows(["longer one", "s"]), LabelConfig(strategy="pair", task="preference_strength"))
    assert r["chosen"] == "longer one" and r["margin"] == pytest.approx(2 / 3)


def test_config_reports_every_problem():
    with pytest.raises(ValueError) as e:
        LabelConfig(strategy="pair", opponents=2, keep_ties=False, min_margin=2, shard_size=0, columns={"lang": "x"})
    msg = str(e.value)
    for part in ("min_margin is a score difference", "opponents sets the tournament schedule", "shard_size must be",
                 "unknown column role(s) ['lang']"):
        assert part in msg
    with pytest.raises(ValueError, match="strategy 'best-worst' judges with task pointwise"):
        LabelConfig(task="pairwise")
    with pytest.raises(ValueError, match="unknown strategy 'ranking'"):
        LabelConfig(strategy="ranking")


# -- input -------------------------------------------------------------------------------------------------
def test_input_forms_give_the_same_rows(tmp_path):
    from datasets import Dataset

    lines = [{"id": 7, "prompt": "p1", "response_a": "a", "response_b": "bb", "lang": "de"},
             {"id": 8, "prompt": "p2", "response_a": "ccc", "response_b": "d", "lang": "fr"}]
    config = LabelConfig(strategy="pair", columns={"language": "lang"})
    from_jsonl = read_rows(write_jsonl(tmp_path / "in.jsonl", lines), config)
    Dataset.from_list(lines).to_parquet(str(tmp_path / "in.parquet"))
    Dataset.from_list(lines).save_to_disk(str(tmp_path / "saved"))
    for source in (tmp_path / "in.parquet", tmp_path / "saved"):
        got = read_rows(source, config)
        assert [(r.prompt, r.responses, r.id, r.language) for r in got] == \
               [(r.prompt, r.responses, r.id, r.language) for r in from_jsonl]
    assert [(r.id, r.language, r.responses) for r in from_jsonl] == [("7", "de", ("a", "bb")), ("8", "fr", ("ccc", "d"))]
    named = read_rows(tmp_path / "in.jsonl", LabelConfig(response_columns=("response_b", "response_a")))
    assert named[0].responses == ("bb", "a")


def test_conversational_prompts_give_conversational_pairs(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"prompt": [{"role": "user", "content": "Say hi"}], "responses": ["hi", "hello there"]}])
    result = label(src, tmp_path / "out", judge=judge_of(prefers_longer), strategy="pair")
    [row] = result.dataset.to_list()
    assert row["prompt"] == [{"role": "user", "content": "Say hi"}]
    assert row["chosen"] == [{"role": "assistant", "content": "hello there"}]
    assert row["rejected"] == [{"role": "assistant", "content": "hi"}]


@pytest.mark.parametrize(
    "lines, extra, message",
    [
        ([{"question": "x", "responses": ["a", "b"]}], {"prompt_column": "prompt"},
         r"in.jsonl:1: missing column 'prompt' \(the prompt\); name another with --prompt-column"),
        ([{"prompt": "x", "responses": ["a"]}], {}, r"in.jsonl:1: 1 response\(s\); a row needs at least 2"),
        ([{"prompt": "  ", "responses": ["a", "b"]}], {}, r"in.jsonl:1: 'prompt' is empty"),
        ([{"prompt": [{"role": "user", "content": ""}], "responses": ["a", "b"]}], {}, r"'prompt' is empty"),
        ([{"prompt": 3, "responses": ["a", "b"]}], {}, r"'prompt' must be text or a list of chat messages, got int"),
        ([{"prompt": "x", "responses": ["a", None]}], {}, r"response 2 must be text or a list of chat messages"),
        ([{"prompt": "x", "responses": "ab"}], {}, r"'responses' must be a list of responses, got str"),
        ([{"prompt": "x", "answers": ["a", "b"]}], {}, r"no responses found: add a 'responses' column .* --responses-column"),
        ([{"prompt": "x", "response_a": "a", "response_b": "b"}, {"prompt": "y", "response_a": "a"}], {},
         r"in.jsonl:2: missing column\(s\) 'response_b'"),
        ([{"prompt": "x", "responses": ["a", "b", "c"]}], {"strategy": "pair"}, r"pair strategy takes exactly 2"),
        ([{"prompt": "x", "responses": ["a", "b"], "rubric": {"good": "g", "bad": "b"}}], {},
         r"column 'rubric': a pointwise rubric needs two or more numeric labels"),
        ([{"prompt": "x", "responses": ["a", "b"]}], {"columns": {"language": "lang"}},
         r"missing column 'lang' \(mapped to 'language' with --column language=lang\)"),
        ([{"prompt": "x", "responses": ["a", "b"]}, {"prompt": [{"role": "user", "content": "y"}], "responses": ["a", "b"]}],
         {}, r"mixes text and chat messages"),
        (["{not json"], {}, r"in.jsonl:1: not valid JSON"),
        ([], {}, r"is empty: it needs one row per prompt"),
    ],
)
def test_bad_input_names_the_row_the_column_and_the_fix(tmp_path, lines, extra, message):
    src = write_jsonl(tmp_path / "in.jsonl", lines)
    with pytest.raises(InputError, match=message):
        label(src, tmp_path / "out", judge=judge_of(prefers_longer), **extra)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.work").exists()


def test_every_bad_row_is_reported_at_once(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "ok", "responses": ["a", "b"]}, {"prompt": "", "responses": ["a"]},
                                              {"prompt": "x", "responses": ["a", 5]}])
    with pytest.raises(InputError) as e:
        read_rows(src)
    msg = str(e.value)
    assert "2 bad row(s)" in msg and "in.jsonl:2: 'prompt' is empty; every row needs a non-empty prompt; 1 response(s)" in msg
    assert "in.jsonl:3: response 2 must be text" in msg


def test_missing_file_and_rows_the_template_cannot_render(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_rows(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match=r"could not load the dataset 'nobody/no-such-dataset' \(split 'train'\)"):
        read_rows("nobody/no-such-dataset")  # a hub id: offline in tests, and not in the local cache
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "Wie?", "responses": ["a", "b"], "language": "de"}])
    judge = Judge(backend=FakeBackend(prefers_longer), language_mode="tgt-prompt-en-thinking", cache=None)
    with pytest.raises(InputError, match=r"1 row\(s\) cannot be rendered for the judge:\n.*in.jsonl:1: .*pack"):
        label(src, tmp_path / "out", judge=judge)


# -- the job: outputs, metadata, determinism, re-runs ----------------------------------------------------------
SAMPLE = [
    {"id": f"r{i}", "prompt": f"question {i}", "language": lang, "responses": responses}
    for i, (lang, responses) in enumerate([
        ("en", ["a", "bbb", "cc"]), ("de", ["xx", "yy", "z"]), ("fr", ["one", "three", "four4"]),
        ("en", ["same", "same", "same"]), ("zh", ["水", "水的沸点", "沸点"]), ("de", ["", "text", "more text"]),
        ("es", ["uno", "dos", "tre"]), ("en", ["p", "qq", "rrr"]),
    ])
]


def run_job(tmp_path, name, respond=prefers_longer, **kw):
    tmp_path.mkdir(exist_ok=True)
    kw.setdefault("strategy", "tournament")
    out = tmp_path / name
    result = label(kw.pop("source", None) or write_jsonl(tmp_path / "in.jsonl", SAMPLE), out,
                   judge=kw.pop("judge", None) or judge_of(respond), jsonl=tmp_path / f"{name}.jsonl",
                   parquet=tmp_path / f"{name}.parquet", dropped=tmp_path / f"{name}.dropped.jsonl", **kw)
    return result, [out, tmp_path / f"{name}.jsonl", tmp_path / f"{name}.parquet", tmp_path / f"{name}.dropped.jsonl"]


def test_outputs_schema_metadata_and_summary(tmp_path):
    result, paths = run_job(tmp_path, "pairs", shard_size=3)
    ds = result.dataset
    assert ds.column_names[:3] == ["prompt", "chosen", "rejected"]
    assert ds.column_names == ["prompt", "chosen", "rejected", "id", "row", "language", "strategy", "chosen_index",
                               "rejected_index", "scores", "margin", "tie", "consistency", "comparisons", "judgments",
                               "judge_model"]
    s = result.summary
    assert s["rows"] == 8 and s["kept"] == len(ds) == 6 and s["dropped"] == {"tie": 2}
    assert s["languages"]["en"] == {"rows": 3, "kept": 2} and s["position_consistency"] is not None
    assert sorted(ds["row"]) == ds["row"]  # input order
    dropped = [json.loads(l) for l in paths[3].read_text(encoding="utf-8").splitlines()]
    assert [d["id"] for d in dropped] == ["r3", "r6"] and all(d["reason"] == "tie" for d in dropped)
    jsonl = [json.loads(l) for l in paths[1].read_text(encoding="utf-8").splitlines()]
    assert jsonl == ds.to_list()
    from datasets import Dataset

    assert Dataset.from_parquet(str(paths[2])).to_list() == ds.to_list()
    meta = json.loads((paths[0] / "mr3_label.json").read_text(encoding="utf-8"))
    assert meta["judge"]["model"] == "fake" and meta["judge"]["sampling"]["temperature"] == 0.6
    assert meta["judge"]["template_version"] and meta["config"]["strategy"] == "tournament"
    assert meta["summary"] == s and meta["input"]["rows"] == 8
    assert not (tmp_path / "pairs.work").exists()  # the work folder goes once the outputs are final


def test_a_job_that_keeps_no_pair_still_writes_a_loadable_dataset(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    src = write_jsonl(tmp_path / "in.jsonl", [r for r in SAMPLE if all(r["responses"])])  # no empty response wins
    result, paths = run_job(tmp_path, "pairs", respond=lambda p, s: "no verdict", source=src)
    assert result.summary["kept"] == 0 and result.summary["dropped"] == {"judge_failed": 6, "tie": 1}
    assert len(result.dataset) == 0 and result.dataset.column_names[:3] == ["prompt", "chosen", "rejected"]
    assert paths[1].read_text(encoding="utf-8") == "" and len(paths[3].read_text(encoding="utf-8").splitlines()) == 7


def test_identical_input_and_config_give_identical_bytes(tmp_path):
    _, first = run_job(tmp_path / "a", "pairs")
    _, second = run_job(tmp_path / "b", "pairs")
    assert tree_bytes(*first) == tree_bytes(*second)
    # The shard size changes the job (its hash, in the metadata) but not a single pair.
    _, third = run_job(tmp_path / "c", "pairs", shard_size=3)
    one, three = tree_bytes(*first), tree_bytes(*third)
    assert one.pop("pairs/mr3_label.json") != three.pop("pairs/mr3_label.json") and one == three


def test_rerun_costs_no_engine_calls(tmp_path):
    fb = FakeBackend(prefers_longer)
    judge = Judge(backend=fb, cache=tmp_path / "cache.sqlite")
    result, paths = run_job(tmp_path, "pairs", judge=judge)
    items, before = fb.items, tree_bytes(*paths)
    again, _ = run_job(tmp_path, "pairs", judge=judge)  # the same finished job: nothing to do
    assert fb.items == items and again.summary == result.summary and tree_bytes(*paths) == before
    # Labeled again from scratch (another output), every judgment comes from the cache.
    fresh, _ = run_job(tmp_path, "again", judge=judge)
    assert fb.items == items and fresh.stats["engine_items"] == 0 and fresh.stats["cache_hits"] > 0


def test_existing_outputs_of_another_job_are_not_replaced(tmp_path):
    run_job(tmp_path, "pairs")
    with pytest.raises(InputError, match="already exist.*--overwrite"):
        run_job(tmp_path, "pairs", strategy="best-worst", respond=scores_by_length)
    result, _ = run_job(tmp_path, "pairs", strategy="best-worst", respond=scores_by_length, overwrite=True)
    assert result.dataset[0]["strategy"] == "best-worst"


class Stop(BaseException):
    """Stands in for a kill inside the process (BaseException: nothing in the job may swallow it)."""


def stop_after(respond, n):
    count = [0]

    def wrapped(prompt, sampling):
        count[0] += 1
        if count[0] > n:
            raise Stop
        return respond(prompt, sampling)

    # The reference run's engine, so the judgments (token counts included) are the same; Stop, a BaseException,
    # escapes FakeBackend's turning of Exceptions into engine errors.
    return FakeBackend(wrapped)


@pytest.mark.parametrize("stop_at", [0, 5, 13, 30])
def test_stopped_jobs_resume_to_the_same_bytes(tmp_path, stop_at):
    _, reference = run_job(tmp_path / "ref", "pairs", shard_size=2, chunk=4)
    with pytest.raises(Stop):
        run_job(tmp_path, "pairs", shard_size=2, chunk=4, judge=Judge(backend=stop_after(prefers_longer, stop_at)))
    assert (tmp_path / "pairs.work" / "manifest.json").is_file()
    finished = len(list((tmp_path / "pairs.work").glob("shard-*.jsonl")))
    # A different configuration refuses to take over the unfinished job...
    with pytest.raises(InputError, match=r"another configuration \(changed: config\).*--overwrite"):
        run_job(tmp_path, "pairs", shard_size=2, chunk=4, min_margin=0.1)
    # ...the same one resumes and finishes with exactly the bytes of an uninterrupted run.
    result, paths = run_job(tmp_path, "pairs", shard_size=2, chunk=4)
    assert result.stats["shards_resumed"] == finished and finished == {0: 0, 5: 0, 13: 1, 30: 3}[stop_at]
    assert tree_bytes(*paths) == tree_bytes(*reference)


# -- the CLI, and a real SIGKILL -------------------------------------------------------------------------------
def test_cli_labels_and_prints_the_summary(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", SAMPLE)
    code = main([str(src), str(tmp_path / "out"), "--strategy", "tournament", "--cache", "none",
                 "--jsonl", str(tmp_path / "pairs.jsonl")], backend=FakeBackend(prefers_longer))
    assert code == 0
    err = capsys.readouterr().err
    for part in ("pairs kept", "dropped: tie", "language de", "position consistency", "wrote 6 pair(s)"):
        assert part in err
    assert len((tmp_path / "pairs.jsonl").read_text(encoding="utf-8").splitlines()) == 6


def test_cli_errors(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "x", "responses": ["a"]}])
    assert main([str(src), str(tmp_path / "out"), "--backend", "fake", "--model", "fake", "--quiet"]) == 2
    assert "in.jsonl:1: 1 response(s)" in capsys.readouterr().err
    assert main([str(src), str(tmp_path / "out"), "--pool", "judges", "--ray", "--quiet"]) == 2
    assert "--pool (a running judge pool) and --ray (judges started for this job)" in capsys.readouterr().err
    assert main([str(src), str(tmp_path / "out"), "--column", "language", "--quiet"]) == 2
    assert "--column takes ROLE=COLUMN" in capsys.readouterr().err


# The same job killed with SIGKILL at chosen and random points, then resumed to identical bytes:
# tests/reliability/test_persistence.py


# -- Ray: the same job on a local Ray cluster ------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_session():
    import ray  # installed by `make setup`; a missing Ray must fail here, not skip
    from ray import cloudpickle

    # The scripted judges live in test modules, which Ray's workers cannot import: ship them by value.
    modules = [sys.modules[__name__], sys.modules[prefers_longer.__module__]]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    for module in modules:
        cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.ray
def test_ray_gives_the_same_bytes_as_a_local_run(tmp_path, ray_session, capsys):
    _, local = run_job(tmp_path / "local", "pairs", shard_size=2)
    folder = tmp_path / "ray"
    folder.mkdir()
    src = write_jsonl(folder / "in.jsonl", SAMPLE)
    out = folder / "pairs"
    code = main([str(src), str(out), "--strategy", "tournament", "--shard-size", "2", "--cache", "none", "--ray",
                 "--ray-actors", "2", "--jsonl", f"{out}.jsonl", "--parquet", f"{out}.parquet",
                 "--dropped", f"{out}.dropped.jsonl"], backend=FakeBackend(prefers_longer))
    assert code == 0, capsys.readouterr().err
    assert "shards resumed / labeled" in capsys.readouterr().err
    paths = [out, Path(f"{out}.jsonl"), Path(f"{out}.parquet"), Path(f"{out}.dropped.jsonl")]
    assert tree_bytes(*paths) == tree_bytes(*local)


@pytest.mark.ray
def test_a_job_stopped_locally_finishes_on_ray(tmp_path, ray_session):
    _, reference = run_job(tmp_path / "ref", "pairs", shard_size=2)
    with pytest.raises(Stop):
        run_job(tmp_path, "pairs", shard_size=2, judge=Judge(backend=stop_after(prefers_longer, 20)))
    result, paths = run_job(tmp_path, "pairs", shard_size=2, ray=True, ray_actors=2)
    assert result.stats["shards_resumed"] == 2 and result.stats["shards_labeled"] == 2  # 12 + 6 judgments done
    assert tree_bytes(*paths) == tree_bytes(*reference)


# -- the real small judge, and the example ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_judge(tmp_path_factory):
    import torch

    # One thread, as in the example: on a busy CPU, waiting threads make a 135M model many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Judge("smollm2-135m", max_tokens=24, max_retries=0,
                cache=tmp_path_factory.mktemp("cache") / "judgments.sqlite")
    torch.set_num_threads(threads)


@pytest.mark.model
@pytest.mark.parametrize("strategy, responses", [
    ("best-worst", ["Paris.", "Rome is the capital of France."]),
    ("tournament", ["Paris.", "The capital of France is Paris."]),
    ("pair", ["Paris.", "Berlin."]),
])
def test_each_strategy_runs_on_the_real_small_judge(tmp_path, small_judge, strategy, responses):
    from mr3_reward.labeling import DROP_REASONS
    from mr3_reward.types import Failure

    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "fr", "prompt": "What is the capital of France?",
                                               "responses": responses, "language": "en"}])
    result = label(src, tmp_path / "out", judge=small_judge, strategy=strategy, dropped=tmp_path / "dropped.jsonl")
    s = result.summary
    assert s["rows"] == 1 and s["kept"] + sum(s["dropped"].values()) == 1
    assert set(s["dropped"]) <= set(DROP_REASONS) and set(s["failures"]) <= {f.value for f in Failure}
    expected = {"best-worst": 2, "tournament": 2, "pair": 2}[strategy]  # 2 responses: 1 pair, 2 orders
    assert s["judgments"] == expected == result.stats["requests"]
    [record] = result.dataset.to_list() or [json.loads(l) for l in (tmp_path / "dropped.jsonl").read_text().splitlines()]
    for j in record["judgments"]:
        assert (j["score"] is None) == (j["failure"] is not None)
    if s["kept"]:
        assert record["chosen"] != record["rejected"] and record["margin"] > 0
    meta = json.loads((tmp_path / "out" / "mr3_label.json").read_text(encoding="utf-8"))
    assert meta["judge"]["model"] == "smollm2-135m" and meta["judge"]["sampling"]["max_tokens"] == 24
    # The same job again, into a new folder: every judgment comes from the result cache.
    again = label(src, tmp_path / "again", judge=small_judge, strategy=strategy)
    assert again.stats["engine_items"] == 0 and again.summary == s


@pytest.mark.model
def test_label_then_dpo_example(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("label_then_dpo", REPO / "examples" / "label_then_dpo.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    judge = Judge("smollm2-135m", cache=tmp_path / "cache.sqlite", max_tokens=16, max_retries=0)
    trainer, labeled = example.main(output_dir=str(tmp_path), judge=judge)
    assert trainer.state.global_step == 2
    s = labeled.summary
    assert s["rows"] == 8 and len(s["languages"]) == 5 and 0 < s["kept"] == len(labeled.dataset)
    assert s["kept"] + sum(s["dropped"].values()) == 8
    assert any("loss" in entry for entry in trainer.state.log_history)
