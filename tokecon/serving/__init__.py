"""Serving: continuous batching, layouts and deployment, and the modes that contribute to a step (speculation, request lengths, arrivals, disaggregation, LoRA)."""
