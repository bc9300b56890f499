"""Group schemes: which completions of one prompt meet, round by round, and the reward their results give.

A `Tournament` hands out rounds of pairs (`Tournament.next_round`), each meant for one judge call, and takes
back that round's results (`Tournament.record`: the preference for the first of each pair in [0, 1], ties
1/2, None where the judge could not judge); `Tournament.rewards` then gives every completion that played a
reward in [0, 1]. `play` is that loop, for all the groups of a batch at once.

| scheme        | pairs for N completions             | rounds       | reward        |
|---------------|-------------------------------------|--------------|---------------|
| `round_robin` | N(N-1)/2, every pair                | 1            | win rate      |
| `opponents`   | N*k, each against the next k        | 1            | win rate      |
| `swiss`       | floor(N/2) per round                | ceil(log2 N) | Bradley-Terry |
| `knockout`    | N - 1, a single-elimination bracket | ceil(log2 N) | Bradley-Terry |

Why two ratings: a win rate is fair when everyone meets the same field, as in a round robin (where it is the
group reward as it always was) or nearly so (each against its k neighbours). In a swiss or a bracket the
leaders meet each other, so a good completion's win rate is pulled down by its opponents and a poor one's
pulled up, and completions with the same record tie; Bradley-Terry weighs each result by the opponent's
strength. In ``python -m benchmarks group_schemes`` it orders more pairs right (correct minus wrong, tau-a) and
finds the best completion as often or more, at every size and error rate tried (tau-b, which discounts tied
pairs, prefers the win rate's ties in a knockout, and in a swiss at 25% errors). Its reward is the win rate
a completion would expect against the rest of its group, so both ratings read the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mr3_reward.debias import pair_schedule

SCHEMES = ("round_robin", "opponents", "swiss", "knockout")
RATINGS = ("win_rate", "bradley_terry")
DEFAULT_RATING = {"round_robin": "win_rate", "opponents": "win_rate", "swiss": "bradley_terry",
                  "knockout": "bradley_terry"}
# What each scheme does instead of taking group_opponents (for the error message).
_OWN_OPPONENTS = {"round_robin": "plays every pair", "swiss": "pairs completions by their standings",
                  "knockout": "plays a bracket"}
# One virtual draw against an average completion: an unbeaten completion keeps a finite strength.
PRIOR = 0.5
_TOLERANCE, _MAX_ITERATIONS = 1e-10, 2000
_SEARCH_STEPS = 10_000  # how far the swiss pairing looks for one without repeats before it allows them

Pair = tuple[int, int]


def resolve_scheme(scheme: str | None, opponents: int | None = None) -> str:
    """The scheme a reward plays: ``scheme``, or by default what ``group_opponents`` has always meant.

    >>> resolve_scheme(None), resolve_scheme(None, 2), resolve_scheme("swiss")
    ('round_robin', 'opponents', 'swiss')
    """
    if scheme is not None:
        return scheme
    return "opponents" if opponents is not None else "round_robin"


def scheme_problems(scheme: str | None, opponents: int | None = None, group_size: int | None = None) -> list[str]:
    """What is wrong with a group scheme's options, each with its fix (empty when nothing is); for
    `reward_config`, which reports every problem at once. ``group_size`` is the configured number of
    completions per prompt, if any; a batch's own group of one simply plays nothing.

    scheme (`str`, *optional*): one of `SCHEMES`; None picks the default (see `resolve_scheme`).
    opponents (`int`, *optional*): ``group_opponents``, how many next completions each one meets.
    group_size (`int`, *optional*): completions per prompt (GRPO's ``num_generations``).

    >>> scheme_problems("swiss", opponents=2)  # doctest: +NORMALIZE_WHITESPACE
    ["group_scheme='swiss' pairs completions by their standings; drop group_opponents=2, or use
      group_scheme='opponents' to play each completion against the next 2"]
    >>> scheme_problems("elo")
    ["unknown group_scheme 'elo'; use one of: round_robin, opponents, swiss, knockout"]
    """
    if scheme is not None and scheme not in SCHEMES:
        return [f"unknown group_scheme {scheme!r}; use one of: {', '.join(SCHEMES)}"]
    scheme = resolve_scheme(scheme, opponents)
    problems = []
    if scheme == "opponents" and opponents is None:
        problems.append("group_scheme='opponents' plays each completion against the next k: give group_opponents=k")
    elif scheme != "opponents" and opponents is not None:
        problems.append(f"group_scheme={scheme!r} {_OWN_OPPONENTS[scheme]}; drop group_opponents={opponents!r}, "
                        f"or use group_scheme='opponents' to play each completion against the next {opponents}")
    if isinstance(group_size, int) and group_size < 2:
        problems.append(f"group_scheme={scheme!r} needs at least 2 completions per prompt to play a match; got "
                        f"group_size={group_size} (GRPO's num_generations must be >= 2 for group mode)")
    return problems


def check_scheme(scheme: str | None, opponents: int | None = None, group_size: int | None = None) -> str:
    """The resolved scheme, or ``ValueError`` listing every problem of `scheme_problems`.

    >>> check_scheme("knockout", group_size=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: group_scheme='knockout' needs at least 2 completions per prompt to play a match; got group_size=1 ...
    """
    problems = scheme_problems(scheme, opponents, group_size)
    if problems:
        raise ValueError("; ".join(problems))
    return resolve_scheme(scheme, opponents)


class Tournament:
    """The matches of one group under one scheme: rounds of pairs out, their results in, rewards at the end.

    scheme (`str`, *optional*): one of `SCHEMES` (default as `resolve_scheme`).
    members (`Sequence[int]`): the group's completions (row indices), in order; the order breaks ties.
    opponents (`int`, *optional*): for ``"opponents"``, how many next members each one meets (cyclically).
    rounds (`int`, *optional*): for ``"swiss"``, the number of rounds (default ceil(log2 N)).
    rating (`str`, *optional*): ``"win_rate"`` or ``"bradley_terry"``; default `DEFAULT_RATING` of the scheme.

    >>> t = Tournament("knockout", [0, 1, 2])
    >>> t.next_round()  # one first-round match, member 2 has a bye
    [(0, 1)]
    >>> t.record([0.0])  # 1 beats 0
    >>> t.next_round(), t.record([1.0]), t.next_round()  # the final: 1 beats 2; then no round is left
    ([(1, 2)], None, [])
    >>> {m: round(r, 3) for m, r in t.rewards().items()}  # 0 and 2 each lost once, to the winner
    {0: 0.319, 1: 0.861, 2: 0.319}
    """

    def __init__(self, scheme: str | None, members: Sequence[int], *, opponents: int | None = None,
                 rounds: int | None = None, rating: str | None = None) -> None:
        self.scheme = check_scheme(scheme, opponents)
        if rating is not None and rating not in RATINGS:
            raise ValueError(f"unknown rating {rating!r}; use one of: {', '.join(RATINGS)}")
        self.members = list(members)
        self.opponents = opponents
        if rounds is not None and (self.scheme != "swiss" or not isinstance(rounds, int) or rounds < 1):
            raise ValueError(f"rounds= is a positive number of swiss rounds (group_scheme='swiss'); "
                             f"got rounds={rounds!r} with group_scheme={self.scheme!r}")
        self.rating = rating or DEFAULT_RATING[self.scheme]
        one_round = 1 if self.scheme in ("round_robin", "opponents") else (len(self.members) - 1).bit_length()
        self.rounds = rounds if rounds is not None else one_round
        self.results: list[tuple[int, int, float]] = []  # (first, second, preference for first), judged ones
        self.rounds_played = 0
        self._pending: list[Pair] | None = None
        self._met: set[frozenset[int]] = set()
        self._byes: list[int] = []
        self._alive = list(self.members)  # knockout: still in the bracket, in bracket order

    def next_round(self) -> list[Pair]:
        """The pairs of the next round (each to be judged first-vs-second), or ``[]`` once the scheme is done."""
        if self._pending is not None:
            raise RuntimeError("record the results of the last round (Tournament.record) before asking for the next")
        if self.rounds_played >= self.rounds or len(self.members) < 2:
            return []
        if self.scheme == "round_robin":
            pairs = pair_schedule(self.members, None)
        elif self.scheme == "opponents":
            pairs = pair_schedule(self.members, self.opponents)
        elif self.scheme == "swiss":
            pairs = self._swiss_round()
        else:
            pairs = self._knockout_round()
        self._pending = pairs
        return list(pairs)

    def record(self, results: Sequence[float | None]) -> None:
        """The results of the round `next_round` gave: per pair, the preference for its first member in [0, 1]
        (1 = first wins, 1/2 = tie; soft values welcome), or None for a pair the judge could not judge."""
        pairs = self._pending
        if pairs is None:
            raise RuntimeError("no round to record: call Tournament.next_round first")
        if len(results) != len(pairs):
            raise ValueError(f"{len(results)} results for a round of {len(pairs)} pairs; give one per pair")
        if any(p is not None and not 0.0 <= p <= 1.0 for p in results):
            raise ValueError(f"results are preferences in [0, 1] (or None); got {list(results)}")
        for (a, b), p in zip(pairs, results):
            self._met.add(frozenset((a, b)))
            if p is not None:
                self.results.append((a, b, float(p)))
        if self.scheme == "knockout":
            # A tie or a failed judgment sends the first of the pair (the earlier bracket position) through.
            winners = [b if p is not None and p < 0.5 else a for (a, b), p in zip(pairs, results)]
            self._alive = winners + self._alive[2 * len(pairs):]
        self._pending = None
        self.rounds_played += 1

    def rewards(self) -> dict[int, float]:
        """A reward in [0, 1] per member with at least one judged result (see `win_rates`, `bradley_terry`)."""
        rate = win_rates if self.rating == "win_rate" else bradley_terry
        return rate(self.members, self.results)

    def _swiss_round(self) -> list[Pair]:
        points = {m: 0.5 * self._byes.count(m) for m in self.members}  # a bye counts as a draw
        for a, b, p in self.results:
            points[a] += p
            points[b] += 1 - p
        position = {m: i for i, m in enumerate(self.members)}
        standings = sorted(self.members, key=lambda m: (-points[m], position[m]))
        if len(standings) % 2:
            bye = next((m for m in reversed(standings) if m not in self._byes), standings[-1])
            standings.remove(bye)
            self._byes.append(bye)
        return neighbour_pairing(standings, self._met)

    def _knockout_round(self) -> list[Pair]:
        # Enough first-round matches to leave a power of 2; the rest of the field has a bye.
        alive = self._alive
        matches = len(alive) - (1 << (len(alive) - 1).bit_length()) // 2
        return [(alive[2 * i], alive[2 * i + 1]) for i in range(matches)]


def neighbour_pairing(standings: Sequence[int], met: set[frozenset[int]]) -> list[Pair]:
    """Pair an even number of members top down, each with the nearest one below it that it has not met;
    backtrack when that would leave someone with only past opponents, and fall back to neighbours as they
    stand (repeats allowed) when no pairing without repeats is found.

    >>> neighbour_pairing([4, 3, 2, 1], met={frozenset((4, 3))})
    [(4, 2), (3, 1)]
    """
    steps = 0

    def search(rest: list[int]) -> list[Pair] | None:
        nonlocal steps
        steps += 1
        if not rest or steps > _SEARCH_STEPS:
            return [] if not rest else None
        first = rest[0]
        for k in range(1, len(rest)):
            if frozenset((first, rest[k])) not in met:
                tail = search(rest[1:k] + rest[k + 1:])
                if tail is not None:
                    return [(first, rest[k]), *tail]
        return None

    found = search(list(standings))
    return found if found is not None else [(standings[i], standings[i + 1]) for i in range(0, len(standings) - 1, 2)]


def win_rates(members: Sequence[int], results: Sequence[tuple[int, int, float]]) -> dict[int, float]:
    """Each member's mean result over the matches it played (ties 1/2), for members that played.

    >>> win_rates([0, 1, 2], [(0, 1, 1.0), (0, 2, 0.5)])
    {0: 0.75, 1: 0.0, 2: 0.5}
    """
    scores: dict[int, list[float]] = {m: [] for m in members}
    for a, b, p in results:
        scores[a].append(p)
        scores[b].append(1 - p)
    return {m: sum(s) / len(s) for m, s in scores.items() if s}


def bradley_terry(members: Sequence[int], results: Sequence[tuple[int, int, float]],
                  prior: float = PRIOR) -> dict[int, float]:
    """Bradley-Terry strengths fitted by the MM algorithm (Hunter 2004), given as the win rate each member
    would expect against the rest of the members that played: in [0, 1], 1/2 for an average member.

    Results may be soft (a preference of 0.7 is 0.7 of a win); every member also plays ``prior`` of a
    virtual draw against a member of strength 1, so that unbeaten or winless members keep finite strengths
    and a group whose results do not connect everyone still has one scale.

    >>> r = bradley_terry([0, 1, 2], [(0, 1, 1.0), (1, 2, 1.0)])  # 0 beat 1, 1 beat 2
    >>> r[0] > r[1] > r[2], round(sum(r.values()) / 3, 6)
    (True, 0.5)
    """
    wins = {m: 0.0 for m in members}
    games: dict[int, dict[int, int]] = {m: {} for m in members}
    for a, b, p in results:
        wins[a] += p
        wins[b] += 1 - p
        games[a][b] = games[a].get(b, 0) + 1
        games[b][a] = games[b].get(a, 0) + 1
    field = [m for m in members if games[m]]
    strength = {m: 1.0 for m in field}
    for _ in range(_MAX_ITERATIONS):
        new = {m: (wins[m] + prior) / (2 * prior / (strength[m] + 1)
                                       + sum(n / (strength[m] + strength[o]) for o, n in games[m].items()))
               for m in field}
        change = max((abs(new[m] / strength[m] - 1) for m in field), default=0.0)
        strength = new
        if change < _TOLERANCE:
            break
    return {m: sum(strength[m] / (strength[m] + strength[o]) for o in field if o != m) / (len(field) - 1)
            for m in field}


def play(tournaments: Sequence[Tournament],
         judge_round: Callable[[list[Pair]], Sequence[float | None]]) -> list[dict[int, float]]:
    """Play tournaments (one per group) to their end in lockstep: every round's pairs of all the groups go to one
    ``judge_round(pairs)`` call, so a batch costs as many judge calls as its longest scheme has rounds.

    judge_round (`Callable`): pairs -> the preference for the first of each pair (or None), in order.

    Returns each tournament's `Tournament.rewards`.

    >>> better_is_lower = lambda pairs: [1.0 if a < b else 0.0 for a, b in pairs]
    >>> swiss, knockout = play([Tournament("swiss", range(4)), Tournament("knockout", range(4, 9))], better_is_lower)
    >>> max(swiss, key=swiss.get), max(knockout, key=knockout.get)
    (0, 4)
    """
    while rounds := [(t, pairs) for t, pairs in ((t, t.next_round()) for t in tournaments) if pairs]:
        pairs = [pair for _, round_pairs in rounds for pair in round_pairs]
        results = list(judge_round(pairs))
        if len(results) != len(pairs):
            raise ValueError(f"judge_round gave {len(results)} results for {len(pairs)} pairs; give one per pair")
        start = 0
        for t, round_pairs in rounds:
            t.record(results[start:start + len(round_pairs)])
            start += len(round_pairs)
    return [t.rewards() for t in tournaments]
