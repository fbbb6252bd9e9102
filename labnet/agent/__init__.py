"""Daemons a lab runs inside its node namespaces: the flannel agent."""
