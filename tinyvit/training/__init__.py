"""Training: the settings (config), the loop over epochs (loop), one optimiser step (step),
data-parallel helpers (distributed), the steps.jsonl curve log (steps), and the path from
settings to a finished run folder that train.py follows (runner)."""
