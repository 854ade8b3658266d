"""The posterior layer: InferenceData from an engine's draws, diagnostics, summaries, predictive
laws, scoring and predictions.
"""
