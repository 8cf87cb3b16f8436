"""reasoning_lab: teach a small LLaMA-family model to reason step by step.

Run `python -m reasoning_lab --help` for the config groups; see README.md for the recipe.
"""

__version__ = "0.1.0"
