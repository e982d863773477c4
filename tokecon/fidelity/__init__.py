"""Fidelity: public measurements predicted, efficiency fits, and the ranges that travel with predictions."""
