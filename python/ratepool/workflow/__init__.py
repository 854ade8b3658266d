"""The workflow layer: fitting (`ratepool.fit`), the temporal fit, SBC, and reading a CmdStan
run made by hand back into a `FitResult`.
"""
