"""Hyperparameter sweeps with Optuna: a study plus ordinary train.py run folders.

    searchspace  what a sweep may vary (YAML/JSON or a named default) and how a trial's
                 values become a TrainConfig
    storage      where the study lives: a journal file (one machine) or PostgreSQL (many)
    study        create/load a sweep, its sampler, pruner, budget, stop and resume
    worker       one worker process: ask, train a run, report epochs, prune, tell
    processes    workers started in the background, found again by pid file
    table        the trials as rows, and the accuracy/parameters Pareto front
    cli          python -m tinyvit.sweep create|run|status|stop|resume|best
"""
