"""Group schemes (`mr3_reward.reward.schemes`): the pairs each scheme plays, the rewards, the validation."""

import itertools
import math
import random

import pytest

from mr3_reward.debias import pair_schedule
from mr3_reward.reward.schemes import (
    SCHEMES,
    Tournament,
    bradley_terry,
    check_scheme,
    neighbour_pairing,
    play,
    scheme_problems,
    win_rates,
)


def ordered_by(truth):
    """A noiseless judge: the member with the higher true strength wins."""
    return lambda pairs: [1.0 if truth[a] > truth[b] else 0.0 for a, b in pairs]


def shuffled(n, seed):
    truth = list(range(n))
    random.Random(seed).shuffle(truth)
    return truth


def rounds_of(tournament, judge):
    """Play one tournament to its end; its rounds of pairs."""
    rounds = []
    while pairs := tournament.next_round():
        rounds.append(pairs)
        tournament.record(judge(pairs))
    return rounds


def every_pair_ordered_as(rewards, truth):
    """Kendall tau = 1: every pair of members strictly ordered, and as the truth orders it."""
    return all((rewards[a] - rewards[b]) * (truth[a] - truth[b]) > 0 for a, b in itertools.combinations(rewards, 2))


# -- the pairs each scheme plays ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", range(10))
def test_round_robin_is_todays_schedule_in_one_round(n):
    members = [3 * i + 1 for i in range(n)]  # row indices, not positions
    rounds = rounds_of(Tournament("round_robin", members), lambda pairs: [0.5] * len(pairs))
    assert rounds == ([pair_schedule(members, None)] if n >= 2 else [])
    assert sum(map(len, rounds)) == n * (n - 1) // 2


@pytest.mark.parametrize("n, k", [(5, 1), (6, 2), (9, 2), (4, 3), (8, 1)])
def test_opponents_is_todays_group_opponents_in_one_round(n, k):
    members = list(range(10, 10 + n))
    assert rounds_of(Tournament("opponents", members, opponents=k), lambda p: [1.0] * len(p)) == [
        pair_schedule(members, k)]


@pytest.mark.parametrize("n", range(2, 18))
def test_knockout_plays_n_minus_1_pairs_and_everyone_plays(n):
    truth = shuffled(n, n)
    rounds = rounds_of(Tournament("knockout", range(n)), ordered_by(truth))
    pairs = [pair for r in rounds for pair in r]
    assert len(pairs) == n - 1
    assert len(rounds) == math.ceil(math.log2(n))
    assert {m for pair in pairs for m in pair} == set(range(n))
    assert len({frozenset(p) for p in pairs}) == len(pairs)


@pytest.mark.parametrize("n", range(2, 18))
@pytest.mark.parametrize("judge", ["noiseless", "random soft"])
def test_swiss_plays_half_the_group_per_round_for_log2_n_rounds_without_repeats(n, judge):
    rng = random.Random(n)
    results = ordered_by(shuffled(n, n)) if judge == "noiseless" else (lambda p: [rng.random() for _ in p])
    rounds = rounds_of(Tournament("swiss", range(n)), results)
    assert len(rounds) == math.ceil(math.log2(n))
    assert all(len(r) == n // 2 for r in rounds)
    pairs = [frozenset(pair) for r in rounds for pair in r]
    assert len(set(pairs)) == len(pairs) == (n // 2) * math.ceil(math.log2(n))
    for r in rounds:  # one bye a round when n is odd, never the same member twice while others had none
        sitting = set(range(n)) - {m for pair in r for m in pair}
        assert len(sitting) == n % 2
    if n % 2:
        byes = [next(iter(set(range(n)) - {m for pair in r for m in pair})) for r in rounds]
        assert len(set(byes)) == len(byes)


def test_swiss_repeats_a_pair_only_when_no_new_opponent_is_left():
    t = Tournament("swiss", [0, 1], rounds=2)
    assert rounds_of(t, lambda pairs: [1.0] * len(pairs)) == [[(0, 1)], [(0, 1)]]
    # The nearest new opponent is taken, backtracking so that nobody is left with only past opponents.
    assert neighbour_pairing([1, 2, 3, 4], {frozenset((1, 2)), frozenset((3, 4))}) == [(1, 3), (2, 4)]
    assert neighbour_pairing([1, 2, 3, 4], {frozenset((1, 3)), frozenset((2, 4))}) == [(1, 2), (3, 4)]
    assert neighbour_pairing([1, 2, 3, 4], {frozenset((1, 2)), frozenset((1, 3)), frozenset((2, 4))}) == [
        (1, 4), (2, 3)]


def test_swiss_pairs_by_the_standings_ties_broken_by_position():
    t = Tournament("swiss", [7, 8, 9, 10])
    assert t.next_round() == [(7, 8), (9, 10)]  # no results yet: neighbours by position
    t.record([0.0, 1.0])  # 8 and 9 won
    assert t.next_round() == [(8, 9), (7, 10)]


# -- a noiseless judge -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 4, 7, 8, 16])
def test_round_robin_recovers_the_true_order_exactly(n):
    for seed in range(20):
        truth = shuffled(n, seed)
        assert every_pair_ordered_as(play([Tournament("round_robin", range(n))], ordered_by(truth))[0], truth)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_swiss_with_a_round_per_opponent_recovers_the_true_order_exactly(n):
    for seed in range(20):
        truth = shuffled(n, seed)
        assert every_pair_ordered_as(play([Tournament("swiss", range(n), rounds=n - 1)], ordered_by(truth))[0], truth)


@pytest.mark.parametrize("n", [8, 16])
def test_swiss_in_log2_n_rounds_ranks_the_best_first_and_nearly_orders_the_rest(n):
    # ceil(log2 N) rounds of N/2 pairs are fewer results than log2(N!) bits: no scheme of that size can always
    # recover the full order, so the test asks for the winner and a high mean Kendall tau.
    concordant = []
    for seed in range(50):
        truth = shuffled(n, seed)
        rewards = play([Tournament("swiss", range(n))], ordered_by(truth))[0]
        best = truth.index(n - 1)
        assert rewards[best] > max(r for m, r in rewards.items() if m != best)
        signs = [(rewards[a] - rewards[b]) * (truth[a] - truth[b]) for a, b in itertools.combinations(range(n), 2)]
        concordant.append((sum(s > 0 for s in signs) - sum(s < 0 for s in signs)) / len(signs))
    assert (n // 2) * math.ceil(math.log2(n)) < math.log2(math.factorial(n))
    assert sum(concordant) / len(concordant) > 0.75


@pytest.mark.parametrize("n", range(2, 18))
def test_knockout_finds_the_true_winner(n):
    for seed in range(10):
        truth = shuffled(n, seed)
        rewards = play([Tournament("knockout", range(n))], ordered_by(truth))[0]
        best = truth.index(n - 1)
        assert set(rewards) == set(range(n))
        assert rewards[best] > max(r for m, r in rewards.items() if m != best)


# -- rewards -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme, options", [("round_robin", {}), ("opponents", {"opponents": 2}), ("swiss", {}),
                                             ("knockout", {}), ("swiss", {"rating": "win_rate"}),
                                             ("round_robin", {"rating": "bradley_terry"})])
def test_rewards_are_in_0_1_with_soft_tied_and_failed_results(scheme, options):
    rng = random.Random(0)
    for n in range(1, 12):
        outcomes = lambda pairs: [rng.choice([None, 0.0, 0.5, 1.0, rng.random()]) for _ in pairs]
        rewards = play([Tournament(scheme, range(n), **options)], outcomes)[0]
        assert all(0.0 <= r <= 1.0 for r in rewards.values())
        assert set(rewards) <= set(range(n))


def test_round_robin_reward_is_todays_win_rate():
    # Today's score_group: each member's list of p (ties 0.5), its reward sum / len.
    members, p = [0, 1, 2, 3], {(0, 1): 1.0, (0, 2): 0.5, (0, 3): 0.25, (1, 2): None, (1, 3): 0.0, (2, 3): 0.7}
    rewards = play([Tournament(None, members)], lambda pairs: [p[pair] for pair in pairs])[0]
    assert rewards == {0: (1.0 + 0.5 + 0.25) / 3, 1: (0.0 + 0.0) / 2, 2: (0.5 + 0.7) / 2, 3: (0.75 + 1.0 + 0.3) / 3}
    assert rewards == win_rates(members, [(a, b, q) for (a, b), q in p.items() if q is not None])


def test_bradley_terry_is_finite_for_the_unbeaten_symmetric_and_averages_one_half():
    rewards = bradley_terry([0, 1, 2], [(0, 1, 1.0), (0, 2, 1.0), (1, 2, 1.0)])
    assert rewards[0] > rewards[1] > rewards[2]  # the order of the wins
    assert all(0 < r < 1 for r in rewards.values()), rewards  # finite strengths, even for the unbeaten
    assert math.isclose(sum(rewards.values()) / 3, 0.5)
    assert bradley_terry([5, 6], [(5, 6, 0.5)]) == {5: 0.5, 6: 0.5}
    soft = bradley_terry([0, 1], [(0, 1, 0.7)])
    assert 0.5 < soft[0] < bradley_terry([0, 1], [(0, 1, 1.0)])[0]
    assert bradley_terry([0, 1, 2], [(0, 1, 1.0)]).keys() == {0, 1}  # 2 played nothing: no reward


def test_knockout_sends_the_first_through_on_a_tie_or_a_failed_judgment():
    t = Tournament("knockout", [0, 1, 2, 3])
    assert t.next_round() == [(0, 1), (2, 3)]
    t.record([0.5, None])
    assert t.next_round() == [(0, 2)]
    t.record([0.0])
    assert t.results == [(0, 1, 0.5), (0, 2, 0.0)]
    assert set(t.rewards()) == {0, 1, 2}  # 3's only match failed: no reward


def test_a_group_of_one_plays_nothing():
    for scheme in ("round_robin", "swiss", "knockout"):
        t = Tournament(scheme, [4])
        assert t.next_round() == [] and t.rewards() == {}


def test_play_judges_one_round_of_every_group_per_call():
    calls = []

    def judge(pairs):
        calls.append(list(pairs))
        return [1.0 if a < b else 0.0 for a, b in pairs]

    tournaments = [Tournament("round_robin", [0, 1, 2]), Tournament("knockout", [10, 11, 12, 13]),
                   Tournament("swiss", [20, 21, 22, 23, 24, 25, 26, 27])]
    rewards = play(tournaments, judge)
    assert [len(c) for c in calls] == [3 + 2 + 4, 1 + 4, 4]
    assert [max(r, key=r.get) for r in rewards] == [0, 10, 20]


# -- validation ------------------------------------------------------------------------------------------------
def test_scheme_validation_names_the_fix():
    assert check_scheme(None) == "round_robin" and check_scheme(None, 3) == "opponents"
    assert scheme_problems("opponents", 2) == [] and scheme_problems("knockout", group_size=8) == []
    with pytest.raises(ValueError, match="unknown group_scheme 'elo'; use one of: " + ", ".join(SCHEMES)):
        check_scheme("elo")
    with pytest.raises(ValueError, match=r"drop group_opponents=2, or use group_scheme='opponents'"):
        check_scheme("swiss", opponents=2)
    with pytest.raises(ValueError, match="give group_opponents=k"):
        check_scheme("opponents")
    with pytest.raises(ValueError, match="needs at least 2 completions per prompt.*group_size=1"):
        check_scheme("knockout", group_size=1)
    assert len(scheme_problems("round_robin", opponents=1, group_size=0)) == 2  # every problem at once


def test_tournament_refuses_misuse():
    with pytest.raises(ValueError, match="unknown rating"):
        Tournament("swiss", range(4), rating="elo")
    with pytest.raises(ValueError, match="rounds= is a positive number of swiss rounds"):
        Tournament("knockout", range(4), rounds=2)
    t = Tournament("swiss", range(4))
    with pytest.raises(RuntimeError, match="call Tournament.next_round first"):
        t.record([1.0])
    t.next_round()
    with pytest.raises(RuntimeError, match="record the results of the last round"):
        t.next_round()
    with pytest.raises(ValueError, match="1 results for a round of 2 pairs"):
        t.record([1.0])
    with pytest.raises(ValueError, match=r"preferences in \[0, 1\]"):
        t.record([1.5, 0.0])


# -- the benchmark's pieces ----------------------------------------------------------------------------------------
def test_benchmark_engine_run_plays_every_scheme_through_a_judge_callable():
    from benchmarks.group_schemes import engine_run, kendall_tau

    completions = ["a" * k for k in (3, 9, 1, 7, 5, 2, 8, 4)]
    calls = []

    def longer_wins(pairs):
        calls.append(len(pairs))
        return [1.0 if len(first) > len(second) else 0.0 for first, second in pairs]

    runs = engine_run(longer_wins, completions, quality=[len(c) for c in completions])
    assert [r["run"] for r in runs] == ["round_robin", "opponents k=1", "opponents k=2", "swiss", "knockout"]
    assert [(r["rounds"], r["pairs"]) for r in runs] == [(1, 28), (1, 8), (1, 16), (3, 12), (3, 7)]
    assert sum(calls) == sum(r["pairs"] for r in runs) and runs[0]["tau"] == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0 and kendall_tau([1, 1], [1, 2]) == 0.0


def test_benchmark_run_writes_its_json_and_chart(tmp_path):
    from benchmarks.group_schemes import run

    result = run(sizes=(4, 8), noises=(0.1,), trials=3, variants=False, out_dir=tmp_path)
    assert {c["run"] for c in result["cells"]} == {"round_robin", "opponents k=1", "opponents k=2", "swiss", "knockout"}
    assert set(result["goal"]["per_run"]["swiss"]["cells"]) == {"N=8, noise 0.1"}
    assert (tmp_path / "group_schemes.png").read_bytes()[:4] == b"\x89PNG"
    assert '"goal"' in (tmp_path / "group_schemes.json").read_text()


# -- MR3Reward(mode="group", group_scheme=...) on the scripted engine ------------------------------------------
def group_reward(backend, **options):
    from mr3_reward.judge import Judge
    from mr3_reward.reward import MR3Reward

    return MR3Reward(judge=Judge(backend=backend, cache=None), mode="group", **options)


# Distinct lengths, shuffled: the scripted judge prefers the longer, so the longest is the best.
EIGHT = ["a" * k for k in (3, 9, 1, 7, 5, 2, 8, 4)]


@pytest.mark.parametrize("scheme, pairs", [("round_robin", 28), ("swiss", 4 * 3), ("knockout", 7)])
def test_a_reward_plays_its_scheme_one_judge_call_per_round(scheme, pairs):
    from mr3_reward.backends.fake import FakeBackend
    from mr3_reward.backends.testing import longer_wins

    fb = FakeBackend(longer_wins)
    reward = group_reward(fb, group_scheme=scheme)
    out = reward(["p"] * 8, EIGHT)
    rounds = 1 if scheme == "round_robin" else 3
    assert (fb.calls, fb.items) == (rounds, 2 * pairs)  # both orders, every round's pairs in one call
    assert reward.last_metrics["judgments"] == 2 * pairs and reward.last_metrics["position_consistency"] == 1.0
    assert all(0.0 <= r <= 1.0 for r in out)
    best = EIGHT.index("a" * 9)
    assert out[best] > max(r for i, r in enumerate(out) if i != best)


def test_round_robin_rewards_and_notes_are_todays_win_rates():
    from mr3_reward.backends.fake import FakeBackend
    from mr3_reward.backends.testing import longer_wins

    default, named = FakeBackend(longer_wins), FakeBackend(longer_wins)
    out = group_reward(default)(["p"] * 8, EIGHT)
    assert out == [sorted(EIGHT, key=len).index(c) / 7 for c in EIGHT]  # beaten by every longer one
    assert group_reward(named, group_scheme="round_robin")(["p"] * 8, EIGHT) == out
    assert (default.calls, default.items) == (named.calls, named.items) == (1, 56)


def test_swiss_and_knockout_play_every_group_of_the_batch_in_lockstep():
    from mr3_reward.backends.fake import FakeBackend
    from mr3_reward.backends.testing import longer_wins

    fb = FakeBackend(longer_wins)
    prompts = ["p"] * 8 + ["q"] * 4
    out = group_reward(fb, group_scheme="swiss", debias="none")(prompts, EIGHT + ["bb", "b", "bbbb", "bbb"])
    assert (fb.calls, fb.items) == (3, 4 * 3 + 2 * 2)  # q's two rounds ride along p's first two
    assert max(range(8, 12), key=lambda i: out[i]) == 10


def test_a_scheme_keeps_empty_invalid_and_identical_completions_as_round_robin_does():
    from mr3_reward.backends.fake import FakeBackend
    from mr3_reward.backends.testing import longer_wins

    for scheme in ("swiss", "knockout"):
        fb = FakeBackend(longer_wins)
        reward = group_reward(fb, group_scheme=scheme)
        completions = ["same", "same", "", None, "a longer one", "x"]
        out = reward(["p"] * 6, completions)
        assert out[3] is None  # not text: plays nothing
        assert out[2] is not None and out[2] == min(r for r in out if r is not None)  # the empty one loses
        assert all(0.0 <= r <= 1.0 for r in out if r is not None)
        assert fb.items % 2 == 0 and fb.items <= 2 * 4  # only real, different completions are judged
    extra = {}
    reward = group_reward(FakeBackend(longer_wins), group_scheme="knockout")
    reward(["p", "p"], ["same", "same"], log_extra=lambda column, values: extra.update({column: list(values)}))
    assert reward.judge.backend.items == 0  # identical: a tie without a judgment
    assert extra["mr3_verdict"] == ["strength 0.50 (won 0.5/1)"] * 2
    alone = {}
    group_reward(FakeBackend(longer_wins), group_scheme="swiss")(
        ["p", "q"], ["one", "two"], log_extra=lambda column, values: alone.update({column: list(values)}))
    assert alone["mr3_verdict"] == ["not judged: no other completion of this prompt in the batch"] * 2


def test_group_scheme_is_checked_at_construction_with_the_other_problems():
    from mr3_reward.errors import ConfigError
    from mr3_reward.reward import MR3Reward

    with pytest.raises(ConfigError) as e:
        MR3Reward(model="fake", backend="fake", cache=None, mode="group", group_scheme="swiss", group_opponents=2,
                  soft="no")
    assert "soft must be True or False" in str(e.value) and "drop group_opponents=2" in str(e.value)
    with pytest.raises(ConfigError, match="group_scheme='knockout' is how group mode pairs completions"):
        MR3Reward(model="fake", backend="fake", cache=None, mode="binary", group_scheme="knockout")


def test_a_reward_with_a_scheme_pickles():
    import pickle

    from mr3_reward.reward import MR3Reward

    reward = MR3Reward(model="fake", backend="fake", cache=None, mode="group", group_scheme="swiss")
    reward = pickle.loads(pickle.dumps(reward))
    assert reward.group_scheme == "swiss" and reward.config.group_scheme == "swiss"
    assert len(reward(["p"] * 4, ["a", "bb", "ccc", "dddd"])) == 4


class _Remote:
    """`GroupBoard` behind ``.remote`` calls, as `RankGroups` calls the Ray actor, run in this process."""

    def __init__(self, board):
        self._board = board

    def __getattr__(self, name):
        method = getattr(self._board, name)
        return type("Method", (), {"remote": staticmethod(method)})


def test_group_mode_across_ranks_plays_the_scheme_on_the_whole_group(monkeypatch):
    """Two ranks hold 4 of a group's 8 completions each; the leader judges the whole group under the scheme, in
    its rounds, and both ranks get the rewards one process holding the group in the leader's order (the parts by
    rank: a bracket depends on the order) gets. The board is the real `GroupBoard` class in this process (no
    cluster: `ray.get` is the identity on its synchronous answers)."""
    import dataclasses
    import threading

    ray = pytest.importorskip("ray")
    from mr3_reward.backends.fake import FakeBackend
    from mr3_reward.backends.testing import longer_wins
    from mr3_reward.judge import Judge
    from mr3_reward.reward.groups import GroupBoard, RankGroups
    from mr3_reward.reward.modes import screen
    from mr3_reward.reward.options import reward_config

    halves, out = {0: [0, 2, 4, 6], 1: [1, 3, 5, 7]}, {}
    order = halves[0] + halves[1]
    alone = group_reward(FakeBackend(longer_wins), group_scheme="knockout")(["p"] * 8, [EIGHT[i] for i in order])
    whole = [alone[order.index(i)] for i in range(8)]
    monkeypatch.setattr(ray, "get", lambda value, *args, **kwargs: value)
    config = dataclasses.replace(reward_config(mode="group", group_scheme="knockout"), group_size=8, group_timeout_s=30)
    fb = FakeBackend(longer_wins)
    judge, shared = Judge(backend=fb, cache=None), _Remote(GroupBoard())

    def rank(k):
        groups = RankGroups(k)
        groups._board = shared
        batch = screen([{"prompt": "p", "completion": EIGHT[i], "completion_type": "str"} for i in halves[k]], config)
        groups.score(judge, config, batch, step=0)
        out[k] = batch.rewards

    threads = [threading.Thread(target=rank, args=(k,)) for k in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    split = [None] * 8
    for k, idx in halves.items():
        for i, r in zip(idx, out[k]):
            split[i] = r
    assert split == whole
    assert (fb.calls, fb.items) == (3, 2 * 7)  # judged once, by the leader: 3 rounds, 7 pairs in both orders


def test_benchmark_reward_engine_run_goes_through_the_reward():
    from benchmarks.group_schemes import ENGINE_GROUP, ENGINE_PROMPT, reward_engine_run
    from mr3_reward.backends.fake import FakeBackend
    from mr3_reward.backends.testing import longer_wins
    from mr3_reward.judge import Judge

    fb = FakeBackend(longer_wins)
    completions = [c for c, _ in ENGINE_GROUP]
    runs = reward_engine_run(Judge(backend=fb, cache=None), ENGINE_PROMPT, completions, [len(c) for c in completions])
    assert [(r["run"], r["rounds"], r["judgments"]) for r in runs] == [
        ("round_robin", 1, 56), ("opponents k=1", 1, 16), ("opponents k=2", 1, 32), ("swiss", 3, 24), ("knockout", 3, 14)]
    assert fb.items == sum(r["judgments"] for r in runs) and runs[0]["tau_vs_round_robin"] == 1.0
    assert runs[0]["tau_vs_quality"] > 0.9  # the scripted judge prefers the longer: quality is the length


def test_benchmark_scripted_run_keeps_the_engine_run(tmp_path):
    import json

    from benchmarks.group_schemes import run

    (tmp_path / "group_schemes.json").write_text(json.dumps({"engine": {"runs": []}}), encoding="utf-8")
    run(sizes=(4,), noises=(0.1,), trials=2, variants=False, out_dir=tmp_path)
    saved = json.loads((tmp_path / "group_schemes.json").read_text(encoding="utf-8"))
    assert saved["engine"] == {"runs": []} and saved["cells"]
