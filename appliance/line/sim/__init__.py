"""Simulated lines: the in-process ``sim`` line (the modem simulators join later)."""

from appliance.line.sim.line import KeptSilent, Said, SimCall, SimLine

__all__ = ["KeptSilent", "Said", "SimCall", "SimLine"]
