"""Estimators: log Z, KL, free energy, kernel Stein discrepancy."""

from bolt.estimators.ksd import ksd
from bolt.estimators.logz import LogZ, log_z, log_z_bridge, log_z_importance, log_z_monte_carlo, log_z_thermodynamic

__all__ = ["ksd", "LogZ", "log_z", "log_z_bridge", "log_z_importance", "log_z_monte_carlo", "log_z_thermodynamic"]
