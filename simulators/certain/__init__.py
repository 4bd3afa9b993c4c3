"""Simulated Certain traffic and the demo account it is sent for."""
