"""The model layer: `ModelConfig`, the Stan programs, their data dicts, the simulator and the
prior checks.
"""
