"""Verdicts: a check ``lhs ≤ rhs`` judged with its error bar, with three outcomes.

Every claim bolt checks (the bounds of MATH.md §3, the identities of the path measure, ...) is
reported as a :class:`Verdict`. With ``se = sqrt(lhs_se² + rhs_se²)`` and the margin
``(rhs − lhs)/se`` in standard-error units:

- ``"holds"``: ``margin ≥ k`` — the inequality is satisfied beyond its error bar;
- ``"violated"``: ``margin ≤ −k`` — it fails beyond its error bar;
- ``"inconclusive"``: ``|margin| < k`` (the error bar is too wide to decide), an estimator is
  undefined (NaN), or a standard error is infinite;
- ``"not informative"``: the check cannot fail on the problem at hand (e.g. its right-hand side
  exceeds a value the left-hand side can never reach); it is reported, not scored;
- ``"rate"``: the theory gives a rate but no constant; ``lhs`` is the measured ratio of the
  quantity to the rate and nothing is asserted.

``k = 2`` by default. Exact quantities (quadrature) have ``se = 0``; a relative floor of
``1e-9`` stands in for their round-off, and for them the verdict is the plain inequality (an
exact equality case holds; there is no "inconclusive").
An *equality* check (``kind="equal"``, e.g. an identity) compares ``|lhs − rhs|`` with ``k`` SE:
``holds`` when within, ``violated`` when outside (an identity can never be "inconclusive"
unless an estimator is undefined or its standard error infinite).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Verdict", "judge", "verdict", "OUTCOMES", "K_SIGMA", "REL_FLOOR"]

OUTCOMES = ("holds", "violated", "inconclusive", "not informative", "rate")
#: Default decision threshold in standard errors.
K_SIGMA = 2.0
#: Relative error floor standing in for round-off of exact (quadrature) quantities.
REL_FLOOR = 1e-9


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class Verdict:
    """One judged check.

    Attributes:
      name: identifier (``kl_bound``, ``talagrand``, ...).
      lhs, rhs: the two sides (for ``kind="equal"`` the two values that should agree).
      constant: the constant used on the right-hand side (``nan`` where none).
      lhs_se, rhs_se: their standard errors (0 for exact values).
      outcome: one of :data:`OUTCOMES`.
      margin_se: ``(rhs − lhs)/se`` (``kind="le"``) or ``−|lhs − rhs|/se`` (``kind="equal"``);
        ``±inf`` for exact values that differ, ``nan`` when undefined.
      estimator: how the sides were estimated.
      statement: the inequality in words.
      source: where the formula and its constant come from.
      note: why the outcome is ``inconclusive``/``not informative``/``rate``, or empty.
      kind: ``"le"`` (``lhs ≤ rhs``), ``"equal"`` (``lhs = rhs``) or ``"rate"``.
    """

    name: str
    lhs: float
    rhs: float
    constant: float
    lhs_se: float
    rhs_se: float
    outcome: str
    margin_se: float
    estimator: str = ""
    statement: str = ""
    source: str = ""
    note: str = ""
    kind: str = "le"

    @property
    def holds(self) -> bool:
        """True when the outcome is ``"holds"``."""
        return self.outcome == "holds"

    @property
    def violated(self) -> bool:
        """True when the outcome is ``"violated"``."""
        return self.outcome == "violated"

    def as_dict(self) -> dict:
        """JSON-friendly dict (``holds`` included for convenience)."""
        d = asdict(self)
        d["holds"] = self.holds
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Verdict:
        """Inverse of :meth:`as_dict` (unknown keys are ignored; JSON's ``null`` for a number is ``nan``,
        which is how :func:`bolt.io.write_json` stores it)."""
        fields = cls.__dataclass_fields__
        numbers = ("lhs", "rhs", "constant", "lhs_se", "rhs_se", "margin_se")
        return cls(**{k: (_num(v) if k in numbers else v) for k, v in d.items() if k in fields})


def judge(lhs, rhs, lhs_se=0.0, rhs_se=0.0, *, kind: str = "le", k: float = K_SIGMA) -> tuple[str, float, str]:
    """Outcome, margin in SE units and a note for ``lhs ≤ rhs`` (or ``lhs = rhs``).

    NaN standard errors count as 0 (a maximum over draws has none); NaN sides, and an infinite
    standard error (e.g. an importance-sampling estimate from one effective draw), give ``"inconclusive"``.
    """
    lhs, rhs = _num(lhs), _num(rhs)
    if not (math.isfinite(lhs) and math.isfinite(rhs)):
        return "inconclusive", math.nan, "estimator undefined (not finite)"
    s1, s2 = _num(lhs_se), _num(rhs_se)
    if math.isinf(s1) or math.isinf(s2):
        return "inconclusive", 0.0, "infinite standard error"
    s1 = 0.0 if not math.isfinite(s1) else abs(s1)
    s2 = 0.0 if not math.isfinite(s2) else abs(s2)
    se = math.hypot(math.hypot(s1, s2), REL_FLOOR * max(abs(lhs), abs(rhs), 1e-300))
    if kind == "equal":
        z = abs(lhs - rhs) / se
        if z < k:
            return "holds", -z, ""
        return "violated", -z, f"differ by {z:.3g} standard errors"
    if kind != "le":
        raise ValueError(f"kind: expected 'le' or 'equal', got {kind!r}")
    margin = (rhs - lhs) / se
    if s1 == 0.0 and s2 == 0.0:  # exact values: the plain inequality, up to round-off
        return ("holds", margin, "") if margin > -k else ("violated", margin, "")
    if margin >= k:
        return "holds", margin, ""
    if margin <= -k:
        return "violated", margin, ""
    return "inconclusive", margin, f"within {k:g} standard errors of equality (margin {margin:+.2f} SE)"


def verdict(name: str, lhs, rhs, lhs_se=0.0, rhs_se=0.0, *, constant=math.nan, estimator: str = "",
            statement: str = "", source: str = "", kind: str = "le", k: float = K_SIGMA,
            informative: bool = True, why_not: str = "") -> Verdict:
    """Build a judged :class:`Verdict`.

    ``informative=False`` marks a check that cannot fail on this problem: it keeps its margin but
    its outcome is ``"not informative"`` with ``why_not`` as the note. ``kind="rate"`` records a
    measured ratio (``lhs``) against a rate with no constant (``rhs`` is the rate's value).
    """
    if kind == "rate":
        return Verdict(name, _num(lhs), _num(rhs), _num(constant), _num(lhs_se), _num(rhs_se), "rate", math.nan,
                       estimator, statement, source, why_not or "the theory gives a rate, no constant", "rate")
    outcome, margin, note = judge(lhs, rhs, lhs_se, rhs_se, kind=kind, k=k)
    if not informative:
        outcome, note = "not informative", why_not or "cannot fail on this problem"
    return Verdict(name, _num(lhs), _num(rhs), _num(constant), _num(lhs_se), _num(rhs_se), outcome, margin,
                   estimator, statement, source, note, kind)
