"""What one graded cell earns and why: the reported values decoded, and the messages a student reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from .reference import match


class Missing(Exception):
    """A reported value is absent or could not be computed; the message says which and why."""


@dataclass
class Verdict:
    """A score as a fraction of the cell's points and one line per part checked."""
    parts: list[tuple[float, str]] = field(default_factory=list)  # (weight earned, message)
    weights: float = 0.0  # total weight of the parts
    copied_from: set[str] = field(default_factory=set)  # students whose numbers the values are answers for
    notes: list[str] = field(default_factory=list)  # why values were missing: cells that raised, were stopped
    mistakes: list[str] = field(default_factory=list)  # the named mistakes the feedback states, by their sentence
    # the other readings of a question that were accepted as right (``scalar``'s ``accepted``), by their sentence:
    # full marks, never a mistake
    accepted: list[str] = field(default_factory=list)
    blank: bool = False  # its answer cell still raises the released NotImplementedError
    stopped: bool = False  # its answer cell was stopped: a time or sandbox limit, or it ended its process
    review: bool = False  # no values could be judged: the check needs a person

    def add(self, ok: bool, message: str, weight: float = 1.0) -> None:
        self.parts.append((weight if ok else 0.0, ("PASS  " if ok else "FAIL  ") + message))
        self.weights += weight

    def note(self, message: str) -> None:
        self.notes.append("NOTE  " + message)

    def named(self, why: str) -> None:
        """Record a named mistake (its sentence from ``grader.reference`` or a check) for the class report."""
        if why not in self.mistakes:
            self.mistakes.append(why)

    def reading(self, why: str) -> None:
        """Record an accepted other reading of the question (its sentence), apart from the named mistakes."""
        if why not in self.accepted:
            self.accepted.append(why)

    def record(self) -> dict:
        """What the class report (``grader.report``) counts for this cell: plain JSON, no display text parsed."""
        return {"fraction": float(self.fraction), "mistakes": list(self.mistakes), "accepted": list(self.accepted),
                "blank": self.blank,
                "copied": bool(self.copied_from), "stopped": self.stopped, "review": self.review}

    @property
    def fraction(self) -> float:
        return sum(p for p, _ in self.parts) / self.weights if self.weights else 0.0

    @property
    def message(self) -> str:
        return "\n".join([m for _, m in self.parts] + self.notes)


VERDICT_FLAGS = ("blank", "copied", "stopped", "review")


def _sentences(value) -> list[str] | None:
    if not isinstance(value, list) or len(value) > 20 or not all(isinstance(m, str) and 0 < len(m) <= 600
                                                                  for m in value):
        return None
    return list(value)


def read_record(record) -> dict | None:
    """One graded cell's record as ``Verdict.record`` wrote it (read back from a notebook's metadata by
    ``grader.status_meta.clean_meta``), or None unless every field is as written
    (``accepted``, the other readings accepted as right, may be absent: records written before it existed)."""
    if not isinstance(record, dict) or set(record) - {"accepted"} != {"fraction", "mistakes", *VERDICT_FLAGS}:
        return None
    fraction = record["fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        return None
    mistakes, accepted = _sentences(record["mistakes"]), _sentences(record.get("accepted", []))
    if mistakes is None or accepted is None or not all(isinstance(record[k], bool) for k in VERDICT_FLAGS):
        return None
    return {"fraction": float(fraction), "mistakes": mistakes, "accepted": accepted,
            **{k: record[k] for k in VERDICT_FLAGS}}


def read_records(value) -> dict:
    """grade id -> its checked record, for the records that pass ``read_record`` (at most 200)."""
    if not isinstance(value, dict):
        return {}
    kept = {k: read_record(v) for k, v in list(value.items())[:200] if isinstance(k, str) and 0 < len(k) <= 100}
    return {k: v for k, v in kept.items() if v is not None}


def decode(x):
    """float.hex strings -> floats, lists and dicts recursively; anything else is refused."""
    if isinstance(x, str):
        try:
            return float.fromhex(x)
        except ValueError:
            raise Missing(f"a reported number {x[:20]!r} is not a float") from None
    if isinstance(x, bool):
        raise Missing("a reported number is a bool")
    if isinstance(x, int):
        return x
    if isinstance(x, list):
        return [decode(e) for e in x]
    if isinstance(x, dict):
        return {str(k): decode(v) for k, v in x.items()}
    raise Missing(f"a reported value has type {type(x).__name__}")


def value(values: dict, name: str):
    """The decoded value reported under ``name``, or Missing with the kernel's reason."""
    entry = values.get(name)
    if not isinstance(entry, dict):
        raise Missing(f"no value of {name} was reported")
    if "error" in entry:
        raise Missing(str(entry["error"])[:300])
    if "v" not in entry:
        raise Missing(f"no value of {name} was reported")
    return decode(entry["v"])


def show(x) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, list):
        inner = ", ".join(show(e) for e in x[:6])
        return f"[{inner}{', ...' if len(x) > 6 else ''}]"
    return repr(x)


def _nth(k: int, wants: list) -> str:
    return f"test input {k + 1} of {len(wants)}"


def _accepted(got: float, accepted, rel: float, abs_tol: float):
    """The first (sentence, value, feedback) of ``accepted`` whose value ``got`` matches, else None."""
    return next((a for a in accepted if match(got, {None: a[1]}, rel, abs_tol)[0]), None)


def scalar(verdict: Verdict, values: dict, name: str, candidates: dict, hint: str,
           rel: float = 1e-3, abs_tol: float = 1e-9, weight: float = 1.0, others=(), accepted=()) -> None:
    """Check one reported number against the right answer (key None), then the other readings the question
    accepts, then the named mistakes, then ``others``, (student id, why, value) of other variants: a match is
    recorded in the verdict (for the instructor) and its ``why`` shown when it has one; ``why`` None (a roster
    member's answer) shows the same message as any other wrong value, so that the feedback reveals nothing about
    other students. ``accepted`` holds (sentence, value, feedback): a match earns the full weight, is recorded
    by its sentence in ``verdict.accepted`` (not among the mistakes) and shows its feedback."""
    try:
        got = value(values, name)
    except Missing as e:
        verdict.add(False, str(e), weight)
        return
    if not isinstance(got, (int, float)):
        verdict.add(False, f"{name} is not a number", weight)
        return
    ok, why = match(float(got), candidates, rel, abs_tol)
    reading = None if ok else _accepted(float(got), accepted, rel, abs_tol)
    if ok:
        verdict.add(True, f"{name} is right", weight)
    elif reading:
        verdict.reading(reading[0])
        verdict.add(True, f"{name} = {show(float(got))} is right for {reading[2]}", weight)
    elif why:
        verdict.named(why)
        verdict.add(False, f"{name} = {show(float(got))} is wrong: {why}", weight)
    else:
        theirs = [(sid, why) for sid, why, want in others if match(float(got), {None: want}, rel, abs_tol)[0]]
        verdict.copied_from.update(sid for sid, _ in theirs)
        said = [why for _, why in theirs if why]
        if said:
            verdict.add(False, f"{name} = {show(float(got))} is wrong: {said[0]}", weight)
        else:
            verdict.add(False, f"{name} = {show(float(got))} is wrong; {hint}", weight)


def cases(verdict: Verdict, values: dict, name: str, wants: list, hint: str,
          rel: float = 1e-6, abs_tol: float = 1e-9, weight: float = 1.0) -> None:
    """Check a function's results on several inputs: ``wants[k]`` is a candidates dict for case k (right answer
    under None, named mistakes). A message names a test input by its position only: the inputs stay hidden."""
    try:
        got = value(values, name)
    except Missing as e:
        verdict.add(False, str(e), weight)
        return
    if not isinstance(got, list) or len(got) != len(wants):
        verdict.add(False, f"{name} did not report one result per test input", weight)
        return
    mistakes = set()
    for k, (g, cands) in enumerate(zip(got, wants)):
        if isinstance(cands[None], list) and not isinstance(g, list):
            verdict.add(False, f"{name} returned {show(g)} on {_nth(k, wants)}, expected a list", weight)
            return
        ok, why = match(g, cands, rel, abs_tol)
        if not ok:
            if why:
                mistakes.add(why)
                continue
            if isinstance(g, list) and isinstance(cands[None], list) and len(g) != len(cands[None]):
                verdict.add(False, f"{name} returned {len(g)} values on {_nth(k, wants)}, expected "
                                   f"{len(cands[None])}", weight)
            else:
                verdict.add(False, f"{name} returned {show(g)} on {_nth(k, wants)}, which is wrong; {hint}", weight)
            return
    if mistakes:
        for why in sorted(mistakes):
            verdict.named(why)
        verdict.add(False, f"{name} is wrong: {'; '.join(sorted(mistakes))}", weight)
    else:
        verdict.add(True, f"{name} is right on all {len(wants)} test inputs", weight)
