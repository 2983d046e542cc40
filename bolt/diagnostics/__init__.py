"""ArviZ diagnostics (R-hat, ESS, MCSE, divergences, BFMI) and the HTML report."""

from bolt.diagnostics.summary import diagnose, flag_warnings

__all__ = ["diagnose", "flag_warnings"]
