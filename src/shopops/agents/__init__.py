"""Agents: the support agent, the ops copilot and the triage bot, their tools and their evaluation."""
