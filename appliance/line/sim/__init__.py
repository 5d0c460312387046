"""Simulated lines: the in-process ``sim`` line, and a V.253 voice modem on a pty."""

from appliance.line.sim.line import KeptSilent, Said, SimCall, SimLine

__all__ = ["KeptSilent", "Said", "SimCall", "SimLine"]
# VoiceModemSim (appliance.line.sim.voice_modem) is imported where needed: it
# starts a thread and a pty, nothing a plain ``sim`` line should pay for.
