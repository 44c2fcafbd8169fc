"""Closed-loop simulation: simulated users served by the real service, arms, and what the loop measured."""
